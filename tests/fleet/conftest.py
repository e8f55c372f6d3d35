"""Fixtures of the fleet suite: a release tree served by `pum serve` or nginx (the deployed config), and
the pum.conf of the PUM whose fleet is read from that server's access log."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import write_config
from serve.backends import Backend, Nginx, PumServe, world_readable_dir
from serve.releases import ReleaseTree

from pum.deploy.web import write_web_config

SERVERS = {"pum": PumServe, "nginx": Nginx}


@pytest.fixture
def tree() -> Iterator[ReleaseTree]:
    base = world_readable_dir("pum-fleet-tree-")
    yield ReleaseTree(base)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=sorted(SERVERS))
def server(request: pytest.FixtureRequest, tree: ReleaseTree) -> Iterator[Backend]:
    """`pum serve` or nginx over `tree`, started once a first release is published."""
    tree.serve(3)
    workdir = world_readable_dir(f"pum-fleet-{request.param}-")
    backend = SERVERS[request.param](tree, workdir).start()
    yield backend
    backend.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def fleet_conf(tmp_path: Path, tree: ReleaseTree, server: Backend) -> Callable[..., Path]:
    """pum.conf of the PUM serving `tree`: its own access log when `pum serve` writes it, else
    `client_logs` naming nginx's."""

    def make(**keys: object) -> Path:
        logs: dict[str, object] = (
            {"access_log": server.access_log}
            if isinstance(server, PumServe)
            else {"access_log": tmp_path / "no-pum-serve.log", "client_logs": server.access_log}
        )
        return write_config(
            tmp_path / "main",
            update_servers="127.0.0.1:9",
            docroot=tree.docroot,
            data_dir=tree.data_dir,
            **{**logs, **keys},
        )

    return make


# The log format the admin guide gives for nginx ("Is my fleet up to date?"): combined, then the
# If-Modified-Since freshclam sends (its copy's build time).
FLEET_LOG_FORMAT = (
    'log_format fleet \'$remote_addr - $remote_user [$time_local] "$request" $status '
    '$body_bytes_sent "$http_referer" "$http_user_agent" "$http_if_modified_since"\';'
)


@pytest.fixture
def nginx_with_ims(tree: ReleaseTree, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """nginx with `pum deploy nginx`'s config, logging in the guide's `fleet` format."""
    import serve.backends

    def write_with_fleet_log(*args: object, **kwargs: object) -> list[Path]:
        written = write_web_config(*args, **kwargs)
        text = written[0].read_text()
        logged = text.replace("server {", f"server {{\n    access_log {workdir / 'access.log'} fleet;", 1)
        written[0].write_text(f"{FLEET_LOG_FORMAT}\n{logged}")
        return written

    tree.serve(3)
    workdir = world_readable_dir("pum-fleet-nginx-ims-")
    monkeypatch.setattr(serve.backends, "write_web_config", write_with_fleet_log)
    backend = Nginx(tree, workdir).start()
    yield backend
    backend.stop()
    shutil.rmtree(workdir, ignore_errors=True)
