"""The upgrade journal: every tree an installer may change is saved first, and put back by rename.

Before the installer runs, each tree (`InstallDir`, `EngineDir`, every `UpgradeBackupPaths` entry; a file
or a directory) is copied to `<parent>/.<name>.proscanup-saved`, on its own filesystem so that restoring
is a rename, never a copy into a cleared tree (a copy that hits ENOSPC leaves empty files). The journal,
`<StateDir>/upgrade.journal`, is written before the first copy and says what was saved and how far the
upgrade went:

- `saving`: copies being made; the trees are untouched. Recovery removes the copies.
- `installing`: the installer may have changed anything. Recovery puts every tree back: the tree is
  renamed to `.<name>.proscanup-failed`, the saved copy renamed into its place, the paths kept out of
  the save (the virus databases, inside InstallDir by default) moved back from the failed tree, and the
  failed tree removed. Each step can be redone after a kill, so recovery itself may be killed.
- `committing`: the upgrade succeeded; recovery only removes the saved copies.

A run that finds a journal recovers before anything else (`proscanup upgrade` and `proscanup update`).
A copy that runs out of space is removed and the upgrade refused, before the installer runs.
Python 3.6-clean.
"""

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Callable, List, NamedTuple, Sequence

from pum.agent.command import stop_marked
from pum.errors import ConfigError, StoreError

JOURNAL = "upgrade.journal"
GENERATION = 1
JOURNAL_LIMIT = 1 << 20
_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class NotEnoughSpace(StoreError):
    """The upgrade was refused before the installer ran; nothing was changed."""


class SavedTree(NamedTuple):
    path: str  # the tree
    existed: bool  # False: it did not exist, and a restore removes what the installer made there
    kept: List[str]  # paths inside the tree neither saved nor restored (they stay as they are)

    @property
    def saved(self) -> Path:
        return _beside(Path(self.path), "saved")

    @property
    def failed(self) -> Path:
        return _beside(Path(self.path), "failed")


def _beside(path: Path, what: str) -> Path:
    return path.with_name(f".{path.name}.proscanup-{what}")


