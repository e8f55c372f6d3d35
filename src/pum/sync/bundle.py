"""A bundle as the upstream of a closed network's PUM (`update_servers=file:///media/usb/pum`, or
`pum import --bundle PATH`): the release it carries is copied as mirror mode copies an upper's.

Everything is checked before anything is staged: the bundle's members against its index (a truncated copy,
a flipped byte or an extra file is refused), the manifest against the index, each file against the
manifest and, for VDF files, against its own signature; the bundle must start at a release this PUM holds
(no gap) and not go back. What the bundle does not carry must be held here already, unchanged."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from pum.clock import utc_stamp
from pum.errors import UpstreamError, VerifyError
from pum.formats import FormatError
from pum.formats.bundle import FILES_DIR, INDEX_NAME, MANIFEST_NAME, BundleIndex, parse_bundle_index
from pum.formats.manifest import Manifest, parse_manifest
from pum.formats.paths import is_hidden
from pum.store.state import BundleSeen, Lag, MirrorState
from pum.sync.fetch import accepted_file, recheck_carried_signs, refuse_vdf_names, signs_last
from pum.sync.mirror import CopiedFrom, files_digest

if TYPE_CHECKING:
    from pum.common.servers import Server
    from pum.sync import SyncContext

INDEX_LIMIT = 64 << 20
MANIFEST_LIMIT = 64 << 20


@dataclass(frozen=True)
class OpenedBundle:
    """A bundle whose every member was copied into the download area and matched its index."""

    where: str
    index: BundleIndex
    manifest: Manifest
    files: dict[str, Path]  # release path -> the checked copy


def first_bundle(servers: tuple[Server, ...]) -> Path:
    """The first `file://` location that holds something (a USB stick may be mounted at either)."""
    paths = [Path(server.path) for server in servers]
    return next((path for path in paths if path.exists()), paths[0])


class BundleSource:
    def __init__(self, path: Path) -> None:
        self.path = path

    def sync(self, ctx: SyncContext) -> None:
        area = ctx.store.downloads / "bundle"
        shutil.rmtree(area, ignore_errors=True)
        bundle = open_bundle(self.path, area)
        try:
            _stage(ctx, bundle)
        finally:
            shutil.rmtree(area, ignore_errors=True)


def open_bundle(path: Path, area: Path) -> OpenedBundle:
    if path.is_dir():
        reader = _read_directory
    elif path.is_file():
        reader = _read_tar
    else:
        raise UpstreamError(f"{path}: no bundle there (a directory holding {INDEX_NAME}, or a .tar file)")
    area.mkdir(parents=True, exist_ok=True)
    index, manifest_copy, files = reader(path, area)
    try:
        manifest = parse_manifest(_inflated(manifest_copy.read_bytes(), MANIFEST_LIMIT))
    except FormatError as error:
        raise VerifyError(f"{path}: {MANIFEST_NAME}: not a PUM release manifest: {error}") from None
    if manifest.serial != index.to_serial:
        raise VerifyError(
            f"{path}: the index says release {index.to_serial}, the manifest is release {manifest.serial}"
        )
    return OpenedBundle(str(path), index, manifest, files)


def _inflated(data: bytes, limit: int) -> bytes:
    """The gzip'd manifest, never more than `limit` bytes of it; a FormatError says what is wrong."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        manifest = inflater.decompress(data, limit + 1)
    except zlib.error as error:
        raise FormatError(f"not gzip: {error}") from None
    if len(manifest) > limit or inflater.unconsumed_tail:
        raise FormatError(f"larger than {limit} bytes")
    if not inflater.eof:
        raise FormatError("a truncated gzip stream")
    return manifest


def _parse_index(raw: bytes, where: str) -> BundleIndex:
    try:
        return parse_bundle_index(raw)
    except FormatError as error:
        raise VerifyError(f"{where}: {error}") from None


def _expected(index: BundleIndex) -> dict[str, tuple[int, str]]:
    """Bundle member name -> (size, sha256) for every member but the index."""
    members = {f"{FILES_DIR}/{relpath}": (c.size, c.sha256) for relpath, c in index.files.items()}
    members[MANIFEST_NAME] = (index.manifest.size, index.manifest.sha256)
    return members


