"""The whole chain on loopback: test upstream (VDF + product tree) -> pum run -> pum serve -> proscanup."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import (
    PumResult,
    free_port,
    in_process,
    require_program,
    running_pum_serve,
)
from products.conftest import product_tree, products_conf  # noqa: F401 - fixtures used here
from products.tree import POWER_LIST, ProductTree
from upstream import Upstream

MODULE = "ibm/power/bin/proscand"
LIBRARY = "ibm/power/lib/libproscan.so"
POST_UPDATE = "ibm/power/post_update.sh"


@dataclass
class Site:
    """The PUM the scanner hosts use: `publish()` runs `pum run`; `pum serve` serves each new release."""

    tree: ProductTree
    conf: Path
    address: str
    pum: Callable[..., PumResult]
    list_mtime: int = 1_900_000_000

    def publish(self, *paths: str, md5s: dict[str, str] | None = None) -> None:
        """Rewrite the list to name `paths` (default: the three power files) and release it."""
        self.tree.write_list(POWER_LIST, list(paths or (MODULE, LIBRARY, POST_UPDATE)), md5s=md5s)
        # a later mtime than the served copy, so that If-Modified-Since never hides a rewrite
        self.list_mtime += 10
        os.utime(self.tree.root / POWER_LIST, (self.list_mtime, self.list_mtime))
        result = self.pum("--config", self.conf, "run")
        assert result.code == 0, result


@pytest.fixture
def site(product_tree, products_conf, pum) -> Iterator[Site]:  # noqa: F811 - the imported fixtures
    port = free_port()
    conf = products_conf(listen=f"127.0.0.1:{port}")
    site = Site(product_tree, conf, f"127.0.0.1:{port}", pum)
    site.publish()
    with running_pum_serve(conf, port):
        yield site


@dataclass
class Host:
    """One scanner host: its install directory, its proscan.conf, where its marker files go."""

    root: Path
    conf: Path

    @property
    def install(self) -> Path:
        return self.root / "opt" / "proscan"

    @property
    def post_update(self) -> Path:
        return self.install / "bin" / "post_update.sh"

    @property
    def databases(self) -> Path:
        return self.root / "db"


@pytest.fixture
def host(tmp_path: Path, site: Site) -> Callable[..., Host]:
    freshclam = require_program("freshclam")

    def make(name: str = "host", **options: object) -> Host:
        root = tmp_path / name
        values: dict[str, object] = {
            "UpdateServer": site.address,
            "ProductList": POWER_LIST,
            "InstallDir": root / "opt" / "proscan",
            "StateDir": root / "var" / "proscanup",
            "DatabaseDir": root / "db",
            "Databases": "test",
            "Freshclam": freshclam,
            "CommandTimeout": 60,
            "ReloadApplication": "yes",
            "EngineDir": root / "usr" / "lib" / "clamav",  # never the real /usr/lib/clamav
        }
        values.update(options)
        conf = root / "proscan.conf"
        root.mkdir(parents=True, exist_ok=True)
        lines = ["[scanner]", "# the scanner's own settings; proscanup leaves them alone", "Threads = 4", ""]
        lines += ["[update.options]"] + [f"{k} = {v}" for k, v in values.items() if v is not None]
        conf.write_text("\n".join(lines) + "\n")
        (root / "opt" / "proscan" / "bin").mkdir(parents=True, exist_ok=True)
        return Host(root, conf)

    return make


@pytest.fixture
def static_pum(tmp_path: Path) -> Iterator[tuple[ProductTree, Upstream]]:
    """A plain static server (not a PUM: it serves any list a test writes, unchecked) over a product
    tree naming the power module; it records every request, query string included."""
    tree = ProductTree(tmp_path / "static")
    tree.put(MODULE, "#!/bin/sh\necho proscand\n")
    tree.write_list(POWER_LIST, [MODULE])
    server = Upstream(tree.root).start()
    yield tree, server
    server.stop()


@pytest.fixture(scope="session")
def proscanup_pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """proscanup.pyz as `pum` builds it for every release."""
    from pum.client_bundle import build_client

    return build_client(tmp_path_factory.mktemp("pyz") / "proscanup.pyz")


# The host-side suite runs three ways: the package's entry point, the single file on this Python without
# site-packages (proves: standard library only), and the single file on Debian's pypy3 (another Python).
RUNNERS = ("package", "pyz", "pypy3")


@pytest.fixture(params=RUNNERS)
def proscanup(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> Callable[..., PumResult]:
    """Run `proscanup`: proscanup("--config", path, "-V")."""
    if request.param == "package":
        from pum.agent.main import main

        return in_process(main, capsys)
    pyz = request.getfixturevalue("proscanup_pyz")
    interpreter = [sys.executable, "-I", "-S"] if request.param == "pyz" else [require_program("pypy3")]

    def invoke(*args: object) -> PumResult:
        done = subprocess.run(
            [*interpreter, str(pyz), *map(str, args)], capture_output=True, text=True, timeout=600
        )
        return PumResult(done.returncode, done.stdout, done.stderr)

    return invoke
