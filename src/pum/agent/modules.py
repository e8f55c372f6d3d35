"""Step 1: replace changed modules, all of them or none.

Each changed module is downloaded beside its target (same directory, so the same filesystem), checked
against the list's md5, and renamed over the old file: a process running the old binary keeps its inode,
so nobody ever sees "Text file busy" or half a file. All changed modules are fetched and checked before the
first rename, so a refused file leaves every module as it was. The renames are undone when one fails (the
old file is kept as a hard link until all are done), and an OSError (a full disk) becomes one StoreError
naming the file: the step stops with no module changed and no `.proscanup-new` file left, and the VDF
step still runs.
"""

import contextlib
import os
from pathlib import Path
from typing import List, Optional, Tuple

from pum.agent.listing import Module, Say
from pum.agent.pum_client import UpdateClient
from pum.common.hashing import md5_file
from pum.errors import StoreError

EXECUTABLE_DIRS = ("bin", "sbin")
NEW = ".proscanup-new"
OLD = ".proscanup-old"


def changed_modules(modules: List[Module]) -> List[Module]:
    return [m for m in modules if not (m.target.is_file() and md5_file(m.target) == m.entry.md5)]


def _beside(module: Module, suffix: str) -> Path:
    return module.target.with_name(f".{module.target.name}{suffix}")


def update_modules(client: UpdateClient, modules: List[Module], say: Say) -> List[Module]:
    """Returns the modules replaced."""
    try:
        _clean_leftovers(modules)
        changed = changed_modules(modules)
        if not changed:
            say("Modules are up to date")
            return []
        staged: List[Tuple[Module, Path]] = []
        try:
            for module in changed:
                say(f"Downloading file {module.relative}, Please wait...")
                beside = _beside(module, NEW)
                client.download(module.entry.path, beside, module.entry.md5)
                staged.append((module, beside))
                os.chmod(str(beside), _mode_for(module))
            _replace_all(staged)
        finally:
            _clean_leftovers(changed)
    except OSError as error:
        where = error.filename or "a module"
        raise StoreError(
            f"modules: {where}: {error.strerror or error}; no module was changed (the VDF step still runs)"
        ) from None
    for module, _beside_path in staged:
        say(f"Success: Update module {module.relative} [md5sum {module.entry.md5}]")
    return changed


def _replace_all(staged: List[Tuple[Module, Path]]) -> None:
    """Rename every staged file over its target; on the first failure put back the ones already done."""
    done: List[Tuple[Module, Optional[Path]]] = []
    try:
        for module, beside in staged:
            old: Optional[Path] = None
            if os.path.lexists(str(module.target)):
                old = _beside(module, OLD)
                _remove(old)
                os.link(str(module.target), str(old))
            os.replace(str(beside), str(module.target))
            done.append((module, old))
    except BaseException:
        for module, old in reversed(done):
            if old is not None:
                os.replace(str(old), str(module.target))
            else:
                _remove(module.target)
        raise


def _clean_leftovers(modules: List[Module]) -> None:
    """What this step (or a killed earlier run) left beside the modules: staged, partial and old copies."""
    for module in modules:
        for suffix in (NEW, NEW + ".part", OLD):
            _remove(_beside(module, suffix))


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(str(path))


def _mode_for(module: Module) -> int:
    """A replaced module keeps its mode; a new one is executable only in bin/ or sbin/."""
    try:
        return module.target.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o755 if module.relative.split("/")[0] in EXECUTABLE_DIRS else 0o644
