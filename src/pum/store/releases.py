"""Releases on disk: stage -> verify -> publish (atomic symlink switch) -> prune; rollback; hold.

Only this module writes under `releases/` and switches the served path (`docroot`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from stat import S_IMODE, S_ISREG
from typing import Any

from pum.clock import utc_stamp
from pum.common.hashing import md5_file as md5_file  # re-exported for pum.store
from pum.common.hashing import sha256_file as sha256_file  # re-exported for pum.store
from pum.config import Config
from pum.errors import StoreError
from pum.formats import FormatError
from pum.formats.changes import changes_serial
from pum.formats.manifest import FileRecord, Manifest, parse_manifest
from pum.store.state import (
    HOLD,
    HOLD_LIMIT,
    LAST_RUN,
    MIRROR_STATE,
    Hold,
    LastRun,
    MirrorState,
    Report,
    read_document,
    write_document,
)

LAYOUT_GENERATION = 1
MANIFEST_PATH = ".pum/manifest.json"
# Manifests of past releases, kept after the releases are pruned, so that `pum export --since SERIAL` can
# tell what changed since the release a closed network last imported.
MANIFEST_HISTORY = 1000


class CriticalSection:
    """Set while the store does what must not be cut in the middle: a rename into releases/ with the docroot
    switch right after it, and pruning (milliseconds each). `pum daemon` lets a stop land only outside."""

    def __init__(self) -> None:
        self._depth = 0

    @property
    def active(self) -> bool:
        return self._depth > 0

    @contextmanager
    def entered(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1


CRITICAL = CriticalSection()


class Store:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.docroot = config.docroot
        self.releases = config.releases_dir
        self.state = config.state_dir
        self.staging_root = config.data_dir / "staging"
        self.downloads = config.data_dir / "downloads"
        self.history = config.data_dir / "history"
        self.published: int | None = None  # the release this Store published, once it is served

    # -- what is served now ---------------------------------------------------------------------

    def current_dir(self) -> Path | None:
        if not self.docroot.is_symlink():
            return None
        target = self.docroot.resolve()
        return target if target.is_dir() else None

    def current_manifest(self) -> Manifest | None:
        current = self.current_dir()
        if current is None:
            return None
        try:
            return parse_manifest((current / MANIFEST_PATH).read_bytes())
        except FileNotFoundError:
            raise StoreError(f"{current}: release has no {MANIFEST_PATH}; run 'pum verify'") from None
        except ValueError as error:
            raise StoreError(f"{current / MANIFEST_PATH}: {error}") from None

    def serials(self) -> list[int]:
        if not self.releases.is_dir():
            return []
        return sorted(int(p.name) for p in self.releases.iterdir() if p.name.isdigit())

    # -- hold -----------------------------------------------------------------------------------

    @property
    def hold_file(self) -> Path:
        return self.state / HOLD

    def hold_state(self) -> Hold | None:
        try:
            with open(self.hold_file, "rb") as stream:
                return Hold.from_text(stream.read(HOLD_LIMIT).decode("utf-8", errors="replace"))
        except FileNotFoundError:
            return None

    def held(self) -> str | None:
        """Why publishing is held (with since when), or None."""
        hold = self.hold_state()
        return hold.text() if hold is not None else None

    def hold(self, reason: str) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        self.hold_file.write_text(Hold(reason, time.strftime("%Y-%m-%d %H:%M:%S")).text() + "\n")

    def unhold(self) -> bool:
        try:
            self.hold_file.unlink()
            return True
        except FileNotFoundError:
            return False

    # -- staging and publishing -----------------------------------------------------------------

    def begin(self, repairing: bool = False) -> Staging:
        """A fresh staging tree; leftovers of a killed run are removed first. Only `pum repair` (which
        takes no byte from a changed file) builds on a served release changed behind PUM's back."""
        self._check_docroot_is_ours()
        current, manifest = self.current_dir(), self.current_manifest()
        if not repairing:
            self._check_served_release_untouched(current, manifest)
        if self.staging_root.exists():
            shutil.rmtree(self.staging_root)
        self.staging_root.mkdir(parents=True)
        self.releases.mkdir(exist_ok=True)
        for directory in (self.config.data_dir, self.releases):
            _let_readers_through(directory)
        self._write_generation()
        return Staging(self, self.staging_root / "next", current, manifest)

    def _write_generation(self) -> None:
        marker = self.config.data_dir / "generation"
        if not marker.exists():
            marker.write_text(f"{LAYOUT_GENERATION}\n")

    def _check_docroot_is_ours(self) -> None:
        docroot = self.docroot
        if docroot.is_symlink() or not docroot.exists():
            return
        if docroot.is_dir() and not any(docroot.iterdir()):
            return  # an empty directory made by a package or an installer: replaced at first publish
        raise StoreError(
            f"docroot {docroot} is a real directory, not the symlink PUM manages: "
            "move it away (or set docroot elsewhere) and run again"
        )

    def _check_served_release_untouched(self, current: Path | None, manifest: Manifest | None) -> None:
        """Refuse to build on a release changed behind PUM's back: the next release would carry the change
        (unchanged files are hard links), and the vendor's old habit, unzipping into the web root, does it.
        Checked whenever a staging tree is begun, i.e. before anything could carry a change; a run that
        builds nothing (the upper's 304) does not walk the served tree; `pum verify` walks it on demand."""
        if current is None or manifest is None:
            return
        changes = changes_behind_our_back(current, manifest.files)
        if changes:
            more = f" (and {len(changes) - 1} more)" if len(changes) > 1 else ""
            raise StoreError(
                f"release {manifest.serial} was changed behind PUM's back: {self.docroot}/{changes[0]}"
                f"{more}; nothing was built. Content goes in with 'pum import', never into {self.docroot}: "
                "'pum verify' lists every change; 'pum repair' puts every release back to its manifest and "
                "moves foreign files aside (then 'pum import' them)"
            )

    def publish(self, staging: Staging) -> int:
        """Make the staged tree release N+1 and serve it: one rename(2) of the docroot symlink."""
        with CRITICAL.entered():
            return self._publish(staging)

    def _publish(self, staging: Staging) -> int:
        serial = max(self.serials(), default=0) + 1
        from pum.trust.repository import sign_release

        sign_release(self.config, staging, serial)
        manifest = Manifest(
            serial=serial,
            created=utc_stamp(),
            files=staging.records,
            generation=LAYOUT_GENERATION,
            source=staging.source,
        )
        meta = staging.dir / ".pum"
        meta.mkdir(exist_ok=True)
        manifest_size = 0
        with open(meta / "manifest.json", "wb") as stream:  # in pieces: ~150 bytes a file
            for chunk in manifest.json_chunks():
                manifest_size += stream.write(chunk)
        os.chmod(meta / "manifest.json", 0o444)
        from pum.store.changelog import write_changelog

        changelog = write_changelog(
            staging.dir, staging.current_dir, staging.current, manifest, manifest_size
        )
        _open_to_readers(staging.dir, staging.records)
        # files linked from the served release were made durable when it was published
        _fsync_tree(staging.dir, [*staging.fresh, MANIFEST_PATH, *changelog])
        final = self.releases / str(serial)
        os.rename(staging.dir, final)
        try:
            _fsync_dir(self.releases)
            self._switch_docroot(final)
        except BaseException:
            # never served: gone again, so that each failed retry does not leave one more release behind
            shutil.rmtree(final, ignore_errors=True)
            raise
        self.published = serial
        self._remember_manifest(serial, final / MANIFEST_PATH)
        return serial

    def _remember_manifest(self, serial: int, manifest: Path) -> None:
        self.history.mkdir(parents=True, exist_ok=True)
        tmp = self.history / f".{serial}.tmp"
        shutil.copyfile(manifest, tmp)
        os.replace(tmp, self.history / f"{serial}.json")
        kept = sorted(int(p.stem) for p in self.history.glob("*.json") if p.stem.isdigit())
        for old in kept[:-MANIFEST_HISTORY]:
            (self.history / f"{old}.json").unlink(missing_ok=True)

    def manifest_of(self, serial: int) -> Manifest | None:
        """The manifest of release `serial`, from the release if it is still kept, else from history."""
        for path in (self.releases / str(serial) / MANIFEST_PATH, self.history / f"{serial}.json"):
            try:
                return parse_manifest(path.read_bytes())
            except FileNotFoundError:
                continue
            except FormatError as error:
                raise StoreError(f"{path}: unreadable manifest: {error}") from None
        return None

    def _switch_docroot(self, target: Path) -> None:
        with CRITICAL.entered():
            self._switch_docroot_to(target)

    def _switch_docroot_to(self, target: Path) -> None:
        docroot = self.docroot
        link = docroot.with_name(f".{docroot.name}.pum-new")
        try:
            _make_public_dirs(docroot.parent)
            if docroot.is_dir() and not docroot.is_symlink():
                docroot.rmdir()  # the empty directory _check_docroot_is_ours allowed
            link.unlink(missing_ok=True)
            os.symlink(target.resolve(), link)
            os.replace(link, docroot)
            _fsync_dir(docroot.parent)
        except OSError as error:
            # os.symlink names the release as its first file, though the directory refusing is the docroot's
            raise StoreError(
                f"{docroot.parent}: {error.strerror or error}: cannot switch the docroot symlink "
                f"{docroot.name} to release {target.name} there; "
                f"the user running pum must be able to write {docroot.parent}"
            ) from error

    def switch_to(self, serial: int) -> None:
        target = self.releases / str(serial)
        if not (target / MANIFEST_PATH).exists():
            raise StoreError(f"release {serial} does not exist in {self.releases}")
        self._switch_docroot(target)

    def collect_unserved(self) -> list[int]:
        """Remove releases newer than the served one that were never served (a run killed or failed between
        building and switching). Releases a rollback left newer than the served one were served: their
        manifests are in history/ (written once a release is served), so they stay for `prune`."""
        current = self.current_dir()
        served = int(current.name) if current is not None and current.name.isdigit() else 0
        unserved = [
            serial
            for serial in self.serials()
            if serial > served and not (self.history / f"{serial}.json").exists()
        ]
        with CRITICAL.entered():
            for serial in unserved:
                shutil.rmtree(self.releases / str(serial))
        return unserved

    def prune(self) -> list[int]:
        """Keep the newest `keep_releases` and whatever is served; drop the rest."""
        current = self.current_dir()
        current_serial = int(current.name) if current is not None and current.name.isdigit() else None
        serials = self.serials()
        keep = set(serials[-self.config.keep_releases :]) | {current_serial}
        dropped = [s for s in serials if s not in keep]
        with CRITICAL.entered():
            for serial in dropped:
                shutil.rmtree(self.releases / str(serial))
        return dropped

    def rollback(self) -> int:
        """Serve the release before the served one again and hold publishing, so that the next run does
        not publish the suspect content again. Returns the serial now served. Call under the run lock."""
        previous = self.previous_serial()
        if previous is None:
            raise StoreError(
                f"no earlier release to roll back to in {self.releases}; if files of the served release "
                "were changed by hand, 'pum repair' puts them back (and 'pum verify' lists them)"
            )
        current = self.current_dir()
        if current is not None and current.name.isdigit():
            # the release left behind stays a served one (history/), never collected as unserved
            self._remember_manifest(int(current.name), current / MANIFEST_PATH)
        with CRITICAL.entered():
            self.switch_to(previous)
            self.hold(f"rolled back to release {previous}")
        return previous

    def previous_serial(self) -> int | None:
        current = self.current_dir()
        if current is None:
            return None
        older = [s for s in self.serials() if s < int(current.name)]
        return older[-1] if older else None

    def clear_downloads(self) -> None:
        if self.downloads.exists():
            shutil.rmtree(self.downloads)

    # -- state documents ------------------------------------------------------------------------

    def read_state(self, name: str, report: Report | None = None) -> dict[str, Any] | None:
        """A state document as JSON; a damaged one is reported, moved aside and read as absent."""
        return read_document(self.state / name, dict, report)

    def last_run(self, report: Report | None = None) -> LastRun | None:
        return read_document(self.state / LAST_RUN, LastRun.from_json, report)

    def write_last_run(self, last_run: LastRun) -> None:
        write_document(self.state / LAST_RUN, last_run.to_json())

    def mirror_state(self, report: Report | None = None) -> MirrorState | None:
        return read_document(self.state / MIRROR_STATE, MirrorState.from_json, report)

    def write_mirror_state(self, state: MirrorState) -> None:
        write_document(self.state / MIRROR_STATE, state.to_json())


