"""A connection's timeouts, tested in-process with a stand-in transport and a hand-moved clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from pum.config import Config
from pum.serve.accesslog import AccessLog
from pum.serve.metrics import Board
from pum.serve.server import (
    HEADER_TIMEOUT,
    KEEPALIVE_TIMEOUT,
    SEND_TIMEOUT,
    HttpConnection,
    Site,
    status_networks,
)
from pum.status import collect_status

from .inprocess import Transport


@pytest.fixture
def connection(tree, tmp_path):
    tree.serve(6)
    site = Site(Path(tree.docroot), AccessLog(tmp_path / "access.log"), Board(1), 0, dict)
    site.now = 1000.0
    conn = HttpConnection(site, None)  # type: ignore[arg-type]
    conn.connection_made(Transport())  # type: ignore[arg-type]
    return conn


def test_an_idle_keep_alive_connection_is_closed_after_its_timeout(connection):
    connection.data_received(b"GET /test-2.cdiff HTTP/1.1\r\nHost: x\r\n\r\n")
    assert connection.transport.written.startswith(b"HTTP/1.1 200 OK")
    connection.expire(1000.0 + KEEPALIVE_TIMEOUT - 1)
    assert not connection.transport.closed
    connection.expire(1000.0 + KEEPALIVE_TIMEOUT + 1)
    assert connection.transport.closed


def test_a_request_head_that_never_ends_times_out_sooner(connection):
    connection.data_received(b"GET /test.cvd HTTP/1.1\r\nHost: x\r\n")
    connection.expire(1000.0 + HEADER_TIMEOUT + 1)
    assert connection.transport.closed and connection.transport.written == b""


def test_a_client_that_stops_reading_is_dropped(connection):
    connection.data_received(b"GET /test-2.cdiff HTTP/1.1\r\nHost: x\r\n\r\n")
    connection.pause_writing()
    connection.data_received(b"GET /test-3.cdiff HTTP/1.1\r\nHost: x\r\n\r\n")
    assert connection.transport.written.count(b"HTTP/1.1 200") == 1  # nothing more while paused
    connection.expire(1000.0 + SEND_TIMEOUT + 1)
    assert connection.transport.aborted


def test_writing_goes_on_when_the_client_catches_up(connection):
    connection.pause_writing()
    connection.data_received(b"GET /test-3.cdiff HTTP/1.1\r\nHost: x\r\n\r\n")
    assert connection.transport.written == b""
    connection.resume_writing()
    assert connection.transport.written.startswith(b"HTTP/1.1 200 OK")


def test_at_shutdown_idle_connections_close_at_once(connection):
    connection.data_received(b"GET /test-2.cdiff HTTP/1.1\r\nHost: x\r\n\r\n")
    connection.site.stopping = True
    connection.expire(1000.0)
    assert connection.transport.closed


def test_a_head_sent_a_byte_at_a_time_still_meets_its_deadline(connection):
    connection.data_received(b"GET /test.cvd HTTP/1.1\r\n")
    for second in range(int(HEADER_TIMEOUT) + 5):
        connection.site.now = 1000.0 + second
        connection.data_received(b"X")
        connection.expire(connection.site.now)
        if connection.transport.closed:
            break
    assert connection.transport.closed and connection.transport.written == b""
    assert second <= HEADER_TIMEOUT + 1


# -- status_allow: the status page and /metrics for this host and the networks the operator lists ----------


def _status_connection(tree, tmp_path, peer: str, allow: tuple[str, ...] = ()) -> HttpConnection:
    tree.serve(6)
    config = Config(docroot=tree.docroot, data_dir=tree.data_dir)
    site = Site(
        Path(tree.docroot),
        AccessLog(tmp_path / "access.log"),
        Board(1),
        0,
        lambda: collect_status(config),
        status_allow=status_networks(allow),
    )
    conn = HttpConnection(site, None)  # type: ignore[arg-type]
    conn.connection_made(Transport(peer))  # type: ignore[arg-type]
    return conn


@pytest.mark.parametrize("target", ["/.pum/status", "/.pum/status.json", "/metrics"])
def test_status_pages_are_404_to_others(tree, tmp_path, target):
    conn = _status_connection(tree, tmp_path, "192.0.2.7")
    conn.data_received(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert conn.transport.written.startswith(b"HTTP/1.1 404 ")


@pytest.mark.parametrize("target", ["/.pum/status", "/.pum/status.json", "/metrics"])
def test_status_pages_are_shown_to_allowed_networks_without_filesystem_paths(tree, tmp_path, target):
    conn = _status_connection(tree, tmp_path, "::ffff:192.0.2.7", allow=("192.0.2.0/24",))
    conn.data_received(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert conn.transport.written.startswith(b"HTTP/1.1 200 ")
    assert str(tree.base).encode() not in conn.transport.written


def test_this_host_sees_the_status_with_its_paths(tree, tmp_path):
    conn = _status_connection(tree, tmp_path, "127.0.0.1", allow=("192.0.2.0/24",))
    conn.data_received(b"GET /.pum/status.json HTTP/1.1\r\nHost: x\r\n\r\n")
    assert conn.transport.written.startswith(b"HTTP/1.1 200 ")
    assert str(tree.docroot).encode() in conn.transport.written
