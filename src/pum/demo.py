"""`pum demo`: PUM's whole job, offline and without root, on the signed test databases it ships.

In a temporary directory: an upstream made of the ClamAV test databases (`pum/testdata`, real Talos
signatures) behind a small static HTTP server on loopback; a main PUM (server mode) that releases
version 3 and then 6; `pum serve` in front of it; a sub-PUM (mirror mode) copying the main one; and, when
freshclam is installed, a client that downloads version 3 whole and then updates to 6 through the
patches. One numbered line per step.
"""

from __future__ import annotations

import email.utils
import getpass
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from pum.config import Config, load_config
from pum.errors import PumError
from pum.formats.cvd import CVD_HEADER_SIZE, parse_cvd_header
from pum.runlog import RunLog

if TYPE_CHECKING:
    from pum.cycle import CycleOutcome

DB = "test"
FIRST_VERSION = 3
LAST_VERSION = 6
OK, FAILED, SKIPPED = "✔", "✘", "–"
START_TIMEOUT = 15.0  # seconds for `pum serve` to listen
FRESHCLAM_TIMEOUT = 120.0

Say = Callable[[str], None]


class DemoFailed(PumError):
    """A step of the demo failed; the message names it and where its files are."""


def testdata_file(name: str) -> bytes:
    """A file of the signed test databases packaged with PUM (the project's shared test data)."""
    return resources.files("pum").joinpath("testdata", name).read_bytes()


# ---- the upstream -------------------------------------------------------------------------------------


def publish_upstream(root: Path, version: int) -> list[str]:
    """Make `root` look like a ClamAV mirror after `version` updates: test.cvd, test-2..N.cdiff, their
    .sign files and a version file. A CVD's mtime is its build time, as on the real mirrors."""
    root.mkdir(parents=True, exist_ok=True)
    data = testdata_file(f"{DB}-{version}.cvd")
    build_time = parse_cvd_header(data[:CVD_HEADER_SIZE]).build_time
    _write(root / f"{DB}.cvd", data, build_time)
    for old in root.glob(f"{DB}-*.cvd.sign"):
        old.unlink()
    _write(root / f"{DB}-{version}.cvd.sign", testdata_file(f"{DB}-{version}.cvd.sign"))
    added = []
    for number in range(2, version + 1):
        name = f"{DB}-{number}.cdiff"
        if not (root / name).exists():
            _write(root / name, testdata_file(name))
            _write(root / f"{name}.sign", testdata_file(f"{name}.sign"))
            added.append(name)
    # the version record (engine:main:daily:time:...); `test` isn't in it, so PUM reads test.cvd's header
    _write(root / "dns.txt", f"1.4.3:62:27748:{build_time}:1:90:49192:336\n".encode())
    return added


def _write(path: Path, data: bytes, mtime: int | None = None) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    if mtime is not None:
        os.utime(temporary, (mtime, mtime))
    os.replace(temporary, path)


