"""Fixtures shared by every suite: the upstream, pum.conf files, and real programs on loopback."""

from __future__ import annotations

import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parent))

from upstream import TESTDATA, ClamavTree, Upstream  # noqa: E402

ON_CI = bool(os.environ.get("CI"))

# Property tests judge what a parser returns, never how fast: on a loaded machine (CI, or several test
# runs at once) Hypothesis' 200 ms deadline and its too-slow health check fail tests that are right.
# "dev" (the default here) still draws new examples each run; "ci" (chosen when CI is set, or locally by
# `pytest --hypothesis-profile=ci`) draws the same ones every run, so a red CI is never chance.
_NO_TIMING = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("dev", **_NO_TIMING)
settings.register_profile("ci", **_NO_TIMING, derandomize=True, database=None, print_blob=True)
settings.load_profile("ci" if ON_CI else "dev")


def require_program(name: str) -> str:
    """A program .ci/run installs: missing under CI is a failure, never a silent skip."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        message = f"{name} is not installed (.ci/run installs it)"
        if ON_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def _ports_below_the_ephemeral_range() -> range:
    """Ports the kernel never hands out by itself (bind to port 0, a connection's local port): a port
    drawn here and bound a moment later by a program under test cannot meanwhile be taken by a server
    that asked for any port, in this process or another."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(max(1024, low - 12000), max(2048, low))


_DRAWS = random.Random()


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    return _free_port_for((kind,), host)


def free_udp_and_tcp_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP at once: a DNS server (dnsmasq) binds both on its one port."""
    return _free_port_for((socket.SOCK_DGRAM, socket.SOCK_STREAM), host)


def _free_port_for(kinds: tuple[int, ...], host: str) -> int:
    ports = _ports_below_the_ephemeral_range()
    for _ in range(200):
        port = _DRAWS.choice(ports)
        probes = []
        try:
            for kind in kinds:
                probe = socket.socket(socket.AF_INET, kind)
                probes.append(probe)
                probe.bind((host, port))
            return port
        except OSError:
            continue  # taken: draw another
        finally:
            for probe in probes:
                probe.close()
    raise RuntimeError(f"no free port on {host} in 200 draws from {ports.start}-{ports.stop - 1}")


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 60.0) -> None:
    """Until something listens: a generous bound, for a loaded machine starts Squid or Apache slowly."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout}s")


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        wait_or_kill(process)


def wait_or_kill(process: subprocess.Popen, timeout: float = 10) -> None:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Reaper:
    """Servers whose clean exit takes a while (Squid waits at least one second after SIGINT, then stops
    its helpers; nginx and Apache let their workers finish): signalled as their test ends, waited for
    once at the end of the session, so the suite does not sit through each exit."""

    def __init__(self) -> None:
        self._stopping: list[tuple[subprocess.Popen, Callable[[], None]]] = []

    def stop(self, process: subprocess.Popen, sig: int, then: Callable[[], None] = lambda: None) -> None:
        if process.poll() is None:
            process.send_signal(sig)
        self._stopping.append((process, then))

    def wait_all(self) -> None:
        for process, then in self._stopping:
            wait_or_kill(process)
            then()


@pytest.fixture(scope="session")
def reaper() -> Iterator[Reaper]:
    reaper = Reaper()
    yield reaper
    reaper.wait_all()


@pytest.fixture(autouse=True)
def no_backoff_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    import pum.net.transport

    monkeypatch.setattr(pum.net.transport, "sleep", lambda seconds: None)


@pytest.fixture
def testdata() -> Path:
    return TESTDATA


@pytest.fixture
def upstream_tree(tmp_path: Path) -> ClamavTree:
    return ClamavTree(tmp_path / "upstream")


@pytest.fixture
def upstream(upstream_tree: ClamavTree) -> Iterator[Upstream]:
    server = Upstream(upstream_tree.root).start()
    yield server
    server.stop()


@pytest.fixture
def make_upstream(tmp_path: Path) -> Iterator[Callable[[str], tuple[ClamavTree, Upstream]]]:
    """More upstreams for failover tests."""
    started: list[Upstream] = []

    def make(name: str, db: str = "test") -> tuple[ClamavTree, Upstream]:
        tree = ClamavTree(tmp_path / name, db)
        server = Upstream(tree.root).start()
        started.append(server)
        return tree, server

    yield make
    for server in started:
        server.stop()


