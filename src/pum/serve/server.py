"""The asyncio loop of one `pum serve` worker: connections, the current release, files, logs, counters.

The rules live in `pum.serve.http`; this module does the I/O. Every request stats its file through the
docroot symlink, so a newly published release is served at once; a file is opened when its request
arrives, so a download in flight finishes from the release it started in, even if that release is
switched or pruned.
Small files (and the first bytes of large ones, which freshclam's version check reads) are kept in
memory, validated by inode, size and mtime on each request; large bodies go out with sendfile(2).

A fleet sends the same few request heads again and again (freshclam's `Range: bytes=0-511`, a cdiff,
an If-Modified-Since), so a head is parsed once and kept by its bytes (`Asked`), with the whole answer
last built for it while its file and the Date value hold: answering it again is a dictionary look-up,
one stat(2), one send(2) and a log line.
"""

from __future__ import annotations

import _socket
import asyncio
import contextlib
import errno
import ipaddress
import json
import os
import socket
import ssl
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from resource import RLIM_INFINITY, RLIMIT_NOFILE, getrlimit
from typing import Any

from pum.errors import PumError
from pum.serve.accesslog import AccessLog, logged_request
from pum.serve.http import (
    MAX_HEAD,
    BadRequest,
    Request,
    Resource,
    error_fields,
    head_parts,
    http_date,
    is_hidden,
    is_release_internal,
    parse_request_head,
    request_path,
    resource,
    response_head,
    select_reply,
)
from pum.serve.metrics import BYTES, CONTENT_TYPE_LATEST, OTHER, STATUS_INDEX, Board, render_metrics
from pum.serve.sendfile import FileSender
from pum.serve.status_page import StatusProvider, render_html
from pum.status import without_paths

SMALL_FILE = 64 * 1024  # files up to this size are answered from memory
PREFIX = 4096  # of larger files, this much is kept: freshclam's version check reads bytes 0-511
CACHE_BUDGET = 32 * 1024 * 1024  # bytes of small files kept per worker
CACHE_ENTRIES = 4096
ASKED_HEADS = 512  # request heads kept parsed, with their last answer
ASKED_HEAD_SIZE = 2048  # a longer head is parsed each time it comes
ASKED_ANSWER_SIZE = 8192  # a longer answer is built each time
KEEPALIVE_TIMEOUT = 60.0  # idle keep-alive connection
HEADER_TIMEOUT = 30.0  # from the first byte of a request head to its end, however it drips in
SEND_TIMEOUT = 60.0  # a client that takes nothing of its answer for this long is dropped
STOP_GRACE = 10.0  # responses in flight at shutdown get this long
MAX_CONNECTIONS = 10000  # per worker, unless the descriptor limit allows fewer
DESCRIPTORS_PER_CONNECTION = 3  # the socket, and for a large body the file and a duplicate socket
RESERVED_DESCRIPTORS = 64  # listening socket, epoll, logs, status page reads
WARN_EVERY = 60.0  # one line a minute at most about the same trouble
# accept(2) and open(2) failing for want of descriptors or memory: drop idle connections, say so once
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

STATUS_PAGES = {".pum/status", "pum/status"}
STATUS_JSON = ".pum/status.json"
METRICS = "metrics"
PAGES = STATUS_PAGES | {STATUS_JSON, METRICS}
VISIBLE = frozenset({".pum/status", STATUS_JSON})
STATUS_REDIRECT = "Location: /.pum/status\r\nContent-Length: 0\r\n"  # `/` leads to the status page


@dataclass(slots=True)
class Entry:
    """A verified regular file of a release: identity, the rules' view of it, its first bytes.

    `cached` is the whole file when it is small, else its first `PREFIX` bytes; `path` leads to it
    through the docroot (the current release: compared with `ident` when opened).
    """

    ident: tuple[int, int, int, int]
    path: str
    resource: Resource
    cached: bytes
    replies: dict[tuple[str | None, ...], Prepared] = field(default_factory=dict)


