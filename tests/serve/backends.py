"""The three ways a release is served, started for real on loopback: `pum serve`, nginx and Apache.

nginx and Apache run with the config `pum deploy` writes, included from a minimal main config of
their own (pid, logs, modules) in a temporary directory; all three write an Apache "combined" access log,
which tests read to see what a client asked and got.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from conftest import free_port, require_program, stop_process, wait_for_port, wait_for_start_line

from pum.deploy.web import write_web_config

from .releases import ReleaseTree

_COMBINED = re.compile(r'^(\S+) \S+ \S+ \[[^\]]+\] "(\S+) (\S+)[^"]*" (\d{3}) (\d+|-) "[^"]*" "(.*)"$')


@dataclass
class LogEntry:
    method: str
    path: str
    status: int
    body_bytes: int
    agent: str


def parse_access_log(text: str) -> list[LogEntry]:
    entries = []
    for line in text.splitlines():
        match = _COMBINED.match(line)
        if not match:
            raise AssertionError(f"not a combined log line: {line!r}")
        size = match[5]
        entries.append(LogEntry(match[2], match[3], int(match[4]), 0 if size == "-" else int(size), match[6]))
    return entries


def world_readable_dir(prefix: str) -> Path:
    """A temporary directory a web server's unprivileged workers can read (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


class Backend:
    name = ""
    stop_signal = signal.SIGTERM
    # the first stdout line of a server that says where it listens: waited for, so that a port another
    # server took meanwhile (free_port() is only a probe) is not mistaken for this one's
    start_line = ""

    def __init__(self, tree: ReleaseTree, workdir: Path) -> None:
        self.tree = tree
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.access_log = workdir / "access.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.first_line = ""

    def log_entries(self) -> list[LogEntry]:
        try:
            return parse_access_log(self.access_log.read_text(errors="replace"))
        except FileNotFoundError:
            return []

    def entries_after(self, count: int, expected: int, timeout: float = 30.0) -> list[LogEntry]:
        """Log entries past the first `count`, waiting until at least `expected` of them are written."""
        deadline = time.monotonic() + timeout
        while True:
            entries = self.log_entries()[count:]
            if len(entries) >= expected or time.monotonic() > deadline:
                return entries
            time.sleep(0.05)

    def _start(self, args: list[str], preexec_fn=None) -> None:
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=preexec_fn
        )
        try:
            if self.start_line:
                self.first_line = wait_for_start_line(
                    self.process, f":{self.port}/", self.start_line, drain=False
                )
            wait_for_port(self.port)
        except RuntimeError:
            self.stop()
            output = self.process.stdout.read().decode(errors="replace") if self.process.stdout else ""
            raise RuntimeError(f"{self.name} did not start: {output}{self._error_log()}") from None

    def _error_log(self) -> str:
        path = self.workdir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, self.stop_signal)

    def output(self) -> str:
        """What the stopped server wrote on stdout and stderr."""
        assert self.process is not None and self.process.poll() is not None and self.process.stdout
        return self.first_line + self.process.stdout.read().decode(errors="replace")

    def __repr__(self) -> str:
        return self.name


_LAUNCH = """
import json, sys
from pathlib import Path
from pum.config import Config
from pum.serve import run_server
values = json.loads(sys.argv[1])
for key in ("docroot", "data_dir", "access_log", "tls_cert", "tls_key"):
    if values.get(key):
        values[key] = Path(values[key])
run_server(Config(**values))
"""


class PumServe(Backend):
    name = "pum"
    start_line = "pum serve: listening on "

    def __init__(
        self,
        tree: ReleaseTree,
        workdir: Path,
        workers: int = 1,
        tls: tuple[Path, Path] | None = None,
        nofile: int | None = None,
        **overrides: object,
    ) -> None:
        super().__init__(tree, workdir)
        self.workers = workers
        self.nofile = nofile
        if tls is not None:
            self.url = f"https://127.0.0.1:{self.port}"
        self.config = {
            "docroot": str(tree.docroot),
            "data_dir": str(tree.data_dir),
            "listen": f"127.0.0.1:{self.port}",
            "workers": workers,
            "tls_cert": str(tls[0]) if tls else None,
            "tls_key": str(tls[1]) if tls else None,
            "access_log": str(self.access_log),
            "log_rotate": True,
            "log_generation": 3,
        }
        self.config.update(overrides)

    def start(self) -> PumServe:
        limit = self.nofile

        def limit_descriptors() -> None:
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        self._start([sys.executable, "-c", _LAUNCH, json.dumps(self.config)], limit_descriptors)
        # the port listens before the workers are forked: a test about workers needs them all there
        deadline = time.monotonic() + 60
        while self.workers > 1 and len(self.worker_pids()) < self.workers:
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"pum serve did not fork its {self.workers} workers")
            time.sleep(0.01)
        return self

    def worker_pids(self) -> list[int]:
        """The worker processes, once as many as configured are forked (the supervisor listens first)."""
        assert self.process is not None
        children: list[str] = []
        for _ in range(100):
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
            if len(children) >= int(self.config["workers"]):  # type: ignore[call-overload]
                break
            time.sleep(0.05)
        return [int(pid) for pid in children]


