"""`pum repair`: put every kept release back to its manifest after files were written into the docroot by
hand, and move foreign files aside (never deleted) for `pum import`.

Releases share unchanged files through hard links, so a file changed in place in the served release is
changed in the older releases too. The served release is never mended in place: a clean release is built
and published first by the one build cycle, from intact copies (another release, the downloads area, the
local content area) or, where none is kept, from upstream; only then are the older releases mended (a link
to an intact copy) or, without one, removed.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG

from pum.config import Config
from pum.errors import StoreError
from pum.formats import FormatError
from pum.formats.manifest import FileRecord, Manifest, parse_manifest
from pum.lock import RunLock
from pum.run import SourcesBuild
from pum.runlog import RunLog
from pum.store import MANIFEST_PATH, Store, foreign_files
from pum.sync import SyncContext
from pum.sync.vdf import VdfSource
from pum.verify import Digests


@dataclass
class Damage:
    """What differs from its manifest in one kept release."""

    serial: int
    directory: Path
    manifest: Manifest | None  # None: the release's own manifest is unreadable
    changed: list[str]  # manifest paths modified, missing, or replaced by something that is not a file
    strays: list[str]  # paths the manifest does not name

    @property
    def whole(self) -> bool:
        return self.manifest is not None and not self.changed and not self.strays


class IntactCopies:
    """Files whose content is known good, by sha256: intact files of kept releases, the downloads area and
    the local content area (each checked by its sha256, not trusted by its name)."""

    def __init__(self, digests: Digests) -> None:
        self.digests = digests
        self.by_sha256: dict[str, Path] = {}

    def add(self, path: Path, sha256: str) -> None:
        self.by_sha256.setdefault(sha256, path)

    def add_tree(self, tree: Path, wanted: dict[str, FileRecord]) -> None:
        sizes = {record.size for record in wanted.values()}
        for path in _regular_files(tree):
            if path.stat().st_size in sizes:
                self.add(path, self.digests.sha256(path))

    def find(self, record: FileRecord) -> Path | None:
        path = self.by_sha256.get(record.sha256)
        if path is None:
            return None
        # checked again at use: an intact copy changed meanwhile is no copy
        try:
            intact = path.stat().st_size == record.size and self.digests.sha256(path) == record.sha256
        except OSError:
            return None
        return path if intact else None


def find_damage(store: Store, digests: Digests, copies: IntactCopies) -> list[Damage]:
    """Every kept release against its manifest; intact files go to `copies` as they are met."""
    found = []
    for serial in store.serials():
        directory = store.releases / str(serial)
        try:
            manifest = parse_manifest((directory / MANIFEST_PATH).read_bytes())
        except (OSError, FormatError):
            found.append(Damage(serial, directory, None, [], []))
            continue
        changed = []
        for relpath, record in manifest.files.items():
            path = directory / relpath
            if _intact(path, record, digests):
                copies.add(path, record.sha256)
            else:
                changed.append(relpath)
        found.append(Damage(serial, directory, manifest, changed, foreign_files(directory, manifest.files)))
    return found


def _intact(path: Path, record: FileRecord, digests: Digests) -> bool:
    try:
        info = path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    if not S_ISREG(info.st_mode) or info.st_size != record.size or digests.sha256(path) != record.sha256:
        return False
    if int(info.st_mtime) != record.mtime:
        os.utime(path, (record.mtime, record.mtime))  # the content is intact: its Last-Modified comes back
    return True


def _regular_files(tree: Path) -> Iterator[Path]:
    for directory, _subdirs, names in os.walk(tree):
        for name in names:
            path = Path(directory) / name
            if path.is_file() and not path.is_symlink():
                yield path


@dataclass
class RepairOutcome:
    lines: list[str]
    published: int | None = None


def repair(config: Config, log: RunLog) -> RepairOutcome:
    """`pum repair`: strays aside, a clean served release first, then the older releases mended."""
    store = Store(config)
    held = store.held()
    digests = Digests()
    copies = IntactCopies(digests)
    with RunLock(config.data_dir / "pum.lock"):
        damage = find_damage(store, digests, copies)
        if all(release.whole for release in damage):
            return RepairOutcome(["every kept release matches its manifest: nothing to repair"])
        current = store.current_dir()
        served = next((d for d in damage if current is not None and d.directory == current), None)
        if served is not None and served.manifest is None:
            raise StoreError(
                f"{served.directory}/{MANIFEST_PATH}: the served release's manifest is unreadable, so "
                "pum repair cannot tell its files; 'pum rollback' serves the release before it"
            )
        if served is not None and not served.changed:
            served = None  # only strays there: moved aside below, no new release needed
        if served is not None and held:
            raise StoreError(
                f"publishing is held: {held}; pum repair publishes a clean release: 'pum unhold' first, "
                "then 'pum repair'"
            )
    lines: list[str] = []
    strays_dir = config.data_dir / "strays" / time.strftime("%Y%m%d-%H%M%S")
    if served is None:
        with RunLock(config.data_dir / "pum.lock"):
            log.start(config.path, config.mode)
            log.line("repair")
            _mend(store, log, damage, copies, strays_dir, lines)
        return RepairOutcome(lines)
    build = _RepairBuild(config, damage, copies, strays_dir, lines)
    from pum.cycle import run_cycle

    published = run_cycle(config, log, build).published
    return RepairOutcome(lines, published)


class _RepairBuild(SourcesBuild):
    """A normal cycle of the mode on the served release, each changed file taken from an intact copy, or
    left out so that the sources fetch it again; published even when nothing else changed."""

    title = "repair"
    content = "repaired files"
    repairs = True
    republish: str | None = "publish the served files again, each from an intact copy (pum repair)"

    def __init__(
        self, config: Config, damage: list[Damage], copies: IntactCopies, strays_dir: Path, lines: list[str]
    ) -> None:
        super().__init__(config)
        self.damage, self.copies, self.strays_dir, self.lines = damage, copies, strays_dir, lines

    def fill(self, ctx: SyncContext) -> None:
        staging = ctx.staging
        current = staging.current
        assert current is not None  # the served release is what is repaired
        copies = self.copies
        # again under this cycle's lock (each inode is read once): a run may have published meanwhile
        self.damage = find_damage(ctx.store, copies.digests, copies)
        copies.add_tree(ctx.store.downloads, dict(current.files))
        copies.add_tree(ctx.config.data_dir / "local", dict(current.files))
        served = next((d for d in self.damage if d.serial == current.serial), None)
        if served is None or not served.changed:
            self.republish = None  # the served release is whole now: a normal cycle
            super().fill(ctx)
            return
        fetch_again = []
        for relpath in served.changed:
            intact = copies.find(current.files[relpath])
            if intact is not None:
                staging.intact_copies[relpath] = intact
                line = f"release {current.serial}: {relpath} changed; taken from the intact copy {intact}"
            else:
                fetch_again.append(relpath)
                line = (
                    f"release {current.serial}: {relpath} changed and no intact copy is kept: fetched again"
                )
            ctx.log.line(line)
            self.lines.append(line)
        if not fetch_again:
            # every changed file has an intact copy here: the served release again, no upstream needed
            staging.start_from_current()
            staging.source = current.source
            return
        # the sources see these paths as not held: the mode's own rules fetch and verify them again
        files = {p: r for p, r in current.files.items() if p not in fetch_again}
        # no `source` either: a sub-PUM then asks its upper for the whole manifest, not "changed since"
        staging.current = Manifest(current.serial, current.created, files, current.generation)
        for source in self.sources:
            if isinstance(source, VdfSource):
                source.refetch = frozenset(fetch_again)
        super().fill(ctx)

    def published(self, ctx: SyncContext, serial: int | None) -> None:
        _mend(ctx.store, ctx.log, self.damage, self.copies, self.strays_dir, self.lines, serial)
        super().published(ctx, serial)  # the downloads area goes: copies in it are used by now


def _mend(
    store: Store,
    log: RunLog,
    damage: list[Damage],
    copies: IntactCopies,
    strays_dir: Path,
    lines: list[str],
    published: int | None = None,
) -> None:
    """Under the run lock, once the served release is clean: strays aside, older releases mended."""

    def say(line: str) -> None:
        log.line(line)
        lines.append(line)

    if published is not None:
        new = store.releases / str(published)
        manifest = parse_manifest((new / MANIFEST_PATH).read_bytes())
        for relpath, record in manifest.files.items():
            copies.add(new / relpath, record.sha256)
    for release in damage:
        for relpath in release.strays:
            aside = strays_dir / f"release-{release.serial}" / relpath
            aside.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(release.directory / relpath, aside)
            say(f"release {release.serial}: moved {relpath} aside to {aside}: not in its manifest")
    if any(release.strays for release in damage):
        say(f"foreign files are kept in {strays_dir}; 'pum import DIR' publishes those meant for clients")
    current = store.current_dir()
    for release in damage:
        if release.directory == current or not release.directory.exists():
            continue
        _mend_release(release, copies, say)
    if published is not None:
        say(f"release {published} is served, every file as its manifest says")


def _mend_release(release: Damage, copies: IntactCopies, say: Callable[[str], None]) -> None:
    manifest = release.manifest
    missing = (
        [MANIFEST_PATH]
        if manifest is None
        else [p for p in release.changed if copies.find(manifest.files[p]) is None]
    )
    if missing:
        shutil.rmtree(release.directory)
        say(f"remove release {release.serial}: no intact copy of {missing[0]} is kept here")
        return
    assert manifest is not None
    for relpath in release.changed:
        target = release.directory / relpath
        intact = copies.find(manifest.files[relpath])
        assert intact is not None
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        link = target.with_name(f".{target.name}.pum-repair")
        link.unlink(missing_ok=True)
        os.link(intact, link)
        os.replace(link, target)
        say(f"release {release.serial}: {relpath} put back from an intact copy")
