"""GETs over kept-alive HTTP/1.1 connections on the standard library's `http.client`: redirects, an HTTP
proxy with basic auth (requests in absolute form; CONNECT tunnels for https), TLS with certificate checks,
a connect and a read timeout, and bodies read as they arrive (never a blocking read of a fixed size).

The same stack as proscanup's client (`pum.agent.pum_client`), so PUM speaks HTTP one way. Chosen over
httpx for its cost: measured on loopback against nginx with 2 KB files, ~110 us of CPU a request against
~500 us for httpx (httpcore ~270 us, urllib3 ~270 us), and no import of its own beyond the standard
library (bench/RESULTS-fetchperf.md). Sizes, deadlines, rates, encodings and what an answer means are the
Transport's: this module only moves bytes and says how a request failed.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import unquote, urljoin, urlsplit

MAX_REDIRECTS = 20
REDIRECTS = frozenset((301, 302, 303, 307, 308))
CHUNK = 1 << 20
DRAIN_LIMIT = 64 << 10  # an unread body (a 404 page) at most this large is read to keep the connection
DRAIN_SECONDS = 0.5  # ... when it comes within this time (a dripping body is dropped with its connection)
MAX_CONNECTIONS = 4  # kept-alive connections one client holds (one upstream, a redirect target, a proxy)

_Origin = tuple[str, str, int]


class HttpError(Exception):
    """A request failed before an answer, or its body stopped: the text says how."""


class ConnectFailed(HttpError):
    """No connection: name resolution, refused, timed out, or the TLS handshake (a certificate) failed.
    `to_proxy`: the proxy itself could not be reached."""

    def __init__(self, reason: str, to_proxy: bool = False) -> None:
        super().__init__(reason)
        self.to_proxy = to_proxy


class ProxyRefused(HttpError):
    """The proxy answered a CONNECT with something else than 200 (407: wrong credentials)."""


class Interrupted(HttpError):
    """The connection failed after it was made: sending, waiting (read timeout), a malformed answer, or a
    body cut short."""


class TooManyRedirects(HttpError):
    pass


class BadUrl(HttpError):
    """A URL or header the request line cannot carry (control characters, a scheme other than http(s))."""


class Response:
    """One answer; its body read with `iter_raw`, as the bytes came (no Content-Encoding decoded)."""

    def __init__(self, raw: http.client.HTTPResponse, url: str) -> None:
        self.raw = raw
        self.url = url  # after redirects
        self.status_code = raw.status
        self.reason_phrase = raw.reason
        # names in lower case, read once (http.client's message scans every field at each look-up); a
        # repeated field's values joined with ", " (RFC 9110 5.3), so `Content-Encoding: gzip` twice reads
        # as "gzip, gzip" and is refused, not taken for one gzip
        self.headers: dict[str, str] = {}
        for name, value in raw.headers.items():
            key = name.lower()
            self.headers[key] = f"{self.headers[key]}, {value}" if key in self.headers else value

    def iter_raw(self, size: int = CHUNK) -> Iterator[bytes]:
        """The body, each piece as one read from the socket gave it (a dripping body returns to the caller
        after each byte, so its deadline holds); a body shorter than its Content-Length is Interrupted."""
        raw = self.raw
        while True:
            if raw.length == 0 and not raw.chunked:
                raw.read()  # marks the answer complete: the connection can take the next request
                return
            try:
                chunk = raw.read1(size)
            except (OSError, http.client.HTTPException) as error:
                raise Interrupted(reason(error)) from None
            if not chunk:
                if raw.length:
                    raise Interrupted(f"connection closed {raw.length} bytes before the end of the body")
                return
            yield chunk

    def finished(self) -> bool:
        """The body was read to its end on a connection the server keeps open: it can be reused. What is
        left unread (a 404 page, a 304's nothing) is read when it is small and comes at once."""
        raw = self.raw
        if not raw.isclosed() and raw.length is not None and raw.length <= DRAIN_LIMIT and not raw.will_close:
            deadline = time.monotonic() + DRAIN_SECONDS
            try:
                for _chunk in self.iter_raw(DRAIN_LIMIT):
                    if time.monotonic() > deadline:
                        return False
            except HttpError:
                return False
        return raw.isclosed() and not raw.will_close


class Client:
    """Kept-alive connections to a few origins, used by one thread at a time."""

    def __init__(
        self,
        tls: ssl.SSLContext,
        connect_timeout: float,
        read_timeout: float,
        headers: Mapping[str, str],
        proxy_url: str | None = None,
    ) -> None:
        self.tls = tls
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.headers = dict(headers)
        self.proxy: tuple[str, int] | None = None
        self.proxy_headers: dict[str, str] = {}
        if proxy_url:
            parts = urlsplit(proxy_url)
            self.proxy = (parts.hostname or "", parts.port or 80)
            if parts.username is not None:
                credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
                token = base64.b64encode(credentials.encode()).decode("ascii")
                self.proxy_headers["Proxy-Authorization"] = "Basic " + token
        self._connections: dict[_Origin, http.client.HTTPConnection] = {}

    def close(self) -> None:
        """Also from another thread than the one using the client (a run stopped while a worker is inside
        a download): each connection is taken out whole, and the worker's read fails as the socket closes."""
        for _ in range(len(self._connections) + MAX_CONNECTIONS):
            try:
                _origin, connection = self._connections.popitem()
            except KeyError:
                return
            connection.close()

    @contextmanager
    def stream(self, url: str, headers: Mapping[str, str]) -> Iterator[Response]:
        """GET `url`, following redirects; the connection is kept when the body was read to its end."""
        for _hop in range(MAX_REDIRECTS + 1):
            origin, response = self._get(url, headers)
            if response.status_code in REDIRECTS and response.headers.get("location"):
                self._release(origin, response)
                url = urljoin(url, response.headers["location"])
                continue
            try:
                yield response
            except BaseException:
                self._drop(origin)  # the caller gave up on this answer: its connection goes with it
                raise
            self._release(origin, response)
            return
        raise TooManyRedirects(f"more than {MAX_REDIRECTS} redirects")

    def _release(self, origin: _Origin, response: Response) -> None:
        if not response.finished():
            self._drop(origin)

    def _drop(self, origin: _Origin) -> None:
        connection = self._connections.pop(origin, None)
        if connection is not None:
            connection.close()

    def _get(self, url: str, headers: Mapping[str, str]) -> tuple[_Origin, Response]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadUrl(f"not an http(s) URL: {url[:200]}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as error:
            raise BadUrl(str(error)) from None
        origin = (parts.scheme, parts.hostname, port)
        forwarded = self.proxy is not None and parts.scheme == "http"
        if forwarded:  # the proxy fetches it: the request line holds the whole URL
            target = parts._replace(fragment="").geturl()
            sent = {**self.headers, **self.proxy_headers, **headers}
        else:
            target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
            sent = {**self.headers, **headers}
        for attempt in range(2):
            reused = origin in self._connections
            connection = self._connection(origin)
            try:
                connection.request("GET", target, headers=sent)
                return origin, Response(connection.getresponse(), url)
            except (http.client.InvalidURL, ValueError) as error:
                self._drop(origin)
                raise BadUrl(reason(error)) from None
            except (OSError, http.client.HTTPException) as error:
                self._drop(origin)
                # a kept-alive connection the server closed meanwhile: once more on a new one (a GET)
                stale = isinstance(error, ConnectionError | http.client.BadStatusLine)
                if not (reused and stale and attempt == 0):
                    raise Interrupted(reason(error)) from None
        raise AssertionError("unreachable")

    def _connection(self, origin: _Origin) -> http.client.HTTPConnection:
        connection = self._connections.get(origin)
        if connection is not None:
            return connection
        scheme, host, port = origin
        connection = self._connect(scheme, host, port)
        if len(self._connections) >= MAX_CONNECTIONS:
            self._drop(next(iter(self._connections)))
        self._connections[origin] = connection
        return connection

    def _connect(self, scheme: str, host: str, port: int) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection
        address = self.proxy or (host, port)
        if scheme == "https":
            connection = http.client.HTTPSConnection(*address, timeout=self.connect_timeout, context=self.tls)
            if self.proxy:
                connection.set_tunnel(host, port, headers=self.proxy_headers)
        else:
            connection = http.client.HTTPConnection(*address, timeout=self.connect_timeout)
        try:
            connection.connect()
        except ssl.SSLError as error:
            connection.close()
            raise ConnectFailed(reason(error)) from None
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            text = reason(error)
            # http.client's words for a CONNECT answered with another status than 200
            if self.proxy and text.startswith("Tunnel connection failed: "):
                raise ProxyRefused(text.removeprefix("Tunnel connection failed: ")) from None
            raise ConnectFailed(text, to_proxy=self.proxy is not None) from None
        if connection.sock is not None:
            connection.sock.settimeout(self.read_timeout)
        return connection


def reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:200]
