"""The CDIFF patch file: `ClamAV-Diff:<version>:<script length>:<gzip script>:<dsig>`, verified whole."""

import hashlib
import zlib
from typing import NamedTuple

from . import FormatError
from ._decimal import parse_decimal
from .sign import CDIFF_DSIG_MAX, cdiff_signature_ok, dsig_alphabet_ok

_MAGIC = b"ClamAV-Diff:"
# The header's numbers are short; a header that has not ended within this many bytes is not one.
_HEADER_LIMIT = 64
# Inflate the script in pieces of this size, counting and dropping them: memory stays flat.
_CHUNK = 1 << 20


class CdiffHeader(NamedTuple):
    """What the header of a CDIFF declares: the database version it produces, the script's length."""

    version: int
    script_length: int


def _parse_header(data: bytes) -> tuple[CdiffHeader, int]:
    """The header and the offset where the gzip script starts."""
    if not data.startswith(_MAGIC):
        raise FormatError(f"not a CDIFF: expected {_MAGIC!r} at byte 0, got {data[: len(_MAGIC)]!r}")
    version_end = data.find(b":", len(_MAGIC), len(_MAGIC) + _HEADER_LIMIT)
    length_end = data.find(b":", version_end + 1, version_end + 1 + _HEADER_LIMIT) if version_end >= 0 else -1
    if length_end < 0:
        raise FormatError("truncated: expected 'ClamAV-Diff:<version>:<length>:' at the start of the CDIFF")
    version_text = data[len(_MAGIC) : version_end].decode("ascii", "replace")
    length_text = data[version_end + 1 : length_end].decode("ascii", "replace")
    # read_size in libclamav_rust/src/cdiff.rs parses the length as a u32.
    script_length = parse_decimal(length_text, "CDIFF header: script length")
    if script_length > 0xFFFF_FFFF:
        raise FormatError(f"CDIFF header: script length must fit 32 bits, got {script_length}")
    header = CdiffHeader(
        version=parse_decimal(version_text, "CDIFF header: version"), script_length=script_length
    )
    return header, length_end + 1


def _check_script(script: bytes, declared: int) -> None:
    inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    inflated = 0
    pending = script
    try:
        while not inflate.eof:
            out = inflate.decompress(pending, _CHUNK)
            pending = inflate.unconsumed_tail
            inflated += len(out)
            if inflated > declared:
                raise FormatError(f"gzip script is longer than the {declared} bytes the header declares")
            if not out and not pending:
                break
    except zlib.error as error:
        raise FormatError(f"gzip script is corrupt: {error}") from None
    if not inflate.eof:
        raise FormatError("truncated: gzip script ends early")
    if inflate.unused_data:
        raise FormatError(f"{len(inflate.unused_data)} bytes follow the gzip script before the signature")
    if inflated != declared:
        raise FormatError(f"gzip script is {inflated} bytes, the header declares {declared}")


def verify_cdiff(data: bytes, expected_version: int | None = None) -> CdiffHeader:
    """Verify a whole CDIFF: header, signature, and the gzip script's length; return the header.

    `expected_version`, when given, is the version the file's name promises (`<db>-<N>.cdiff`).
    """
    header, script_start = _parse_header(data)
    # cdiff_apply (libclamav_rust/src/cdiff.rs) takes the dsig after the file's last ':' and hashes
    # everything before that ':'. The dsig alphabet has no ':', the gzip script may well contain one.
    separator = data.rfind(b":")
    if separator < script_start:
        raise FormatError("truncated: no ':<dsig>' after the gzip script")
    dsig_bytes = data[separator + 1 :]
    if len(dsig_bytes) > CDIFF_DSIG_MAX:
        raise FormatError(
            f"CDIFF signature must be at most {CDIFF_DSIG_MAX} characters, got {len(dsig_bytes)}"
        )
    dsig = dsig_bytes.decode("ascii", "replace")
    if not dsig or not dsig_alphabet_ok(dsig):
        # What follows the last ':' of a cut-off file is a piece of the gzip script.
        raise FormatError(
            f"truncated or corrupt: the {len(dsig_bytes)} bytes after the last ':' are not a ClamAV dsig"
        )
    if not cdiff_signature_ok(hashlib.sha256(data[:separator]).digest(), dsig):
        raise FormatError(f"bad CDIFF signature over the first {separator} bytes")
    if expected_version is not None and header.version != expected_version:
        raise FormatError(f"CDIFF is for version {header.version}, expected {expected_version}")
    _check_script(data[script_start:separator], header.script_length)
    return header
