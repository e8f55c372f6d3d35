"""Archives the local-content tests import: the vendor's ClamAV_ProScan.zip shape, and hostile ones."""

from __future__ import annotations

import gzip
import hashlib
import io
import stat
import tarfile
import zipfile
from pathlib import Path

POST_UPDATE = b"#!/bin/sh\necho post_update from the vendor zip\n"
LIST_PATH = "ibm/power/PSHB06.lst"
PACKAGE_PATH = "ibm/packages/proscan-ibm-aix-6.0.6.9.ppc.tar.gz"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def package_bytes() -> bytes:
    """A small real tar.gz standing in for an upgrade package."""
    buffer = io.BytesIO()
    # gzip's header holds a time: fixed, so that the same package always has the same md5
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w") as archive,
    ):
        data = b"6.0.6.9\n"
        info = tarfile.TarInfo("proscan/VERSION")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def product_list(files: dict[str, bytes]) -> bytes:
    """md5sum format, paths from the tree's root."""
    return "".join(f"{md5(data)}  {path}\n" for path, data in sorted(files.items())).encode()


def vendor_files(post_update: bytes = POST_UPDATE) -> dict[str, bytes]:
    """What ClamAV_ProScan.zip holds: a product list, post_update.sh, an upgrade package."""
    listed = {"ibm/power/post_update.sh": post_update, PACKAGE_PATH: package_bytes()}
    return {**listed, LIST_PATH: b"# ProScan for IBM POWER\n" + product_list(listed)}


def write_zip(
    path: Path, files: dict[str, bytes], symlinks: dict[str, str] | None = None, dirs: bool = True
) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        if dirs:
            for directory in sorted({name.rsplit("/", 1)[0] + "/" for name in files if "/" in name}):
                archive.writestr(directory, b"")
        for name, data in files.items():
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def write_tgz(path: Path, files: dict[str, bytes], special: list[tarfile.TarInfo] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            archive.addfile(info, io.BytesIO(data))
        for info in special or []:
            archive.addfile(info)
    return path


def tar_member(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root
