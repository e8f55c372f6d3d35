"""A first copy's small files, their requests pipelined on kept-alive connections (net/pipeline.py): the
same tree from `pum serve`, nginx and Apache, servers ending connections every few answers, and hostile
answers (out of order, wrong length, oversized head, endless body, garbage, a corrupt file) refused with
one line and nothing partial published."""

from __future__ import annotations

import json
import os
import random
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote

import pytest
import trustme
from serve.backends import Apache, Nginx, PumServe, world_readable_dir
from upstream import Upstream

from mirror.conftest import publish_files
from pum.errors import ExitStatus


def small_files(count: int, seed: int = 15) -> dict[str, bytes]:
    rng = random.Random(seed)
    files = {f"d{n % 3}/file-{n:03d}.bin": rng.randbytes(rng.randint(1, 3000)) for n in range(count)}
    files["d0/a name with blanks & ü.bin"] = b"quoted in the request line"
    files["empty.bin"] = b""
    return files


def copied(copy) -> dict[str, bytes]:
    return {path: (copy.docroot / path).read_bytes() for path in copy.files()}


class NginxFewRequests(Nginx):
    """nginx ending each connection after 7 requests (keepalive_requests): mid-window, every time."""

    def _start(self, args: list[str], preexec_fn=None) -> None:
        conf = self.workdir / "nginx.conf"
        conf.write_text(conf.read_text().replace("http {", "http {\n    keepalive_requests 7;", 1))
        super()._start(args, preexec_fn)


@pytest.mark.parametrize("backend", [PumServe, Nginx, Apache, NginxFewRequests], ids=lambda b: b.__name__)
def test_small_files_are_copied_pipelined_from_each_web_server(backend, sub, pum):
    # 150 files: more than a window of requests, and past Apache's 100 requests a connection
    files = small_files(150)
    base = world_readable_dir("pum-pipeline-upper-")
    publish_files(base, files, mtime=1_700_000_000)
    server = backend(
        SimpleNamespace(docroot=base / "www", data_dir=base / "data"), world_readable_dir("pum-web-")
    )
    server.start()
    try:
        copy = sub("sub", f"127.0.0.1:{server.port}")
        result = pum("--config", copy.conf, "run")
    finally:
        server.stop()
    assert result.code == 0, result
    assert copied(copy) == files
    assert int((copy.docroot / "d1/file-001.bin").stat().st_mtime) == 1_700_000_000
    assert (copy.docroot / "d1/file-001.bin").stat().st_mode & 0o777 == 0o444
    # every file came pipelined: none went the ordinary way (which logs a line per file)
    assert "pipelined requests stopped" not in copy.log
    assert not [line for line in copy.log.splitlines() if line.startswith("download ")]
    assert (
        f"files checked {len(files)}, fetched {len(files)}, bytes {sum(map(len, files.values()))}" in copy.log
    )


def test_an_https_upper_is_pipelined_inside_tls(raw_upper, sub, pum, tmp_path):
    files = small_files(80)
    _raw, base = raw_upper(files)
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    upper = Upstream(base / "www", tls=context).start()
    try:
        copy = sub("sub", upper.address, update_protocol="https", ca_bundle=tmp_path / "ca.pem")
        result = pum("--config", copy.conf, "run")
    finally:
        upper.stop()
    assert result.code == 0, result
    assert copied(copy) == files
    assert not [line for line in copy.log.splitlines() if line.startswith("download ")]


def test_through_a_proxy_small_files_go_one_request_at_a_time(raw_upper, sub, pum, squid):
    # a proxy may take pipelined requests one at a time, or not at all: the ordinary path, through Squid
    files = small_files(20)
    _raw, base = raw_upper(files)
    upper = Upstream(base / "www").start()
    port = squid(user="pumuser", password="s3cret#pass")
    try:
        copy = sub(
            "sub", upper.address, proxy_host="127.0.0.1", proxy_port=port, proxy_user="pumuser",
            proxy_passwd="s3cret#pass",
        )  # fmt: skip
        result = pum("--config", copy.conf, "run")
    finally:
        upper.stop()
    assert result.code == 0, result
    assert copied(copy) == files
    assert len([line for line in copy.log.splitlines() if line.startswith("download ")]) == len(files)
    assert all("Via" in r.headers or "via" in r.headers for r in upper.requests)