class Staging:
    """The tree of the next release, built beside the served one; only `Store.publish` makes it visible."""

    def __init__(
        self, store: Store, directory: Path, current_dir: Path | None, current: Manifest | None
    ) -> None:
        self.store = store
        self.dir = directory
        self.dir.mkdir(parents=True)
        self.current_dir = current_dir
        self.current = current
        self.records: dict[str, FileRecord] = {}
        # paths put in this staging tree (strings: a Path each costs memory at 100,000 files): publish makes
        # them durable
        self.fresh: list[str] = []
        self.source = ""
        # `pum repair`: intact copies of served files changed behind PUM's back, taken instead of a link
        self.intact_copies: dict[str, Path] = {}
        self._made: set[str] = set()  # directories made in the tree: a mkdir once each, not once a file
        umask = os.umask(0o022)
        os.umask(umask)
        self._umask_hides_reading = bool(umask & 0o444)

    def start_from_current(self) -> None:
        """Server mode starts from everything served now; unchanged files cost a hard link each. The
        release says where it comes from as the served one did, until a source says otherwise."""
        if self.current is None:
            return
        self.source = self.current.source
        for relpath in self.current.files:
            self.link_from_current(relpath)

    def link_from_current(self, relpath: str) -> None:
        assert self.current is not None and self.current_dir is not None
        record = self.current.files[relpath]
        intact = self.intact_copies.get(relpath)
        if intact is not None:
            self._put_intact_copy(relpath, intact, record)
            return
        target = f"{self.dir}/{relpath}"  # strings, not Paths: once a file of a 100,000-file release
        self._make_parent(target)
        os.link(f"{self.current_dir}/{relpath}", target)
        self.records[relpath] = record

    def _put_intact_copy(self, relpath: str, intact: Path, record: FileRecord) -> None:
        """A copy of its own (a new inode: the changed one is shared by older releases), checked again."""
        copy = self.dir.parent / ".intact.tmp"
        shutil.copyfile(intact, copy)
        self.put(relpath, copy, mtime=record.mtime)
        if self.records[relpath] != record:
            raise StoreError(
                f"{intact}: changed while pum repair copied it to {relpath}; run 'pum repair' again"
            )

    def put(
        self,
        relpath: str,
        source: Path,
        *,
        mtime: float | None = None,
        sha256: str | None = None,
        keep_source: bool = False,
        known: FileRecord | None = None,
    ) -> None:
        """Move (or, with keep_source, hard-link) a verified file into the release; it becomes read-only,
        as releases are immutable. Downloads are linked so that a killed run never fetches them again.
        `known`: the record the caller holds for the file (a sub's upper manifest), kept as the staged one
        when the file matches it (one object for both, at 100,000 files)."""
        target = self._target(relpath)
        if target.exists() or target.is_symlink():
            target.unlink()
        if keep_source:
            os.link(source, target)
        else:
            os.replace(source, target)
        if mtime is not None:
            os.utime(target, (mtime, mtime))
        os.chmod(target, 0o444)
        self.fresh.append(relpath)
        stat = target.stat()
        record = FileRecord(size=stat.st_size, sha256=sha256 or sha256_file(target), mtime=int(stat.st_mtime))
        self.records[relpath] = known if known == record else record

    def put_verified_bytes(self, relpath: str, data: bytes, record: FileRecord) -> None:
        """A small file whose bytes the caller checked against `record` (size and sha256), written straight
        into the tree under its name: one open, write, date and close; no download area, no rename, no
        Path (a first copy of 100,000 small files pays this per file). Durable at publish (syncfs)."""
        path = f"{self.dir}/{relpath}"
        self._make_parent(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o444)
        except FileExistsError:  # put before in this tree (a source replacing another's file)
            os.unlink(path)
            fd = os.open(path, flags, 0o444)
        try:
            view = memoryview(data)
            while view:  # each write moves at least one byte, or raises
                view = view[os.write(fd, view) :]
            if self._umask_hides_reading:
                os.fchmod(fd, 0o444)
            os.utime(fd, (record.mtime, record.mtime))
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        os.close(fd)
        self.fresh.append(relpath)
        self.records[relpath] = record

    def write_bytes(self, relpath: str, data: bytes, *, mtime: float | None = None) -> None:
        tmp = self.dir.parent / ".write.tmp"
        tmp.write_bytes(data)
        self.put(relpath, tmp, mtime=mtime, sha256=hashlib.sha256(data).hexdigest())

    def remove(self, relpath: str) -> None:
        self.records.pop(relpath, None)
        self._made.clear()  # a source may remove the directory left empty (products.py)
        (self.dir / relpath).unlink(missing_ok=True)

    def path_of(self, relpath: str) -> Path:
        return self.dir / relpath

    def has(self, relpath: str) -> bool:
        return relpath in self.records

    def paths(self) -> Iterator[str]:
        return iter(sorted(self.records))

    def changed_paths(self) -> set[str]:
        """Paths added, removed or changed against the served release; every path on a first build (and
        the manifest's, so that an empty first release is still published)."""
        if self.current is None:
            return {*self.records, MANIFEST_PATH}
        current = self.current.files
        return {p for p in {*current, *self.records} if current.get(p) != self.records.get(p)}

    def _target(self, relpath: str) -> Path:
        target = self.dir / relpath
        self._make_parent(str(target))
        return target

    def _make_parent(self, path: str) -> None:
        parent = path.rpartition("/")[0]
        if parent not in self._made:
            os.makedirs(parent, exist_ok=True)
            self._made.add(parent)


