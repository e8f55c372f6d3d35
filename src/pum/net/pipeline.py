"""Many small files over one kept-alive HTTP/1.1 connection, their GETs pipelined (RFC 9112 9.3.2): a
bounded window of requests goes out ahead, the answers come back in order and are read in large pieces.

A first copy of 10,000 files of ~2 KB is mostly per-request cost: http.client spends ~120 us of CPU a
request (an email.parser pass over each head) and waits a round trip for each; pipelined, with the head
read by formats/httphead.py, a request costs a fraction of that and no round trip of its own.

Only plain answers are taken this way: 200, a Content-Length equal to the size the manifest gives, no
Transfer-Encoding or Content-Encoding, a head within formats/httphead.py's bounds, within the download
deadline. Any other answer (a redirect, 1xx, 404, 5xx, a malformed head, a stall, a wrong length) ends the
connection, and that file is handed back (None) to be fetched the ordinary way (Transport.download), which
says what went wrong in its own words; after STRIKES of those, every file left goes that way. A server
ending the connection after N answers (nginx's keepalive_requests, Apache's MaxKeepAliveRequests) is no
fault: the requests it left unanswered are sent again on a new connection.

Not through a proxy (`proxy_host`): a proxy may take pipelined requests one at a time or not at all, so
those copies take the ordinary path. Direct https is pipelined inside its TLS connection.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pum.formats import FormatError
from pum.formats.httphead import ResponseHead, head_end, parse_head
from pum.formats.paths import url_path

if TYPE_CHECKING:
    from pum.net.transport import Transport

SMALL_FILE = 256 << 10  # bytes: files up to this size may be pipelined (held in memory, a window of them)
WINDOW_REQUESTS = 64  # requests sent ahead of their answers
WINDOW_BYTES = 1 << 20  # ... and the bytes their answers may hold (the manifest's sizes)
RECV = 256 << 10  # one socket read
STRIKES = 3  # unusual answers or connections ended before any answer, before pipelining stops

clock = time.monotonic


class _Strike(Exception):
    """This connection cannot go on: `why`; `skip`: the answer at hand goes the ordinary way."""

    def __init__(self, why: str, skip: bool) -> None:
        super().__init__(why)
        self.skip = skip


class _Closed(Exception):
    """The server ended the connection (or said it would): unanswered requests are sent again."""


def pipelined(
    transport: Transport, relpaths: Sequence[str], size_of: Callable[[str], int]
) -> Iterator[tuple[str, bytes | None]]:
    """Each path with its body (exactly `size_of(relpath)` bytes, answered 200), in the order given; None:
    fetch that one the ordinary way. From the server the Transport chose (it answered the manifest)."""
    origin = _origin(transport)
    done, strikes, why = 0, 0, ""
    while origin is not None and done < len(relpaths) and strikes < STRIKES:
        try:
            connection = _Connection(transport, *origin)
        except OSError as error:  # ssl.SSLError too
            why = f"cannot connect ({error})"
            break
        before = done
        try:
            for relpath, body in connection.answers(relpaths, size_of, done):
                done += 1
                yield relpath, body
            continue
        except _Closed:
            if done > before:
                continue
            strikes, why = strikes + 1, "the server ended a connection before answering"
        except _Strike as strike:
            # nothing later on that connection can be trusted to be framed right: a new one
            strikes, why = strikes + 1, str(strike)
            if strike.skip:
                yield relpaths[done], None
                done += 1
        finally:
            connection.close()
    if done < len(relpaths) and origin is not None:
        transport.log.line(
            f"{transport.chosen}: pipelined requests stopped ({why}); "
            f"{len(relpaths) - done} files one request at a time"
        )
    for relpath in relpaths[done:]:
        yield relpath, None


def _origin(transport: Transport) -> tuple[str, str, int, str, str] | None:
    """(scheme, host, port, Host header, base path) of the chosen server; None: not pipelined."""
    server = transport.chosen
    if server is None or transport.settings.proxy_url:
        return None
    parts = urlsplit(transport.url_for(server, ""))
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or not _printable(parts.netloc):
        return None
    return parts.scheme, parts.hostname, port, parts.netloc, parts.path or "/"


def _printable(text: str) -> bool:
    return text.isascii() and text.isprintable() and " " not in text


class _Connection:
    """One connection and the answers read from it; `answers` raises _Closed or _Strike to end it."""

    def __init__(self, transport: Transport, scheme: str, host: str, port: int, netloc: str, base: str):
        settings = transport.settings
        self.transport, self.base = transport, base
        agent = settings.user_agent
        agent = agent if agent.isascii() and agent.isprintable() else "PUM"
        self.fields = f"Host: {netloc}\r\nUser-Agent: {agent}\r\nAccept-Encoding: identity\r\n\r\n".encode()
        sock = socket.create_connection((host, port), timeout=settings.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                sock = transport.tls_context().wrap_socket(sock, server_hostname=host)
            sock.settimeout(settings.read_timeout)
        except BaseException:
            sock.close()
            raise
        self.sock: socket.socket = sock
        self.buffer = bytearray()
        self.start = 0  # where the next answer begins in `buffer`

    def close(self) -> None:
        self.sock.close()

    def answers(
        self, relpaths: Sequence[str], size_of: Callable[[str], int], first: int
    ) -> Iterator[tuple[str, bytes]]:
        sent, in_flight = first, 0
        for index in range(first, len(relpaths)):
            if sent - index <= WINDOW_REQUESTS // 2 and in_flight <= WINDOW_BYTES // 2:  # a window half read
                sent, in_flight = self._send(relpaths, size_of, index, sent, in_flight)
            relpath = relpaths[index]
            size = size_of(relpath)
            deadline = clock() + self.transport.settings.download_deadline + size / (16 << 10)
            head = self._head(deadline)
            why = _unusual(head, size)
            if why:
                raise _Strike(f"{url_path(relpath)}: {why}", skip=True)
            body = self._body(head.size, size, deadline)
            in_flight -= size
            self.transport.bytes_received += size
            yield relpath, body
            if "close" in head.fields.get("connection", "").lower():
                raise _Closed()

    def _send(
        self, relpaths: Sequence[str], size_of: Callable[[str], int], index: int, sent: int, in_flight: int
    ) -> tuple[int, int]:
        requests = []
        while sent < len(relpaths) and sent - index < WINDOW_REQUESTS and in_flight < WINDOW_BYTES:
            target = self.base + url_path(relpaths[sent]).lstrip("/")
            requests.append(b"GET " + target.encode("ascii") + b" HTTP/1.1\r\n" + self.fields)
            in_flight += size_of(relpaths[sent])
            sent += 1
        if requests:
            try:
                self.sock.sendall(b"".join(requests))
            except OSError:
                raise _Closed() from None
            self.transport.requests += len(requests)
        return sent, in_flight

    def _head(self, deadline: float) -> ResponseHead:
        for _read in range(64):  # a head is at most 16 KB: a read of a byte at a time ends at the deadline
            try:
                end = head_end(self.buffer, self.start)
            except FormatError as error:
                raise _Strike(str(error), skip=True) from None
            if end is not None:
                try:
                    head = parse_head(bytes(self.buffer[self.start : end]))
                except FormatError as error:
                    raise _Strike(str(error), skip=True) from None
                self.start = end
                return head
            self._read(deadline, nothing_yet=self.start == len(self.buffer))
        raise _Strike("a response head in too many pieces", skip=True)

    def _body(self, head_size: int, size: int, deadline: float) -> bytes:
        while len(self.buffer) - self.start < size:
            self._read(deadline, nothing_yet=False)
        body = bytes(self.buffer[self.start : self.start + size])
        self.start += size
        if self.start >= RECV:
            del self.buffer[: self.start]
            self.start = 0
        return body

    def _read(self, deadline: float, nothing_yet: bool) -> None:
        """One socket read into the buffer. The end of the connection before an answer began is the
        server's way to stop (_Closed); within an answer, or a stall past the deadline, a _Strike."""
        try:
            chunk = self.sock.recv(RECV)
        except TimeoutError:
            raise _Strike("timed out (read_timeout)", skip=True) from None
        except OSError:
            chunk = b""
        if not chunk:
            if nothing_yet:
                raise _Closed()
            raise _Strike("the connection ended inside an answer", skip=False)
        self.buffer += chunk
        self.transport.rate_cap.took(len(chunk))
        if clock() > deadline:
            raise _Strike("not received within download_deadline", skip=True)


def _unusual(head: ResponseHead, size: int) -> str | None:
    """Why an answer is not taken pipelined, or None."""
    fields = head.fields
    if head.status != 200:
        return f"answered {head.status}"
    if "transfer-encoding" in fields:
        return f"Transfer-Encoding {fields['transfer-encoding'][:40]!r}"
    if fields.get("content-encoding", "identity").strip().lower() not in ("", "identity"):
        return f"Content-Encoding {fields['content-encoding'][:40]!r}"
    length = fields.get("content-length", "")
    if not (length.isascii() and length.isdigit() and len(length) <= 18 and int(length) == size):
        return f"Content-Length {length[:40]!r}, not the manifest's {size}"
    return None
