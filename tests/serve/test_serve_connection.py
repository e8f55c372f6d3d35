"""A connection's timeouts, tested in-process with a stand-in transport and a hand-moved clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from pum.serve.accesslog import AccessLog
from pum.serve.metrics import Board
from pum.serve.server import HEADER_TIMEOUT, KEEPALIVE_TIMEOUT, SEND_TIMEOUT, HttpConnection, Site


class Transport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = self.aborted = False
        self.buffered = 0

    def write(self, data: bytes) -> None:
        self.written += data

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


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
