"""A strict reader of DER (X.690), the encoding of certificates and PKCS#7: bytes in, elements out.

Only what signed ClamAV data uses: one-byte tags, definite lengths in their shortest form, at most
MAX_LENGTH bytes a value, every length checked against what holds it, no byte after the outermost
element. The reader never recurses on its own: each caller descends the levels its schema names, so the
depth is the schema's. Standard library only, Python 3.6-clean (the host side may use it).
"""

import datetime as dt
from typing import List, NamedTuple, Optional, Tuple

from . import FormatError

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
BOOLEAN = 0x01
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
# no structure ClamAV signs comes near this (a .sign file is at most 64 KiB)
MAX_LENGTH = 1 << 20
_CONSTRUCTED = 0x20
_HIGH_TAG_NUMBER = 0x1F


def context(number: int, constructed: bool = True) -> int:
    """The identifier octet of `[number]` (context-specific), constructed or primitive."""
    return 0x80 | (_CONSTRUCTED if constructed else 0) | number


class Element(NamedTuple):
    """One DER element: its identifier octet and its whole encoding (identifier, length, contents)."""

    tag: int
    der: bytes
    header: int  # where the contents start in `der`

    @property
    def value(self) -> bytes:
        return self.der[self.header :]


def parse(data: bytes, what: str) -> Element:
    """The one element `data` holds, with no byte after it."""
    element, end = _read(data, 0, len(data), what)
    if end != len(data):
        raise FormatError(f"{what}: {len(data) - end} bytes after the DER element")
    return element


def children(element: Element, what: str) -> List[Element]:
    """The elements inside a constructed element, in order."""
    if not element.tag & _CONSTRUCTED:
        raise FormatError(f"{what}: a primitive element where a constructed one belongs")
    data, offset, end = element.der, element.header, len(element.der)
    found = []
    while offset < end:
        child, offset = _read(data, offset, end, what)
        found.append(child)
    return found


def _read(data: bytes, offset: int, end: int, what: str) -> Tuple[Element, int]:
    if end - offset < 2:
        raise FormatError(f"{what}: truncated DER at byte {offset}")
    tag, first = data[offset], data[offset + 1]
    if tag & _HIGH_TAG_NUMBER == _HIGH_TAG_NUMBER:
        raise FormatError(f"{what}: multi-byte DER tag at byte {offset}")
    position = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        # 0x80 is BER's indefinite length; DER has none, and no length here needs more than 3 bytes
        if count == 0 or count > 3:
            raise FormatError(f"{what}: not a DER length at byte {offset + 1}")
        if end - position < count:
            raise FormatError(f"{what}: truncated DER length at byte {offset + 1}")
        length = int.from_bytes(data[position : position + count], "big")
        position += count
        if length < 0x80 or length >> (8 * (count - 1)) == 0:
            raise FormatError(f"{what}: a DER length not in its shortest form at byte {offset + 1}")
    if length > MAX_LENGTH:
        raise FormatError(f"{what}: a DER value of {length} bytes (at most {MAX_LENGTH})")
    if length > end - position:
        raise FormatError(f"{what}: a DER value of {length} bytes overruns its container at byte {offset}")
    return Element(tag, data[offset : position + length], position - offset), position + length


def expect(element: Element, tag: int, what: str) -> Element:
    if element.tag != tag:
        raise FormatError(f"{what}: DER tag 0x{element.tag:02x}, expected 0x{tag:02x}")
    return element


def sequence(element: Element, what: str, least: int, most: int, tag: int = SEQUENCE) -> List[Element]:
    """The members of a SEQUENCE (or another constructed `tag`) holding `least` to `most` of them."""
    members = children(expect(element, tag, what), what)
    if not least <= len(members) <= most:
        raise FormatError(f"{what}: {len(members)} members, expected {least} to {most}")
    return members


def integer(element: Element, what: str) -> int:
    value = expect(element, INTEGER, what).value
    if not value:
        raise FormatError(f"{what}: an empty INTEGER")
    return int.from_bytes(value, "big", signed=True)


def unsigned(element: Element, what: str) -> int:
    """A non-negative INTEGER (a key's modulus, a signature's r)."""
    number = integer(element, what)
    if number < 0:
        raise FormatError(f"{what}: a negative INTEGER")
    return number


def octets(element: Element, what: str) -> bytes:
    return expect(element, OCTET_STRING, what).value


def bits(element: Element, what: str, whole_bytes: bool = True) -> bytes:
    """A BIT STRING's bytes; `whole_bytes`: a key or a signature, which has no unused bits."""
    value = expect(element, BIT_STRING, what).value
    if not value or value[0] > 7 or (len(value) == 1 and value[0]):
        raise FormatError(f"{what}: not a BIT STRING")
    if whole_bytes and value[0]:
        raise FormatError(f"{what}: a BIT STRING of {value[0]} unused bits, expected whole bytes")
    return value[1:]


def boolean(element: Element, what: str) -> bool:
    value = expect(element, BOOLEAN, what).value
    if value not in (b"\x00", b"\xff"):
        raise FormatError(f"{what}: not a DER BOOLEAN")
    return value == b"\xff"


def null(element: Element, what: str) -> None:
    if expect(element, NULL, what).value:
        raise FormatError(f"{what}: a NULL with contents")


def oid(element: Element, what: str) -> str:
    """An OBJECT IDENTIFIER in dotted form (`1.2.840.113549.1.7.2`)."""
    value = expect(element, OID, what).value
    if not value or value[-1] & 0x80 or len(value) > 64:
        raise FormatError(f"{what}: not an OBJECT IDENTIFIER")
    arcs: List[int] = []
    number = 0
    starting = True
    for byte in value:
        if starting and byte == 0x80:
            raise FormatError(f"{what}: an OBJECT IDENTIFIER arc not in its shortest form")
        number = (number << 7) | (byte & 0x7F)
        starting = not byte & 0x80
        if starting:
            arcs.append(number)
            number = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in [first, arcs[0] - 40 * first, *arcs[1:]])


def time(element: Element, what: str) -> dt.datetime:
    """A UTCTime (`YYMMDDHHMMSSZ`, 1950-2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as an aware UTC
    datetime: the two forms RFC 5280 4.1.2.5 allows, to the second, in UTC."""
    text = element.value.decode("ascii", "replace")
    if element.tag == UTC_TIME and len(text) == 13 and text[:2].isdigit():
        year = int(text[:2])
        text = str(1900 + year if year >= 50 else 2000 + year) + text[2:]
    elif element.tag != GENERALIZED_TIME or len(text) != 15:
        raise FormatError(f"{what}: not a UTCTime or GeneralizedTime to the second in UTC")
    if not text[:14].isdigit() or text[14] != "Z":
        raise FormatError(f"{what}: not a time: {text!r}")
    try:
        return dt.datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise FormatError(f"{what}: not a time: {text!r}") from None


def optional(members: List[Element], index: int, tag: int) -> Optional[Element]:
    """`members[index]` when it is there with `tag` (an OPTIONAL or DEFAULT field), else None."""
    if index < len(members) and members[index].tag == tag:
        return members[index]
    return None
