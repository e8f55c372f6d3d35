"""One upstream file on its way into a release: the download area a killed run resumes from, and the
refusal (bytes discarded, URL named) of a file that fails its check. Shared by the sources."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pum.errors import VerifyError
from pum.formats import FormatError
from pum.formats.cdiff import verify_cdiff
from pum.formats.cvd import CvdHeader, verify_cvd
from pum.net.answers import Downloaded
from pum.store import sha256_file

if TYPE_CHECKING:
    from pum.net.transport import Transport
    from pum.sync import SyncContext

T = TypeVar("T")
_ROOT_CDIFF = re.compile(r"^[^/]+-(?P<n>\d+)\.cdiff$")


@dataclass(frozen=True)
class Held:
    """A file in the download area, ready to be checked and staged: fresh from `where` (its URL), or kept
    by a run that was killed after fetching it (`where` then says so)."""

    path: Path
    size: int
    sha256: str
    last_modified: float | None
    where: str

    @classmethod
    def downloaded(cls, got: Downloaded) -> Held:
        return cls(got.path, got.size, got.sha256, got.last_modified, got.url)


def download_kept(
    ctx: SyncContext, transport: Transport, name: str, kept_as: str | None = None
) -> Held | None:
    """A file into the download area; one kept from an interrupted run is reused, not fetched again.

    A 404 is None. A partial `.part` left by a killed run is resumed by `Transport.download`.
    """
    dest = ctx.store.downloads / (kept_as or name)
    if dest.exists():
        stat = dest.stat()
        where = f"{dest} (kept by an earlier run)"
        return Held(dest, stat.st_size, sha256_file(dest), stat.st_mtime, where)
    got = transport.download(name, dest)
    if not isinstance(got, Downloaded):
        return None  # Missing: without validators the server cannot answer 304
    if got.last_modified:
        os.utime(dest, (got.last_modified, got.last_modified))
    return Held.downloaded(got)


def discard(held: Held) -> None:
    held.path.unlink(missing_ok=True)


def verified(held: Held, check: Callable[[bytes], T]) -> T:
    """`check(bytes)`; a FormatError discards the file and becomes a VerifyError naming its URL."""
    try:
        return check(held.path.read_bytes())
    except FormatError as error:
        discard(held)
        raise VerifyError(f"{held.where}: refused: {error}") from None


def verified_cvd(held: Held, db: str) -> CvdHeader:
    """The whole CVD check in one streaming pass (header, MD5, signature, the .info inside)."""
    try:
        with open(held.path, "rb") as stream:
            return verify_cvd(stream, db)
    except FormatError as error:
        discard(held)
        raise VerifyError(f"{held.where}: refused: {error}") from None


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


def verified_by_name(held: Held, relpath: str) -> CvdHeader | None:
    """`check_signature` on a download: a failure discards it and becomes a VerifyError naming its URL."""
    try:
        return check_signature(held.path, relpath)
    except FormatError as error:
        discard(held)
        raise VerifyError(f"{held.where}: refused: {error}") from None
