"""The HTTP rules of `pum serve` as pure functions: parsing, paths, ranges, conditionals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pum.serve.http import (
    MANIFEST,
    UNSATISFIABLE,
    BadRequest,
    error_fields,
    head_parts,
    http_date,
    make_etag,
    parse_http_date,
    parse_range,
    parse_request_head,
    request_path,
    resource,
    response_head,
    select_reply,
)

# -- request heads ---------------------------------------------------------------------------------


def test_request_line_and_fields_are_parsed_with_lower_case_names():
    request = parse_request_head(
        b"GET /test.cvd HTTP/1.1\r\nHost: mirror\r\nRange: bytes=0-511\r\nX-Odd:  v \t"
    )
    assert (request.method, request.target, request.version) == ("GET", "/test.cvd", "HTTP/1.1")
    assert request.headers == {"host": "mirror", "range": "bytes=0-511", "x-odd": "v"}
    assert request.line == "GET /test.cvd HTTP/1.1"


def test_http11_keeps_the_connection_open_unless_asked_to_close():
    assert parse_request_head(b"GET / HTTP/1.1\r\nHost: h").keep_alive
    assert not parse_request_head(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close").keep_alive
    assert not parse_request_head(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: TE\r\nConnection: Close"
    ).keep_alive


def test_http10_closes_unless_keep_alive_is_asked_for():
    assert not parse_request_head(b"GET /test.cvd HTTP/1.0").keep_alive
    assert parse_request_head(b"GET /test.cvd HTTP/1.0\r\nConnection: Keep-Alive").keep_alive


def test_http10_needs_no_host_but_http11_does():
    parse_request_head(b"GET / HTTP/1.0")
    with pytest.raises(BadRequest) as refused:
        parse_request_head(b"GET / HTTP/1.1")
    assert refused.value.status == 400


@pytest.mark.parametrize(
    "head, status",
    [
        (b"GET /", 400),
        (b"GET / HTTP/1.1 extra", 400),
        (b"GET / FTP/1.0", 400),
        (b"GET / HTTP/2.0\r\nHost: h", 505),
        (b"G@T / HTTP/1.1\r\nHost: h", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\n folded", 400),
        (b"GET / HTTP/1.1\r\nHost : h", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nno colon", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 5", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: \xb2", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: " + b"9" * 40, 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nHost: evil", 400),
    ],
)
def test_malformed_requests_are_refused(head, status):
    with pytest.raises(BadRequest) as refused:
        parse_request_head(head)
    assert refused.value.status == status


def test_a_request_body_length_is_known_so_it_can_be_skipped():
    assert parse_request_head(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 12").body_length == 12


# -- paths -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target, path",
    [
        ("/test.cvd", "test.cvd"),
        ("/test.cvd?version=6&x", "test.cvd"),
        ("/test.cvd#frag", "test.cvd"),
        ("//ibm//power/./PSHB06.lst", "ibm/power/PSHB06.lst"),
        ("/ibm/power/PSHB%30%36.lst", "ibm/power/PSHB06.lst"),
        ("/%252e%252e/etc/passwd", "%2e%2e/etc/passwd"),  # decoded once: a literal name, not a way up
        ("http://mirror:8080/test-2.cdiff", "test-2.cdiff"),
        ("/.pum/manifest.json", MANIFEST),
        ("/.pum/tuf/root.json", ".pum/tuf/root.json"),
        ("/.pum/tuf/2.targets.json", ".pum/tuf/2.targets.json"),
        ("/.pum/client/proscanup.pyz", ".pum/client/proscanup.pyz"),
        ("/.pum/fleet.json", ".pum/fleet.json"),
        ("/.pum/changes/12.json?serial=12&name=sub", ".pum/changes/12.json"),
        ("/", ""),
        ("/caf%C3%A9.txt", "café.txt"),
    ],
)
def test_request_targets_name_release_paths(target, path):
    assert request_path(target) == path


@pytest.mark.parametrize(
    "target",
    [
        "/../etc/passwd",
        "/ibm/../../etc/passwd",
        "/%2e%2e/etc/passwd",
        "/%2E%2E%2Fetc%2Fpasswd",
        "/ibm/%2e%2e/%2e%2e/etc/passwd",
        "/..",
        "/test.cvd%00.txt",
        "/test.cvd\x00",
        "/..%5c..%5cetc%5cpasswd",
        "/.htaccess",
        "/ibm/.hidden",
        "/.pum/state.json",
        "/.pum/",
        "/x/.pum/manifest.json",
        "/.pum/tuf/",
        "/.pum/tuf/.keys",
        "/.pum/tuf/a/.b.json",
        "/.pum/client/other.pyz",
        "/.pum/fleet.json.bak",
        "/x/.pum/fleet.json",
        "/.pum/changes/",
        "/.pum/changes/x.json",
        "/.pum/changes/012.json",
        "/.pum/changes/1.json.bak",
        "/.pum/changes/1/2.json",
        "/%ff%fe",
        "ftp://mirror/test.cvd",
        "*",
    ],
)
def test_ways_out_of_the_tree_and_dot_files_name_nothing(target):
    assert request_path(target) is None


def test_visible_dot_paths_can_be_widened_for_the_status_page():
    assert request_path("/.pum/status", frozenset({MANIFEST, ".pum/status"})) == ".pum/status"
    assert request_path("/.pum/status") is None


@given(st.text(alphabet="/.%25e2Ef0a\\?x", max_size=40))
def test_no_target_leads_above_the_release_or_to_a_hidden_file(suffix):
    path = request_path("/" + suffix)
    if path is not None:
        segments = path.split("/")
        assert ".." not in segments
        assert "\x00" not in path
        assert path == MANIFEST or not any(segment.startswith(".") for segment in segments)


# -- ranges ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, size, expected",
    [
        ("bytes=0-511", 9952, (0, 511)),  # freshclam's version check
        ("bytes=0-0", 10, (0, 0)),
        ("bytes=9-", 10, (9, 9)),
        ("bytes=5-100", 10, (5, 9)),
        ("bytes=-3", 10, (7, 9)),
        ("bytes=-100", 10, (0, 9)),
        ("bytes= 2 - 4 ", 10, (2, 4)),
        ("Bytes=1-2", 10, (1, 2)),
        ("bytes=10-", 10, UNSATISFIABLE),
        ("bytes=10-20", 10, UNSATISFIABLE),
        ("bytes=-0", 10, UNSATISFIABLE),
        ("bytes=0-", 0, UNSATISFIABLE),
        ("bytes=-5", 0, UNSATISFIABLE),
        ("bytes=4-2", 10, None),
        ("bytes=0-1,4-5", 10, None),
        ("items=0-1", 10, None),
        ("bytes=x-1", 10, None),
        ("bytes=1", 10, None),
        ("bytes=-", 10, None),
        ("bytes=0-\u00b2", 10, None),  # str.isdigit() says yes, int() says no
        ("bytes=\u0661-5", 10, None),  # an Arabic-Indic digit
        ("bytes=0-" + "9" * 5000, 10, (0, 9)),  # more digits than int() takes: past the end
        ("bytes=" + "9" * 5000 + "-", 10, UNSATISFIABLE),
        ("bytes=-" + "9" * 5000, 10, (0, 9)),
        ("bytes=0000000000000000000000000001-2", 10, (1, 2)),
    ],
)
def test_single_byte_ranges(value, size, expected):
    assert parse_range(value, size) == expected


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_a_satisfiable_range_lies_inside_the_file(first, last, size):
    span = parse_range(f"bytes={first}-{last}", size)
    if span not in (None, UNSATISFIABLE):
        assert 0 <= span[0] <= span[1] < size


# -- conditionals and replies -----------------------------------------------------------------------

BUILD_TIME = 1624412045  # test-6.cvd's stime
CVD = resource(9952, BUILD_TIME + 0.7, "test.cvd")


def test_a_plain_get_is_200_with_length_validators_and_ranges_offered():
    reply = select_reply({}, CVD)
    assert (reply.status, reply.offset, reply.length) == (200, 0, 9952)
    assert "Content-Length: 9952\r\n" in reply.fields
    assert f"Last-Modified: {http_date(BUILD_TIME)}\r\n" in reply.fields
    assert f"ETag: {CVD.etag}\r\n" in reply.fields
    assert "Accept-Ranges: bytes\r\n" in reply.fields
    assert "Content-Type: application/octet-stream\r\n" in reply.fields


def test_a_range_is_206_with_content_range():
    reply = select_reply({"range": "bytes=0-511"}, CVD)
    assert (reply.status, reply.offset, reply.length) == (206, 0, 512)
    assert "Content-Range: bytes 0-511/9952\r\n" in reply.fields
    assert "Content-Length: 512\r\n" in reply.fields


def test_an_unsatisfiable_range_is_416_naming_the_size():
    reply = select_reply({"range": "bytes=9952-"}, CVD)
    assert (reply.status, reply.length) == (416, 0)
    assert "Content-Range: bytes */9952\r\n" in reply.fields


def test_freshclams_if_modified_since_with_the_build_time_is_304():
    reply = select_reply({"if-modified-since": http_date(BUILD_TIME), "range": "bytes=0-511"}, CVD)
    assert (reply.status, reply.length) == (304, 0)
    assert "Content-Length" not in reply.fields
    assert "ETag" in reply.fields and "Last-Modified" in reply.fields


def test_if_modified_since_later_than_the_file_is_304_as_with_apache():
    assert select_reply({"if-modified-since": http_date(BUILD_TIME + 3600)}, CVD).status == 304


def test_an_older_copy_gets_the_file():
    assert select_reply({"if-modified-since": http_date(BUILD_TIME - 1)}, CVD).status == 200
    assert select_reply({"if-modified-since": "not a date"}, CVD).status == 200


def test_if_none_match_is_304_and_wins_over_if_modified_since():
    assert select_reply({"if-none-match": CVD.etag}, CVD).status == 304
    assert select_reply({"if-none-match": f'"x", W/{CVD.etag}'}, CVD).status == 304
    assert select_reply({"if-none-match": "*"}, CVD).status == 304
    stale = {"if-none-match": '"other"', "if-modified-since": http_date(BUILD_TIME)}
    assert select_reply(stale, CVD).status == 200


def test_if_range_keeps_the_range_only_while_the_file_is_the_same():
    assert select_reply({"range": "bytes=0-1", "if-range": CVD.etag}, CVD).status == 206
    assert select_reply({"range": "bytes=0-1", "if-range": http_date(BUILD_TIME)}, CVD).status == 206
    assert select_reply({"range": "bytes=0-1", "if-range": '"old"'}, CVD).status == 200
    assert select_reply({"range": "bytes=0-1", "if-range": http_date(BUILD_TIME - 60)}, CVD).status == 200


def test_etag_is_nginx_style_so_backends_agree():
    assert make_etag(9952, BUILD_TIME) == '"60d28f8d-26e0"'


@pytest.mark.parametrize(
    "text",
    ["Wed, 23 Jun 2021 01:34:05 GMT", "Wednesday, 23-Jun-21 01:34:05 GMT", "Wed Jun 23 01:34:05 2021"],
)
def test_the_three_http_date_forms_are_understood(text):
    assert parse_http_date(text) == BUILD_TIME


def test_http_date_is_imf_fixdate():
    assert http_date(BUILD_TIME) == "Wed, 23 Jun 2021 01:34:05 GMT"
    assert parse_http_date("garbage") is None


def test_response_heads_carry_date_and_connection():
    head = response_head(404, error_fields(404)[0], "Wed, 23 Jun 2021 01:34:05 GMT", False)
    assert head.startswith(
        b"HTTP/1.1 404 Not Found\r\nServer: PUM\r\nDate: Wed, 23 Jun 2021 01:34:05 GMT\r\n"
    )
    assert head.endswith(b"Connection: close\r\n\r\n")
    start, keep, close = head_parts(200, "")
    assert keep.endswith(b"Connection: keep-alive\r\n\r\n") and close.endswith(b"Connection: close\r\n\r\n")


def test_405_names_the_allowed_methods():
    assert "Allow: GET, HEAD\r\n" in error_fields(405)[0]