def write_config(directory: Path, **keys: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    values: dict[str, object] = {
        "mode": "server",
        "logfile": directory / "log" / "pum.log",
        "update_protocol": "http",
        "dns_resolve": "no",
        "databases": "test",
        "docroot": directory / "www" / "pum",
        "data_dir": directory / "data",
        "connect_timeout": 3,
        "read_timeout": 5,
        "access_log": directory / "log" / "access.log",
        "trust_test_root": "yes",  # the test databases' .sign files chain to ClamAV's TEST root
    }
    values.update(keys)
    path = directory / "pum.conf"
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items() if value is not None))
    return path


@pytest.fixture
def pum_conf(tmp_path: Path, upstream: Upstream) -> Callable[..., Path]:
    """pum.conf for a server-mode PUM whose update server is the test upstream."""

    def make(name: str = "pum", **keys: object) -> Path:
        keys.setdefault("update_servers", upstream.address)
        return write_config(tmp_path / name, **keys)

    return make


class PumResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"PumResult(code={self.code}, out={self.out!r}, err={self.err!r})"


def in_process(
    main: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str]
) -> Callable[..., PumResult]:
    """Run a console script's main() in-process, capturing its output: invoke("--config", path, "run")."""

    def invoke(*args: object) -> PumResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return PumResult(code, captured.out, captured.err)

    return invoke


@pytest.fixture
def pum(capsys: pytest.CaptureFixture[str]) -> Callable[..., PumResult]:
    """Run the `pum` CLI in-process: pum("--config", path, "run")."""
    from pum.cli import main

    return in_process(main, capsys)


def pum_command() -> list[str]:
    return [sys.executable, "-m", "pum.cli"]


def modules_of_a_run(*args: object) -> set[str]:
    """`pum ARGS` in a fresh interpreter, which must succeed: every module it imported."""
    return _after_a_run("' '.join(sys.modules)", args)


def dataclasses_of_a_run(*args: object) -> set[str]:
    """`pum ARGS` in a fresh interpreter, which must succeed: every dataclass that PUM's modules imported
    by it define (`module.Class`; each one costs start-up time to create)."""
    found = (
        "' '.join(f'{m.__name__}.{v.__name__}' for m in list(sys.modules.values()) "
        "if getattr(m, '__name__', '').split('.')[0] == 'pum' for v in vars(m).values() "
        "if isinstance(v, type) and v.__module__ == m.__name__ and '__dataclass_fields__' in vars(v))"
    )
    return _after_a_run(found, args)


def _after_a_run(expression: str, args: tuple[object, ...]) -> set[str]:
    """The words of `expression` (Python) after `pum ARGS` ran in a fresh interpreter and succeeded."""
    code = f"import sys; from pum.cli import main; status = main(sys.argv[1:]); print({expression}); "
    code += "sys.exit(status)"
    finished = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 0, finished.stderr
    return set(finished.stdout.split())


