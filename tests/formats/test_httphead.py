"""formats/httphead.py: the head of a pipelined answer, read strictly and within bounds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pum.formats import FormatError
from pum.formats.httphead import MAX_FIELDS, MAX_HEAD, head_end, parse_head

NGINX = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: Wed, 02 Dec 2026 03:00:00 GMT\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 2048\r\n"
    b'Last-Modified: Tue, 01 Dec 2026 03:00:00 GMT\r\nConnection: keep-alive\r\nETag: "1-800"\r\n'
    b"Accept-Ranges: bytes\r\n\r\n"
)


def test_an_nginx_head_gives_its_status_fields_and_size():
    head = parse_head(NGINX)
    assert head.status == 200
    assert head.fields["content-length"] == "2048"
    assert head.fields["etag"] == '"1-800"'
    assert head.size == len(NGINX)


def test_the_end_of_a_head_is_found_after_earlier_answers_in_the_buffer():
    buffer = b"x" * 10 + NGINX + b"body"
    assert head_end(buffer, 10) == 10 + len(NGINX)
    assert head_end(buffer[: 10 + len(NGINX) - 1], 10) is None


def test_a_repeated_field_reads_as_one_joined_value():
    head = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n")
    assert head.fields["content-length"] == "2, 2"


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1 99 Odd\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nFolded: a\r\n b\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * (MAX_FIELDS + 1) + b"\r\n",
    ],
)
def test_a_malformed_head_is_refused(head):
    with pytest.raises(FormatError):
        parse_head(head)


def test_a_head_longer_than_the_bound_is_refused_before_it_ends():
    buffer = b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX_HEAD
    with pytest.raises(FormatError, match="longer than"):
        head_end(buffer, 0)


@given(st.binary(max_size=512))
def test_any_bytes_give_a_head_or_a_format_error(data):
    try:
        head = parse_head(data)
    except FormatError:
        return
    assert 100 <= head.status <= 599
