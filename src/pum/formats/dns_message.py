"""DNS messages (RFC 1035) for one question: a TXT query out, the TXT strings of its answer in.

Only what the version record needs (`current.cvd.clamav.net` TXT): one question, class IN, answers
followed through CNAMEs. Every count, length and compression pointer is checked against the message; an
answer whose id or question is not ours is refused, so a stray or forged datagram is never taken for the
answer. Standard library only, Python 3.6-clean.
"""

from typing import List, NamedTuple, Tuple

from . import FormatError

TXT = 16
CNAME = 5
_IN = 1
_HEADER = 12
# RFC 1035 2.3.4
_MAX_NAME = 255
_MAX_LABEL = 63
_MAX_POINTERS = 32
_MAX_CNAMES = 8
_MAX_RECORDS = 64
RCODES = {1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
NXDOMAIN = 3


class Answer(NamedTuple):
    """A reply to our question: `truncated` (ask again over TCP), its rcode, and the TXT records of the
    name asked (through CNAMEs), each record's strings joined."""

    truncated: bool
    rcode: int
    texts: List[bytes]


def _wire_name(name: str) -> bytes:
    labels = name.rstrip(".").split(".")
    wire = b""
    for label in labels:
        encoded = label.encode("ascii", "replace")
        if not 0 < len(encoded) <= _MAX_LABEL:
            raise FormatError(f"not a DNS name: {name[:80]!r}")
        wire += bytes([len(encoded)]) + encoded
    if len(wire) + 1 > _MAX_NAME:
        raise FormatError(f"not a DNS name: {name[:80]!r} is too long")
    return wire + b"\x00"


def query(name: str, query_id: int) -> bytes:
    """A recursive query for the TXT records of `name`, with the 16-bit `query_id`."""
    # id, flags (RD), QDCOUNT 1, ANCOUNT/NSCOUNT/ARCOUNT 0
    header = query_id.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    return header + _wire_name(name) + TXT.to_bytes(2, "big") + _IN.to_bytes(2, "big")


def _read_name(message: bytes, offset: int) -> Tuple[str, int]:
    """The name at `offset` (lowercased, dotted) and the offset after it where it is written."""
    labels: List[str] = []
    length = 0
    end = -1
    for _ in range(_MAX_POINTERS + _MAX_NAME):
        if offset >= len(message):
            raise FormatError("DNS answer: a name runs past the message")
        size = message[offset]
        if size & 0xC0 == 0xC0:
            if offset + 1 >= len(message):
                raise FormatError("DNS answer: a name runs past the message")
            target = ((size & 0x3F) << 8) | message[offset + 1]
            if end < 0:
                end = offset + 2
            # only backwards: a pointer forward or to itself could loop
            if target >= offset:
                raise FormatError("DNS answer: a compression pointer that does not point back")
            offset = target
            continue
        if size & 0xC0:
            raise FormatError("DNS answer: an unknown label type")
        if size == 0:
            return ".".join(labels).lower(), end if end >= 0 else offset + 1
        label = message[offset + 1 : offset + 1 + size]
        if len(label) != size:
            raise FormatError("DNS answer: a name runs past the message")
        length += size + 1
        if length + 1 > _MAX_NAME:
            raise FormatError("DNS answer: a name longer than 255 bytes")
        labels.append(label.decode("ascii", "replace"))
        offset += 1 + size
    raise FormatError("DNS answer: a name of too many labels or pointers")


def _txt_strings(rdata: bytes) -> bytes:
    # RFC 1035 3.3.14: one or more <character-string>s, a length byte then that many bytes
    parts = []
    offset = 0
    while offset < len(rdata):
        size = rdata[offset]
        part = rdata[offset + 1 : offset + 1 + size]
        if len(part) != size:
            raise FormatError("DNS answer: a TXT string runs past its record")
        parts.append(part)
        offset += 1 + size
    return b"".join(parts)


def parse_answer(message: bytes, name: str, query_id: int) -> Answer:
    """Our question's answer in `message`; FormatError when it is malformed or not an answer to it."""
    if len(message) < _HEADER:
        raise FormatError(f"DNS answer: {len(message)} bytes, shorter than a header")
    flags = int.from_bytes(message[2:4], "big")
    counts = [int.from_bytes(message[i : i + 2], "big") for i in range(4, 12, 2)]
    if int.from_bytes(message[:2], "big") != query_id or not flags & 0x8000 or (flags >> 11) & 0xF:
        raise FormatError("DNS answer: not an answer to our query (id, QR or opcode)")
    truncated, rcode = bool(flags & 0x0200), flags & 0xF
    if truncated:
        return Answer(True, rcode, [])
    if counts[0] != 1:
        raise FormatError(f"DNS answer: {counts[0]} questions, expected ours")
    asked, offset = _read_name(message, _HEADER)
    wanted = name.rstrip(".").lower()
    if asked != wanted or message[offset : offset + 4] != TXT.to_bytes(2, "big") + _IN.to_bytes(2, "big"):
        raise FormatError("DNS answer: not an answer to our question")
    offset += 4
    if max(counts[1:]) > _MAX_RECORDS:
        raise FormatError(f"DNS answer: {sum(counts[1:])} records")
    records = []
    # answers, then the authority and additional records, walked only to check that the message is
    # exactly what its counts say (dnspython refuses the message otherwise too)
    for index in range(sum(counts[1:])):
        owner, offset = _read_name(message, offset)
        fixed = message[offset : offset + 10]
        if len(fixed) != 10:
            raise FormatError("DNS answer: a record runs past the message")
        kind, klass = int.from_bytes(fixed[:2], "big"), int.from_bytes(fixed[2:4], "big")
        size = int.from_bytes(fixed[8:10], "big")
        start = offset + 10
        if start + size > len(message):
            raise FormatError("DNS answer: a record runs past the message")
        if index < counts[1]:
            records.append((owner, kind, klass, start, size))
        offset = start + size
    if offset != len(message):
        raise FormatError(f"DNS answer: {len(message) - offset} bytes after its records")
    current = wanted
    texts: List[bytes] = []
    for _ in range(_MAX_CNAMES):
        texts = [
            _txt_strings(message[start : start + size])
            for owner, kind, klass, start, size in records
            if owner == current and kind == TXT and klass == _IN
        ]
        aliases = [
            start
            for owner, kind, klass, start, size in records
            if owner == current and kind == CNAME and klass == _IN
        ]
        if texts or not aliases:
            break
        current, _end = _read_name(message, aliases[0])
    return Answer(False, rcode, texts)