def changes_behind_our_back(tree: Path, files: Mapping[str, FileRecord]) -> list[str]:
    """What differs between a tree and the records of its files, cheaply: a walk and an lstat per file;
    sha256 only where size or mtime differ. A file whose content is intact gets its recorded mtime back (it
    is the `Last-Modified` clients compare). Each item reads `<relpath>: <what>`."""
    changes: list[str] = []
    for relpath, record in files.items():
        path = f"{tree}/{relpath}"
        try:
            info = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            changes.append(f"{relpath}: missing")
            continue
        if not S_ISREG(info.st_mode):
            changes.append(f"{relpath}: replaced by something that is not a file")
        elif info.st_size != record.size:
            changes.append(f"{relpath}: modified (size {info.st_size}, manifest {record.size})")
        elif int(info.st_mtime) != record.mtime:
            if sha256_file(Path(path)) != record.sha256:
                changes.append(f"{relpath}: modified (sha256 differs from the manifest)")
            else:
                os.utime(path, (record.mtime, record.mtime))
    changes += [
        f"{relpath}: not in the manifest (written by hand?)" for relpath in foreign_files(tree, files)
    ]
    return changes


def foreign_files(tree: Path, files: Mapping[str, FileRecord]) -> list[str]:
    """Paths in a release tree that its manifest does not name (symlinked directories included); the
    manifest and the changelog describe the release and are not in it."""
    found = []
    for directory, subdirs, names in os.walk(tree):
        links = [name for name in subdirs if os.path.islink(os.path.join(directory, name))]
        below = os.path.relpath(directory, tree)  # once a directory, not once a file
        for name in sorted(names + links):
            relpath = name if below == "." else f"{below}/{name}"
            if relpath != MANIFEST_PATH and changes_serial(relpath) is None and relpath not in files:
                found.append(relpath)
    return found


