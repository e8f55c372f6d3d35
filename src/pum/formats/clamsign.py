"""ClamAV detached signature files (`<db>-<N>.cvd.sign`, `<db>-<N>.cdiff.sign`): the `#clamsign-1.0` text.

Written by `sigtool --sign` / libclamav_rust/src/codesign.rs (`sign_file`): a first line `#clamsign-1.0`,
then one line per signature, `<min flevel>:<max flevel or empty>:pkcs7-pem:<base64 of the DER PKCS#7>`
(clam-sigutil's `DigitalSig`, the PEM body without its BEGIN/END lines and newlines). `codesign.rs`
(`verify_signed_file`) skips blank lines and lines starting with `#`. The PKCS#7 itself is checked by
`formats.pkcs7`.
"""

import base64
import binascii
import re
from typing import NamedTuple

from . import FormatError

HEADER = "#clamsign-1.0"
# Real files are ~5 KiB (one signature with two certificates); a few more signatures fit easily.
SIGN_FILE_LIMIT = 64 * 1024
MAX_SIGNATURES = 8
SIGNATURE_FORMAT = "pkcs7-pem"
_FLEVEL = re.compile(r"^[0-9]{1,9}$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


class SignatureLine(NamedTuple):
    """One signature of a `.sign` file: the engine feature levels it is for and its DER PKCS#7."""

    line: int
    min_flevel: int
    max_flevel: int | None
    pkcs7_der: bytes


def parse_sign_file(data: bytes) -> list[SignatureLine]:
    """The signatures of a `.sign` file, in file order; FormatError naming the line when it is not one."""
    if len(data) > SIGN_FILE_LIMIT:
        raise FormatError(f"{len(data)} bytes: a .sign file is at most {SIGN_FILE_LIMIT} bytes")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("not a .sign file: not ASCII text") from None
    lines = text.split("\n")
    if lines[0].removesuffix("\r") != HEADER:
        raise FormatError(f"not a .sign file: line 1 is {lines[0][:40]!r}, expected {HEADER!r}")
    signatures: list[SignatureLine] = []
    for number, raw in enumerate(lines[1:], start=2):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if len(signatures) == MAX_SIGNATURES:
            raise FormatError(f"line {number}: more than {MAX_SIGNATURES} signatures")
        signatures.append(_parse_signature_line(line, number))
    if not signatures:
        raise FormatError("a .sign file without any signature line")
    return signatures


def _parse_signature_line(line: str, number: int) -> SignatureLine:
    fields = line.split(":")
    if len(fields) != 4:
        raise FormatError(
            f"line {number}: expected '<min flevel>:<max flevel>:{SIGNATURE_FORMAT}:<base64>', "
            f"got {len(fields)} fields"
        )
    min_text, max_text, kind, encoded = fields
    if not _FLEVEL.match(min_text) or not (max_text == "" or _FLEVEL.match(max_text)):
        raise FormatError(f"line {number}: feature levels {min_text!r}:{max_text!r} are not numbers")
    min_flevel = int(min_text)
    max_flevel = int(max_text) if max_text else None
    if max_flevel is not None and max_flevel < min_flevel:
        raise FormatError(f"line {number}: feature level range {min_flevel}..{max_flevel} is empty")
    if kind != SIGNATURE_FORMAT:
        raise FormatError(f"line {number}: signature format {kind[:20]!r}, expected {SIGNATURE_FORMAT!r}")
    if not _BASE64.match(encoded):
        raise FormatError(f"line {number}: the PKCS#7 is not base64")
    try:
        der = base64.b64decode(encoded, validate=True)
    except binascii.Error as error:
        raise FormatError(f"line {number}: the PKCS#7 is not base64 ({error})") from None
    return SignatureLine(number, min_flevel, max_flevel, der)
