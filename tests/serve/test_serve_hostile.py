"""`pum serve` against hostile clients: slowloris, clients that stop reading (TLS too), too many
connections, too few descriptors, numbers no file has. Each test is bounded in connections and rounds,
and judged by outcome (who was answered, who was dropped), never by how long something took."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import ssl
import threading
from pathlib import Path

import httpx
import pytest

from pum.serve.accesslog import AccessLog
from pum.serve.metrics import Board
from pum.serve.server import Site

from .inprocess import serving
from .rawhttp import exchange, get, parse_responses
from .releases import TESTDATA

CVD6 = (TESTDATA / "test-6.cvd").read_bytes()
ROUNDS = 30  # of the slowloris test: each drips one header line on every connection


def _drip(sockets: list[socket.socket], line: bytes) -> list[socket.socket]:
    """Send `line` on each socket; return those the server has closed."""
    gone = []
    for sock in sockets:
        try:
            sock.sendall(line)
        except OSError:
            gone.append(sock)
    return gone


def test_slowloris_does_not_keep_legitimate_clients_out(start_pum):
    server = start_pum(max_connections=32)
    dripping = []
    try:
        for _ in range(120):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"GET /test.cvd HTTP/1.1\r\nHost: x\r\n")
            dripping.append(sock)
        answered = 0
        dropped: set[socket.socket] = set()
        for round_number in range(ROUNDS):
            dropped.update(
                _drip([s for s in dripping if s not in dropped], f"X-{round_number}: y\r\n".encode())
            )
            response = get(server.port, "/test.cvd", Range="bytes=0-511")
            assert response.status == 206 and response.body == CVD6[:512], f"round {round_number}"
            answered += 1
        assert answered == ROUNDS
        # Most slow heads were dropped to make room (the oldest first); the server still answers.
        for sock in dripping:
            with contextlib.suppress(OSError):
                sock.sendall(b"X-last: y\r\n")
        closed = sum(1 for sock in dripping if _closed_by_server(sock))
        assert closed >= len(dripping) - 32
        assert httpx.get(f"{server.url}/test-2.cdiff").status_code == 200
    finally:
        for sock in dripping:
            sock.close()


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_too_few_descriptors_lowers_the_connection_limit_instead_of_failing(start_pum, tree):
    # What `ulimit -n` 1024 and 1,100 connections did: every legitimate request failed and the worker
    # logged an EMFILE traceback per accept. With room for a few connections only, idle ones go.
    server = start_pum(nofile=128)
    idle = []
    try:
        for _ in range(200):
            with contextlib.suppress(OSError):
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                sock.sendall(b"GET /test.cvd HTTP/1.1\r\n")  # accepted (not held back by the kernel)
                idle.append(sock)
        for _ in range(20):
            assert get(server.port, "/test-2.cdiff").status == 200
    finally:
        for sock in idle:
            sock.close()
    server.stop()
    output = server.output()
    assert "Traceback" not in output
    assert output.count("\n") <= 2, output


def test_running_out_of_descriptors_is_said_once_a_minute(tree, tmp_path, capsys):
    tree.serve(6)
    site = Site(Path(tree.docroot), AccessLog(tmp_path / "access.log"), Board(1), 0, dict)
    loop = asyncio.new_event_loop()
    try:
        for _ in range(1000):
            site.loop_error(
                loop, {"message": "accept", "exception": OSError(errno.EMFILE, "Too many open files")}
            )
    finally:
        loop.close()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "Too many open files" in lines[0] and "LimitNOFILE" in lines[0]


# -- a server in this process, with short timeouts, to see clients dropped --------------------------------


def _wait_until(condition, rounds: int = 200) -> bool:
    event = threading.Event()
    for _ in range(rounds):
        if condition():
            return True
        event.wait(0.05)
    return condition()


@pytest.fixture
def tls_pair(tmp_path):
    import trustme  # in the test extras: missing is a failure, not a skip

    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certificate.configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    return server_context, client_context


def test_a_tls_client_that_stops_reading_is_dropped(tree, tmp_path, tls_pair):
    server_context, client_context = tls_pair
    with serving(tree, tmp_path, server_context, send_timeout=1.0) as site:
        raw = socket.create_connection(("127.0.0.1", site.port), timeout=10)  # type: ignore[attr-defined]
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        stalled = client_context.wrap_socket(raw, server_hostname="127.0.0.1")
        stalled.sendall(b"GET /big.cvd HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _wait_until(lambda: len(site.connections) == 1)
        # It reads nothing; someone else is served meanwhile, then it is gone.
        with httpx.Client(verify=client_context) as client:
            url = f"https://127.0.0.1:{site.port}/test.cvd"  # type: ignore[attr-defined]
            assert client.get(url).content == CVD6
        assert _wait_until(lambda: not site.connections, rounds=400)
        received = 0
        with contextlib.suppress(OSError, ssl.SSLError):
            while chunk := stalled.recv(1 << 20):
                received += len(chunk)
        stalled.close()
        assert received < 16 * 1024 * 1024


def test_a_tls_client_that_reads_slowly_gets_the_whole_file(tree, tmp_path, tls_pair):
    server_context, client_context = tls_pair
    with serving(tree, tmp_path, server_context, send_timeout=1.0) as site:
        big = (Path(os.path.realpath(tree.docroot)) / "big.cvd").read_bytes()
        with httpx.Client(verify=client_context) as client:
            url = f"https://127.0.0.1:{site.port}/big.cvd"  # type: ignore[attr-defined]
            assert client.get(url).content == big


def test_a_head_dripping_in_meets_its_deadline_however_often_it_moves(tree, tmp_path):
    with serving(tree, tmp_path, header_timeout=1.0) as site:
        sock = socket.create_connection(("127.0.0.1", site.port), timeout=10)  # type: ignore[attr-defined]
        sock.sendall(b"GET /test.cvd HTTP/1.1\r\n")
        assert _wait_until(lambda: len(site.connections) == 1)
        dropped = False
        event = threading.Event()
        for number in range(400):  # a byte every 50 ms: never 1 s without one
            try:
                sock.sendall(f"X-{number}: y\r\n".encode())
            except OSError:
                dropped = True
                break
            if not site.connections:
                dropped = True
                break
            event.wait(0.05)
        sock.close()
        assert dropped


# -- numbers no file has -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        b"bytes=0-\xb2",
        b"bytes=\xb2-5",
        b"bytes=-\xb2",
        b"bytes=0-" + b"9" * 5000,
        b"bytes=" + b"9" * 5000 + b"-",
    ],
)
def test_a_range_of_strange_digits_gets_an_answer_and_the_connection_goes_on(start_pum, value):
    server = start_pum()
    data = exchange(
        server.port,
        b"GET /test.cvd HTTP/1.1\r\nHost: x\r\nRange: " + value + b"\r\n\r\n"
        b"GET /test-2.cdiff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    first, second = parse_responses(data)
    assert first.status in (200, 206, 416)
    if first.status != 416:
        assert CVD6.startswith(first.body) and first.body
    assert second.status == 200


def test_without_uvloop_pum_serve_runs_on_asyncios_loop(monkeypatch):
    import sys

    from pum.serve.workers import event_loop_factory

    monkeypatch.setitem(sys.modules, "uvloop", None)  # as where it does not install
    assert event_loop_factory() is asyncio.new_event_loop


def test_a_closing_request_on_a_new_connection_is_answered_without_a_transport(tree, tmp_path):
    with serving(tree, tmp_path) as site:
        port = site.port  # type: ignore[attr-defined]
        for _ in range(20):
            response = get(port, "/test.cvd", Range="bytes=0-511")
            assert response.status == 206 and response.body == CVD6[:512]
        assert not site.connections  # none of them became an HttpConnection
        with httpx.Client() as client:  # keep-alive: handed to a connection, still answered
            for _ in range(3):
                assert client.get(f"http://127.0.0.1:{port}/test.cvd").content == CVD6