def _syncfs(path: Path) -> bool:
    """syncfs(2) on the file system holding `path` (Linux); False where it is not available."""
    import ctypes

    try:
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return False
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if syncfs(fd) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error), str(path))
    finally:
        os.close(fd)
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# more new files than this: one syncfs(2) of the file system instead of an fsync each (10,000 fsyncs of a
# first copy take seconds; one syncfs writes the same blocks at once)
SYNCFS_FROM = 64


# fsyncs at once: a journalling file system (ext4, xfs) commits concurrent fsyncs together, so 12 new files
# of an update run take one commit's time (~4 ms measured on ext4) instead of 12 (~30-40 ms)
FSYNC_THREADS = 16


def _let_readers_through(directory: Path) -> None:
    """r-x for group and others on a directory above the releases that only its owner may pass (made
    under umask 077, e.g. by the run lock): the web server's workers must pass it. A directory some group
    may pass is the operator's arrangement (0750 with the web server's group), left as it is; so is one
    PUM may not change. Its other entries keep their own modes (keys/ is 0700)."""
    mode = S_IMODE(directory.stat().st_mode)
    if not mode & 0o011:
        with contextlib.suppress(PermissionError):
            os.chmod(directory, mode | 0o055)


def _make_public_dirs(directory: Path) -> None:
    """`directory` and its missing parents, each made rwxr-xr-x whatever the umask (the docroot's)."""
    for missing in [path for path in (*reversed(directory.parents), directory) if not path.exists()]:
        missing.mkdir(exist_ok=True)
        os.chmod(missing, 0o755)