class StaticServer:
    """A static HTTP server over a directory on 127.0.0.1, in a thread: GET/HEAD, one byte range,
    If-Modified-Since, Last-Modified, 404 for anything missing. Like a plain ClamAV mirror."""

    def __init__(self, root: Path) -> None:
        self.root = root
        served = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                served._answer(self, head=False)

            def do_HEAD(self) -> None:
                served._answer(self, head=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        # serve_forever's default 0.5 s poll is how long __exit__ would wait for the loop to notice
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="pum-demo-upstream",
            daemon=True,
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> StaticServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, handler: BaseHTTPRequestHandler, head: bool) -> None:
        base = self.root.resolve()  # the root may be a docroot symlink that moves between requests
        target = (base / unquote(urlsplit(handler.path).path).lstrip("/")).resolve()
        if not target.is_relative_to(base) or not target.is_file():
            handler.send_response(404)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        stat = target.stat()
        size = stat.st_size
        since = handler.headers.get("If-Modified-Since")
        if since and not handler.headers.get("Range"):
            try:
                not_modified = int(stat.st_mtime) <= email.utils.parsedate_to_datetime(since).timestamp()
            except (TypeError, ValueError):
                not_modified = False
            if not_modified:
                handler.send_response(304)
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
        start, end, status = 0, size - 1, 200
        wanted = re.fullmatch(r"bytes=(\d*)-(\d*)", handler.headers.get("Range", ""))
        if wanted and (wanted[1] or wanted[2]):
            if wanted[1]:
                start, end = int(wanted[1]), min(int(wanted[2]), size - 1) if wanted[2] else size - 1
            else:
                start = max(0, size - int(wanted[2]))
            if start >= size or start > end:
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{size}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            status = 206
        handler.send_response(status)
        handler.send_header("Content-Length", str(end - start + 1))
        handler.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
        handler.send_header("Accept-Ranges", "bytes")
        if status == 206:
            handler.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        handler.end_headers()
        if not head:
            with open(target, "rb") as stream:
                stream.seek(start)
                handler.wfile.write(stream.read(end - start + 1))


# ---- the PUMs -----------------------------------------------------------------------------------------


def write_pum_conf(directory: Path, comment: str, **keys: object) -> Path:
    """A pum.conf with paths relative to it, so the demo's tree can be read (or moved) as it is."""
    directory.mkdir(parents=True, exist_ok=True)
    values: dict[str, object] = {
        "mode": keys.pop("mode", "server"),
        "update_servers": keys.pop("update_servers"),
        "logfile": "log/pum.log",
        "update_protocol": "http",
        "dns_resolve": "no",
        "databases": DB,
        "docroot": "www",
        "data_dir": "data",
        "access_log": "log/access.log",
        "connect_timeout": 5,
        "read_timeout": 10,
        "retries": 1,
        "trust_test_root": "yes",  # the test databases' .sign files chain to ClamAV's TEST root
    }
    values.update(keys)
    lines = [f"# {line}" for line in comment.splitlines()] + [
        f"{key}={value}" for key, value in values.items()
    ]
    path = directory / "pum.conf"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_pum(config: Config) -> CycleOutcome:
    from pum.run import run_once

    with RunLog(config.logfile, rotate=config.log_rotate, generations=config.log_generation) as log:
        return run_once(config, log)


