"""Fixtures of the local-content suite: a server-mode PUM that has published release 1 from the upstream."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest


def docroot(conf: Path) -> Path:
    return conf.parent / "www" / "pum"


def manifest(conf: Path) -> dict:
    return json.loads((docroot(conf) / ".pum" / "manifest.json").read_text())


def serial(conf: Path) -> int:
    return manifest(conf)["serial"]


def local_area(conf: Path) -> Path:
    return conf.parent / "data" / "local"


@pytest.fixture
def served(upstream_tree, upstream, pum_conf, pum) -> Callable[..., Path]:
    """served(**keys) -> pum.conf of a server-mode PUM already serving test.cvd version 3 (release 1)."""

    def make(name: str = "pum", **keys: object) -> Path:
        upstream_tree.publish(3)
        conf = pum_conf(name, **keys)
        result = pum("--config", conf, "run")
        assert result.code == 0, result
        return conf

    return make


UPSTREAM_POST_UPDATE = b"#!/bin/sh\necho post_update from the product server\n"


@pytest.fixture
def served_with_products(upstream_tree, pum_conf, pum) -> Callable[..., Path]:
    """A server-mode PUM whose release 1 also carries ibm/power/PSHB06.lst and its files from upstream."""
    from .archives import LIST_PATH, vendor_files

    def make(name: str = "pum", **keys: object) -> Path:
        upstream_tree.publish(3)
        for path, data in vendor_files(UPSTREAM_POST_UPDATE).items():
            target = upstream_tree.root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        conf = pum_conf(name, products=LIST_PATH, **keys)
        result = pum("--config", conf, "run")
        assert result.code == 0, result
        assert (docroot(conf) / "ibm" / "power" / "post_update.sh").read_bytes() == UPSTREAM_POST_UPDATE
        return conf

    return make