def _read_directory(path: Path, area: Path) -> tuple[BundleIndex, Path, dict[str, Path]]:
    index_path = path / INDEX_NAME
    if not index_path.is_file() or index_path.is_symlink():
        raise UpstreamError(f"{path}: not a PUM bundle (no {INDEX_NAME} first): copied whole?")
    with open(index_path, "rb") as stream:
        raw = stream.read(INDEX_LIMIT + 1)
    if len(raw) > INDEX_LIMIT:
        raise VerifyError(f"{index_path}: larger than {INDEX_LIMIT} bytes: refused")
    index = _parse_index(raw, str(index_path))
    expected = _expected(index)
    found = set()
    for directory, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            full = Path(directory) / name
            member = full.relative_to(path).as_posix()
            if full.is_symlink() or not (full.is_dir() or full.is_file()):
                raise VerifyError(f"{full}: not a regular file: refused (a bundle holds files only)")
            if full.is_file() and member != INDEX_NAME:
                if member not in expected:
                    raise VerifyError(f"{full}: not in the bundle index (an extra file): refused")
                found.add(member)
    missing = sorted(set(expected) - found)
    if missing:
        raise VerifyError(
            f"{path / missing[0]}: missing ({len(missing)} of the index's files are): a truncated copy"
        )
    copies = {}
    for member, (size, sha256) in expected.items():
        with open(path / member, "rb") as stream:
            copies[member] = _checked_copy(stream, area / member, size, sha256, f"{path / member}")
    return index, copies.pop(MANIFEST_NAME), _release_paths(copies)


def _read_tar(path: Path, area: Path) -> tuple[BundleIndex, Path, dict[str, Path]]:
    try:
        with tarfile.open(path, mode="r:") as tar:
            return _read_tar_members(path, tar, area)
    except (tarfile.TarError, EOFError) as error:
        raise VerifyError(f"{path}: not a whole tar file ({error}): a truncated or damaged copy") from None


def _read_tar_members(
    path: Path, tar: tarfile.TarFile, area: Path
) -> tuple[BundleIndex, Path, dict[str, Path]]:
    first = tar.next()
    if first is None or first.name != INDEX_NAME or not first.isreg() or first.size > INDEX_LIMIT:
        raise VerifyError(f"{path}: not a PUM bundle (no {INDEX_NAME} first): copied whole?")
    index = _parse_index(_member_bytes(tar, first), f"{path}:{INDEX_NAME}")
    expected = _expected(index)
    copies: dict[str, Path] = {}
    # bounded: one member per index entry, then the end
    for _ in range(len(expected) + 1):
        info = tar.next()
        if info is None:
            break
        where = f"{path}:{info.name}"
        if not info.isreg():
            raise VerifyError(f"{where}: not a regular file: refused (a bundle holds files only)")
        if info.name not in expected:
            raise VerifyError(f"{where}: not in the bundle index (an extra file): refused")
        if info.name in copies:
            raise VerifyError(f"{where}: appears twice in the tar: refused")
        size, sha256 = expected[info.name]
        stream = tar.extractfile(info)
        assert stream is not None  # a regular member always has a stream
        copies[info.name] = _checked_copy(stream, area / info.name, size, sha256, where)
    else:
        if tar.next() is not None:
            raise VerifyError(f"{path}: more members than its index lists: refused")
    missing = sorted(set(expected) - set(copies))
    if missing:
        raise VerifyError(
            f"{path / missing[0]}: missing ({len(missing)} of the index's files are): a truncated copy"
        )
    return index, copies.pop(MANIFEST_NAME), _release_paths(copies)


