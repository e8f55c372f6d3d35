"""Fixtures of the mirror suite: tiers of PUM (a main in server mode, subs in mirror mode), each with its
own pum.conf and directories and served on loopback; hand-made upper releases; Apache with listings."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import (
    free_port,
    require_program,
    running_pum_serve,
    serve_directory,
    stop_process,
    wait_for_port,
)
from conftest import write_config as _write_config
from upstream import Upstream

from pum.config import Config
from pum.store import Store


@dataclass
class Tier:
    """One PUM: its pum.conf and what it serves."""

    conf: Path

    @property
    def docroot(self) -> Path:
        return self.conf.parent / "www" / "pum"

    @property
    def data(self) -> Path:
        return self.conf.parent / "data"

    @property
    def log(self) -> str:
        return (self.conf.parent / "log" / "pum.log").read_text()

    def manifest(self) -> dict:
        return json.loads((self.docroot / ".pum" / "manifest.json").read_text())

    def serial(self) -> int:
        return self.manifest()["serial"]

    def files(self) -> dict:
        """The release's files a sub copies: PUM's own dot-files (.pum/products.json, the proscanup.pyz
        each PUM stages itself) are left out."""
        files = self.manifest()["files"]
        return {path: record for path, record in files.items() if not path.startswith(".")}

    def state(self) -> dict:
        return json.loads((self.data / "state" / "mirror.json").read_text())


@pytest.fixture
def main(pum_conf: Callable[..., Path]) -> Tier:
    """The main PUM, server mode, fed by the test upstream (`upstream_tree.publish(n)`)."""
    return Tier(pum_conf("main", listen=f"127.0.0.1:{free_port()}"))


@pytest.fixture
def sub(tmp_path: Path) -> Callable[..., Tier]:
    """sub(name, upper, ...) -> a PUM in mirror mode whose update servers are the uppers given."""

    def make(name: str, *uppers: str, **keys: object) -> Tier:
        keys.setdefault("listen", f"127.0.0.1:{free_port()}")
        return Tier(_write_config(tmp_path / name, mode="mirror", update_servers=",".join(uppers), **keys))

    return make


@pytest.fixture
def static() -> Iterator[Callable[[Tier | Path], Upstream]]:
    """static(tier) -> a recording static server over its docroot (follows each new release)."""
    started: list[Upstream] = []

    def start(what: Tier | Path) -> Upstream:
        server = serve_directory(what.docroot if isinstance(what, Tier) else what)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@dataclass
class PumServe:
    address: str
    access_log: Path

    def requests(self) -> list[tuple[str, int, int]]:
        """(path, status, body bytes) of each request, from the combined access log."""
        entries = []
        text = self.access_log.read_text() if self.access_log.exists() else ""
        for line in text.splitlines():
            match = re.search(r'"\S+ (\S+) [^"]*" (\d{3}) (\d+|-)', line)
            assert match, line
            entries.append((match[1], int(match[2]), 0 if match[3] == "-" else int(match[3])))
        return entries


@pytest.fixture
def pum_serve() -> Iterator[Callable[[Tier], PumServe]]:
    """pum_serve(tier) -> `pum serve` (a real subprocess) on the tier's `listen` address."""
    with ExitStack() as running:

        def start(tier: Tier) -> PumServe:
            listen = re.search(r"^listen=(.*)$", tier.conf.read_text(), re.M)
            assert listen, "the tier's pum.conf has no listen="
            host, port = listen[1].rsplit(":", 1)
            running.enter_context(running_pum_serve(tier.conf, int(port), host))
            return PumServe(listen[1], tier.conf.parent / "log" / "access.log")

        yield start


def publish_files(base: Path, files: dict[str, bytes | None], mtime: float | None = None) -> Path:
    """A hand-made upper: publish a PUM release under `base` holding `files` (None removes a path), on top
    of the previous one. Returns the docroot."""
    store = Store(Config(docroot=base / "www", data_dir=base / "data", keep_releases=10))
    staging = store.begin()
    staging.start_from_current()
    for relpath, data in files.items():
        if data is None:
            staging.remove(relpath)
        else:
            staging.write_bytes(relpath, data, mtime=mtime)
    store.publish(staging)
    shutil.rmtree(store.staging_root)
    return store.docroot


@pytest.fixture
def apache_listing() -> Iterator[Callable[[Path], tuple[str, Path]]]:
    """apache_listing(directory) -> (address, access log): real Apache 2.4 with `Options +Indexes` over a
    copy of nothing but `directory` itself (it must be readable by Apache's unprivileged user)."""
    binary = shutil.which("apache2") or require_program("apache2")
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(directory: Path) -> tuple[str, Path]:
        workdir = Path(tempfile.mkdtemp(prefix="pum-mirror-apache-"))
        workdir.chmod(0o755)
        port = free_port()
        modules = "/usr/lib/apache2/modules"
        loads = "".join(
            f"LoadModule {name}_module {modules}/mod_{name}.so\n"
            for name in ("mpm_event", "authz_core", "alias", "dir", "mime", "autoindex")
        )
        identity = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
        conf = workdir / "apache.conf"
        conf.write_text(f"""ServerRoot "{workdir}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{workdir}/apache.pid"
DefaultRuntimeDir "{workdir}"
ErrorLog "{workdir}/error.log"
LogLevel warn
{loads}{identity}TypesConfig /etc/mime.types
LogFormat "%h %l %u %t \\"%r\\" %>s %b" common
CustomLog "{workdir}/access.log" common
DocumentRoot "{directory}"
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory "{directory}">
    Options +Indexes +FollowSymLinks
    IndexOptions FancyIndexing
    Require all granted
</Directory>
""")
        process = subprocess.Popen(
            [binary, "-f", str(conf), "-DFOREGROUND"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        started.append((process, workdir))
        try:
            wait_for_port(port)
        except RuntimeError:
            stop_process(process)
            error = (workdir / "error.log").read_text() if (workdir / "error.log").exists() else ""
            raise RuntimeError(f"apache did not start: {process.stderr.read().decode()}{error}") from None
        return f"127.0.0.1:{port}", workdir / "access.log"

    yield start
    for process, workdir in started:
        stop_process(process)
        shutil.rmtree(workdir, ignore_errors=True)


def world_readable_dir(prefix: str) -> Path:
    """A temporary directory Apache's unprivileged user can read (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path