@contextmanager
def running_pum_serve(conf: Path, port: int, host: str = "127.0.0.1") -> Iterator[subprocess.Popen]:
    """`pum serve` as a real subprocess on the `listen` of `conf`, stopped by SIGTERM on the way out."""
    process = subprocess.Popen(
        [*pum_command(), "--config", str(conf), "serve"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        try:
            # its own start line, not just an open port: another test's server may hold a port that
            # free_port() gave out (this pum serve then fails to bind; the port serves another tree)
            wait_for_start_line(process, f":{port}/", "pum serve: listening on ")
            wait_for_port(port, host)
        except RuntimeError as error:
            stop_process(process)
            output = process.stderr.read().decode()
            raise RuntimeError(f"pum serve did not start ({error}): {output}") from None
        yield process
    finally:
        stop_process(process)


def wait_for_start_line(
    process: subprocess.Popen, port_text: str, prefix: str, drain: bool = True, timeout: float = 60
) -> str:
    """The program's first stdout line, `prefix...port_text...`, once written (else RuntimeError); with
    `drain`, the rest of stdout is read away in a thread."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline(4096).decode(errors="replace") if ready else ""
    if not (line.startswith(prefix) and port_text in line):
        raise RuntimeError(f"no start line on {port_text} within {timeout:.0f} s: {line.strip()!r}")
    if drain:
        threading.Thread(target=process.stdout.read, daemon=True).start()
    return line


@pytest.fixture
def dnsmasq(tmp_path: Path) -> Iterator[Callable[..., tuple[str, int]]]:
    """Real dnsmasq on a loopback port serving the TXT records given: start(name=text, ...)."""
    binary = require_program("dnsmasq")
    processes: list[subprocess.Popen] = []

    def start(
        records: dict[str, str], address: str = "127.0.0.1", port: int | None = None
    ) -> tuple[str, int]:
        port = port or free_udp_and_tcp_port(address)
        args = [
            binary,
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            f"--listen-address={address}",
            f"--port={port}",
            "--user=root",
            "--log-facility=-",
            f"--pid-file={tmp_path}/dnsmasq-{port}.pid",
            "--conf-file=/dev/null",
        ]
        args += [f"--txt-record={name},{text}" for name, text in records.items()]
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        processes.append(process)
        _wait_for_dns(address, port, next(iter(records)), process)
        return address, port

    yield start
    for process in processes:
        stop_process(process)


def _wait_for_dns(address: str, port: int, name: str, process: subprocess.Popen) -> None:
    import dns.message
    import dns.query

    deadline = time.monotonic() + 60  # returns at the first answer; a loaded machine starts it slowly
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dnsmasq exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            dns.query.udp(dns.message.make_query(name, "TXT"), address, port=port, timeout=0.3)
            return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.05)
    raise RuntimeError("dnsmasq did not answer")


@pytest.fixture
def squid(reaper: Reaper) -> Iterator[Callable[..., int]]:
    """Real Squid on a loopback port with basic auth (user pum / password from the argument)."""
    binary = require_program("squid")
    htpasswd = require_program("htpasswd")
    processes: list[tuple[subprocess.Popen, Path]] = []

    def start(user: str = "pumuser", password: str = "s3cret#pass") -> int:
        # squid drops to its own user: its files must be readable by it, so not under pytest's 0700 tmp
        workdir = Path(tempfile.mkdtemp(prefix="pum-squid-"))
        os.chmod(workdir, 0o755)
        subprocess.run(
            [htpasswd, "-b", "-c", str(workdir / "passwd"), user, password], check=True, capture_output=True
        )
        os.chmod(workdir / "passwd", 0o644)
        port = free_port()
        conf = workdir / "squid.conf"
        conf.write_text(f"""
http_port 127.0.0.1:{port}
pid_filename {workdir}/squid.pid
cache deny all
cache_dir null /tmp
access_log none
cache_log {workdir}/cache.log
cache_store_log none
coredump_dir {workdir}
shutdown_lifetime 0 seconds
auth_param basic program /usr/lib/squid/basic_ncsa_auth {workdir}/passwd
auth_param basic realm pum-test
acl authenticated proxy_auth REQUIRED
acl SSL_ports port 1-65535
acl CONNECT method CONNECT
http_access allow authenticated
http_access deny all
""")
        os.chmod(conf, 0o644)
        process = subprocess.Popen(
            [binary, "-N", "-f", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        processes.append((process, workdir))
        try:
            wait_for_port(port)
        except RuntimeError:
            stop_process(process)
            log = (workdir / "cache.log").read_text(errors="replace")
            raise RuntimeError(f"squid did not start: {log}") from None
        return port

    yield start
    for process, workdir in processes:
        reaper.stop(process, signal.SIGINT, then=lambda workdir=workdir: shutil.rmtree(workdir, True))


def run_freshclam(
    tmp_path: Path,
    mirror_url: str,
    database_dir: Path,
    db: str = "test",
    private: bool = False,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Debian's real freshclam against `mirror_url`, in HTTP mode (no DNS), for one database."""
    binary = require_program("freshclam")
    database_dir.mkdir(parents=True, exist_ok=True)
    conf = tmp_path / f"freshclam-{abs(hash((str(database_dir), mirror_url)))}.conf"
    mirror_line = f"PrivateMirror {mirror_url}" if private else f"DatabaseMirror {mirror_url}"
    conf.write_text(f"""DatabaseDirectory {database_dir}
UpdateLogFile {tmp_path}/freshclam.log
DatabaseOwner root
{mirror_line}
DNSDatabaseInfo no
ScriptedUpdates yes
ConnectTimeout 10
ReceiveTimeout 30
Bytecode no
""")
    return subprocess.run(
        [
            binary,
            f"--config-file={conf}",
            f"--datadir={database_dir}",
            "--no-dns",
            f"--update-db={db}",
            "--stdout",
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def serve_directory(directory: Path) -> Upstream:
    """A plain static server over a released tree (follows the docroot symlink on each request)."""
    return Upstream(directory).start()
