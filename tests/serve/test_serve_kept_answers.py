"""Request heads kept parsed, with the answer last built for each: what a fleet asking the same few
heads gets must not differ from a head parsed for the first time (issue 15, `pum serve`'s speed)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import uvloop

from pum.serve.accesslog import AccessLog
from pum.serve.metrics import STATUS_INDEX, Board
from pum.serve.server import ASKED_HEADS, HttpConnection, Site

from .inprocess import Transport, serving
from .rawhttp import exchange, parse_responses
from .releases import TESTDATA

CVD3 = (TESTDATA / "test-3.cvd").read_bytes()
CVD6 = (TESTDATA / "test-6.cvd").read_bytes()
RANGE = b"GET /test.cvd HTTP/1.1\r\nHost: x\r\nRange: bytes=0-511\r\n\r\n"


@pytest.fixture
def site(tree, tmp_path):
    tree.serve(6)
    site = Site(Path(tree.docroot), AccessLog(tmp_path / "access.log"), Board(1), 0, dict)
    site.now = 1000.0
    return site


def _connection(site: Site) -> HttpConnection:
    connection = HttpConnection(site, None)  # type: ignore[arg-type]
    connection.connection_made(Transport())  # type: ignore[arg-type]
    return connection


def _answers(connection: HttpConnection, head_only: tuple[bool, ...] = ()):
    return parse_responses(connection.transport.written, head_only)  # type: ignore[union-attr]


def test_a_head_asked_again_is_parsed_once_and_answered_alike(site):
    connection = _connection(site)
    connection.data_received(RANGE)
    connection.data_received(RANGE)
    first, second = _answers(connection)
    assert first == second
    assert first.status == 206 and first.body == CVD6[:512]
    assert list(site.heads) == [RANGE]


def test_every_kept_answer_is_counted_and_logged(site, tmp_path):
    connection = _connection(site)
    for _ in range(3):
        connection.data_received(RANGE)
    site.log.flush()
    lines = (tmp_path / "access.log").read_text().splitlines()
    assert len(lines) == 3 and all('"GET /test.cvd HTTP/1.1" 206 512 "-" "-"' in line for line in lines)
    assert site.counters[STATUS_INDEX[206]] == 3


def test_a_kept_answer_follows_a_new_release_at_once(site, tree):
    connection = _connection(site)
    connection.data_received(RANGE)
    tree.serve(3)
    connection.data_received(RANGE)
    before, after = _answers(connection)
    assert before.body == CVD6[:512] and after.body == CVD3[:512]


def test_a_kept_answer_takes_the_date_of_its_second(site):
    connection = _connection(site)
    connection.data_received(RANGE)
    site.date = "Thu, 01 Jan 2037 00:00:00 GMT"
    site.date_bytes = site.date.encode()
    connection.data_received(RANGE)
    before, after = _answers(connection)
    assert before.headers["date"] != site.date and after.headers["date"] == site.date


def test_get_head_and_close_of_one_file_are_answered_apart(site):
    connection = _connection(site)
    get = b"GET /test-2.cdiff HTTP/1.1\r\nHost: x\r\n\r\n"
    head = b"HEAD /test-2.cdiff HTTP/1.1\r\nHost: x\r\n\r\n"
    closing = b"GET /test-2.cdiff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    for data in (get, head, get, closing):
        connection.data_received(data)
    answers = _answers(connection, head_only=(False, True, False, False))
    cdiff = (TESTDATA / "test-2.cdiff").read_bytes()
    assert [a.body for a in answers] == [cdiff, b"", cdiff, cdiff]
    assert [a.headers["connection"] for a in answers] == ["keep-alive"] * 3 + ["close"]
    assert connection.transport.closed  # type: ignore[union-attr]


def test_a_file_removed_or_changed_in_place_is_seen_at_once(site, tree):
    connection = _connection(site)
    ask = b"GET /dns.txt HTTP/1.1\r\nHost: x\r\n\r\n"
    connection.data_received(ask)
    release = Path(os.path.realpath(tree.docroot))
    (release / "dns.txt").unlink()
    connection.data_received(ask)
    (release / "dns.txt").write_bytes(b"1.4.7:0:0:2:1:82:0:0\n")  # not how PUM publishes: a new inode
    connection.data_received(ask)
    answers = _answers(connection)
    assert [a.status for a in answers] == [200, 404, 200]
    assert answers[2].body == b"1.4.7:0:0:2:1:82:0:0\n"


def test_kept_heads_are_bounded(site):
    connection = _connection(site)
    for number in range(2 * ASKED_HEADS + 1):
        connection.data_received(f"HEAD /test.cvd?{number} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert len(site.heads) <= ASKED_HEADS
    assert len(_answers(connection, head_only=(True,) * (2 * ASKED_HEADS + 1))) == 2 * ASKED_HEADS + 1


def test_a_head_with_a_body_is_not_kept(site):
    connection = _connection(site)
    with_body = b"GET /test-2.cdiff HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    connection.data_received(with_body)
    connection.data_received(with_body)
    assert [a.status for a in _answers(connection)] == [200, 200]
    assert not site.heads


@pytest.mark.parametrize("loop_factory", [uvloop.new_event_loop, None], ids=["uvloop", "asyncio"])
def test_new_connections_get_the_same_answers_on_either_loop(tree, tmp_path, loop_factory):
    """The acceptor's own answers (Connection: close) and a connection's (keep-alive, errors, a large
    body) on uvloop's loop and on asyncio's, the fallback where uvloop does not install."""
    options = {"loop_factory": loop_factory} if loop_factory else {}
    with serving(tree, tmp_path, **options) as served:
        port = served.port  # type: ignore[attr-defined]
        big = (Path(os.path.realpath(tree.docroot)) / "big.cvd").read_bytes()
        for _ in range(2):  # the second time from the kept heads
            closing = parse_responses(
                exchange(port, RANGE.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
            )
            assert [(a.status, a.body) for a in closing] == [(206, CVD6[:512])]
            asked = (
                RANGE
                + b"GET /big.cvd HTTP/1.1\r\nHost: x\r\n\r\n"
                + b"GET /.secret HTTP/1.1\r\nHost: x\r\n\r\n"
                + b"HEAD /test.cvd HTTP/1.1\r\nHost: x\r\n\r\n"
                + b"GET /test.cvd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            answers = parse_responses(exchange(port, asked), head_only=(False, False, False, True, False))
            assert [a.status for a in answers] == [206, 200, 404, 200, 200]
            assert [a.body for a in answers] == [CVD6[:512], big, answers[2].body, b"", CVD6]
        assert not served.connections
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /test.cvd HTTP/1.1\r\nHost: x\r\nRange: bytes=99999999-\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 416 ")
