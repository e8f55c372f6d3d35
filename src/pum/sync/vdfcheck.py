"""The chain of trust for virus databases: which VDF names a release may hold, and the signature checks
each passes before it is served. One rule for server mode, mirror mode, crawl mode and `pum verify`.

VDF names are the files freshclam fetches from a mirror: `*.cvd`, `*.cld`, `*.cdiff`, `*.sign`, plus
`*.cud` (libclamav's unsigned container, CLI_DBEXT in libclamav/readdb.h) and `dns.txt`. At the root of a
release only `<db>.cvd`, `<db>-<N>.cdiff` and their `.sign` files are served, each checked by its own
signature; `*.cld` and `*.cud` never (no upstream serves them; freshclam falls back to the `.cvd`). Below
the root none is served: a freshclam DatabaseMirror URL may name a subdirectory. The plain-text
databases of CLI_DBEXT (`.hdb`, `.ndb`, `.ldb`, ...) are not VDF names: freshclam never asks a mirror for
them, and an operator may serve its own through `pum import` for DatabaseCustomURL.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pum.formats import FormatError
from pum.formats.cdiff import verify_cdiff
from pum.formats.clamsign import SIGN_FILE_LIMIT, parse_sign_file
from pum.formats.cvd import CVD_HEADER_SIZE, CvdHeader, parse_cvd_header, verify_cvd
from pum.formats.productlist import CONTAINER_SUFFIX, is_vdf_name

# ClamAV's public roots (libclamav's certs directory): .sign files chain to one of these
TRUST_ROOTS = Path(__file__).resolve().parent.parent / "trust_roots"
PRODUCTION_ROOT = "clamav-production-root.crt"
TEST_ROOT = "clamav-test-root.crt"

_CVD = re.compile(r"^(?P<db>[a-z0-9_]+)\.cvd$")
_CDIFF = re.compile(r"^(?P<db>[a-z0-9_]+)-(?P<n>\d+)\.cdiff$")
_SIGN = re.compile(r"^(?P<db>[a-z0-9_]+)-(?P<n>\d+)\.(?P<kind>cvd|cdiff)\.sign$")
_NEVER_SERVED = {
    ".cld": "a .cld is never served (no upstream serves one; freshclam falls back to the .cvd)",
    CONTAINER_SUFFIX: "a .cud (an unsigned database container) is never served",
}
_CHUNK = 1 << 20


@functools.cache
def pinned_roots(trust_test_root: bool) -> tuple[Any, ...]:
    """ClamAV's production root, and its TEST root (which signed the test databases) when configured."""
    names = (PRODUCTION_ROOT, TEST_ROOT) if trust_test_root else (PRODUCTION_ROOT,)
    # imported here: a run with nothing new never needs the PKCS#7 verifier
    from pum.formats.pkcs7 import load_root

    return tuple(load_root((TRUST_ROOTS / name).read_bytes()) for name in names)


def name_problem(relpath: str) -> str | None:
    """Why a release may not hold `relpath` (a safe relative path), or None."""
    if not is_vdf_name(relpath):
        return None
    if "/" in relpath:
        return "a VDF name below the root: virus databases are served only at the root, from upstream"
    for suffix, problem in _NEVER_SERVED.items():
        if relpath.endswith(suffix):
            return problem
    if relpath.endswith(".sign") and not _SIGN.match(relpath):
        return "a .sign is named <db>-<version>.cvd.sign or <db>-<N>.cdiff.sign"
    if relpath.endswith(".cdiff") and not _CDIFF.match(relpath):
        return "a CDIFF is named <db>-<N>.cdiff"
    if relpath.endswith(".cvd") and not _CVD.match(relpath):
        return "a CVD is named <db>.cvd"
    return None


def check_vdf(path: Path, relpath: str, tree: Path, roots: tuple[Any, ...]) -> CvdHeader | None:
    """Every check the file at `path` passes before it is served as `relpath` of the release `tree`: its
    name, and for a CVD, a CDIFF or a `.sign` its signature (a `.sign` over its file in `tree`). Returns
    the header of a CVD; raises FormatError."""
    problem = name_problem(relpath)
    if problem:
        raise FormatError(f"{relpath}: {problem}")
    if cvd := _CVD.match(relpath):
        with open(path, "rb") as stream:
            return verify_cvd(stream, cvd["db"])
    if cdiff := _CDIFF.match(relpath):
        verify_cdiff(path.read_bytes(), expected_version=int(cdiff["n"]))
    elif _SIGN.match(relpath):
        with open(path, "rb") as stream:
            # one byte more than a .sign may be, so that parse_sign_file refuses a longer one
            check_sign(stream.read(SIGN_FILE_LIMIT + 1), relpath, tree, roots)
    return None


def check_sign(data: bytes, relpath: str, tree: Path, roots: tuple[Any, ...]) -> str:
    """A `<db>-<N>.cvd.sign` / `<db>-<N>.cdiff.sign` over its file in `tree` (the `<db>.cvd` of version N,
    or `<db>-<N>.cdiff`): every signature it holds verifies and chains to a pinned root. Returns the
    signer."""
    sign = _SIGN.match(relpath)
    assert sign is not None
    target = f"{sign['db']}.cvd" if sign["kind"] == "cvd" else f"{sign['db']}-{sign['n']}.cdiff"
    target_path = tree / target
    if not target_path.is_file():
        raise FormatError(f"{relpath}: signs {target}, which the release does not hold")
    if sign["kind"] == "cvd":
        with open(target_path, "rb") as stream:
            version = parse_cvd_header(stream.read(CVD_HEADER_SIZE)).version
        if version != int(sign["n"]):
            raise FormatError(
                f"{relpath}: signs version {sign['n']} of {target}, which is at version {version}"
            )
    now = dt.datetime.now(dt.UTC)
    signers = []
    try:
        lines = parse_sign_file(data)
    except FormatError as error:
        raise FormatError(f"{relpath}: {error}") from None
    from pum.formats.pkcs7 import verify_detached  # here: only when a .sign is checked

    for line in lines:
        try:
            signers.append(verify_detached(line.pkcs7_der, _file_digest(target_path), roots, now))
        except FormatError as error:
            raise FormatError(f"{relpath}:{line.line}: {error}") from None
    return ", ".join(signers)


def _file_digest(path: Path) -> Callable[[str], bytes]:
    def digest_of(name: str) -> bytes:
        hasher = hashlib.new(name)
        with open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                hasher.update(chunk)
        return hasher.digest()

    return digest_of


def newer_served_version(relpath: str, header: CvdHeader | None, served: Path | None) -> int | None:
    """The version of the CVD `relpath` in the served release `served` when the one with `header` is
    older (a downgrade: perhaps an old signed file replayed), else None."""
    if header is None or served is None or not (served / relpath).is_file():
        return None
    try:
        with open(served / relpath, "rb") as stream:
            old = parse_cvd_header(stream.read(CVD_HEADER_SIZE)).version
    except FormatError:
        return None
    return old if header.version < old else None