def _member_bytes(tar: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    stream = tar.extractfile(info)
    assert stream is not None
    return stream.read(INDEX_LIMIT + 1)


def _checked_copy(stream: IO[bytes], target: Path, size: int, sha256: str, where: str) -> Path:
    """Copy while hashing; never more than the index's size plus one byte (to see a longer file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, got = hashlib.sha256(), 0
    with open(target, "wb") as writing:
        while got <= size:
            chunk = stream.read(min(1 << 20, size + 1 - got))
            if not chunk:
                break
            digest.update(chunk)
            got += len(chunk)
            writing.write(chunk)
    if got != size or digest.hexdigest() != sha256:
        target.unlink(missing_ok=True)
        shown = f"{got} bytes" if got != size else f"sha256 {digest.hexdigest()}"
        raise VerifyError(
            f"{where}: {shown} where the bundle index says {size} bytes, sha256 {sha256}: a damaged or "
            "altered copy, refused"
        )
    return target


def _release_paths(copies: dict[str, Path]) -> dict[str, Path]:
    prefix = f"{FILES_DIR}/"
    return {member.removeprefix(prefix): copy for member, copy in copies.items()}


def _stage(ctx: SyncContext, bundle: OpenedBundle) -> None:
    staging, log, index, manifest = ctx.staging, ctx.log, bundle.index, bundle.manifest
    origin = f"bundle:{index.origin}"
    digest = files_digest(manifest.files)
    ours = CopiedFrom.of(staging.current)
    span = "everything" if index.full else f"release {index.from_serial} -> {index.to_serial}"
    log.line(f"bundle {bundle.where}: from {index.origin}, {span}, {len(index.files)} files")
    if ours is not None and ours.upper == origin:
        if ours.serial == index.to_serial and ours.files == digest:
            log.line(f"bundle brings release {index.to_serial}, which we serve already: nothing to import")
            _keep_current(ctx)
            return
        if index.to_serial < ours.serial:
            raise VerifyError(
                f"{bundle.where}: brings release {index.to_serial} of {index.origin}, older than release "
                f"{ours.serial} we serve: refused (an old bundle?)"
            )
        if index.from_serial is not None and index.from_serial > ours.serial:
            raise VerifyError(
                f"{bundle.where}: goes from release {index.from_serial} to {index.to_serial}, but this PUM "
                f"holds release {ours.serial} of {index.origin}: a bundle is missing in between; export "
                f"one with 'pum export --since {ours.serial}' (or --full)"
            )
    extra = sorted(set(bundle.files) - set(manifest.files))
    if extra:
        raise VerifyError(f"{bundle.where}: {extra[0]} is not in the release manifest it carries: refused")
    held = dict(staging.current.files) if staging.current is not None else {}
    files = {relpath: record for relpath, record in manifest.files.items() if not is_hidden(relpath)}
    if not files:
        raise VerifyError(f"{bundle.where}: its release lists no files; an empty release is not imported")
    # the same rules as mirror mode (sync/vdfcheck.py): VDF names only at the root, each file by its own
    # signature, a .sign over the file it signs, no older CVD than the served one
    refuse_vdf_names(bundle.where, files)
    # and, with trusted_root, the main's signed metadata carried in the bundle (TUF), end to end
    from pum.trust.upper import check_bundle_release

    check_bundle_release(
        ctx, bundle.where, lambda name: _carried_metadata(bundle, name), files, manifest.files
    )
    carried_over = []
    for relpath in signs_last(files):
        record = files[relpath]
        copy = bundle.files.get(relpath)
        if copy is not None:
            carried = index.files[relpath]
            if (carried.size, carried.sha256) != (record.size, record.sha256):
                raise VerifyError(f"{bundle.where}: {relpath}: the index and the manifest disagree: refused")
            try:
                accepted_file(ctx, copy, relpath)
            except FormatError as error:
                raise VerifyError(f"{bundle.where}: {relpath}: refused: {error}") from None
            staging.put(relpath, copy, mtime=record.mtime, sha256=record.sha256)
        elif held.get(relpath) == record:
            staging.link_from_current(relpath)
            carried_over.append(relpath)
        elif relpath in held and (held[relpath].sha256, held[relpath].size) == (record.sha256, record.size):
            _restamp(ctx, relpath, record.mtime, record.sha256)
            carried_over.append(relpath)
        else:
            needed = f"'pum export --since {ours.serial}'" if ours and ours.upper == origin else "--full"
            raise VerifyError(
                f"{bundle.where}: {relpath} is neither in the bundle nor held here: this PUM needs a bundle "
                f"made with {needed}"
            )
    recheck_carried_signs(ctx, carried_over, lambda relpath: f"{bundle.where}: {relpath}")
    staging.source = CopiedFrom(origin, manifest.serial, manifest.created, digest).text()
    log.line(
        f"bundle release {manifest.serial} ({manifest.created}): {len(files)} files, "
        f"{len(bundle.files)} carried"
    )
    _save_state(ctx, bundle)


def _carried_metadata(bundle: OpenedBundle, name: str) -> bytes | None:
    from pum.trust import TUF_DIR

    copy = bundle.files.get(f"{TUF_DIR}/{name}") if "/" not in name else None
    return copy.read_bytes() if copy is not None else None


def _restamp(ctx: SyncContext, relpath: str, mtime: int, sha256: str) -> None:
    """A file we hold with the same content but another mtime: copied, as releases are immutable."""
    staging = ctx.staging
    assert staging.current_dir is not None
    copy = ctx.store.downloads / ".copies" / relpath
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(staging.current_dir / relpath, copy)
    staging.put(relpath, copy, mtime=mtime, sha256=sha256)


def _keep_current(ctx: SyncContext) -> None:
    staging = ctx.staging
    assert staging.current is not None
    staging.start_from_current()
    staging.source = staging.current.source


def _save_state(ctx: SyncContext, bundle: OpenedBundle) -> None:
    index = bundle.index
    ctx.store.write_mirror_state(
        MirrorState(
            mode="bundle",
            upper=f"bundle:{index.origin}",
            upper_url=bundle.where,
            upper_serial=index.to_serial,
            upper_created=bundle.manifest.created,
            checked=utc_stamp(),
            lag=Lag("0 releases", 0, 0),
            bundle=BundleSeen(bundle.where, index.from_serial, index.to_serial, index.created),
        )
    )
