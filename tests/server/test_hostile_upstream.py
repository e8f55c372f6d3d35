"""A hostile upstream: compression bombs, bodies that drip or never end, answers in encodings nobody asked
for, a dead proxy, stale and complete partial downloads, and the bandwidth cap. Each ends with the right
exit status, the last good release served, and bounded memory; never by a wall-clock threshold."""

from __future__ import annotations

import gzip
import os
import resource
import shutil
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from conftest import free_port, pum_command, write_config
from upstream import TESTDATA, QuietHTTPServer, header_stime, record_text

from pum.errors import ExitStatus
from pum.net import transport

Answer = Callable[[BaseHTTPRequestHandler], None]


class HostileUpstream:
    """A loopback server whose answer per path is a function writing raw HTTP (bounded: each answer
    writes at most a few MB or for a few seconds, and stop() ends every connection)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.answers: dict[str, Answer] = {}
        self.stopping = threading.Event()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?")[0].lstrip("/")
                answer = upstream.answers.get(path)
                if answer is not None:
                    answer(self)
                    self.close_connection = True
                    return
                target = upstream.root / path
                if not target.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = target.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01})
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[HostileUpstream]:
    root = tmp_path / "hostile-root"
    root.mkdir()
    shutil.copyfile(TESTDATA / "test-3.cvd", root / "test.cvd")
    (root / "dns.txt").write_text(record_text(3, header_stime(root / "test.cvd")) + "\n")
    server = HostileUpstream(root)
    yield server
    server.stop()


def gzip_bomb(size: int) -> bytes:
    """`size` zero bytes, gzip'd: about a thousandth of that on the wire."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1 << 20)
    out = [compressor.compress(block) for _ in range(size >> 20)]
    return b"".join(out) + compressor.flush()


def send(handler: BaseHTTPRequestHandler, body: bytes, **headers: str) -> None:
    handler.send_response(200)
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def after_the_probe(hostile: HostileUpstream, answer: Answer) -> Answer:
    """`answer` for the download of test.cvd; the 512-byte version probe before it gets the real header."""
    header = (hostile.root / "test.cvd").read_bytes()[:512]

    def answering(handler: BaseHTTPRequestHandler) -> None:
        if handler.headers.get("Range"):
            send(handler, header)
        else:
            answer(handler)

    return answering


def conf_for(tmp_path: Path, hostile: HostileUpstream, **keys: object) -> Path:
    keys.setdefault("update_servers", hostile.address)
    keys.setdefault("update_protocol", "http")
    keys.setdefault("dns_resolve", "no")
    keys.setdefault("databases", "test")
    return write_config(tmp_path / "pum", **keys)


