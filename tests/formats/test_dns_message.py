"""formats.dns_message: the TXT query PUM sends and the answers it takes, built here byte by byte."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pum.formats import FormatError
from pum.formats.dns_message import CNAME, TXT, Answer, parse_answer, query

NAME = "current.cvd.clamav.net"
ID = 0x1234


def wire(name: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\x00"


def record(owner: bytes, kind: int, rdata: bytes, klass: int = 1) -> bytes:
    return (
        owner
        + kind.to_bytes(2, "big")
        + klass.to_bytes(2, "big")
        + b"\x00\x00\x0e\x10"
        + len(rdata).to_bytes(2, "big")
        + rdata
    )


def answer(
    records: list[bytes], flags: int = 0x8180, query_id: int = ID, question: bytes | None = None
) -> bytes:
    header = (
        query_id.to_bytes(2, "big") + flags.to_bytes(2, "big") + b"\x00\x01" + len(records).to_bytes(2, "big")
    )
    question = question if question is not None else wire(NAME) + b"\x00\x10\x00\x01"
    return header + b"\x00\x00\x00\x00" + question + b"".join(records)


def txt(*strings: bytes) -> bytes:
    return b"".join(bytes([len(s)]) + s for s in strings)


POINTER_TO_QUESTION = b"\xc0\x0c"


def test_the_query_asks_one_recursive_txt_question():
    assert query(NAME, ID) == bytes.fromhex("123401000001000000000000") + wire(NAME) + b"\x00\x10\x00\x01"


def test_the_txt_strings_of_the_answer_are_read_through_a_compression_pointer():
    message = answer(
        [record(POINTER_TO_QUESTION, TXT, txt(b"1.4.3:62:27000:", b"1700000000:1:90:49192:336"))]
    )
    assert parse_answer(message, NAME, ID) == Answer(False, 0, [b"1.4.3:62:27000:1700000000:1:90:49192:336"])


def test_a_cname_is_followed_to_its_txt_record():
    target = wire("txt.example.org")
    message = answer([record(POINTER_TO_QUESTION, CNAME, target), record(target, TXT, txt(b"v"))])
    assert parse_answer(message, NAME, ID).texts == [b"v"]


def test_a_txt_record_of_another_name_is_not_the_answer():
    message = answer([record(wire("other.example.org"), TXT, txt(b"forged"))])
    assert parse_answer(message, NAME.upper(), ID).texts == []


def test_names_compare_without_case():
    message = answer(
        [record(wire(NAME.upper()), TXT, txt(b"v"))], question=wire(NAME.upper()) + b"\x00\x10\x00\x01"
    )
    assert parse_answer(message, NAME, ID).texts == [b"v"]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (answer([], query_id=ID + 1), "not an answer to our query"),
        (answer([], flags=0x0100), "not an answer to our query"),  # a query, not a reply
        (
            answer([], question=wire("other.example.org") + b"\x00\x10\x00\x01"),
            "not an answer to our question",
        ),
        (answer([], question=wire(NAME) + b"\x00\x01\x00\x01"), "not an answer to our question"),  # type A
        (answer([record(b"\xc0\x30", TXT, txt(b"v"))]), "does not point back"),
        (answer([record(b"\xc0" + bytes([12 + 30]), TXT, txt(b"v"))]), "does not point back"),
        (answer([record(POINTER_TO_QUESTION, TXT, b"\x05abc")]), "runs past its record"),
        (answer([record(POINTER_TO_QUESTION, TXT, txt(b"v"))])[:-1], "runs past the message"),
        (answer([])[:11], "shorter than a header"),
        (answer([record(b"\x80abc", TXT, txt(b"v"))]), "unknown label type"),
    ],
)
def test_what_is_not_our_answer_is_refused(message, expected):
    with pytest.raises(FormatError, match=expected):
        parse_answer(message, NAME, ID)


def test_a_truncated_answer_says_so_and_nothing_else():
    assert parse_answer(answer([], flags=0x8380), NAME, ID) == Answer(True, 0, [])


def test_nxdomain_is_an_rcode():
    assert parse_answer(answer([], flags=0x8183), NAME, ID).rcode == 3


@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_an_answer_or_a_format_error(data):
    with contextlib.suppress(FormatError):
        parse_answer(answer([])[:12] + data, NAME, ID)


# -- beside dnspython (a test dependency), which PUM asked before: never more lenient than it --

REAL_ANSWER = answer(
    [
        record(POINTER_TO_QUESTION, CNAME, wire("txt.example.org")),
        record(wire("txt.example.org"), TXT, txt(b"1.4.3:62:27000:", b"1700000000:1:90:49192:336")),
    ]
)


def dnspython_texts(message: bytes) -> list[bytes] | None:
    """The TXT strings dnspython finds for NAME (through the CNAME), None where it refuses the message."""
    import dns.exception
    import dns.message
    import dns.rdatatype

    try:
        parsed = dns.message.from_wire(message)
    except (dns.exception.DNSException, ValueError, UnicodeError):
        return None
    if parsed.id != ID or len(parsed.question) != 1:
        return None
    current = parsed.question[0].name
    for _ in range(8):
        texts = [
            b"".join(rdata.strings)
            for rrset in parsed.answer
            if rrset.name == current and rrset.rdtype == dns.rdatatype.TXT
            for rdata in rrset
        ]
        aliases = [
            rrset[0].target
            for rrset in parsed.answer
            if rrset.name == current and rrset.rdtype == dns.rdatatype.CNAME
        ]
        if texts or not aliases:
            return texts
        current = aliases[0]
    return None


def test_the_real_shape_reads_alike_with_dnspython():
    assert parse_answer(REAL_ANSWER, NAME, ID).texts == dnspython_texts(REAL_ANSWER)


@given(offset=st.integers(min_value=0, max_value=200), mask=st.integers(min_value=1, max_value=255))
def test_a_flipped_byte_never_gives_texts_dnspython_would_not(offset, mask):
    offset %= len(REAL_ANSWER)
    message = REAL_ANSWER[:offset] + bytes([REAL_ANSWER[offset] ^ mask]) + REAL_ANSWER[offset + 1 :]
    try:
        ours = parse_answer(message, NAME, ID)
    except FormatError:
        return
    if ours.truncated or ours.rcode or not ours.texts:
        return
    assert ours.texts == dnspython_texts(message)
