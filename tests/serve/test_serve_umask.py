"""A release `pum run` made under a strict umask is still served by a web server's unprivileged workers."""

from __future__ import annotations

import os
import shutil
import urllib.request
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from conftest import write_config

from .backends import Nginx, world_readable_dir


@pytest.fixture
def strict_umask() -> Iterator[None]:
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.skipif(os.geteuid() != 0, reason="nginx's workers become another user only when started as root")
def test_a_release_made_under_umask_077_is_served_by_nginx(pum, upstream_tree, upstream, strict_umask):
    upstream_tree.publish(3)
    base = world_readable_dir("pum-umask-")
    try:
        conf = write_config(base / "pum", update_servers=upstream.address)
        (base / "pum").chmod(0o755)  # the operator's directory; www/ below it is PUM's to make
        assert pum("--config", conf, "run").code == 0
        tree = SimpleNamespace(docroot=base / "pum" / "www" / "pum", data_dir=base / "pum" / "data")
        workdir = world_readable_dir("pum-umask-nginx-")
        nginx = Nginx(tree, workdir).start()  # type: ignore[arg-type]
        try:
            for name in ("test.cvd", ".pum/manifest.json"):
                with urllib.request.urlopen(f"{nginx.url}/{name}", timeout=10) as answer:
                    assert answer.status == 200, name
        finally:
            nginx.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
