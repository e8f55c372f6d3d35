"""The one upstream for tests: a loopback HTTP server over a directory that honours Range and
If-Modified-Since, records every request, and injects faults on demand."""

from __future__ import annotations

import email.utils
import os
import re
import shutil
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

# the real signed ClamAV test databases shipped with PUM (see its README.md): a fresh clone has them
TESTDATA = Path(__file__).resolve().parents[1] / "src" / "pum" / "testdata"

# serve_forever's default poll of 0.5 s is what `stop()` waits for: a short one makes stopping immediate
POLL_INTERVAL = 0.01


class QuietHTTPServer(ThreadingHTTPServer):
    """A client that hangs up mid-request is no error of the server's: pum closes its kept-alive
    connections when a run stops (a full disk, a refused file), and socketserver's traceback of the reset
    would land on the stderr of an in-process pum the test reads."""

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class Fault:
    """status: answer this instead; truncate: send only this many body bytes then close;
    slow: seconds to hold the body back (or, with slow_after, the rest after that many body bytes), or
    until `released` is set (`Upstream.stop()` sets it: a held answer never outlives its server);
    times: how many requests it applies to (None = always); skip: how many requests pass untouched first."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    truncate: int | None = None
    slow: float = 0.0
    slow_after: int = 0
    times: int | None = None
    skip: int = 0
    released: threading.Event = field(default_factory=threading.Event)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    status: int
    body_bytes: int
    target: str = ""  # the request target as sent, query string included


@dataclass
class Started:
    """A request the upstream has begun to answer; `fault` is the fault applied to it, if any."""

    method: str
    path: str
    headers: dict[str, str]
    fault: Fault | None


class Upstream:
    def __init__(self, root: Path, tls: ssl.SSLContext | None = None) -> None:
        self.root = root
        self.requests: list[Request] = []
        self.started: list[Started] = []
        self.faults: dict[str, Fault] = {}
        self._registered: list[Fault] = []
        self._lock = threading.Lock()
        self._began = threading.Condition(self._lock)
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms per request
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._answer(head=True)

            def do_GET(self) -> None:
                self._answer(head=False)

            def do_CONNECT(self) -> None:
                self.send_error(405)

            def _answer(self, head: bool) -> None:
                path = unquote(urlsplit(self.path).path)
                status, sent = upstream._serve(self, path, head)
                with upstream._lock:
                    upstream.requests.append(
                        Request(self.command, path, dict(self.headers), status, sent, self.path)
                    )

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, daemon=True
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, relpath: str = "") -> str:
        return f"http://{self.address}/{relpath}"

    def start(self) -> Upstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for fault in self._registered:
            fault.released.set()

    def fault(self, relpath: str, **kwargs: object) -> Fault:
        fault = Fault(**kwargs)  # type: ignore[arg-type]
        self.faults["/" + relpath.lstrip("/")] = fault
        self._registered.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self.started.clear()

    def wait_for_start(self, path: str, *, faulted: bool = False, timeout: float = 30.0) -> Started:
        """The first request for `path` the upstream has begun to answer (with `faulted`: the first one a
        fault applies to, e.g. a download now held back), waiting for it; a test waits on this instead of
        sleeping into a download."""
        path = "/" + path.lstrip("/")

        def begun() -> Started | None:
            return next(
                (s for s in self.started if s.path == path and (s.fault is not None or not faulted)), None
            )

        with self._began:
            self._began.wait_for(lambda: begun() is not None, timeout)
            started = begun()
        if started is None:
            raise AssertionError(f"no request for {path} began within {timeout:g} s")
        return started

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def payload_bytes(self) -> int:
        return sum(r.body_bytes for r in self.requests)

    def _serve(self, handler: BaseHTTPRequestHandler, path: str, head: bool) -> tuple[int, int]:
        fault = self.faults.get(path)
        if fault is not None and fault.skip > 0:
            fault.skip -= 1
            fault = None
        if fault is not None and fault.times is not None:
            if fault.times <= 0:
                fault = None
            else:
                fault.times -= 1
        with self._began:
            self.started.append(Started(handler.command, path, dict(handler.headers), fault))
            self._began.notify_all()
        if fault is not None and fault.status is not None:
            body = f"fault {fault.status}\n".encode()
            handler.send_response(fault.status)
            for name, value in fault.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if not head:
                handler.wfile.write(body)
            return fault.status, 0
        target = (self.root / path.lstrip("/")).resolve()
        if not target.is_relative_to(self.root.resolve()) or not target.is_file():
            handler.send_response(404)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return 404, 0
        stat = target.stat()
        size = stat.st_size
        last_modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
        # nanosecond mtime: a file replaced within the same second still gets a new tag
        etag = f'"{stat.st_mtime_ns:x}-{size:x}"'
        inm = handler.headers.get("If-None-Match")
        ims = handler.headers.get("If-Modified-Since")
        if inm and not handler.headers.get("Range"):
            ims = None  # RFC 9110 13.1.3: If-None-Match, when present, decides alone
            tags = [tag.strip().removeprefix("W/") for tag in inm.split(",")]
            if "*" in tags or etag in tags:
                handler.send_response(304)
                handler.send_header("Last-Modified", last_modified)
                handler.send_header("ETag", etag)
                handler.end_headers()
                return 304, 0
        if ims and not handler.headers.get("Range"):
            try:
                since = email.utils.parsedate_to_datetime(ims).timestamp()
            except (TypeError, ValueError):
                since = None
            if since is not None and int(stat.st_mtime) <= since:
                handler.send_response(304)
                handler.send_header("Last-Modified", last_modified)
                handler.end_headers()
                return 304, 0
        start, end, status = 0, size - 1, 200
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", handler.headers.get("Range", ""))
        if match and (match[1] or match[2]):
            if match[1]:
                start = int(match[1])
                end = min(int(match[2]), size - 1) if match[2] else size - 1
            else:
                start = max(0, size - int(match[2]))
            if start >= size:
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{size}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return 416, 0
            status = 206
        length = end - start + 1
        handler.send_response(status)
        handler.send_header("Content-Length", str(length))
        handler.send_header("Last-Modified", last_modified)
        handler.send_header("ETag", etag)
        handler.send_header("Accept-Ranges", "bytes")
        if status == 206:
            handler.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        handler.end_headers()
        if head:
            return status, 0
        with open(target, "rb") as stream:
            stream.seek(start)
            data = stream.read(length)
        if fault is not None and fault.slow:
            if fault.slow_after:
                handler.wfile.write(data[: fault.slow_after])
                handler.wfile.flush()
            fault.released.wait(fault.slow)
            if fault.slow_after:
                sent = len(data[: fault.slow_after])
                try:
                    handler.wfile.write(data[fault.slow_after :])
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (or was killed)
                    handler.close_connection = True
                    return status, sent
                return status, len(data)
        if fault is not None and fault.truncate is not None:
            data = data[: fault.truncate]
            handler.wfile.write(data)
            handler.wfile.flush()
            handler.close_connection = True
            return status, len(data)
        handler.wfile.write(data)
        return status, len(data)


def header_stime(cvd: Path) -> int:
    return int(cvd.read_bytes()[:512].rstrip(b"\0 ").decode().split(":")[8])


class ClamavTree:
    """An upstream document tree over the signed test databases: `publish(n)` makes test.cvd version n
    with test-2..n.cdiff beside it, like a ClamAV mirror after n updates."""

    def __init__(self, root: Path, db: str = "test") -> None:
        self.root = root
        self.db = db
        root.mkdir(parents=True, exist_ok=True)

    def publish(
        self,
        version: int,
        *,
        cdiffs: bool = True,
        signs: bool = True,
        record: bool = True,
        first_cdiff: int = 2,
    ) -> None:
        db = self.db
        cvd = self.root / f"{db}.cvd"
        tmp = self.root / f".{db}.cvd.tmp"
        shutil.copyfile(TESTDATA / f"test-{version}.cvd", tmp)
        stime = header_stime(tmp)
        os.utime(tmp, (stime, stime))
        os.replace(tmp, cvd)
        for old in self.root.glob(f"{db}-*.cvd.sign"):
            old.unlink()
        if signs:
            shutil.copyfile(TESTDATA / f"test-{version}.cvd.sign", self.root / f"{db}-{version}.cvd.sign")
        if cdiffs:
            now = time.time()
            for number in range(first_cdiff, version + 1):
                target = self.root / f"{db}-{number}.cdiff"
                if not target.exists():
                    shutil.copyfile(TESTDATA / f"test-{number}.cdiff", target)
                    os.utime(target, (now, now))
                if signs:
                    shutil.copyfile(
                        TESTDATA / f"test-{number}.cdiff.sign", self.root / f"{db}-{number}.cdiff.sign"
                    )
        if record:
            self.write_record(version, stime)

    def write_record(self, version: int, stime: int) -> None:
        (self.root / "dns.txt").write_text(record_text(version, stime, self.db) + "\n")


def record_text(version: int, stime: int, db: str = "test") -> str:
    """A version record; `daily` carries the version when the database is served as daily."""
    daily = version if db == "daily" else 27748
    return f"1.4.3:62:{daily}:{stime}:1:90:49192:336"