class Journal:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / JOURNAL

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> "JournalState":
        try:
            with open(str(self.path), "rb") as stream:
                document = json.loads(stream.read(JOURNAL_LIMIT).decode("utf-8"))
            trees = [
                SavedTree(t["path"], bool(t["existed"]), [str(k) for k in t["kept"]])
                for t in document["trees"]
            ]
            return JournalState(
                str(document["package"]), str(document["state"]), trees, str(document["session"])
            )
        except (ValueError, KeyError, TypeError) as error:
            raise StoreError(
                f"{self.path}: unreadable upgrade journal ({error}); the saved copies beside the trees it "
                "names (.<name>.proscanup-saved) are the previous installation: restore them by hand, "
                "then delete the journal"
            ) from None

    def write(self, state: "JournalState") -> None:
        document = {
            "generation": GENERATION,
            "package": state.package,
            "state": state.state,
            "trees": [{"path": t.path, "existed": t.existed, "kept": t.kept} for t in state.trees],
            "session": state.session,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        part = self.path.with_name(JOURNAL + ".part")
        with open(str(part), "w", encoding="utf-8") as stream:
            json.dump(document, stream, indent=1)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(str(part), str(self.path))
        _fsync_dir(self.path.parent)

    def remove(self) -> None:
        self.path.unlink()
        _fsync_dir(self.path.parent)


class JournalState(NamedTuple):
    package: str
    state: str  # saving | installing | committing
    trees: List[SavedTree]
    session: str  # the installer's PROSCANUP_SESSION marker: what a killed run left running is stopped


def plan_trees(paths: Sequence[Path], kept: Sequence[Path], state_dir: Path) -> List[SavedTree]:
    """The trees to save, each with the `kept` paths inside it; refused when the journal itself would move."""
    trees = []
    for path in paths:
        if path == state_dir or path in state_dir.parents:
            raise ConfigError(
                f"StateDir {state_dir} is inside {path}, which the upgrade saves and restores: the upgrade "
                "journal must live outside the trees it restores (set StateDir elsewhere)"
            )
        inside = [str(k.relative_to(path)) for k in kept if path in k.parents]
        trees.append(SavedTree(str(path), os.path.lexists(str(path)), sorted(inside)))
    return trees


def save(
    journal: Journal, package: str, trees: List[SavedTree], session: str, say: Callable[[str], None]
) -> JournalState:
    """Journal first, then a copy of every tree beside it; a copy that runs out of space is removed and the
    upgrade refused."""
    for tree in trees:
        for leftover in (tree.saved, tree.failed):
            if os.path.lexists(str(leftover)):
                raise StoreError(
                    f"{leftover} exists but no upgrade journal names it: it may be the only copy of a "
                    "previous installation; look at it, then remove it"
                )
    state = JournalState(package, "saving", trees, session)
    journal.write(state)
    try:
        for tree in trees:
            if tree.existed:
                say(f"Saving {tree.path} to {tree.saved}")
                _copy(Path(tree.path), tree.saved, [Path(tree.path, k) for k in tree.kept])
    except OSError as error:
        discard_saved(trees)
        journal.remove()
        if error.errno in _SPACE:
            raise NotEnoughSpace(
                f"the copy of {tree.path} ran out of space on {tree.saved.parent} ({error.strerror}): it was "
                "removed and nothing was changed; free space there or raise UpgradeFreeSpace"
            ) from None
        raise
    state = state._replace(state="installing")
    journal.write(state)
    return state


def _copy(source: Path, dest: Path, kept: List[Path]) -> None:
    part = dest.with_name(dest.name + ".part")
    if os.path.lexists(str(part)):
        _remove(part)
    try:
        _copy_entry(source, part, kept)
        os.rename(str(part), str(dest))
    except BaseException:
        if os.path.lexists(str(part)):
            _remove(part)
        raise


def _copy_entry(source: Path, dest: Path, kept: List[Path]) -> None:
    """Copy with modes, times and (as root) owners, stopping at the first error (shutil.copytree goes on
    and gathers them, which would fill a full filesystem further)."""
    if source.is_symlink():
        os.symlink(os.readlink(str(source)), str(dest))
    elif source.is_dir():
        os.mkdir(str(dest))
        for child in sorted(os.listdir(str(source))):
            if source / child not in kept:
                _copy_entry(source / child, dest / child, kept)
        shutil.copystat(str(source), str(dest))
    else:
        shutil.copy2(str(source), str(dest))
    if os.geteuid() == 0:
        stat = os.lstat(str(source))
        os.lchown(str(dest), stat.st_uid, stat.st_gid)


def restore(journal: Journal, state: JournalState) -> None:
    """Every tree back as it was saved (by rename), then the journal removed. Redone safely after a kill."""
    for tree in reversed(state.trees):
        path = Path(tree.path)
        if os.path.lexists(str(tree.saved)) or not tree.existed:
            if os.path.lexists(str(path)):
                if os.path.lexists(str(tree.failed)):
                    _remove(tree.failed)  # a restore killed before: this tree is the installer's again
                os.rename(str(path), str(tree.failed))
            if tree.existed:
                os.rename(str(tree.saved), str(path))
        if os.path.lexists(str(tree.failed)):
            for kept in tree.kept:
                moved, home = tree.failed / kept, path / kept
                if os.path.lexists(str(moved)) and not os.path.lexists(str(home)):
                    home.parent.mkdir(parents=True, exist_ok=True)
                    os.rename(str(moved), str(home))
            _remove(tree.failed)
    journal.remove()


def commit(journal: Journal, state: JournalState) -> None:
    journal.write(state._replace(state="committing"))
    discard_saved(state.trees)
    journal.remove()


def discard_saved(trees: List[SavedTree]) -> None:
    for tree in trees:
        for leftover in (tree.saved, tree.saved.with_name(tree.saved.name + ".part")):
            if os.path.lexists(str(leftover)):
                _remove(leftover)


def recover(journal: Journal, say: Callable[[str], None]) -> bool:
    """Finish what a killed upgrade left; True when there was something."""
    if not journal.exists():
        return False
    state = journal.read()
    stop_marked(state.session)  # an installer the killed run left behind must not write while we restore
    if state.state == "installing":
        say(f"An upgrade was interrupted ({state.package}): restoring the previous installation")
        restore(journal, state)
        say("The previous installation is restored")
    else:
        say(f"Found the journal of an upgrade ({state.package}, {state.state}): removing its saved copies")
        discard_saved(state.trees)
        journal.remove()
    return True


def tree_size(path: Path, kept: Sequence[Path] = ()) -> int:
    """Bytes a copy of `path` takes, roughly (file sizes; links and directories count nothing)."""
    if not os.path.lexists(str(path)):
        return 0
    if not path.is_dir() or path.is_symlink():
        return os.lstat(str(path)).st_size
    total = 0
    for directory, dirnames, filenames in os.walk(str(path)):
        dirnames[:] = [d for d in dirnames if Path(directory, d) not in kept]
        for name in filenames:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except FileNotFoundError:
                pass
    return total


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(str(path))
    else:
        path.unlink()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(str(directory), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
