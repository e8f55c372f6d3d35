"""`pum import`: operator-supplied content (a .zip, .tar.gz/.tgz or a directory) checked member by member,
kept in the local content area and published in a new release; `--list` and `--remove`.

This replaces the vendor's old instruction to unzip `ClamAV_ProScan.zip` into the web root: releases are
immutable and share files by hard links, so content must come in through a release of its own.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pum.clock import utc_stamp
from pum.config import Config
from pum.cycle import Build, run_cycle
from pum.errors import StoreError, VerifyError
from pum.formats import FormatError
from pum.formats.productlist import reserved_path_problem, safe_relative_path
from pum.runlog import RunLog
from pum.store import Staging
from pum.store.local_area import LocalArea, LocalContent, LocalEntry
from pum.sync import SyncContext
from pum.sync.local_content import LocalContentSource, list_problems, parent_dirs, stale_upstream_lists

ARCHIVE_KINDS = ".zip, .tar.gz/.tgz or a directory"


@dataclass(frozen=True)
class Member:
    """One regular file of what is imported: its name there, its path in the release, how to read it."""

    name: str
    path: str
    size: int
    mtime: int
    open: Callable[[], IO[bytes]]


@dataclass
class ImportOutcome:
    """What `pum import` / `pum import --remove` did: a line per file, and the release it published."""

    lines: list[str] = field(default_factory=list)
    published: int | None = None


# -- reading what is imported: every member name is checked before anything is written ------------------


def read_members(source: Path, dest: str | None = None) -> tuple[list[Member], Callable[[], None]]:
    """The regular files of `source` with their release paths, and a function that closes the archive.

    Refused (all problems in one VerifyError, nothing written): names that are absolute, contain `..`, or
    are otherwise unsafe (`safe_relative_path`); symbolic and hard links; device files, FIFOs, sockets;
    names that would shadow a VDF file, dot-files; the same path twice; a file where another member needs
    a directory.
    """
    prefix = ""
    if dest:
        try:
            prefix = safe_relative_path(dest.strip("/")) + "/"
        except FormatError as error:
            raise VerifyError(f"--dest {dest!r}: {error}") from None
    if source.is_dir():
        found, close = _directory_members(source), _nothing
    elif source.name.endswith(".zip"):
        found, close = _zip_members(source)
    elif source.name.endswith((".tar.gz", ".tgz")):
        found, close = _tar_members(source)
    elif not source.exists():
        raise VerifyError(f"{source}: no such file or directory")
    else:
        raise VerifyError(f"{source}: expected {ARCHIVE_KINDS}")
    members: list[Member] = []
    refused: list[str] = []
    seen: dict[str, str] = {}
    for name, kind, size, mtime, opener in found:
        if kind == "directory" and name.strip("/") in ("", "."):
            continue  # the archive's own top, as `tar -C dir .` writes it
        try:
            path = safe_relative_path(prefix + safe_relative_path(name))
        except FormatError as error:
            refused.append(f"{name!r}: {error}")
            continue
        if kind == "directory":
            continue  # checked, not created: the files under it make it
        if kind != "file":
            refused.append(f"{name!r} is {kind}")
            continue
        reason = reserved_path_problem(path)
        if reason:
            refused.append(f"{name!r}: {reason}")
        elif path in seen:
            refused.append(f"{name!r}: {path} appears twice in the archive")
        else:
            seen[path] = name
            members.append(Member(name, path, size, mtime, opener))
    for member in members:
        parent = next((p for p in parent_dirs(member.path) if p in seen), None)
        if parent is not None:
            refused.append(
                f"{member.name!r} needs {parent}/ to be a directory, but {seen[parent]!r} is a file"
            )
    if refused:
        close()
        raise VerifyError(f"{source}: refused, nothing imported: " + "; ".join(refused))
    if not members:
        close()
        raise VerifyError(f"{source}: no files to import")
    return members, close


Found = Iterator[tuple[str, str, int, int, Callable[[], IO[bytes]]]]


def _nothing() -> None:
    return None


def _file_type(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "a symbolic link (links are not imported)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    return "not a regular file"


def _directory_members(root: Path) -> Found:
    def opener(path: str) -> Callable[[], IO[bytes]]:
        # O_NOFOLLOW: a file swapped for a link after the check is not followed out of the tree
        return lambda: os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb")

    for directory, subdirs, files in os.walk(root):
        for name in sorted(subdirs + files):
            path = os.path.join(directory, name)
            info = os.lstat(path)
            yield (
                os.path.relpath(path, root),
                _file_type(info.st_mode),
                info.st_size,
                int(info.st_mtime),
                opener(path),
            )


def _zip_members(archive: Path) -> tuple[Found, Callable[[], None]]:
    try:
        opened = zipfile.ZipFile(archive)  # noqa: SIM115 - the import closes it when it ends
    except (zipfile.BadZipFile, OSError) as error:
        raise VerifyError(f"{archive}: not a readable zip archive: {error}") from None
    infos = opened.infolist()

    def opener(info: zipfile.ZipInfo) -> Callable[[], IO[bytes]]:
        return lambda: opened.open(info)

    def members() -> Found:
        for info in infos:
            mode = info.external_attr >> 16
            if info.is_dir():
                kind = "directory"
            elif info.create_system == 3 and stat.S_IFMT(mode):  # made on Unix: the mode is meaningful
                kind = _file_type(mode)
            else:
                kind = "file"
            if kind == "file" and info.flag_bits & 0x1:
                kind = "encrypted (not supported)"
            name = info.filename.removesuffix("/") if kind == "directory" else info.filename
            yield name, kind, info.file_size, _zip_mtime(info), opener(info)

    return members(), opened.close


def _zip_mtime(info: zipfile.ZipInfo) -> int:
    # a zip stores local time without a zone, as the DOS clock did
    try:
        return int(time.mktime((*info.date_time, 0, 0, -1)))
    except (OverflowError, ValueError):
        return int(time.time())


def _tar_members(archive: Path) -> tuple[Found, Callable[[], None]]:
    try:
        opened = tarfile.open(archive, "r:gz")  # noqa: SIM115 - the import closes it when it ends
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise VerifyError(f"{archive}: not a readable tar.gz archive: {error}") from None
    try:
        infos = opened.getmembers()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        opened.close()
        raise VerifyError(f"{archive}: not a readable tar.gz archive: {error}") from None

    def opener(info: tarfile.TarInfo) -> Callable[[], IO[bytes]]:
        def read() -> IO[bytes]:
            stream = opened.extractfile(info)
            assert stream is not None  # a regular member always has a stream
            return stream

        return read

    def members() -> Found:
        for info in infos:
            if info.isreg():
                kind = "file"
            elif info.isdir():
                kind = "directory"
            elif info.issym():
                kind = f"a symbolic link to {info.linkname!r} (links are not imported)"
            elif info.islnk():
                kind = f"a hard link to {info.linkname!r} (links are not imported)"
            elif info.ischr() or info.isblk():
                kind = "a device file"
            elif info.isfifo():
                kind = "a FIFO"
            else:
                kind = "not a regular file"
            yield info.name, kind, info.size, int(info.mtime), opener(info)

    return members(), opened.close


# -- the three commands ----------------------------------------------------------------------------------


def import_content(config: Config, source: Path, dest: str | None, log: RunLog) -> ImportOutcome:
    """Check `source`, add its files to the local content and publish a release carrying them."""
    members, close = read_members(source, dest)
    try:
        imported = {m.path for m in members}

        def fill(tree: Path, previous: LocalContent) -> dict[str, LocalEntry]:
            _check_room(source, members, tree)  # in the cycle: a refusal is in the run log and last_run.json
            entries = {p: e for p, e in previous.entries.items() if p not in imported}
            for member in members:
                clash = next(
                    (p for p in entries if p in parent_dirs(member.path) or member.path in parent_dirs(p)),
                    None,
                )
                if clash is not None:
                    raise VerifyError(
                        f"{source}: member {member.name!r} clashes with the local file {clash!r} (a path "
                        f"cannot be a file and a directory); 'pum import --remove {clash}' first"
                    )
            stamp = utc_stamp()
            for member in members:
                entry = _extract(source, member, tree / member.path, stamp)
                old = previous.entries.get(member.path)
                if old is not None and (old.sha256, old.mtime) == (entry.sha256, entry.mtime):
                    # the same file imported again: keep the inode the releases already share
                    (tree / member.path).unlink()
                    os.link(previous.path_of(member.path), tree / member.path)
                    entry = old
                entries[member.path] = entry
            return entries

        return _build(config, log, f"import {source}", imported, set(), fill, source)
    finally:
        close()


def _check_room(source: Path, members: list[Member], tree: Path) -> None:
    """Room for every member on the filesystem of the local area, counted in the blocks files take."""
    info = os.statvfs(tree)
    block = info.f_frsize or 4096
    needed = sum(-(-member.size // block) * block for member in members)
    free = info.f_bavail * block
    if needed > free:
        raise StoreError(f"{source}: needs {needed} bytes on disk, {tree.parent.parent} has {free} free")


def remove_content(config: Config, path: str, log: RunLog) -> ImportOutcome:
    """Take a file (or every file under a directory) out of the local content; publish a release without it.

    A file the previous release had only as local content disappears now. If upstream also provides that
    path, its own copy returns with the next `pum run` (the local copy had replaced it in every release)."""
    try:
        target = safe_relative_path(path.strip("/"))
    except FormatError as error:
        raise StoreError(f"--remove {path!r}: {error}") from None
    current = LocalArea(config).load()
    removed = {p for p in current.entries if p == target or p.startswith(target + "/")}
    if not removed:
        raise StoreError(f"{target}: not in the local content ('pum import --list' shows what is)")

    def fill(tree: Path, previous: LocalContent) -> dict[str, LocalEntry]:
        return {p: e for p, e in previous.entries.items() if p not in removed}

    return _build(config, log, f"import --remove {target}", set(), removed, fill, config.data_dir / "local")


def list_content(config: Config) -> str:
    """The local content: a line per file with its size and checksums."""
    content = LocalArea(config).load()
    if not content.entries:
        return "no local content ('pum import ARCHIVE|DIR' adds some)"
    lines = [f"{'size':>12}  {'md5':32}  {'sha256':64}  {'imported':20}  path"]
    for relpath, entry in content.entries.items():
        lines.append(f"{entry.size:>12}  {entry.md5}  {entry.sha256}  {entry.imported:20}  {relpath}")
    total = sum(e.size for e in content.entries.values())
    lines.append(f"{len(content.entries)} files, {total} bytes")
    return "\n".join(lines)


# -- one build: lock, staging from the served release, local content over it, publish, commit -----------


class _ImportBuild(Build):
    """The release of `pum import` / `--remove`: the served release with the next local content laid over
    it; the area's index is switched only once that release is published."""

    content = "content"
    refuse_when_held = True

    def __init__(
        self,
        config: Config,
        title: str,
        imported: set[str],
        removed: set[str],
        fill: Callable[[Path, LocalContent], dict[str, LocalEntry]],
        where: Path,
    ) -> None:
        self.title = title
        self.area = LocalArea(config)
        self.imported, self.removed, self.fill_tree, self.where = imported, removed, fill, where
        self.previous: LocalContent | None = None
        self.next: LocalContent | None = None
        self.lines: list[str] = []

    def fill(self, ctx: SyncContext) -> None:
        ctx.begin_staging()  # first: a served tree changed behind our back is refused before anything else
        previous = self.previous = self.area.load()
        tree = self.area.new_tree(previous, self.imported | self.removed)
        self.next = LocalContent(tree, {})
        content = self.next = LocalContent(tree, self.fill_tree(tree, previous))
        _start_from_current_without(ctx.staging, self.removed, previous)
        source = LocalContentSource(content)
        source.sync(ctx)
        problems = list_problems(ctx.staging, content)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise VerifyError(f"{self.where}: {problems[0]}{more}; nothing imported, nothing published")
        self.lines += _report(source, self.imported, self.removed, previous)
        replaced = [o.path for o in source.outcomes if o.outcome == "replaced"]
        self.lines += [f"warning: {w}" for w in stale_upstream_lists(ctx.staging, content, replaced)]
        for line in self.lines:
            ctx.log.line(line)

    def failed(self) -> None:
        if self.next is not None and self.previous is not None:
            self.area.discard(self.next, self.previous)

    def published(self, ctx: SyncContext, serial: int | None) -> None:
        assert self.next is not None and self.previous is not None  # fill() ran
        self.area.commit(self.next, self.previous)


