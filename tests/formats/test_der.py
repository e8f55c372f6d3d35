"""formats.der: the strict DER reader under certificates and PKCS#7."""

import contextlib
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pum.formats import FormatError, der


def test_an_element_is_its_tag_and_its_whole_encoding():
    element = der.parse(b"\x04\x03abc", "test")
    assert (element.tag, element.value, element.der) == (der.OCTET_STRING, b"abc", b"\x04\x03abc")


def test_a_long_length_is_read():
    value = b"x" * 300
    assert der.parse(b"\x04\x82\x01\x2c" + value, "test").value == value


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x30\x80\x00\x00", "not a DER length"),  # BER's indefinite length
        (b"\x04\x81\x03abc", "shortest form"),
        (b"\x04\x82\x00\x03abc", "shortest form"),
        (b"\x04\x84\x00\x00\x00\x03abc", "not a DER length"),
        (b"\x04\x04abc", "overruns"),
        (b"\x04\x03abcd", "after the DER element"),
        (b"\x04", "truncated"),
        (b"\x04\x82\x01", "truncated DER length"),
        (b"\x1f\x81\x00\x00", "multi-byte DER tag"),
        (b"", "truncated"),
    ],
)
def test_what_is_not_der_is_refused(data, expected):
    with pytest.raises(FormatError, match=expected):
        der.parse(data, "test")


def test_a_member_overrunning_its_sequence_is_refused():
    with pytest.raises(FormatError, match="overruns"):
        der.children(der.parse(b"\x30\x04\x04\x03ab", "test"), "test")


def test_a_primitive_element_has_no_members():
    with pytest.raises(FormatError, match="primitive"):
        der.children(der.parse(b"\x04\x00", "test"), "test")


def test_object_identifiers_read_as_dotted_numbers():
    assert der.oid(der.parse(bytes.fromhex("06092a864886f70d010702"), "t"), "t") == "1.2.840.113549.1.7.2"
    assert der.oid(der.parse(bytes.fromhex("0603551d13"), "t"), "t") == "2.5.29.19"


@pytest.mark.parametrize("data", ["0600", "0602802a", "06022a86"])
def test_a_malformed_object_identifier_is_refused(data):
    with pytest.raises(FormatError, match="OBJECT IDENTIFIER"):
        der.oid(der.parse(bytes.fromhex(data), "t"), "t")


@pytest.mark.parametrize(
    ("tag", "text", "expected"),
    [
        (der.UTC_TIME, "250329173442Z", dt.datetime(2025, 3, 29, 17, 34, 42, tzinfo=dt.UTC)),
        (der.UTC_TIME, "491231235959Z", dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.UTC)),
        (der.UTC_TIME, "500101000000Z", dt.datetime(1950, 1, 1, tzinfo=dt.UTC)),
        (der.GENERALIZED_TIME, "20990124184525Z", dt.datetime(2099, 1, 24, 18, 45, 25, tzinfo=dt.UTC)),
    ],
)
def test_times_are_read_in_utc(tag, text, expected):
    assert der.time(der.Element(tag, bytes([tag, len(text)]) + text.encode(), 2), "t") == expected


@pytest.mark.parametrize(
    ("tag", "text"),
    [
        (der.UTC_TIME, "2503291734Z"),  # no seconds
        (der.UTC_TIME, "250329173442+0100"),
        (der.GENERALIZED_TIME, "20250329173442.5Z"),
        (der.GENERALIZED_TIME, "20251329173442Z"),  # month 13
        (der.UTC_TIME, "25032917344 Z"),
        (der.OCTET_STRING, "250329173442Z"),
    ],
)
def test_other_time_forms_are_refused(tag, text):
    with pytest.raises(FormatError):
        der.time(der.Element(tag, bytes([tag, len(text)]) + text.encode(), 2), "t")


def _walk(element: der.Element, depth: int) -> None:
    if depth < 8 and element.tag & 0x20:
        for child in der.children(element, "t"):
            _walk(child, depth + 1)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_elements_or_a_format_error(data):
    with contextlib.suppress(FormatError):
        _walk(der.parse(data, "t"), 0)