class RawUpstream:
    """A loopback server over a directory speaking just enough HTTP/1.1, one thread a connection, with
    what a real server never does: `answers[path]` raw bytes sent instead of the file (then the
    connection ends), `swap` (two pipelined requests answered in reverse order). Bounded: requests are
    read in at most 64 KB pieces, a connection waits at most 0.2 s for a second request to swap, and
    stop() ends every connection."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.answers: dict[str, bytes] = {}
        self.swap = False
        self.close_after = 0  # answers on a connection before it is closed without a word (0: never)
        self.hold: dict[str, float] = {}  # path -> seconds its first answer is held back
        self.requests: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.stopping = threading.Event()
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.listener.getsockname()[1]}"

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        for connection in self.connections:
            connection.close()
        self.listener.close()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.connections.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        buffer, answered = b"", 0
        try:
            while not self.stopping.is_set() and not (self.close_after and answered >= self.close_after):
                pending: list[str] = []
                for _wanted in range(2 if self.swap else 1):
                    connection.settimeout(0.2 if pending else 10)
                    while b"\r\n\r\n" not in buffer and len(buffer) < 65536:
                        try:
                            data = connection.recv(65536)
                        except TimeoutError:
                            data = None
                        if not data:
                            break
                        buffer += data
                    if b"\r\n\r\n" not in buffer:
                        break
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    pending.append(unquote(head.split(b" ")[1].decode().split("?")[0]).lstrip("/"))
                if not pending:
                    return
                for path in reversed(pending):
                    self.requests.append(path)
                    if path in self.hold:
                        self.stopping.wait(self.hold.pop(path))
                    if path in self.answers:
                        connection.sendall(self.answers[path])
                        return
                    connection.sendall(self._file(path))
                    answered += 1
        except OSError:
            return
        finally:
            connection.close()

    def _file(self, path: str) -> bytes:
        target = self.root / path
        if not target.is_file():
            return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        data = target.read_bytes()
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data) + data


@pytest.fixture
def raw_upper() -> Iterator[Callable[[dict[str, bytes]], tuple[RawUpstream, Path]]]:
    started: list[RawUpstream] = []

    def start(files: dict[str, bytes]) -> tuple[RawUpstream, Path]:
        base = world_readable_dir("pum-pipeline-raw-")
        publish_files(base, files, mtime=1_700_000_000)
        server = RawUpstream(base / "www")
        started.append(server)
        return server, base

    yield start
    for server in started:
        server.stop()


def test_answers_out_of_order_are_refused_and_each_file_fetched_again(raw_upper, sub, pum):
    # pairs of the same size: each answer has the length the manifest gives, only its sha256 tells
    files = {f"f{n}.bin": os.urandom(100 + n // 2) for n in range(6)}
    upper, _base = raw_upper(files)
    upper.swap = True
    copy = sub("sub", upper.address)
    result = pum("--config", copy.conf, "run")
    assert result.code == 0, result
    assert copied(copy) == files  # no file published with another file's bytes
    assert all(upper.requests.count(path) == 2 for path in files)  # pipelined, then alone


def test_a_server_closing_connections_unannounced_mid_window_is_followed(raw_upper, sub, pum):
    files = small_files(100)
    upper, _base = raw_upper(files)
    upper.close_after = 9
    copy = sub("sub", upper.address)
    result = pum("--config", copy.conf, "run")
    assert result.code == 0, result
    assert copied(copy) == files
    assert not [line for line in copy.log.splitlines() if line.startswith("download ")]


def test_a_pipelined_answer_held_past_read_timeout_is_fetched_again_alone(raw_upper, sub, pum):
    files = small_files(30)
    upper, _base = raw_upper(files)
    upper.hold["d1/file-010.bin"] = 3
    copy = sub("sub", upper.address, read_timeout=1)
    result = pum("--config", copy.conf, "run")
    assert result.code == 0, result
    assert copied(copy) == files
    assert upper.requests.count("d1/file-010.bin") == 2  # pipelined (given up), then alone
    assert any(line.startswith("download d1/file-010.bin") for line in copy.log.splitlines())


def endless_body() -> bytes:
    return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * (4 << 20)


HOSTILE = {
    "wrong length": lambda data: (
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(data) + 5) + data + b"extra"
    ),
    "oversized head": lambda data: b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (70 << 10) + b"\r\n\r\n",
    "endless body": lambda data: endless_body(),
    "garbage": lambda data: b"\x16\x03\x01 garbage, not HTTP\r\n\r\n" * 10,
    "corrupt file": lambda data: (
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data) + bytes(len(data))
    ),
}


@pytest.mark.parametrize("answer", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_answer_among_many_fails_the_run_and_the_last_release_stays(answer, raw_upper, sub, pum):
    files = small_files(40)
    upper, base = raw_upper(files)
    copy = sub("sub", upper.address, retries=0)
    assert pum("--config", copy.conf, "run").code == 0
    served = copy.serial()

    changed = {path: os.urandom(len(data) + 1) for path, data in list(files.items())[:30]}
    publish_files(base, changed)
    upper.answers["d2/file-014.bin"] = answer(changed["d2/file-014.bin"])
    result = pum("--config", copy.conf, "run")
    assert result.code != ExitStatus.OK
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "file-014.bin" in lines[0], result
    assert copy.serial() == served
    assert copied(copy) == files  # the last release, whole

    del upper.answers["d2/file-014.bin"]  # the next run recovers
    assert pum("--config", copy.conf, "run").code == 0
    assert copied(copy) == {**files, **changed}
    assert json.loads((copy.docroot / ".pum" / "manifest.json").read_text())["serial"] == served + 1


def test_pipelined_answers_are_held_to_max_rate(raw_upper, sub, pum, monkeypatch):
    """The cap's clock driven by the test: every pipelined byte is counted, so the run sleeps at least
    the files' bytes / max_rate (behaviour, not wall-clock time)."""
    from pum.net import transport

    files = small_files(150)
    upper, _base = raw_upper(files)
    now = [0.0]
    monkeypatch.setattr(transport, "clock", lambda: now[0])
    monkeypatch.setattr(transport, "sleep", lambda seconds: now.__setitem__(0, now[0] + seconds))
    copy = sub("sub", upper.address, max_rate="100K")
    assert pum("--config", copy.conf, "run").code == 0
    assert copied(copy) == files
    least = sum(map(len, files.values())) / (100 << 10)
    assert least <= now[0] <= least * 1.5  # the manifest and the heads besides
