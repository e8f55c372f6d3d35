"""net/http1.py, the HTTP stack under Transport: kept-alive connections, a connection the server closed
meanwhile, bodies cut short, redirects. Against a real server on loopback (http.server, HTTP/1.1)."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pum.net import http1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless told otherwise

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        server = self.server
        if self.path.startswith("/hop/"):
            left = int(self.path.rsplit("/", 1)[1])
            self.send_response(302)
            self.send_header("Location", f"/hop/{left - 1}" if left else "/file")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"x" * 2048
        if self.path == "/short":
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) * 2))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        # the server ends the connection after each answer, without saying so (an idle timeout)
        self.close_connection = server.close_after_each  # type: ignore[attr-defined]

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.close_after_each = False

    def process_request(self, request, client_address):  # type: ignore[no-untyped-def]
        self.connections += 1
        super().process_request(request, client_address)


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server()
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()
    thread.join(timeout=10)


def _client() -> http1.Client:
    return http1.Client(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), 5, 5, {"User-Agent": "PUM-test/1"})


def _get(client: http1.Client, url: str) -> bytes:
    with client.stream(url, {}) as response:
        assert response.status_code == 200
        return b"".join(response.iter_raw())


def test_requests_to_one_server_share_one_kept_alive_connection(server):
    client = _client()
    url = f"http://127.0.0.1:{server.server_port}/file"
    assert [len(_get(client, url)) for _ in range(5)] == [2048] * 5
    client.close()
    assert server.connections == 1


def test_a_connection_the_server_closed_meanwhile_is_replaced_not_an_error(server):
    server.close_after_each = True
    client = _client()
    url = f"http://127.0.0.1:{server.server_port}/file"
    assert [len(_get(client, url)) for _ in range(3)] == [2048] * 3
    client.close()
    assert server.connections == 3


def test_a_body_shorter_than_its_content_length_is_interrupted(server):
    client = _client()
    with pytest.raises(http1.Interrupted, match="bytes before the end of the body"):
        _get(client, f"http://127.0.0.1:{server.server_port}/short")
    client.close()


def test_redirects_are_followed_up_to_a_bound(server):
    client = _client()
    assert len(_get(client, f"http://127.0.0.1:{server.server_port}/hop/3")) == 2048
    with pytest.raises(http1.TooManyRedirects):
        _get(client, f"http://127.0.0.1:{server.server_port}/hop/{http1.MAX_REDIRECTS + 1}")
    client.close()


def test_no_server_listening_is_a_failed_connection():
    client = _client()
    with pytest.raises(http1.ConnectFailed) as failed:
        _get(client, "http://127.0.0.1:9/file")
    assert not failed.value.to_proxy
