"""File digests: sha256 (releases, manifests) and md5 (product lists speak md5, as md5sum writes them)."""

import hashlib
from pathlib import Path
from typing import Any, Callable

CHUNK = 1 << 20


def new_md5() -> Any:
    """An md5 object that FIPS-mode OpenSSL still gives out: it only names files, it protects nothing."""
    try:
        return hashlib.new("md5", usedforsecurity=False)  # novermin
    except TypeError:  # Python < 3.9 has no usedforsecurity
        return hashlib.md5()


def _file_digest(path: Path, new_digest: Callable[[], Any]) -> str:
    digest = new_digest()
    with open(str(path), "rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK), b""):
            digest.update(chunk)
    return str(digest.hexdigest())


def sha256_file(path: Path) -> str:
    return _file_digest(path, hashlib.sha256)


def md5_file(path: Path) -> str:
    """Product lists and proscanup speak md5 (the original product's md5sum lists)."""
    return _file_digest(path, new_md5)
