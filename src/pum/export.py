"""`pum export`: a bundle that carries the served release across an air gap, holding only what the closed
side lacks (the files changed since the release it last imported), the release manifest and `dns.txt`.

Layout (a directory, or the same members in one uncompressed `.tar`, the index first so an importer can
check the rest as it streams): `pum-bundle.json`, `manifest.json`, `files/<release path>`. The bundle is
written beside its destination and renamed into place, so a half-written bundle never has the name."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import os
import shutil
import socket
import tarfile
from dataclasses import dataclass
from pathlib import Path

from pum.config import Config
from pum.errors import PumError, StoreError
from pum.formats.bundle import INDEX_NAME, MANIFEST_NAME, BundleIndex, Carried, member_name
from pum.formats.manifest import FileRecord, Manifest
from pum.formats.paths import is_hidden
from pum.store import MANIFEST_PATH, Store

# The version record travels in every bundle, changed or not: it is how the closed side's freshclam
# clients learn the versions, and it is a few dozen bytes.
ALWAYS_CARRIED = ("dns.txt",)
# PUM's own records travel only where the closed side checks them: the main's signed metadata (TUF), so
# that hosts pinned to the main's root verify what the closed side serves end to end
CARRIED_RECORDS = (".pum/tuf/",)


@dataclass(frozen=True)
class ExportOutcome:
    path: Path
    index: BundleIndex


def export_bundle(config: Config, dest: Path, since: int | None, as_tar: bool) -> ExportOutcome:
    """Write the bundle for a closed side that holds release `since` (None: everything)."""
    store = Store(config)
    current_dir, manifest = store.current_dir(), store.current_manifest()
    if current_dir is None or manifest is None:
        raise StoreError(f"{config.docroot}: nothing is served yet, so there is nothing to export")
    base = _base_files(store, manifest, since)
    carried = {
        relpath: record
        for relpath, record in manifest.files.items()
        if (not is_hidden(relpath) or relpath.startswith(CARRIED_RECORDS))
        and (relpath in ALWAYS_CARRIED or not _same_content(base.get(relpath), record))
    }
    manifest_gz = gzip.compress((current_dir / MANIFEST_PATH).read_bytes(), compresslevel=9, mtime=0)
    if dest.exists() or dest.is_symlink():
        raise StoreError(f"{dest}: already exists; give a new name (a bundle is never written over another)")
    index = BundleIndex(
        origin=_origin(),
        from_serial=since,
        to_serial=manifest.serial,
        created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        manifest=Carried(len(manifest_gz), hashlib.sha256(manifest_gz).hexdigest()),
        files={relpath: Carried(record.size, record.sha256) for relpath, record in carried.items()},
    )
    partial = dest.with_name(f".{dest.name}.partial")
    _remove(partial)
    try:
        if as_tar:
            _write_tar(partial, current_dir, index, carried, manifest_gz)
        else:
            _write_directory(partial, current_dir, index, carried, manifest_gz)
        os.replace(partial, dest)
    except OSError as error:
        _remove(partial)
        where = error.filename or dest
        raise StoreError(f"{where}: cannot write the bundle: {error.strerror or error}") from None
    except PumError:
        _remove(partial)
        raise
    return ExportOutcome(dest, index)


def _base_files(store: Store, manifest: Manifest, since: int | None) -> dict[str, FileRecord]:
    if since is None:
        return {}
    if since > manifest.serial:
        raise StoreError(
            f"--since {since}: this PUM serves release {manifest.serial}; the closed side cannot be ahead "
            "of it (was it fed by another PUM? export with --full)"
        )
    older = store.manifest_of(since)
    if older is None:
        raise StoreError(
            f"--since {since}: release {since} is not known here any more (this PUM remembers the "
            "manifests of its last 1000 releases); export with --full"
        )
    return dict(older.files)


def _same_content(before: FileRecord | None, now: FileRecord) -> bool:
    # The mtime alone does not make a file travel: the closed side re-stamps what it holds.
    return before is not None and (before.sha256, before.size) == (now.sha256, now.size)


def _origin() -> str:
    name = socket.gethostname().split(".")[0]
    return name if name else "pum"


def _checked_copy(source: Path, target: Path, relpath: str, record: Carried) -> None:
    """Copy a served file, refusing one that no longer matches its manifest (changed behind PUM's back)."""
    digest, size = hashlib.sha256(), 0
    with open(source, "rb") as reading, open(target, "wb") as writing:
        while chunk := reading.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
            writing.write(chunk)
    if (size, digest.hexdigest()) != (record.size, record.sha256):
        raise StoreError(
            f"{source}: the served file differs from its release manifest ({relpath}); run 'pum verify'"
        )


def _write_directory(
    partial: Path, current_dir: Path, index: BundleIndex, carried: dict[str, FileRecord], manifest_gz: bytes
) -> None:
    partial.mkdir(parents=True)
    for relpath, record in carried.items():
        target = partial / member_name(relpath)
        target.parent.mkdir(parents=True, exist_ok=True)
        _checked_copy(current_dir / relpath, target, relpath, index.files[relpath])
        os.utime(target, (record.mtime, record.mtime))
    (partial / MANIFEST_NAME).write_bytes(manifest_gz)
    # the index last: a directory without it is not a bundle yet
    (partial / INDEX_NAME).write_bytes(index.to_json())
    # one sync for the whole bundle, not one per file: on a USB stick a flush per file is most of the time
    os.sync()


def _write_tar(
    partial: Path, current_dir: Path, index: BundleIndex, carried: dict[str, FileRecord], manifest_gz: bytes
) -> None:
    from pum.store import sha256_file

    # check before writing: a tar member's size is fixed in its header
    for relpath in carried:
        if sha256_file(current_dir / relpath) != index.files[relpath].sha256:
            raise StoreError(
                f"{current_dir / relpath}: the served file differs from its release manifest ({relpath}); "
                "run 'pum verify'"
            )
    with open(partial, "wb") as stream:
        with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, INDEX_NAME, index.to_json(), mtime=0)
            _add_bytes(tar, MANIFEST_NAME, manifest_gz, mtime=0)
            for relpath, record in carried.items():
                info = _member(member_name(relpath), record.size, record.mtime)
                with open(current_dir / relpath, "rb") as member:
                    tar.addfile(info, member)
        stream.flush()
        os.fsync(stream.fileno())


def _member(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.type = size, mtime, 0o644, tarfile.REGTYPE
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    import io

    tar.addfile(_member(name, len(data), mtime), io.BytesIO(data))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
