"""What only `pum serve` does: its own strictness on odd requests, symlinks, the status page, /metrics,
the access log, TLS, several workers and a clean stop."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import ssl
import time
from pathlib import Path

import httpx
import pytest

from pum.config import Config
from pum.errors import ConfigError, PumError
from pum.serve import run_server
from pum.serve.http import http_date

from .rawhttp import exchange, get, parse_responses
from .releases import TESTDATA, build_time


def _config(tree, tmp_path: Path, **values: object) -> Config:
    settings: dict[str, object] = {
        "docroot": tree.docroot,
        "data_dir": tree.data_dir,
        "listen": "127.0.0.1:1",
        "workers": 1,
        "tls_cert": None,
        "tls_key": None,
        "access_log": tmp_path / "access.log",
        "log_rotate": True,
        "log_generation": 3,
    }
    settings.update(values)
    return Config(**settings)


# -- requests other servers answer differently ------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["/../etc/passwd", "/%2e%2e/etc/passwd", "/%252e%252e/etc/passwd", "/test.cvd%00", "/a\\..\\b"]
)
def test_every_way_out_is_a_plain_404(start_pum, target):
    assert get(start_pum().port, target).status == 404


def test_a_symlink_leaving_the_release_is_404(start_pum, tree):
    release = tree.serve(6, extra={".secret": b"hidden\n"})
    (release / "passwd.cvd").symlink_to("/etc/passwd")
    (release / "etc").symlink_to("/etc")
    (release / "shown.txt").symlink_to(".secret")
    (release / "list.lst").symlink_to("ibm/power/PSHB06.lst")
    server = start_pum()
    assert httpx.get(f"{server.url}/passwd.cvd").status_code == 404
    assert httpx.get(f"{server.url}/etc/passwd").status_code == 404
    assert httpx.get(f"{server.url}/shown.txt").status_code == 404
    inside = httpx.get(f"{server.url}/list.lst")
    assert inside.status_code == 200 and inside.content == (release / "ibm/power/PSHB06.lst").read_bytes()


def test_other_methods_are_405_and_the_connection_goes_on(start_pum):
    server = start_pum()
    data = exchange(
        server.port,
        b"POST /test.cvd HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /test-2.cdiff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    responses = parse_responses(data)
    assert [r.status for r in responses] == [405, 405, 200]
    assert responses[0].headers["allow"] == "GET, HEAD"
    assert responses[2].body == (TESTDATA / "test-2.cdiff").read_bytes()


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /test.cvd HTTP/1.1\r\n\r\n", 400),
        (b"GET /test.cvd HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET /test.cvd HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
        (b"GET /test.cvd HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ],
)
def test_a_malformed_request_is_refused_and_the_connection_closed(start_pum, request_bytes, status):
    data = exchange(start_pum().port, request_bytes + b"GET /test.cvd HTTP/1.1\r\nHost: x\r\n\r\n")
    responses = parse_responses(data)
    assert [r.status for r in responses] == [status]
    assert responses[0].headers["connection"] == "close"


def test_pipelined_requests_are_answered_in_order(start_pum):
    server = start_pum()
    names = ["test-2.cdiff", "test.cvd", "test-3.cdiff"]
    pipeline = b"".join(f"GET /{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for n in names)
    pipeline += b"HEAD /test-4.cdiff HTTP/1.1\r\nHost: x\r\n\r\n"
    pipeline += b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    responses = parse_responses(exchange(server.port, pipeline), (False, False, False, True, False))
    assert [r.status for r in responses] == [200, 200, 200, 200, 404]
    assert responses[1].body == (TESTDATA / "test-6.cvd").read_bytes()
    assert responses[3].body == b""


def test_http10_keep_alive_is_honoured(start_pum):
    server = start_pum()
    data = exchange(
        server.port,
        b"GET /test-2.cdiff HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /test-3.cdiff HTTP/1.0\r\n\r\n",
    )
    responses = parse_responses(data)
    assert [r.status for r in responses] == [200, 200]
    assert responses[0].headers["connection"] == "keep-alive"
    assert responses[1].headers["connection"] == "close"


def test_a_large_file_and_a_small_one_on_one_connection(start_pum, tree):
    payload = os.urandom(3 * 1024 * 1024 + 17)
    tree.serve(6, extra={"big.cvd": payload})
    server = start_pum()
    with httpx.Client() as client:
        assert (
            hashlib.sha256(client.get(f"{server.url}/big.cvd").content).digest()
            == hashlib.sha256(payload).digest()
        )
        middle = client.get(f"{server.url}/big.cvd", headers={"Range": "bytes=1000000-2999999"})
        assert middle.status_code == 206 and middle.content == payload[1000000:3000000]
        assert client.get(f"{server.url}/test-2.cdiff").content == (TESTDATA / "test-2.cdiff").read_bytes()


# -- status page, /metrics, access log --------------------------------------------------------------


def _last_run(tree, result: str = "ok") -> None:
    (tree.data_dir / "state").mkdir(exist_ok=True)
    document = {
        "result": result,
        "started": "2025-09-01T03:32:05+00:00",
        "finished": "2025-09-01T03:32:09+00:00",
        "error": None,
        "upstream": "clamav-latest.example.com",
        "serial": 1,
    }
    (tree.data_dir / "state" / "last_run.json").write_text(json.dumps(document))


@pytest.mark.parametrize("path", ["/.pum/status", "/pum/status"])
def test_the_status_page_shows_versions_release_last_run_and_upstream(start_pum, tree, path):
    tree.serve(6)
    _last_run(tree)
    response = httpx.get(f"{start_pum().url}{path}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<td>test</td><td>6</td>" in response.text
    assert "serial 1" in response.text
    assert "clamav-latest.example.com" in response.text
    assert '<span class="ok">ok</span>' in response.text


def test_pum_serve_says_where_it_listens_and_what_it_serves(start_pum, tree):
    server = start_pum()
    server.stop()
    first = server.output().splitlines()[0]
    assert first == (
        f"pum serve: listening on http://127.0.0.1:{server.port}/ (1 worker), serving {tree.docroot};"
        f" status at http://127.0.0.1:{server.port}/.pum/status"
    )


def test_the_status_document_is_also_json(start_pum, tree):
    tree.serve(6)
    document = httpx.get(f"{start_pum().url}/.pum/status.json").json()
    assert document["versions"]["test"]["version"] == 6 and document["release"]["serial"] == 1


def test_metrics_count_requests_by_status_bytes_and_versions(start_pum, tree):
    tree.serve(6)
    _last_run(tree)
    server = start_pum()
    with httpx.Client(base_url=server.url) as client:
        client.get("/test.cvd")
        client.get("/test.cvd", headers={"Range": "bytes=0-511"})
        client.get("/test.cvd", headers={"If-Modified-Since": http_date(build_time(TESTDATA / "test-6.cvd"))})
        client.get("/missing.cvd")
        text = client.get("/metrics").text
    assert 'pum_http_requests_total{code="200"} 1.0' in text
    assert 'pum_http_requests_total{code="206"} 1.0' in text
    assert 'pum_http_requests_total{code="304"} 1.0' in text
    assert 'pum_http_requests_total{code="404"} 1.0' in text
    sent = float(re.search(r"^pum_http_sent_bytes_total (\S+)$", text, re.M)[1])
    assert sent > 9952 + 512
    assert 'pum_database_version{db="test"} 6.0' in text
    assert "pum_release_serial 1.0" in text
    assert re.search(r"^pum_release_created_timestamp_seconds \S+$", text, re.M)
    assert "pum_seconds_since_last_good_release" not in text
    assert "pum_last_run_success 1.0" in text


def test_the_access_log_has_one_combined_line_per_answer(start_pum):
    server = start_pum()
    httpx.get(f"{server.url}/test.cvd", headers={"Range": "bytes=0-511", "User-Agent": 'ClamAV/1.4.6 "x"'})
    httpx.get(f"{server.url}/nope?q=1")
    entries = server.entries_after(0, 2)
    assert [(e.method, e.path, e.status, e.body_bytes) for e in entries] == [
        ("GET", "/test.cvd", 206, 512),
        ("GET", "/nope?q=1", 404, len(b"404 Not Found\n")),
    ]
    assert entries[0].agent == 'ClamAV/1.4.6 \\"x\\"'


def test_a_docroot_leading_nowhere_is_404_and_the_status_says_why(start_pum, tree):
    server = start_pum()
    tree.docroot.unlink()
    assert httpx.get(f"{server.url}/test.cvd").status_code == 404
    assert "nothing is served" in httpx.get(f"{server.url}/.pum/status").text


# -- TLS ---------------------------------------------------------------------------------------------


def test_tls_serves_files_ranges_and_large_bodies(start_pum, tree, tmp_path):
    import trustme  # in the test extras: missing is a failure, not a skip

    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    cert, key, ca = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    certificate.cert_chain_pems[0].write_to_path(cert)
    certificate.private_key_pem.write_to_path(key)
    authority.cert_pem.write_to_path(ca)
    payload = os.urandom(2 * 1024 * 1024)
    tree.serve(6, extra={"big.cvd": payload})
    server = start_pum(tls=(cert, key))
    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca))) as client:
        assert client.get(f"{server.url}/test.cvd", headers={"Range": "bytes=0-511"}).status_code == 206
        assert client.get(f"{server.url}/big.cvd").content == payload
        assert client.get(f"{server.url}/nope").status_code == 404
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/test.cvd")  # not trusted without the test CA


# -- processes ---------------------------------------------------------------------------------------


def test_workers_share_one_port_and_their_counters_add_up(start_pum):
    server = start_pum(workers=2)
    workers = server.worker_pids()
    assert len(workers) == 2
    for _ in range(40):
        assert httpx.get(f"{server.url}/test-2.cdiff").status_code == 200  # a new connection each time
    for earlier_scrapes in range(4):  # whichever worker answers sums both; a scrape counts once answered
        text = httpx.get(f"{server.url}/metrics").text
        assert "pum_serve_workers 2.0" in text
        assert f'pum_http_requests_total{{code="200"}} {40 + earlier_scrapes}.0' in text


def test_a_killed_worker_is_started_again(start_pum):
    server = start_pum(workers=2)
    victim = server.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = server.worker_pids()
        if len(pids) == 2 and victim not in pids:
            break
        time.sleep(0.1)
    assert len(server.worker_pids()) == 2 and victim not in server.worker_pids()
    for _ in range(10):
        assert httpx.get(f"{server.url}/test.cvd").status_code == 200


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_server_cleanly(start_pum, workers, signum):
    server = start_pum(workers=workers)
    children = server.worker_pids() if workers > 1 else []
    idle = socket.create_connection(("127.0.0.1", server.port))  # an idle keep-alive client must not hold it
    idle.sendall(b"GET /test-2.cdiff HTTP/1.1\r\nHost: x\r\n\r\n")
    idle.recv(65536)
    server.process.send_signal(signum)
    # the idle client's keep-alive timeout is 60 s: exiting within this bound shows it did not hold us
    # (45 s, not less: a loaded machine may take seconds to stop and reap the workers)
    assert server.process.wait(timeout=45) == 0
    assert idle.recv(1) == b""  # closed by the server
    idle.close()
    for pid in children:
        assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_bad_listen_and_tls_settings_are_config_errors(tree, tmp_path):
    with pytest.raises(ConfigError, match="listen"):
        run_server(_config(tree, tmp_path, listen="localhost"))
    with pytest.raises(ConfigError, match="listen"):
        run_server(_config(tree, tmp_path, listen="127.0.0.1:99999"))
    with pytest.raises(ConfigError, match="tls_cert and tls_key"):
        run_server(_config(tree, tmp_path, tls_cert=tmp_path / "cert.pem"))
    with pytest.raises(ConfigError, match="tls_cert"):
        run_server(_config(tree, tmp_path, tls_cert=tmp_path / "no.pem", tls_key=tmp_path / "no.key"))


def test_status_allow_takes_addresses_and_networks_and_names_a_bad_one():
    from pum.config import parse_config

    config = parse_config("databases=daily\nstatus_allow=192.0.2.0/24, 2001:db8::1,10.1.2.3\n")
    assert config.status_allow == ("192.0.2.0/24", "2001:db8::1/128", "10.1.2.3/32")
    with pytest.raises(ConfigError, match=r"pum.conf:2: bad value for status_allow"):
        parse_config("databases=daily\nstatus_allow=192.0.2.0/24, intranet\n")


def test_a_port_in_use_is_one_clear_error(tree, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PumError, match=f"can't listen on 127.0.0.1:{port}"):
            run_server(_config(tree, tmp_path, listen=f"127.0.0.1:{port}"))


def test_an_unwritable_access_log_is_one_clear_error(tree, tmp_path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(PumError, match="access_log"):
        run_server(_config(tree, tmp_path, access_log=tmp_path / "dir"))


def _open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_a_client_leaving_mid_download_leaves_nothing_open(start_pum, tree):
    tree.serve(6, extra={"big.cvd": os.urandom(16 * 1024 * 1024)})
    server = start_pum()
    assert httpx.get(f"{server.url}/test.cvd").status_code == 200
    baseline = _open_descriptors(server.process.pid)
    for _ in range(3):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(b"GET /big.cvd HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.recv(65536)
    deadline = time.monotonic() + 30
    while _open_descriptors(server.process.pid) > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _open_descriptors(server.process.pid) <= baseline
    assert httpx.get(f"{server.url}/test.cvd", headers={"Range": "bytes=0-511"}).status_code == 206


def test_a_client_asking_faster_than_it_reads_gets_every_answer_in_order(start_pum, tree):
    payload = os.urandom(60 * 1024)
    tree.serve(6, extra={"mid.cdiff": payload})
    server = start_pum()
    count = 300
    pipeline = b"GET /mid.cdiff HTTP/1.1\r\nHost: x\r\n\r\n" * (count - 1)
    pipeline += b"GET /test-2.cdiff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(pipeline)
        time.sleep(0.5)  # the server's buffer toward us fills up; it must stop answering, not pile up
        data = b""
        while chunk := sock.recv(1024 * 1024):
            data += chunk
    responses = parse_responses(data)
    assert len(responses) == count
    assert all(r.status == 200 and r.body == payload for r in responses[:-1])
    assert responses[-1].body == (TESTDATA / "test-2.cdiff").read_bytes()