def _build(
    config: Config,
    log: RunLog,
    what: str,
    imported: set[str],
    removed: set[str],
    fill: Callable[[Path, LocalContent], dict[str, LocalEntry]],
    where: Path,
) -> ImportOutcome:
    build = _ImportBuild(config, what, imported, removed, fill, where)
    published = run_cycle(config, log, build).published
    last = (
        f"release {published} published"
        if published
        else "no new release: the served one already holds this content"
    )
    return ImportOutcome(lines=[*build.lines, last], published=published)


def _start_from_current_without(staging: Staging, removed: set[str], previous: LocalContent) -> None:
    """Every served file, except those served only because they were the local content now removed. The
    release keeps the served one's `source`: a sub-PUM still serves the same upper release, so its next run
    may still ask the upper "changed since?" (local content is laid over every release anyway)."""
    if staging.current is None:
        return
    staging.source = staging.current.source
    for relpath, record in staging.current.files.items():
        entry = previous.entries.get(relpath)
        if relpath in removed and entry is not None and entry.sha256 == record.sha256:
            continue
        staging.link_from_current(relpath)


def _report(
    source: LocalContentSource, imported: set[str], removed: set[str], previous: LocalContent
) -> list[str]:
    lines = []
    for item in source.outcomes:
        if item.path not in imported:
            continue
        if item.outcome == "added":
            lines.append(f"added     {item.path} (md5 {item.md5})")
        elif item.outcome == "replaced":
            lines.append(f"replaced  {item.path} (md5 {item.old_md5} -> {item.md5})")
        else:
            lines.append(f"unchanged {item.path} (md5 {item.md5})")
    for relpath in sorted(removed):
        lines.append(f"removed   {relpath} (md5 {previous.entries[relpath].md5})")
    return lines


def _extract(source: Path, member: Member, target: Path, stamp: str) -> LocalEntry:
    """Copy one member into the local tree, hashing as it goes; its size must be the one announced."""
    target.parent.mkdir(parents=True, exist_ok=True)
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    size = 0
    try:
        with member.open() as stream, open(target, "xb") as out:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                size += len(chunk)
                if size > member.size:
                    break
                sha256.update(chunk)
                md5.update(chunk)
                out.write(chunk)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, NotImplementedError) as error:
        raise VerifyError(f"{source}: member {member.name!r} cannot be read: {error}") from None
    if size != member.size:
        raise VerifyError(f"{source}: member {member.name!r} is not {member.size} bytes as announced")
    os.utime(target, (member.mtime, member.mtime))
    os.chmod(target, 0o444)
    return LocalEntry(
        size=size, sha256=sha256.hexdigest(), md5=md5.hexdigest(), mtime=member.mtime, imported=stamp
    )
