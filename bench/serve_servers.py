"""The three servers `bench/serve` compares, started on loopback over one release: `pum serve`, and nginx
and Apache with the configs `pum deploy` writes (plus a minimal main config of their own)."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from pum.deploy.web import write_web_config

_LAUNCH = """
import json, sys
if sys.argv[2:] == ["asyncio"]:
    sys.modules["uvloop"] = None  # as where uvloop does not install
from pathlib import Path
from pum.config import Config
from pum.serve import run_server
values = json.loads(sys.argv[1])
for key in ("docroot", "data_dir", "access_log"):
    values[key] = Path(values[key])
run_server(Config(log_rotate=True, log_generation=3, **values))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited at start (status {process.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} does not listen on 127.0.0.1:{port}")


class Server:
    """A started server: `url`, `pids()` of every process of it, `stop()`."""

    def __init__(
        self,
        name: str,
        workdir: Path,
        args: list[str],
        port: int,
        cpus: str | None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        workdir.mkdir(parents=True, exist_ok=True)
        if cpus is not None and shutil.which("taskset"):
            args = ["taskset", "-c", cpus, *args]
        self._output = open(workdir / "server.out", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(args, stdout=self._output, stderr=subprocess.STDOUT, env=env)
        _wait_for_port(port, self.process, name)

    def pids(self) -> list[int]:
        found = [self.process.pid]
        index = 0
        while index < len(found):
            pid = found[index]
            with contextlib.suppress(OSError):
                found += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
            index += 1
        return found

    def memory(self) -> tuple[int, int, int]:
        """(RSS, PSS, processes) of the whole server; PSS shares the pages forked workers have in common.

        The taskset wrapper execs the server, so its pid is the server's.
        """
        rss = pss = 0
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
        return rss, pss, len(pids)

    def cpu_seconds(self) -> float:
        """User and system CPU time the server's processes have used so far."""
        ticks = 0
        for pid in self.pids():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime (proc(5), after the name)
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._output.close()


def start_pum(
    docroot: Path, workdir: Path, workers: int, cpus: str | None, loop: str = "", source: str = ""
) -> Server:
    port = free_port()
    config = {
        "docroot": str(docroot),
        "data_dir": str(workdir),
        "listen": f"127.0.0.1:{port}",
        "workers": workers,
        "access_log": str(workdir / "access.log"),
    }
    name = "pum asyncio" if loop else "pum serve"
    env = None
    if source:
        # another checkout's `src` first on the path: that version of `pum serve`, in the same run
        name = f"pum@{source}"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")])),
        }
    args = [sys.executable, "-c", _LAUNCH, json.dumps(config), loop]
    return Server(name, workdir, args, port, cpus, env)


def start_pum_from(source: str) -> Callable[[Path, Path, int, str | None], Server]:
    """`pum serve` from the `src` directory of another checkout (`--servers "pum,pum@/tmp/old/src"`):
    before and after a change, measured side by side."""

    def start(docroot: Path, workdir: Path, workers: int, cpus: str | None) -> Server:
        return start_pum(docroot, workdir, workers, cpus, source=source)

    return start


def start_pum_asyncio(docroot: Path, workdir: Path, workers: int, cpus: str | None) -> Server:
    """`pum serve` on asyncio's own loop, as where uvloop (the `fast` extra) does not install."""
    return start_pum(docroot, workdir, workers, cpus, "asyncio")


def _web_config(server: str, docroot: Path, workdir: Path, port: int) -> Path:
    """The config `pum deploy` writes, on loopback, under `workdir`."""
    config = SimpleNamespace(docroot=docroot, data_dir=workdir, status_allow=())
    (written,) = write_web_config(config, server, port, workdir / "root", "debian", address="127.0.0.1")
    return written


def start_nginx(docroot: Path, workdir: Path, workers: int, cpus: str | None) -> Server:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    written = _web_config("nginx", docroot, workdir, port)
    temp = "".join(
        f"    {k}_temp_path {workdir}/{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = workdir / "nginx.conf"
    conf.write_text(f"""daemon off;
worker_processes {workers};
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {workdir}/access.log combined;
{temp}    include {written};
}}
""")
    return Server("nginx", workdir, [binary, "-c", str(conf), "-p", f"{workdir}/"], port, cpus)


def start_apache(docroot: Path, workdir: Path, workers: int, cpus: str | None) -> Server:
    binary = shutil.which("apache2") or shutil.which("httpd") or "/usr/sbin/apache2"
    modules = next(
        (d for d in ("/usr/lib/apache2/modules", "/usr/lib64/httpd/modules") if os.path.isdir(d)),
        "/usr/lib/apache2/modules",
    )
    port = free_port()
    written = _web_config("apache", docroot, workdir, port)
    loads = "".join(
        f"LoadModule {m}_module {modules}/mod_{m}.so\n"
        for m in ("mpm_event", "authz_core", "alias", "dir", "mime")
    )
    identity = ""
    if os.geteuid() == 0:
        user = "www-data" if _has_user("www-data") else "nobody"
        identity = f"User {user}\nGroup {'www-data' if user == 'www-data' else 'nogroup'}\n"
    conf = workdir / "apache.conf"
    conf.write_text(f"""ServerRoot "{workdir}"
ServerName 127.0.0.1
PidFile "{workdir}/apache.pid"
DefaultRuntimeDir "{workdir}"
ErrorLog "{workdir}/error.log"
LogLevel warn
{loads}{identity}TypesConfig /etc/mime.types
LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{{Referer}}i\\" \\"%{{User-Agent}}i\\"" combined
CustomLog "{workdir}/access.log" combined
MaxKeepAliveRequests 0
StartServers {workers}
ServerLimit {workers}
ThreadLimit 256
ThreadsPerChild 256
MaxRequestWorkers {256 * workers}
<Directory />
    AllowOverride None
    Require all denied
</Directory>
Include "{written}"
""")
    return Server("apache", workdir, [binary, "-f", str(conf), "-DFOREGROUND"], port, cpus)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


STARTERS = {
    "pum serve": start_pum,
    "pum asyncio": start_pum_asyncio,
    "nginx": start_nginx,
    "apache": start_apache,
}