def run_measured(
    conf: Path, *args: str, timeout: float = 120
) -> tuple[subprocess.CompletedProcess[str], int]:
    """`pum run` in a child process: its result and the child's peak memory in MB (bounded by outcome)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = subprocess.run(
        [*pum_command(), "--config", str(conf), *args, "run"], capture_output=True, text=True, timeout=timeout
    )
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return result, max(peak, before) // 1024


def test_a_gzip_bomb_as_the_version_file_is_refused_and_never_inflated(hostile, tmp_path):
    bomb = gzip_bomb(256 << 20)
    twice = gzip.compress(bomb, 1)
    hostile.answers["dns.txt"] = lambda h: send(h, twice, Content_Encoding="gzip, gzip")
    conf = conf_for(tmp_path, hostile)
    result, peak_mb = run_measured(conf)
    assert result.returncode == 0, result.stderr  # the CVD header gives the version instead
    log = (conf.parent / "log" / "pum.log").read_text()
    assert "Content-Encoding 'gzip, gzip', not asked for: refused" in log
    assert peak_mb < 400


def test_a_gzip_bomb_as_the_upper_manifest_is_inflated_only_up_to_its_limit(hostile, tmp_path):
    """The manifest is the one answer asked for gzip: it is inflated with the limit as a bound."""
    # made before the request: deflating 512 MB took 4 s on a loaded machine, past read_timeout=5
    bomb = gzip_bomb(512 << 20)
    hostile.answers[".pum/manifest.json"] = lambda h: send(h, bomb, Content_Encoding="gzip")
    conf = write_config(
        tmp_path / "sub", mode="mirror", update_servers=hostile.address, update_protocol="http"
    )
    result, peak_mb = run_measured(conf)
    assert result.returncode == ExitStatus.UPSTREAM, result.stderr
    assert "larger than 67108864 bytes, refused" in result.stderr
    assert peak_mb < 400


def test_an_unasked_encoding_on_a_download_is_refused(hostile, tmp_path):
    data = (hostile.root / "test.cvd").read_bytes()
    hostile.answers["test.cvd"] = after_the_probe(
        hostile, lambda h: send(h, gzip.compress(data), Content_Encoding="gzip")
    )
    conf = conf_for(tmp_path, hostile)
    result = subprocess.run([*pum_command(), "--config", str(conf), "run"], capture_output=True, text=True)
    assert result.returncode == ExitStatus.UPSTREAM, result.stderr
    assert "Content-Encoding 'gzip', not asked for: refused" in result.stderr


def drip(handler: BaseHTTPRequestHandler, size: int, stopping: threading.Event) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(size))
    handler.end_headers()
    for _ in range(size):
        if stopping.wait(0.05):
            return
        try:
            handler.wfile.write(b"x")
            handler.wfile.flush()
        except OSError:
            return


def test_a_dripping_body_is_given_up_at_the_download_deadline_and_the_lock_is_free(hostile, tmp_path):
    # the download: a byte every 50 ms of 20,000 announced
    hostile.answers["test.cvd"] = after_the_probe(hostile, lambda h: drip(h, 20_000, hostile.stopping))
    conf = conf_for(tmp_path, hostile, download_deadline=1, read_timeout=10, retries=0)
    result = subprocess.run(
        [*pum_command(), "--config", str(conf), "run"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == ExitStatus.UPSTREAM, result.stderr
    assert "(download_deadline): too slow" in result.stderr
    again = subprocess.run([*pum_command(), "--config", str(conf), "run"], capture_output=True, text=True)
    assert again.returncode != ExitStatus.LOCK_HELD


def endless(handler: BaseHTTPRequestHandler, stopping: threading.Event) -> None:
    handler.send_response(200)
    handler.send_header("Connection", "close")
    handler.end_headers()
    chunk = b"\0" * 65536
    for _ in range(1024):  # at most 64 MB
        if stopping.is_set():
            return
        try:
            handler.wfile.write(chunk)
        except OSError:
            return


def test_an_endless_body_stops_at_max_file_size_and_leaves_no_part(hostile, tmp_path):
    hostile.answers["test.cvd"] = after_the_probe(hostile, lambda h: endless(h, hostile.stopping))
    conf = conf_for(tmp_path, hostile, max_file_size=2)
    result = subprocess.run([*pum_command(), "--config", str(conf), "run"], capture_output=True, text=True)
    assert result.returncode == ExitStatus.UPSTREAM, result.stderr
    assert "larger than 2097152 bytes allowed: refused" in result.stderr
    assert not list((conf.parent / "data").rglob("*.part"))


def test_a_content_length_above_max_file_size_is_refused_before_the_body(hostile, tmp_path):
    def huge(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(10 << 30))
        handler.end_headers()

    hostile.answers["test.cvd"] = after_the_probe(hostile, huge)
    conf = conf_for(tmp_path, hostile, max_file_size=100)
    result = subprocess.run([*pum_command(), "--config", str(conf), "run"], capture_output=True, text=True)
    assert result.returncode == ExitStatus.UPSTREAM, result.stderr
    assert f"{10 << 30} bytes, larger than {100 << 20} allowed: refused" in result.stderr


def test_a_stale_part_is_collected_at_the_start_of_a_run(upstream_tree, upstream, pum_conf, pum):
    upstream_tree.publish(3)
    conf = pum_conf()
    downloads = conf.parent / "data" / "downloads"
    downloads.mkdir(parents=True)
    stale = downloads / "test-9.cvd.part"
    stale.write_bytes(b"x" * 1000)
    day_ago = time.time() - 2 * 86400
    os.utime(stale, (day_ago, day_ago))
    assert pum("--config", conf, "run").code == 0
    assert not stale.exists()
    assert (
        "test-9.cvd.part: a stale partial download (1000 bytes), starting again"
        in (conf.parent / "log" / "pum.log").read_text()
    )


def test_a_part_already_complete_when_the_run_was_killed_is_used_not_discarded(
    upstream_tree, upstream, pum_conf, pum
):
    upstream_tree.publish(3)
    conf = pum_conf()
    downloads = conf.parent / "data" / "downloads"
    downloads.mkdir(parents=True)
    shutil.copyfile(TESTDATA / "test-3.cvd", downloads / "test-3.cvd.part")
    upstream.clear()
    assert pum("--config", conf, "run").code == 0
    cvd_requests = [
        r for r in upstream.requests if r.path == "/test.cvd" and r.headers.get("Range", "") != "bytes=0-511"
    ]
    assert [r.status for r in cvd_requests] == [416]
    assert (conf.parent / "www" / "pum" / "test.cvd").read_bytes() == (TESTDATA / "test-3.cvd").read_bytes()


def test_a_dead_proxy_is_named_not_the_update_server(upstream, pum_conf, pum):
    dead = free_port()
    conf = pum_conf(proxy_host="127.0.0.1", proxy_port=dead)
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.UPSTREAM, result
    assert f"proxy 127.0.0.1:{dead} (proxy_host/proxy_port): cannot connect" in result.err


def test_max_rate_holds_the_run_to_the_rate(monkeypatch):
    """The cap's arithmetic on a clock the test drives: 20 MB at 2 MB/s takes 10 s of sleeping, within
    one chunk's worth (behaviour, not wall-clock time)."""
    now = [0.0]
    monkeypatch.setattr(transport, "clock", lambda: now[0])
    monkeypatch.setattr(transport, "sleep", lambda seconds: now.__setitem__(0, now[0] + seconds))
    cap = transport.RateCap(2 << 20)
    for _ in range(20 * 16):  # 20 MB in 64 KiB chunks arriving instantly
        cap.took(65536)
    assert 10 - 0.04 <= now[0] <= 10 * 1.1
