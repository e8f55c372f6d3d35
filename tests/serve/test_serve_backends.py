"""One behaviour, three servers: `pum serve`, and Apache and nginx with the configs `pum deploy` writes,
answer every rule freshclam and sub-PUMs depend on in the same way."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket

import httpx
import pytest

from pum.config import Config
from pum.serve.http import http_date
from pum.status import write_status_files

from .rawhttp import exchange, get, parse_responses
from .releases import TESTDATA, build_time

CVD6 = (TESTDATA / "test-6.cvd").read_bytes()
BUILT6 = build_time(TESTDATA / "test-6.cvd")
HIDDEN = {
    ".secret": b"not for clients\n",
    "ibm/.hidden": b"nor this\n",
    ".pum/state.json": b"{}\n",
    ".pum/tuf/.keys": b"not for clients\n",
    ".pum/client/other.pyz": b"not for clients\n",
    ".pum/changes/notes.json": b"not a changes file\n",
    ".pum/changes/007.json": b"not a changes file either\n",
}
# The release-internal files every server hands out (see RELEASE_INTERNAL in pum.serve.http).
INTERNAL = {
    ".pum/tuf/root.json": b'{"signed": {"_type": "root"}}\n',
    ".pum/tuf/1.root.json": b'{"signed": {"_type": "root", "version": 1}}\n',
    ".pum/tuf/timestamp.json": b'{"signed": {"_type": "timestamp"}}\n',
    ".pum/client/proscanup.pyz": b"PK\x03\x04 a zip application\n",
    ".pum/fleet.json": b'{"hosts": []}\n',
    ".pum/changes/5.json": b'{"generation": 1}\n',
}


@pytest.fixture
def served(backend, shared_tree):
    """The backend, serving a new release of version 6 (with a few dot-files in it)."""
    shared_tree.serve(6, extra={**HIDDEN, **INTERNAL})
    write_status_files(Config(docroot=shared_tree.docroot, data_dir=shared_tree.data_dir))
    return backend


def test_get_sends_the_file_with_length_and_validators(served):
    response = httpx.get(f"{served.url}/test.cvd")
    assert response.status_code == 200
    assert response.content == CVD6
    assert response.headers["content-length"] == str(len(CVD6))
    assert response.headers["last-modified"] == http_date(BUILT6)
    assert response.headers["etag"]


def test_head_sends_the_fields_without_a_body(served):
    response = parse_responses(
        exchange(served.port, b"HEAD /test.cvd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), (True,)
    )
    assert len(response) == 1
    assert response[0].status == 200
    assert response[0].headers["content-length"] == str(len(CVD6))
    assert response[0].body == b""


def test_freshclams_version_check_reads_the_header_with_a_range(served):
    response = httpx.get(f"{served.url}/test.cvd", headers={"Range": "bytes=0-511"})
    assert response.status_code == 206
    assert response.content == CVD6[:512]
    assert response.headers["content-range"] == f"bytes 0-511/{len(CVD6)}"


@pytest.mark.parametrize(
    "spec, first, last", [("9000-", 9000, None), ("-100", -100, None), ("10-20", 10, 21)]
)
def test_open_ended_and_suffix_ranges(served, spec, first, last):
    response = httpx.get(f"{served.url}/test.cvd", headers={"Range": f"bytes={spec}"})
    assert response.status_code == 206
    assert response.content == CVD6[first:last]


def test_a_range_past_the_end_is_416(served):
    response = httpx.get(f"{served.url}/test.cvd", headers={"Range": f"bytes={len(CVD6)}-"})
    assert response.status_code == 416
    # Apache leaves out the Content-Range RFC 9110 recommends here; pum serve and nginx send it.
    if served.name != "apache":
        assert response.headers["content-range"] == f"bytes */{len(CVD6)}"


def test_if_modified_since_the_build_time_is_304(served):
    since = {"If-Modified-Since": http_date(BUILT6), "Range": "bytes=0-511"}
    response = httpx.get(f"{served.url}/test.cvd", headers=since)
    assert response.status_code == 304
    assert response.content == b""


def test_an_older_copy_gets_the_new_file(served):
    response = httpx.get(f"{served.url}/test.cvd", headers={"If-Modified-Since": http_date(BUILT6 - 3600)})
    assert response.status_code == 200 and response.content == CVD6


def test_if_none_match_with_the_etag_is_304(served):
    etag = httpx.head(f"{served.url}/test-6.cdiff").headers["etag"]
    response = httpx.get(f"{served.url}/test-6.cdiff", headers={"If-None-Match": etag})
    assert response.status_code == 304


def test_a_missing_file_is_404_not_403(served):
    assert httpx.get(f"{served.url}/daily.cvd").status_code == 404
    assert httpx.get(f"{served.url}/test-7.cdiff").status_code == 404
    assert httpx.get(f"{served.url}/nowhere/test.cvd").status_code == 404


@pytest.mark.parametrize(
    "path", ["/ibm", "/ibm/", "/ibm/power/", "/.pum/", "/test.cvd/", "/ibm/power/PSHB06.lst/"]
)
def test_a_directory_is_404_and_never_listed(served, path):
    response = httpx.get(f"{served.url}{path}")
    assert response.status_code == 404
    assert b"PSHB06" not in response.content


@pytest.mark.parametrize(
    "path",
    [
        "/.secret",
        "/ibm/.hidden",
        "/.pum/state.json",
        "/%2esecret",
        "/.pum/tuf/.keys",
        "/.pum/client/other.pyz",
        "/.pum/tuf/",
        "/.pum/client/",
    ],
)
def test_dot_files_are_404(served, path):
    response = httpx.get(f"{served.url}{path}")
    assert response.status_code == 404
    assert b"not for clients" not in response.content


def test_the_release_manifest_is_the_one_visible_dot_file(served):
    response = httpx.get(f"{served.url}/.pum/manifest.json")
    assert response.status_code == 200
    assert response.json()["files"]["test.cvd"]["size"] == len(CVD6)
    assert response.headers["last-modified"] and response.headers["etag"]


@pytest.mark.parametrize("name", ["a" * 256, "a" * 300 + ".cvd", "ibm/" + "b" * 1000, "c" * 256 + "/x"])
def test_a_name_too_long_for_the_filesystem_is_404_not_403(served, name):
    assert httpx.get(f"{served.url}/{name}").status_code == 404


def test_the_root_leads_to_the_status_page(served):
    response = httpx.get(f"{served.url}/")
    assert response.status_code == 302
    assert response.headers["location"].endswith("/.pum/status")


def test_the_status_page_json_and_metrics_are_served_to_this_host(served):
    page = httpx.get(f"{served.url}/.pum/status")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "PUM status" in page.text and "<td>test</td><td>6</td>" in page.text
    document = httpx.get(f"{served.url}/.pum/status.json").json()
    assert document["versions"]["test"]["version"] == 6
    metrics = httpx.get(f"{served.url}/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert 'pum_database_version{db="test"} 6.0' in metrics.text


@pytest.mark.parametrize("path", sorted(INTERNAL))
def test_the_release_internal_files_are_served(served, path):
    response = httpx.get(f"{served.url}/{path}")
    assert response.status_code == 200
    assert response.content == INTERNAL[path]


@pytest.mark.parametrize(
    "target",
    [
        "/../../../../etc/passwd",
        "/ibm/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E%2F%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/%252e%252e/%252e%252e/etc/passwd",
        "/..%2f..%2f..%2fetc/passwd",
        "/test.cvd%00.txt",
    ],
)
def test_no_way_out_of_the_tree(served, target):
    response = get(served.port, target)
    assert response.status in (400, 404)
    assert b"root:" not in response.body


def test_a_query_string_is_ignored(served):
    response = httpx.get(f"{served.url}/test-2.cdiff?rand=123&version=6")
    assert response.status_code == 200
    assert response.content == (TESTDATA / "test-2.cdiff").read_bytes()


def test_a_duplicate_content_length_is_400(served):
    # Two lengths: a request smuggled past a proxy that read the other one (RFC 9112 section 6.3).
    data = exchange(
        served.port,
        b"GET /test.cvd HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 4\r\n\r\nGET /",
    )
    assert parse_responses(data)[0].status == 400


def test_http10_is_answered_and_the_connection_closed(served):
    data = exchange(served.port, b"GET /test-3.cdiff HTTP/1.0\r\n\r\n")
    (response,) = parse_responses(data)
    assert response.status == 200
    assert response.body == (TESTDATA / "test-3.cdiff").read_bytes()


def test_keep_alive_serves_several_requests_then_connection_close_ends_it(served):
    with httpx.Client() as client:
        for name in ("test-2.cdiff", "test-3.cdiff", "test-4.cdiff"):
            assert client.get(f"{served.url}/{name}").content == (TESTDATA / name).read_bytes()
    data = exchange(
        served.port,
        b"GET /test-5.cdiff HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /test-6.cdiff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    responses = parse_responses(data)
    assert [r.status for r in responses] == [200, 200]
    assert responses[1].body == (TESTDATA / "test-6.cdiff").read_bytes()


def test_a_new_release_is_served_at_once(backend, shared_tree):
    shared_tree.serve(3)
    assert httpx.get(f"{backend.url}/test.cvd").content == (TESTDATA / "test-3.cvd").read_bytes()
    assert httpx.get(f"{backend.url}/test-4.cdiff").status_code == 404
    shared_tree.serve(6)
    assert httpx.get(f"{backend.url}/test.cvd").content == CVD6
    assert httpx.get(f"{backend.url}/test-4.cdiff").status_code == 200


def test_a_download_in_flight_finishes_from_the_release_it_started_in(backend, shared_tree):
    size = 16 * 1024 * 1024
    old_bytes, new_bytes = os.urandom(size), os.urandom(size)
    old = shared_tree.serve(6, extra={"big.cvd": old_bytes})
    new = shared_tree.release(6, extra={"big.cvd": new_bytes})
    with socket.socket() as sock:
        # a small window, so most of the file is still on the server's side when the release changes
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        sock.settimeout(20)
        sock.connect(("127.0.0.1", backend.port))
        sock.sendall(b"GET /big.cvd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = b""
        while len(received) < 256 * 1024:
            received += sock.recv(65536)
        shared_tree.publish(new)
        shutil.rmtree(old)  # even pruned: the open file is still whole
        while chunk := sock.recv(1024 * 1024):
            received += chunk
    (response,) = parse_responses(received)
    assert response.status == 200
    assert hashlib.sha256(response.body).digest() == hashlib.sha256(old_bytes).digest()
    assert httpx.get(f"{backend.url}/big.cvd", headers={"Range": "bytes=0-99"}).content == new_bytes[:100]
