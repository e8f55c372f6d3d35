"""Fixtures for the product-list source: a product tree in the upstream's directory, and a pum.conf."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from products.tree import POWER_LIST, ProductTree


@pytest.fixture
def product_tree(upstream_tree) -> ProductTree:
    """Modules, a post_update.sh and the PSHB06 list, beside test.cvd version 3."""
    upstream_tree.publish(3)
    tree = ProductTree(upstream_tree.root)
    tree.put("ibm/power/bin/proscand", "#!/bin/sh\necho proscand 1\n")
    tree.put("ibm/power/lib/libproscan.so", b"\x7fELF fake library 1\n")
    tree.put("ibm/power/post_update.sh", "#!/bin/sh\necho post update\n")
    tree.write_list(
        POWER_LIST, ["ibm/power/bin/proscand", "ibm/power/lib/libproscan.so", "ibm/power/post_update.sh"]
    )
    return tree


@pytest.fixture
def products_conf(pum_conf) -> Callable[..., Path]:
    def make(**keys: object) -> Path:
        keys.setdefault("products", POWER_LIST)
        return pum_conf(**keys)

    return make