def _open_to_readers(tree: Path, files: Mapping[str, FileRecord]) -> None:
    """Every directory of the release r-x for all, whatever the umask: the web server's workers (another
    user) must reach the read-only files. The directories are the files' parents and those under `.pum`."""
    directories = {""}
    for relpath in files:
        parent = relpath.rpartition("/")[0]
        while parent not in directories:
            directories.add(parent)
            parent = parent.rpartition("/")[0]
    for relpath in directories:
        os.chmod(tree / relpath, 0o755)
    for directory, _subdirs, _files in os.walk(tree / ".pum"):
        os.chmod(directory, 0o755)


def _fsync_tree(root: Path, relpaths: list[str]) -> None:
    if len(relpaths) > SYNCFS_FROM and _syncfs(root):
        return
    # a file put and then removed again by a later source is not there to sync
    files = [path for path in (root / relpath for relpath in relpaths) if path.exists()]
    directories = [Path(directory) for directory, _subdirs, _files in os.walk(root)]
    if len(files) + len(directories) <= 2:
        for path in files:
            _fsync_file(path)
        for directory in directories:
            _fsync_dir(directory)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(FSYNC_THREADS, len(files) + len(directories))) as pool:
        done = [pool.submit(_fsync_file, path) for path in files]
        done += [pool.submit(_fsync_dir, directory) for directory in directories]
        for future in done:
            future.result()  # an error (EIO) raised here, before the release is switched to


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
