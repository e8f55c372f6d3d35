"""One upstream file on its way into a release: the download area a killed run resumes from, and the
refusal (bytes discarded, URL named) of a file that fails its check. Shared by the sources."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pum.errors import VerifyError
from pum.formats import FormatError
from pum.formats.cdiff import verify_cdiff
from pum.formats.cvd import CvdHeader, verify_cvd
from pum.store import sha256_file

if TYPE_CHECKING:
    from pum.net.transport import Fetched, Transport
    from pum.sync import SyncContext

T = TypeVar("T")
_ROOT_CDIFF = re.compile(r"^[^/]+-(?P<n>\d+)\.cdiff$")


def download_kept(
    ctx: SyncContext, transport: Transport, name: str, kept_as: str | None = None
) -> Fetched | None:
    """A file into the download area; one kept from an interrupted run is reused, not fetched again.

    A 404 is None. A partial `.part` left by a killed run is resumed by `Transport.download`.
    """
    from pum.net.transport import Fetched

    dest = ctx.store.downloads / (kept_as or name)
    if dest.exists():
        stat = dest.stat()
        return Fetched(
            status=200,
            url=f"{ctx.store.downloads}/{name}",
            server=transport.servers[0],
            path=dest,
            size=stat.st_size,
            sha256=sha256_file(dest),
            last_modified=stat.st_mtime,
        )
    fetched = transport.download(name, dest)
    if fetched.missing:
        return None
    if fetched.last_modified:
        os.utime(dest, (fetched.last_modified, fetched.last_modified))
    return fetched


def discard(fetched: Fetched) -> None:
    if fetched.path is not None:
        fetched.path.unlink(missing_ok=True)


def verified(fetched: Fetched, check: Callable[[bytes], T]) -> T:
    """`check(bytes)`; a FormatError discards the file and becomes a VerifyError naming its URL."""
    assert fetched.path is not None
    try:
        return check(fetched.path.read_bytes())
    except FormatError as error:
        discard(fetched)
        raise VerifyError(f"{fetched.url}: refused: {error}") from None


def verified_cvd(fetched: Fetched, db: str) -> CvdHeader:
    """The whole CVD check in one streaming pass (header, MD5, signature, the .info inside)."""
    assert fetched.path is not None
    try:
        with open(fetched.path, "rb") as stream:
            return verify_cvd(stream, db)
    except FormatError as error:
        discard(fetched)
        raise VerifyError(f"{fetched.url}: refused: {error}") from None


def check_signature(path: Path, relpath: str) -> CvdHeader | None:
    """The signature checks a release path calls for: a `*.cvd` or `*.cdiff` at the tree's root (where
    freshclam looks) is checked whole; anything else passes (its checksum is checked elsewhere).
    Returns the header of a CVD; raises FormatError."""
    if "/" in relpath:
        return None
    if relpath.endswith(".cvd"):
        with open(path, "rb") as stream:
            return verify_cvd(stream, relpath.removesuffix(".cvd"))
    if relpath.endswith(".cdiff"):
        cdiff = _ROOT_CDIFF.match(relpath)
        if not cdiff:
            raise FormatError(f"{relpath}: a CDIFF is named <db>-<version>.cdiff")
        verify_cdiff(path.read_bytes(), expected_version=int(cdiff["n"]))
    return None


def verified_by_name(fetched: Fetched, relpath: str) -> CvdHeader | None:
    """`check_signature` on a download: a failure discards it and becomes a VerifyError naming its URL."""
    assert fetched.path is not None
    try:
        return check_signature(fetched.path, relpath)
    except FormatError as error:
        discard(fetched)
        raise VerifyError(f"{fetched.url}: refused: {error}") from None