@dataclass(slots=True)
class Prepared:
    """A reply to one kind of request for one file: its head around the Date value, and the body slice."""

    status: int
    start: bytes
    keep_alive_end: bytes
    close_end: bytes
    offset: int
    length: int


@dataclass(slots=True)
class Asked:
    """A request head, parsed once and kept by its bytes (blank line included), with the release path
    its target names and the answer last built for it: while `entry` is still the file and `date` the
    Date value (a second), `answer` (head and body, or None when the body is not in memory) is sent
    again as it is, and `logged` is its access-log text after the time."""

    request: Request
    path: str | None
    entry: Entry | None = None
    date: bytes = b""
    answer: bytes | None = None
    status: int = 0
    head_size: int = 0
    body_size: int = 0
    logged: str = ""


def prepare(headers: dict[str, str], res: Resource) -> Prepared:
    reply = select_reply(headers, res)
    return Prepared(reply.status, *head_parts(reply.status, reply.fields), reply.offset, reply.length)


Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def status_networks(allowed: tuple[str, ...]) -> Networks:
    """The `status_allow` networks (loopback is always allowed besides them)."""
    return tuple(ipaddress.ip_network(item, strict=False) for item in allowed)


def client_address(remote: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(remote.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def in_networks(address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: Networks) -> bool:
    return any(address.version == network.version and address in network for network in networks)


def connection_budget() -> int:
    """How many connections the descriptor limit (RLIMIT_NOFILE) leaves room for."""
    soft, _ = getrlimit(RLIMIT_NOFILE)
    if soft == RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(16, (soft - RESERVED_DESCRIPTORS) // DESCRIPTORS_PER_CONNECTION)


def _ident(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


class Site:
    """What one worker serves and records: the docroot, its file cache, access log and counters."""

    def __init__(
        self,
        docroot: Path,
        access_log: AccessLog,
        board: Board,
        worker: int,
        status_provider: StatusProvider,
        max_connections: int = MAX_CONNECTIONS,
        status_allow: Networks = (),
    ) -> None:
        self.docroot = str(docroot)
        self.docroot_dir = os.path.dirname(os.path.abspath(self.docroot))
        self.log = access_log
        self.board = board
        self.counters = board.row(worker)
        self.status_provider = status_provider
        self.roots: dict[str, str] = {}
        self.entries: dict[str, Entry] = {}
        self.heads: dict[bytes, Asked] = {}
        self.cached_bytes = 0
        # insertion-ordered: the oldest idle connection is the first idle one found
        self.connections: dict[HttpConnection, None] = {}
        self.max_connections = min(max_connections, connection_budget())
        self.warned: dict[str, float] = {}
        self.status_allow = status_allow
        self.header_timeout = HEADER_TIMEOUT
        self.keepalive_timeout = KEEPALIVE_TIMEOUT
        self.send_timeout = SEND_TIMEOUT
        self.stopping = False
        self.flush_soon: Callable[[Callable[[], None]], object] | None = None
        self.now = time.monotonic()
        self.date = http_date(time.time())
        self.date_bytes = self.date.encode("latin-1")

    # -- the current release ------------------------------------------------------------------------

    def release_root(self) -> str | None:
        """Real path of the release the docroot leads to now: one readlink(2) per request."""
        try:
            link = os.readlink(self.docroot)
        except OSError as error:
            if error.errno != errno.EINVAL:
                return None
            link = "."  # the docroot is a plain directory
        root = self.roots.get(link)
        if root is None:
            target = os.path.join(self.docroot_dir, link) if link != "." else self.docroot
            root = os.path.realpath(target)
            # A chain of symlinks could change behind an unchanged first link: don't remember it.
            if not os.path.islink(target):
                if len(self.roots) > 64:
                    self.roots.clear()
                self.roots[link] = root
        return root

    def lookup(self, path: str) -> Entry | None:
        """The regular file `path` names in the current release, or None (answered 404).

        One stat(2) through the docroot symlink: the kept entry stands while its inode, size and mtime
        do (a release file is a hard link never changed in place, so the same inode in the next release
        is the same bytes); the real path is checked when a file is first seen."""
        if not path:
            return None
        try:
            st = os.stat(f"{self.docroot}/{path}")
        except OSError:
            return None
        entry = self.entries.get(path)
        if entry is not None and entry.ident == (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns):
            return entry
        if not stat.S_ISREG(st.st_mode):
            return None
        root = self.release_root()
        if root is None:
            return None
        return self._admit(root, path, st)

    def _admit(self, root: str, path: str, st: os.stat_result) -> Entry | None:
        # Only a file whose real path stays inside the release and isn't hidden there is served:
        # a symlink in the tree must not lead out of it or onto a dot-file.
        full = f"{root}/{path}"
        real = os.path.realpath(full)
        if not real.startswith(root + "/"):
            return None
        inside = real[len(root) + 1 :]
        if is_hidden(inside) and not is_release_internal(inside):
            return None
        wanted = st.st_size if st.st_size <= SMALL_FILE else PREFIX
        try:
            with open(full, "rb", buffering=0) as stream:
                cached = os.pread(stream.fileno(), wanted, 0)
                fst = os.fstat(stream.fileno())
        except OSError:
            return None
        if _ident(fst) != _ident(st) or len(cached) != wanted:
            return None  # changed while we looked: a release is never changed in place
        entry = Entry(_ident(st), f"{self.docroot}/{path}", resource(st.st_size, st.st_mtime, path), cached)
        if len(self.entries) >= CACHE_ENTRIES or self.cached_bytes + wanted > CACHE_BUDGET:
            self.entries.clear()
            self.heads.clear()  # their answers hold entries too
            self.cached_bytes = 0
        self.entries[path] = entry
        self.cached_bytes += wanted
        return entry

    def reply(self, entry: Entry, headers: dict[str, str]) -> Prepared:
        # The answer depends on these fields only; a fleet of freshclam clients sends the same ones.
        kind = (
            headers.get("range"),
            headers.get("if-none-match"),
            headers.get("if-modified-since"),
            headers.get("if-range"),
        )
        reply = entry.replies.get(kind)
        if reply is None:
            reply = prepare(headers, entry.resource)
            if len(entry.replies) < 64:
                entry.replies[kind] = reply
        return reply

    def ask(self, head: bytes) -> Asked:
        """The parsed request `head` (ending with its blank line), from the kept ones when it came
        before; raises BadRequest."""
        asked = self.heads.get(head)
        if asked is not None:
            return asked
        request = parse_request_head(head[:-4])
        asked = Asked(request, request_path(request.target, VISIBLE))
        if len(head) <= ASKED_HEAD_SIZE and not request.body_length:
            if len(self.heads) >= ASKED_HEADS:
                self.heads.clear()
            self.heads[head] = asked
        return asked

    def answer_from_memory(self, asked: Asked, entry: Entry) -> bytes | None:
        """The whole answer to a GET or HEAD of `entry` when its body is in memory, else None.
        The connection is kept alive or closed as the request asks."""
        if asked.entry is entry and asked.date is self.date_bytes:
            return asked.answer
        request = asked.request
        reply = self.reply(entry, request.headers)
        length = reply.length if request.method == "GET" else 0
        end = reply.offset + length
        answer = None
        if end <= len(entry.cached):
            end_of_head = reply.keep_alive_end if request.keep_alive else reply.close_end
            head = reply.start + self.date_bytes + end_of_head
            answer = head + entry.cached[reply.offset : end] if length else head
            headers = request.headers
            asked.status, asked.head_size, asked.body_size = reply.status, len(head), length
            asked.logged = logged_request(
                request.line, reply.status, length, headers.get("referer", ""), headers.get("user-agent", "")
            )
            if len(answer) > ASKED_ANSWER_SIZE:
                asked.entry = None  # too large to keep: built again each time
                return answer
        asked.entry, asked.date, asked.answer = entry, self.date_bytes, answer
        return answer

    def closing_answer(self, asked: Asked) -> bytes | None:
        """The whole answer to a GET or HEAD asking `Connection: close` of a file whose answer is in
        memory; None for anything else (errors, pages, bodies read from disk), which a connection
        answers in full."""
        method = asked.request.method
        if (method != "GET" and method != "HEAD") or not asked.path:
            return None
        entry = self.lookup(asked.path)
        return None if entry is None else self.answer_from_memory(asked, entry)

    # -- pages made by the server -------------------------------------------------------------------

    def page(self, path: str, local: bool) -> tuple[str, bytes]:
        """Content type and body of the status page, its JSON or /metrics; filesystem paths only
        for a client on this host."""
        provider = self.status_provider if local else lambda: without_paths(self.status_provider())
        if path == METRICS:
            return CONTENT_TYPE_LATEST, render_metrics(self.board, provider)
        document = provider()
        if path == STATUS_JSON:
            return "application/json", json.dumps(document, indent=1, default=str).encode() + b"\n"
        return "text/html; charset=utf-8", render_html(document).encode()

    # -- bookkeeping ----------------------------------------------------------------------------------

    def record(
        self, remote: str, request: Request | None, line: str, status: int, head: int, body: int
    ) -> None:
        if request is not None:
            headers = request.headers
            referer = headers.get("referer", "")
            agent = headers.get("user-agent", "")
        else:
            referer = agent = ""
        self.count_and_log(remote, status, head + body, logged_request(line, status, body, referer, agent))

    def record_asked(self, remote: str, asked: Asked) -> None:
        """Record the answer `answer_from_memory` last gave to `asked`."""
        self.count_and_log(remote, asked.status, asked.head_size + asked.body_size, asked.logged)

    def count_and_log(self, remote: str, status: int, sent: int, logged: str) -> None:
        counters = self.counters
        counters[STATUS_INDEX.get(status, OTHER)] += 1
        counters[BYTES] += sent
        if self.log.write(f"{remote} - - {self.log.stamp(time.time())} {logged}") and self.flush_soon:
            # One write(2) for every request answered in this turn of the loop: cheap under load,
            # and the line is on disk at once when the server is quiet.
            self.flush_soon(self.log.flush)

    def admit(self, connection: HttpConnection) -> bool:
        """Take a new connection; at `max_connections`, drop the oldest idle one to make room
        (a slowloris client holds idle ones), or refuse the newcomer when every one is busy."""
        if len(self.connections) >= self.max_connections and not self.drop_oldest_idle():
            self.warn("full", f"pum serve: {len(self.connections)} connections, all busy: refusing new ones")
            return False
        self.connections[connection] = None
        return True

    def drop_oldest_idle(self) -> bool:
        for connection in self.connections:
            if connection.idle():
                connection.drop()
                return True
        return False

    def out_of_resources(self, error: OSError) -> None:
        """accept(2) or open(2) found no descriptor (EMFILE) or memory: free one, and say so once a
        minute, not once per failed call (a flood of tracebacks filled disks)."""
        self.drop_oldest_idle()
        self.warn(
            "resources",
            f"pum serve: {os.strerror(error.errno or 0)} with {len(self.connections)} connections open;"
            " dropping idle ones (raise LimitNOFILE, or lower max_connections)",
        )

    def loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The event loop's exception handler: running out of descriptors is handled, not logged
        with a traceback for every failed accept(2)."""
        error = context.get("exception")
        if isinstance(error, OSError) and error.errno in OUT_OF_RESOURCES:
            self.out_of_resources(error)  # asyncio retries accept(2) a second later by itself
            return
        loop.default_exception_handler(context)

    def warn(self, key: str, line: str) -> None:
        now = time.monotonic()
        if now - self.warned.get(key, -WARN_EVERY) >= WARN_EVERY:
            self.warned[key] = now
            print(line, file=sys.stderr, flush=True)

    def tick(self) -> None:
        """Once a second: the Date field, the log buffer, and connections idle for too long."""
        self.now = time.monotonic()
        self.date = http_date(time.time())
        self.date_bytes = self.date.encode("latin-1")
        self.log.flush()
        for connection in list(self.connections):
            connection.expire(self.now)


class HttpConnection(asyncio.Protocol):
    """One client connection: requests are answered in order, one at a time (pipelining works)."""

    def __init__(self, site: Site, loop: asyncio.AbstractEventLoop, received: bytes = b"") -> None:
        self.site = site
        self.loop = loop
        self.received = received  # read by the acceptor before this connection got its transport
        self.transport: asyncio.Transport | None = None
        self.remote = "-"
        self.buffer = b""
        self.discard = 0
        self.busy = False
        self.closed = False
        self.answered = 0
        self.eof = False
        self.dispatching = False
        self.write_paused = False
        self.sender: FileSender | None = None
        self.last_active = site.now
        self.head_started = site.now  # when the head being read began: its deadline doesn't move

    # -- asyncio.Protocol --------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if not self.site.admit(self):
            self.closed = True
            self.transport.abort()  # type: ignore[union-attr]
            return
        peer = transport.get_extra_info("peername")
        if peer:
            self.remote = peer[0]
        if self.received:
            received, self.received = self.received, b""
            self.data_received(received)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.site.connections.pop(self, None)
        if self.sender is not None:
            self.sender.cancel()

    def data_received(self, data: bytes) -> None:
        site = self.site
        self.last_active = site.now
        if not self.buffer and not self.busy and not self.write_paused and not self.discard:
            asked = site.heads.get(data)
            if asked is not None and not self.closed:
                # exactly one whole request head, as a keep-alive client sends it: parsed before
                self.head_started = site.now
                self.answered += 1
                self._answer(asked)
                return
        if self.discard:
            if len(data) <= self.discard:
                self.discard -= len(data)
                return
            data = data[self.discard :]
            self.discard = 0
        if self.buffer:
            self.buffer += data
        else:
            self.buffer = data
            self.head_started = self.site.now
        if self.busy or self.write_paused:
            if len(self.buffer) > 4 * MAX_HEAD and self.transport is not None:
                self.transport.pause_reading()
            return
        self._answer_buffered()

    def pause_writing(self) -> None:
        # The client doesn't read its answers as fast as it asks (pipelining): stop answering
        # until the transport's buffer drains, so memory stays bounded.
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self.last_active = self.site.now
        if self.sender is not None:
            self.sender.resume()
            return
        self._go_on()

    def _go_on(self) -> None:
        if self.busy or self.closed or self.write_paused or self.dispatching or self.transport is None:
            return
        self.transport.resume_reading()
        self._answer_buffered()

    def eof_received(self) -> bool | None:
        # A client that half-closes after its request still gets the answer in flight.
        self.eof = True
        return self.busy

    # -- requests ---------------------------------------------------------------------------------------

    def _answer_buffered(self) -> None:
        self.dispatching = True
        try:
            self._answer_each()
        finally:
            self.dispatching = False

    def _answer_each(self) -> None:
        while not self.busy and not self.closed and not self.write_paused and self.buffer:
            buffer = self.buffer
            if buffer[:2] == b"\r\n":
                self.buffer = buffer.lstrip(b"\r\n")
                continue
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    self._refuse(431, "-")
                return
            if end > MAX_HEAD:
                self._refuse(431, "-")
                return
            head = buffer[: end + 4]
            self.buffer = buffer[end + 4 :]
            self.head_started = self.site.now
            try:
                asked = self.site.ask(head)
            except BadRequest as refusal:
                self._refuse(refusal.status, head.split(b"\r\n", 1)[0].decode("latin-1"))
                return
            request = asked.request
            if request.body_length:
                if len(self.buffer) >= request.body_length:
                    self.buffer = self.buffer[request.body_length :]
                else:
                    self.discard = request.body_length - len(self.buffer)
                    self.buffer = b""
            self.answered += 1
            self._answer(asked)

    def _answer(self, asked: Asked, again: bool = False) -> None:
        site = self.site
        request = asked.request
        keep_alive = request.keep_alive and not site.stopping
        method = request.method
        if method != "GET" and method != "HEAD":
            self._send_error(request, 405, keep_alive)
            return
        path = asked.path
        if path is None:
            self._send_error(request, 404, keep_alive)
            return
        entry = site.lookup(path)
        if entry is None:
            if path in PAGES:
                self._send_page(request, path, keep_alive)
            elif not path and self._status_viewer() is not None:
                self._send(request, request.line, 302, STATUS_REDIRECT, b"", keep_alive)
            else:
                self._send_error(request, 404, keep_alive)
            return
        transport = self.transport
        assert transport is not None
        if not site.stopping:
            answer = site.answer_from_memory(asked, entry)
            if answer is not None:
                transport.write(answer)
                site.record_asked(self.remote, asked)
                if not keep_alive:
                    self._close()
                return
        reply = site.reply(entry, request.headers)
        head = reply.start + site.date_bytes + (reply.keep_alive_end if keep_alive else reply.close_end)
        length = reply.length if method == "GET" else 0
        end = reply.offset + length
        if not length:
            transport.write(head)
        elif end <= len(entry.cached):
            transport.write(head + entry.cached[reply.offset : end])
        elif length <= SMALL_FILE:
            try:
                with open(entry.path, "rb", buffering=0) as stream:
                    body = os.pread(stream.fileno(), length, reply.offset)
            except OSError:
                self._send_error(request, 404, keep_alive)
                return
            transport.write(head + body)
        else:
            try:
                stream = open(entry.path, "rb", buffering=0)  # noqa: SIM115 - its FileSender closes it
            except OSError:
                self._send_error(request, 404, keep_alive)
                return
            if _ident(os.fstat(stream.fileno())) != entry.ident:
                # Changed between stat and open: only a docroot that isn't a PUM release does that.
                stream.close()
                site.entries.pop(path, None)
                if again:
                    self._send_error(request, 404, keep_alive)
                else:
                    self._answer(asked, again=True)
                return
            self.busy = True
            transport.write(head)
            status, head_size = reply.status, len(head)
            self.sender = FileSender(
                self.loop,
                transport,
                stream,
                reply.offset,
                length,
                lambda sent: self._file_sent(request, status, head_size, length, sent),
                lambda: self.write_paused,
            )
            try:
                self.sender.start()
            except OSError as error:  # no descriptor left to duplicate the socket's
                if error.errno in OUT_OF_RESOURCES:
                    site.out_of_resources(error)
                transport.abort()
            return
        site.record(self.remote, request, request.line, reply.status, len(head), length)
        if not keep_alive:
            self._close()

    def _file_sent(self, request: Request, status: int, head: int, length: int, sent: int) -> None:
        self.sender = None
        self.busy = False
        self.site.record(self.remote, request, request.line, status, head, sent)
        transport = self.transport
        if self.closed or transport is None:
            return
        if sent != length or not request.keep_alive or self.site.stopping or self.eof:
            self._close()
            return
        self._go_on()  # unless called from within _answer_buffered, whose loop goes on by itself

    def _status_viewer(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The client's address when it may see the status page: this host or `status_allow`."""
        address = client_address(self.remote)
        if address is not None and (address.is_loopback or in_networks(address, self.site.status_allow)):
            return address
        return None

    def _send_page(self, request: Request, path: str, keep_alive: bool) -> None:
        viewer = self._status_viewer()
        if viewer is None:
            self._send_error(request, 404, keep_alive)  # as if there were no such page: never 403
            return
        try:
            kind, body = self.site.page(path, viewer.is_loopback)
        except (PumError, OSError, ValueError) as error:
            print(f"pum serve: status page failed: {error}", file=sys.stderr)
            self._send_error(request, 500, keep_alive)
            return
        fields = f"Content-Type: {kind}\r\nContent-Length: {len(body)}\r\nCache-Control: no-store\r\n"
        self._send(request, request.line, 200, fields, body, keep_alive)

    def _send_error(self, request: Request, status: int, keep_alive: bool) -> None:
        fields, body = error_fields(status)
        self._send(request, request.line, status, fields, body, keep_alive)

    def _refuse(self, status: int, line: str) -> None:
        fields, body = error_fields(status)
        self._send(None, line, status, fields, body, False)

    def _send(
        self, request: Request | None, line: str, status: int, fields: str, body: bytes, keep_alive: bool
    ) -> None:
        head = response_head(status, fields, self.site.date, keep_alive)
        if request is not None and request.method == "HEAD":
            body = b""
        if self.transport is not None:
            self.transport.write(head + body)
        self.site.record(self.remote, request, line, status, len(head), len(body))
        if not keep_alive:
            self._close()

    # -- ending ----------------------------------------------------------------------------------------

    def _close(self) -> None:
        self.closed = True
        self.buffer = b""
        if self.transport is not None:
            self.transport.close()

    def idle(self) -> bool:
        """No answer in flight: waiting for a request (perhaps one dripping in) or between requests."""
        transport = self.transport
        return (
            not self.busy
            and not self.closed
            and not self.write_paused
            and transport is not None
            and not transport.get_write_buffer_size()
        )

    def drop(self) -> None:
        self.closed = True
        self.buffer = b""
        if self.transport is not None:
            self.transport.abort()

    def expire(self, now: float) -> None:
        """Close the connection if idle too long, or at shutdown if no answer is in flight;
        drop it if its client stopped taking what is sent."""
        transport = self.transport
        if self.closed or transport is None:
            return
        site = self.site
        if self.busy:
            sender = self.sender
            if sender is not None and sender.progressed:
                sender.progressed = False
                self.last_active = now
            elif now - self.last_active > site.send_timeout:
                transport.abort()
            return
        if self.write_paused:
            if now - self.last_active > site.send_timeout:
                transport.abort()
            return
        if self.buffer or not self.answered:
            expired = now - self.head_started > site.header_timeout
        else:
            expired = now - self.last_active > site.keepalive_timeout
        if site.stopping or expired:
            if transport.get_write_buffer_size():
                transport.abort()  # close() would wait for a client that doesn't read
            else:
                self._close()


ACCEPT_BATCH = 64  # connections accepted per readiness of the listening socket
ACCEPT_PAUSE = 0.1  # seconds without accepting after running out of descriptors
# read at once from a new connection: all a client sends before its answer (a head too large for
# MAX_HEAD included), since closing with unread bytes resets the connection before the answer is read
RECEIVE_SIZE = 64 * 1024


class Acceptor:
    """The accept path of plain http: freshclam asks one `Range: bytes=0-511` per connection and closes,
    and asyncio's transport, protocol and registration for each such connection cost more than the
    answer. The listening socket is marked TCP_DEFER_ACCEPT, so a connection arrives with its request;
    a complete request asking `Connection: close` whose answer is in memory is answered with one
    send(2) and closed here. Anything else (keep-alive, a partial head, errors, pages, large bodies, a
    send that doesn't complete) becomes an `HttpConnection` with the bytes already read."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, site: Site) -> None:
        self.loop = loop
        self.sock = sock
        self.site = site
        self.fd = sock.fileno()
        self.accept = sock._accept  # type: ignore[attr-defined]  # (descriptor, address), no wrapper
        self.family, self.kind, self.proto = int(sock.family), int(sock.type), sock.proto
        self.closed = False
        with contextlib.suppress(OSError, AttributeError):  # Linux; elsewhere accept(2) returns earlier
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, int(HEADER_TIMEOUT))
        loop.add_reader(self.fd, self._accept)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.fd)

    def _resume(self) -> None:
        if not self.closed:
            self.loop.add_reader(self.fd, self._accept)

    def _accept(self) -> None:
        accept = self.accept
        family, kind, proto = self.family, self.kind, self.proto
        for _ in range(ACCEPT_BATCH):
            try:
                fd, address = accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                if error.errno in OUT_OF_RESOURCES:
                    self.site.out_of_resources(error)
                    self.loop.remove_reader(self.fd)  # epoll would call again at once
                    self.loop.call_later(ACCEPT_PAUSE, self._resume)
                    return
                continue  # ECONNABORTED and the like: that client is gone
            # the C socket: socket.socket's Python wrapper and its enum look-ups cost as much as the send
            if not self._serve(_socket.socket(family, kind, proto, fd), address[0] if address else "-"):
                # It stays (keep-alive): the next ones are left to whichever worker wakes first, so
                # workers sharing the socket share long connections too.
                return

    def _serve(self, conn: _socket.socket, remote: str) -> bool:
        """Answer a new connection and close it when it asks one request with `Connection: close`
        (True, also when it is gone already); else hand it to an `HttpConnection` (False)."""
        site = self.site
        try:
            data = conn.recv(RECEIVE_SIZE, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            data = None  # nothing yet (the deferral ran out): the connection waits for its head
        except OSError:
            data = b""
        if data == b"":  # gone already
            conn.close()
            return True
        if data is None:
            data = b""
        elif data[-4:] == b"\r\n\r\n" and not site.stopping:
            asked = site.heads.get(data)
            if asked is None and data.find(b"\r\n\r\n") == len(data) - 4:
                try:
                    asked = site.ask(data)
                except BadRequest:
                    asked = None
            if asked is not None and not asked.request.keep_alive and not asked.request.body_length:
                out = site.closing_answer(asked)
                if out is not None:
                    try:
                        sent = conn.send(out, socket.MSG_DONTWAIT)
                    except OSError:
                        sent = -1
                    if sent == len(out):
                        site.record_asked(remote, asked)
                        conn.close()
                        return True
                    # A full socket buffer for a 600-byte answer: let a transport take the time.
                    if sent < 0:
                        conn.close()
                        return True
                    site.record_asked(remote, asked)
                    self._adopt(conn, b"", out[sent:])
                    return True
        self._adopt(conn, data, b"")
        return False

    def _adopt(self, accepted: _socket.socket, received: bytes, unsent: bytes) -> None:
        site = self.site
        loop = self.loop
        conn = socket.socket(self.family, self.kind, self.proto, accepted.detach())
        conn.setblocking(False)

        def protocol() -> asyncio.Protocol:
            return HttpConnection(site, loop, received) if not unsent else _Finish(unsent)

        task = loop.create_task(loop.connect_accepted_socket(protocol, conn))
        task.add_done_callback(_forget)


def _forget(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # a connection that died while being adopted: nothing to answer


class _Finish(asyncio.Protocol):
    """The rest of an answer the acceptor could not send at once, then close."""

    def __init__(self, unsent: bytes) -> None:
        self.unsent = unsent

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.unsent)  # type: ignore[attr-defined]
        transport.close()


async def serve_socket(
    sock: socket.socket,
    site: Site,
    ssl_context: ssl.SSLContext | None = None,
    stop: asyncio.Event | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """Serve on a bound, listening socket until `stop` is set, then finish answers in flight."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    loop.set_exception_handler(site.loop_error)
    server: asyncio.AbstractServer | Acceptor
    if ssl_context is None:
        server = Acceptor(loop, sock, site)
    else:
        server = await loop.create_server(
            lambda: HttpConnection(site, loop),
            sock=sock,
            ssl=ssl_context,
            backlog=1024,
            ssl_handshake_timeout=site.header_timeout,
        )

    def tick() -> None:
        site.tick()
        timer[0] = loop.call_later(1.0, tick)

    timer = [loop.call_later(1.0, tick)]
    site.flush_soon = loop.call_soon
    if ready is not None:
        ready()
    try:
        await stop.wait()
    finally:
        site.stopping = True
        server.close()
        deadline = loop.time() + STOP_GRACE
        for connection in list(site.connections):
            connection.expire(site.now)
        while site.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(site.connections):
            if connection.transport is not None:
                connection.transport.abort()
        timer[0].cancel()
        site.log.close()