def _unprivileged_user() -> tuple[str, str]:
    for user, group in (("www-data", "www-data"), ("apache", "apache"), ("nobody", "nogroup")):
        try:
            pwd.getpwnam(user)
            return user, group
        except KeyError:
            continue
    return "nobody", "nobody"


class Nginx(Backend):
    name = "nginx"
    stop_signal = signal.SIGQUIT  # graceful: lets its worker finish, like a real reload or stop

    def start(self) -> Nginx:
        binary = require_program("nginx")
        written = write_web_config(
            SimpleNamespace(docroot=self.tree.docroot, data_dir=self.tree.data_dir, status_allow=()),
            "nginx",
            self.port,
            self.workdir / "root",
            "debian",
            address="127.0.0.1",
        )
        temp = "".join(
            f"    {kind}_temp_path {self.workdir}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf = self.workdir / "nginx.conf"
        conf.write_text(f"""daemon off;
worker_processes 1;
pid {self.workdir}/nginx.pid;
error_log {self.workdir}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log {self.access_log} combined;
{temp}    include {written[0]};
}}
""")
        self._start([binary, "-c", str(conf), "-p", f"{self.workdir}/"])
        return self


class Apache(Backend):
    name = "apache"

    def start(self) -> Apache:
        binary = shutil.which("apache2") or shutil.which("httpd") or require_program("apache2")
        modules = next(
            (
                d
                for d in ("/usr/lib/apache2/modules", "/usr/lib64/httpd/modules", "/usr/lib/httpd/modules")
                if os.path.isdir(d)
            ),
            "/usr/lib/apache2/modules",
        )
        written = write_web_config(
            SimpleNamespace(docroot=self.tree.docroot, data_dir=self.tree.data_dir, status_allow=()),
            "apache",
            self.port,
            self.workdir / "root",
            "debian",
            address="127.0.0.1",
        )
        user, group = _unprivileged_user()
        loads = "".join(
            f"LoadModule {name}_module {modules}/mod_{name}.so\n"
            for name in ("mpm_event", "authz_core", "alias", "dir", "mime")
        )
        identity = f"User {user}\nGroup {group}\n" if os.geteuid() == 0 else ""
        types = "/etc/mime.types" if os.path.exists("/etc/mime.types") else "/dev/null"
        conf = self.workdir / "apache.conf"
        conf.write_text(f"""ServerRoot "{self.workdir}"
ServerName 127.0.0.1
PidFile "{self.workdir}/apache.pid"
DefaultRuntimeDir "{self.workdir}"
ErrorLog "{self.workdir}/error.log"
LogLevel warn
{loads}{identity}TypesConfig {types}
LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{{Referer}}i\\" \\"%{{User-Agent}}i\\"" combined
CustomLog "{self.access_log}" combined
<Directory />
    AllowOverride None
    Require all denied
</Directory>
Include "{written[0]}"
""")
        self._start([binary, "-f", str(conf), "-DFOREGROUND"])
        return self


BACKENDS = {"pum": PumServe, "apache": Apache, "nginx": Nginx}


class SwitchingRelay:
    """A TCP relay in front of a backend that calls `on_download` once, in the middle of the first full
    (not ranged) GET of `path`: after the first chunk of its answer went to the client."""

    def __init__(self, backend_port: int, path: str, on_download) -> None:
        self.backend_port = backend_port
        self.trigger = f"GET {path} ".encode()
        self.on_download = on_download
        self.fired = False
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", self.backend_port)) as upstream:
            armed = False

            def to_backend() -> None:
                nonlocal armed
                try:
                    while data := client.recv(65536):
                        if data.startswith(self.trigger) and b"\r\nrange:" not in data.lower():
                            armed = True
                        upstream.sendall(data)
                    upstream.shutdown(socket.SHUT_WR)
                except OSError:
                    pass  # the other direction ended and closed both sockets

            threading.Thread(target=to_backend, daemon=True).start()
            try:
                while data := upstream.recv(4096):
                    client.sendall(data)
                    if armed and not self.fired:
                        self.fired = True
                        self.on_download()
                        time.sleep(0.2)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
