"""One upstream file on its way into a release: the download area a killed run resumes from, and the
refusal (bytes discarded, URL named) of a file that fails its check. Shared by the sources."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from pum.common.download import STALE_PART_SECONDS
from pum.errors import VerifyError
from pum.formats import FormatError
from pum.formats.productlist import is_vdf_name
from pum.net.answers import Downloaded
from pum.store import sha256_file

if TYPE_CHECKING:
    from pum.formats.cvd import CvdHeader
    from pum.net.transport import Transport
    from pum.sync import SyncContext

T = TypeVar("T")


class Held(NamedTuple):
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


def collect_stale_parts(ctx: SyncContext) -> None:
    """At the start of a run: partial downloads a killed or failed run left more than a day ago are
    dropped (what upstream offers under their names has likely changed; on a full disk they would fail
    every later run). Younger ones are resumed."""
    if not ctx.store.downloads.is_dir():
        return  # cleared after every good run
    now = time.time()
    for part in ctx.store.downloads.rglob("*.part"):
        stat = part.lstat()
        if now - stat.st_mtime > STALE_PART_SECONDS:
            part.unlink(missing_ok=True)
            ctx.log.line(f"{part.name}: a stale partial download ({stat.st_size} bytes), starting again")


def download_kept(
    ctx: SyncContext,
    transport: Transport,
    name: str,
    kept_as: str | None = None,
    expected_size: int | None = None,
) -> Held | None:
    """A file into the download area; one kept from an interrupted run is reused, not fetched again.

    A 404 is None. A partial `.part` left by a killed run is resumed by `Transport.download`.
    """
    dest = ctx.store.downloads / (kept_as or name)
    try:
        stat = os.stat(dest)
    except FileNotFoundError:
        pass
    else:
        where = f"{dest} (kept by an earlier run)"
        return Held(dest, stat.st_size, sha256_file(dest), stat.st_mtime, where)
    got = transport.download(name, dest, expected_size=expected_size)
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
    from pum.formats.cvd import verify_cvd  # here: a run that fetches nothing never imports it

    try:
        with open(held.path, "rb") as stream:
            return verify_cvd(stream, db)
    except FormatError as error:
        discard(held)
        raise VerifyError(f"{held.where}: refused: {error}") from None


def roots_of(ctx: SyncContext) -> tuple[Any, ...]:
    from pum.sync.vdfcheck import pinned_roots

    return pinned_roots(ctx.config.trust_test_root)


def refuse_vdf_names(where: str, relpaths: Iterable[str]) -> None:
    """Before anything is fetched: a file set holding a VDF name no release may hold is refused whole."""
    vdf_names = [relpath for relpath in relpaths if is_vdf_name(relpath)]
    if not vdf_names:
        return  # plain files only: no need of the signature checks' module
    from pum.sync.vdfcheck import name_problem

    for relpath in vdf_names:
        problem = name_problem(relpath)
        if problem:
            raise VerifyError(f"{where}: refused: {relpath}: {problem}; the last good release stays served")


def signs_last(relpaths: Iterable[str]) -> list[str]:
    """`.sign` files after everything else: each is checked against its file, staged before it."""
    return sorted(relpaths, key=lambda relpath: relpath.endswith(".sign"))


def accepted(ctx: SyncContext, held: Held, relpath: str) -> CvdHeader | None:
    """`vdfcheck.check_vdf` on a download about to be staged as `relpath` (a `.sign` against the staged
    file it signs), and no CVD older than the served one unless the operator allowed it. A failure
    discards the download and becomes a VerifyError naming its URL. Returns the header of a CVD."""
    try:
        return accepted_file(ctx, held.path, relpath)
    except FormatError as error:
        discard(held)
        raise VerifyError(f"{held.where}: refused: {error}") from None


def accepted_file(ctx: SyncContext, path: Path, relpath: str) -> CvdHeader | None:
    """`accepted` for a file at hand; raises FormatError."""
    from pum.sync.vdfcheck import check_vdf, newer_served_version

    # the pinned roots are read only for a VDF: a tier of other files never needs them
    header = check_vdf(path, relpath, ctx.staging.dir, roots_of(ctx) if is_vdf_name(relpath) else ())
    served = newer_served_version(relpath, header, ctx.staging.current_dir)
    if served is None:
        return header
    assert header is not None
    downgrade = (
        f"{relpath} is version {header.version}, older than the version {served} we serve (a downgrade)"
    )
    if not ctx.allow_downgrade:
        raise FormatError(f"{downgrade}; 'pum run --allow-downgrade' accepts it")
    ctx.log.line(f"{downgrade}: accepted (--allow-downgrade)")
    return header


def recheck_carried_signs(ctx: SyncContext, carried: Iterable[str], url_of: Callable[[str], str]) -> None:
    """`.sign` files carried over from the served release (not downloaded in this run) are checked again
    over the file they sign in the staged release: that file may be new, and a PUM before this check
    served `.sign` files unchecked. A failure is a VerifyError naming the file's upstream URL."""
    for relpath in carried:
        if relpath.endswith(".sign"):
            try:
                accepted_file(ctx, ctx.staging.path_of(relpath), relpath)
            except FormatError as error:
                raise VerifyError(f"{url_of(relpath)}: refused: {error}") from None
