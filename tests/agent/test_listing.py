"""How proscanup reads a product list: versions, and which entry is a module, a script or a package."""

from __future__ import annotations

from pathlib import Path

import pytest

from pum.agent.listing import classify, parse_version
from pum.agent.proscan_conf import parse_agent_config
from pum.formats.productlist import ListEntry

MD5 = "d41d8cd98f00b204e9800998ecf8427e"


@pytest.mark.parametrize(
    ("older", "newer"),
    [("0.99.9", "0.101.5"), ("0.101.5", "0.101.10"), ("6.0.6.9", "6.0.6.10"), ("1.0", "1.0.1"), ("9", "10")],
)
def test_versions_compare_part_by_part_as_numbers(older: str, newer: str) -> None:
    assert parse_version(older) < parse_version(newer)


def test_trailing_zero_parts_do_not_make_a_version_newer() -> None:
    assert parse_version("1.0") == parse_version("1.0.0")


@pytest.mark.parametrize("text", ["", "1.x", "v1.2", "1..2", "1.2."])
def test_non_dotted_versions_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_version(text)


def test_entries_are_sorted_into_modules_script_packages_and_others() -> None:
    config = parse_agent_config(
        "[update.options]\nUpdateServer = pum\nProductList = ibm/power/PSHB06.lst\nInstallDir = /opt/p\n",
        Path("p.conf"),
    )
    paths = [
        "ibm/power/bin/proscand",
        "ibm/power/post_update.sh",
        "ibm/packages/proscan-ibm-aix-6.0.6.9.ppc.tar.gz",
        "ibm/packages/clamav-engine-0.101.5.tgz",
        "ibm/x86/bin/proscand",
        "ibm/power/bin/post_update.sh",
    ]
    plan = classify(config, [ListEntry(MD5, path, n) for n, path in enumerate(paths, start=1)])
    assert [(m.entry.path, m.target) for m in plan.modules] == [
        ("ibm/power/bin/proscand", Path("/opt/p/bin/proscand"))
    ]
    assert plan.post_update is not None and plan.post_update.path == "ibm/power/post_update.sh"
    assert [(p.name, p.version_text) for p in plan.packages] == [
        ("proscan-ibm-aix-6.0.6.9.ppc.tar.gz", "6.0.6.9"),
        ("clamav-engine-0.101.5.tgz", "0.101.5"),
    ]
    # another product's module, and a module that would overwrite the local post_update.sh
    assert [e.path for e in plan.others] == ["ibm/x86/bin/proscand", "ibm/power/bin/post_update.sh"]
