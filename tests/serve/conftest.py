"""Fixtures of the serving suite: release trees, and `pum serve`, nginx and Apache started on them."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest
from conftest import Reaper

from .backends import BACKENDS, Backend, PumServe, world_readable_dir
from .releases import ReleaseTree


@pytest.fixture(scope="session")
def shared_tree() -> Iterator[ReleaseTree]:
    base = world_readable_dir("pum-serve-shared-")
    yield ReleaseTree(base)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session", params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, shared_tree: ReleaseTree, reaper: Reaper) -> Iterator[Backend]:
    """Each of `pum serve`, Apache (with `pum deploy apache`'s config) and nginx, over one release tree.

    Tests publish the release they need first; the server must follow the docroot symlink.
    """
    workdir = world_readable_dir(f"pum-serve-{request.param}-")
    if not shared_tree.docroot.is_symlink():
        shared_tree.serve(6)
    server = BACKENDS[request.param](shared_tree, workdir).start()
    yield server
    assert server.process is not None
    reaper.stop(server.process, server.stop_signal, then=lambda: shutil.rmtree(workdir, ignore_errors=True))


@pytest.fixture
def tree() -> Iterator[ReleaseTree]:
    base = world_readable_dir("pum-serve-tree-")
    yield ReleaseTree(base)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def start_pum(tree: ReleaseTree) -> Iterator[Callable[..., PumServe]]:
    """start_pum(workers=1, tls=None, **config) -> a running `pum serve` over `tree`."""
    started: list[tuple[PumServe, object]] = []

    def start(**options: object) -> PumServe:
        if not tree.docroot.is_symlink():
            tree.serve(6)
        workdir = world_readable_dir("pum-serve-run-")
        server = PumServe(tree, workdir, **options).start()  # type: ignore[arg-type]
        started.append((server, workdir))
        return server

    yield start
    for server, workdir in started:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)  # type: ignore[arg-type]