def served_version(config: Config) -> int:
    with open(config.docroot / f"{DB}.cvd", "rb") as stream:
        return parse_cvd_header(stream.read(CVD_HEADER_SIZE)).version


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def pum_serve(conf: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`pum --config CONF serve` in a child process, until the block ends (then SIGTERM)."""
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "pum.cli", "--config", str(conf), "serve"],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_for_listener(process, port, log)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_listener(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise DemoFailed(f"pum serve exited {process.returncode}: {tail[0]} (see {log})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise DemoFailed(f"pum serve did not listen on 127.0.0.1:{port} within {START_TIMEOUT:g} s (see {log})")


def freshclam_program() -> str | None:
    return shutil.which("freshclam") or next(
        (p for p in ("/usr/bin/freshclam", "/usr/sbin/freshclam") if os.access(p, os.X_OK)), None
    )


def run_freshclam(program: str, mirror: str, database_dir: Path, work: Path) -> str:
    """freshclam in HTTP mode (no DNS) for database `test` against `mirror`; returns what it said."""
    database_dir.mkdir(parents=True, exist_ok=True)
    conf = work / "freshclam.conf"
    conf.write_text(
        f"DatabaseDirectory {database_dir}\n"
        f"UpdateLogFile {work / 'freshclam.log'}\n"
        f"DatabaseOwner {getpass.getuser()}\n"
        f"DatabaseMirror http://{mirror}\n"
        "DNSDatabaseInfo no\nScriptedUpdates yes\nConnectTimeout 10\nReceiveTimeout 30\nBytecode no\n",
        encoding="utf-8",
    )
    finished = subprocess.run(
        [
            program,
            f"--config-file={conf}",
            f"--datadir={database_dir}",
            "--no-dns",
            f"--update-db={DB}",
            "--stdout",
        ],
        capture_output=True,
        text=True,
        timeout=FRESHCLAM_TIMEOUT,
        # libcurl in freshclam honours *_proxy: the demo's loopback traffic must not go to a proxy
        env={k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")},
    )
    said = finished.stdout + finished.stderr
    if finished.returncode != 0:
        errors = [line for line in said.splitlines() if "ERROR" in line] or said.strip().splitlines()[-1:]
        raise DemoFailed(f"freshclam exited {finished.returncode}: {errors[0] if errors else 'no output'}")
    return said


# ---- the steps ----------------------------------------------------------------------------------------


class _Steps:
    def __init__(self, say: Say, base: Path) -> None:
        self.say = say
        self.base = base
        self.number = 0

    def run(self, title: str, action: Callable[[], str]) -> None:
        self.number += 1
        try:
            detail = action()
        except (PumError, OSError, subprocess.SubprocessError) as error:
            self.say(f"{FAILED} {self.number}. {title}: {error}")
            raise DemoFailed(f"step {self.number} ({title}) failed; its files are in {self.base}") from error
        self.say(f"{OK} {self.number}. {title}: {detail}")

    def skip(self, title: str, reason: str) -> None:
        self.number += 1
        self.say(f"{SKIPPED} {self.number}. {title}: skipped, {reason}")


def run_demo(directory: Path | None = None, keep: bool = False, say: Say = print) -> None:
    """Run the demo in `directory` (kept), or in a temporary one (removed unless `keep`)."""
    base = Path(directory).absolute() if directory else Path(tempfile.mkdtemp(prefix="pum-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    failed = True
    try:
        _demo(base, say)
        failed = False
        say(f"PUM demo done in {time.monotonic() - started:.1f} s")
    finally:
        if directory is None and not keep and not failed:
            shutil.rmtree(base, ignore_errors=True)
        else:
            say(f"its files: {base} (pum.conf, log/pum.log and www/ under main/ and sub/)")


def _demo(base: Path, say: Say) -> None:
    steps = _Steps(say, base)
    upstream_dir = base / "upstream"
    has_serve = importlib.util.find_spec("pum.serve") is not None
    has_mirror = importlib.util.find_spec("pum.sync.mirror") is not None
    freshclam = freshclam_program()
    with ExitStack() as stack:
        publish_upstream(upstream_dir, FIRST_VERSION)
        upstream = stack.enter_context(StaticServer(upstream_dir))
        steps.run(
            "upstream",
            lambda: (
                f"ClamAV test database version {FIRST_VERSION} (real signatures) at http://{upstream.address}/"
            ),
        )

        main_conf = write_pum_conf(
            base / "main",
            "pum demo: the main PUM (server mode), fetching from the demo's upstream",
            mode="server",
            update_servers=upstream.address,
            listen=f"127.0.0.1:{free_port()}",
        )
        main = load_config(main_conf)

        def first_run() -> str:
            outcome = run_pum(main)
            return (
                f"pum run: release {outcome.published} serves {DB}.cvd version {served_version(main)} "
                f"({outcome.requests} requests, {outcome.bytes_received} bytes)"
            )

        steps.run("main PUM", first_run)

        if has_serve:
            steps.run("pum serve (main PUM)", lambda: _start_serve(stack, main, base / "main"))
            main_url = main.listen
        else:
            fallback = stack.enter_context(StaticServer(main.docroot))
            main_url = fallback.address
            steps.skip("pum serve (main PUM)", f"pum.serve is not in this PUM; a static server at {main_url}")

        client = base / "client"
        if freshclam:
            steps.run(
                "freshclam, empty",
                lambda: _freshclam_said(
                    run_freshclam(freshclam, main_url, client / "db", client), f"{DB}.cvd", FIRST_VERSION
                ),
            )
        else:
            steps.skip(
                "freshclam, empty", "freshclam is not installed (Debian: apt-get install clamav-freshclam)"
            )

        def update() -> str:
            publish_upstream(upstream_dir, LAST_VERSION)
            before = _release_files(main)
            outcome = run_pum(main)
            after = _release_files(main)
            fetched = [p for p in after if after[p] != before.get(p) and p.endswith((".cvd", ".cdiff"))]
            return (
                f"upstream now at version {LAST_VERSION}; pum run: release {outcome.published} serves "
                f"version {served_version(main)}, fetched {', '.join(fetched)} (+ .sign files; "
                f"{outcome.requests} requests, {outcome.bytes_received} bytes)"
            )

        steps.run("main PUM", update)

        def again() -> str:
            outcome = run_pum(main)
            if outcome.published is not None:
                raise DemoFailed(f"a run with nothing new published release {outcome.published}")
            return f"pum run again: nothing new, no release ({outcome.requests} requests)"

        steps.run("main PUM", again)

        client_url = main_url
        if has_mirror:
            sub_conf = write_pum_conf(
                base / "sub",
                "pum demo: a sub-PUM (mirror mode), copying the main PUM",
                mode="mirror",
                update_servers=main_url,
                listen=f"127.0.0.1:{free_port()}",
            )
            sub = load_config(sub_conf)

            def mirror() -> str:
                outcome = run_pum(sub)
                return (
                    f"mirror of {main_url}: release {outcome.published} serves version "
                    f"{served_version(sub)}, {len(_release_files(sub))} files ({outcome.requests} requests)"
                )

            steps.run("sub-PUM", mirror)
            if has_serve:
                steps.run("pum serve (sub-PUM)", lambda: _start_serve(stack, sub, base / "sub"))
                client_url = sub.listen
            verified = sub
        else:
            steps.skip("sub-PUM", "mirror mode (pum.sync.mirror) is not in this PUM yet")
            verified = main

        if freshclam:
            steps.run(
                "freshclam, update",
                lambda: (
                    _freshclam_said(
                        run_freshclam(freshclam, client_url, client / "db", client), f"{DB}.cld", LAST_VERSION
                    )
                    + f" from the {'sub' if client_url != main_url else 'main'} PUM, through the patches"
                ),
            )
        else:
            steps.skip("freshclam, update", "freshclam is not installed")

        steps.run("pum verify", lambda: _verify(verified))


def _start_serve(stack: ExitStack, config: Config, directory: Path) -> str:
    port = int(config.listen.rsplit(":", 1)[1])
    stack.enter_context(
        pum_serve(config.path or directory / "pum.conf", port, directory / "log" / "serve.log")
    )
    return f"http://{config.listen}/ (status page http://{config.listen}/.pum/status)"


def _freshclam_said(said: str, name: str, version: int) -> str:
    match = re.search(rf"{re.escape(name)} updated \(version: (\d+)", said)
    if not match or int(match[1]) != version:
        last = said.strip().splitlines()[-1:] or ["no output"]
        raise DemoFailed(f"freshclam did not report {name} version {version}: {last[0]}")
    return f"{name} updated to version {version}"


def _release_files(config: Config) -> dict[str, str]:
    """path -> sha256 of the served release."""
    from pum.store import Store

    manifest = Store(config).current_manifest()
    return {path: record.sha256 for path, record in manifest.files.items()} if manifest else {}


def _verify(config: Config) -> str:
    from pum.verify import verify_served

    try:
        report = verify_served(config)
    except PumError as error:
        raise DemoFailed(str(error)) from None
    if not report.ok:
        raise DemoFailed("; ".join(report.problems[:3]))
    return (
        f"release {report.serial} of the {config.docroot.parent.name} PUM: {report.checked} files match "
        "the manifest and their signatures"
    )
