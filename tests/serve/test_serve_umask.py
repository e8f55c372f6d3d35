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


@pytest.mark.parametrize("before, after", [(0o700, 0o755), (0o750, 0o750), (0o711, 0o711)])
def test_only_a_data_dir_none_else_may_pass_is_opened(pum, upstream_tree, upstream, tmp_path, before, after):
    upstream_tree.publish(3)
    conf = write_config(tmp_path / "pum", update_servers=upstream.address)
    data_dir = tmp_path / "pum" / "data"
    data_dir.mkdir()
    data_dir.chmod(before)  # 0750: the operator's arrangement with the web server's group, left alone
    assert pum("--config", conf, "run").code == 0
    assert data_dir.stat().st_mode & 0o777 == after
