"""An upper without a manifest (an old PUM behind Apache with directory listings), copied by its index
pages like `wget -m -np`, fetching only what changed."""

from __future__ import annotations

import os
import re
import shutil
import time

import pytest
from upstream import TESTDATA, header_stime

from pum.errors import ExitStatus
from pum.sync.crawl import index_links

from .conftest import world_readable_dir

BASE = "http://127.0.0.1:8080/"


@pytest.fixture
def legacy_tree():
    """What the original product's wget -m left on an old PUM: flat VDF files and product directories."""
    root = world_readable_dir("pum-mirror-legacy-")
    shutil.copyfile(TESTDATA / "test-3.cvd", root / "test.cvd")
    os.utime(root / "test.cvd", (1_600_000_000, 1_600_000_000))  # not its build time: the copy fixes that
    for number in (2, 3):
        shutil.copyfile(TESTDATA / f"test-{number}.cdiff", root / f"test-{number}.cdiff")
    (root / "ibm" / "power").mkdir(parents=True)
    (root / "ibm" / "power" / "PSHB06.lst").write_text("# product list\n")
    (root / "ibm" / "power" / "module one.bin").write_bytes(b"module" * 1000)
    os.chmod(root / "ibm", 0o755)
    os.chmod(root / "ibm" / "power", 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def access(log) -> list[tuple[str, int]]:
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline:  # Apache writes its log line just after the answer
        text = log.read_text() if log.exists() else ""
        if text.endswith("\n"):
            break
        time.sleep(0.05)
    return [(m[1], int(m[2])) for m in re.finditer(r'"GET (\S+) [^"]*" (\d{3})', text)]


LEGACY_FILES = {
    "test.cvd",
    "test-2.cdiff",
    "test-3.cdiff",
    "ibm/power/PSHB06.lst",
    "ibm/power/module one.bin",
}


def test_upper_without_a_manifest_is_copied_by_its_index_pages(legacy_tree, apache_listing, sub, pum):
    address, log = apache_listing(legacy_tree)
    copy = sub("sub", address)
    result = pum("--config", copy.conf, "run")
    assert result.code == 0, result
    assert set(copy.files()) == LEGACY_FILES | {"dns.txt"}  # dns.txt made from the CVD headers
    for relpath in LEGACY_FILES:
        assert (copy.docroot / relpath).read_bytes() == (legacy_tree / relpath).read_bytes()
    cvd = copy.docroot / "test.cvd"
    assert int(cvd.stat().st_mtime) == header_stime(cvd)
    assert "copying the upper server by its index pages" in copy.log
    paths = [path for path, _ in access(log)]
    assert not [p for p in paths if "?C=" in p], "sort links of the listing were followed"
    assert paths.count("/") == 1 and paths.count("/ibm/") == 1 and paths.count("/ibm/power/") == 1


def test_index_copy_fetches_only_files_whose_last_modified_changed(legacy_tree, apache_listing, sub, pum):
    address, log = apache_listing(legacy_tree)
    copy = sub("sub", address)
    assert pum("--config", copy.conf, "run").code == 0
    serial = copy.serial()

    seen = len(access(log))
    assert pum("--config", copy.conf, "run").code == 0
    files = [(p, s) for p, s in access(log)[seen:] if not p.endswith("/") and not p.startswith("/.pum/")]
    assert sorted(s for _, s in files) == [304] * len(LEGACY_FILES)
    assert copy.serial() == serial

    module = legacy_tree / "ibm" / "power" / "module one.bin"
    module.write_bytes(b"version 2" * 1000)
    later = time.time() + 5
    os.utime(module, (later, later))
    seen = len(access(log))
    assert pum("--config", copy.conf, "run").code == 0
    fetched = [p for p, s in access(log)[seen:] if s == 200 and not p.endswith("/")]
    assert fetched == ["/ibm/power/module%20one.bin"]
    assert (copy.docroot / "ibm" / "power" / "module one.bin").read_bytes() == b"version 2" * 1000
    assert copy.serial() == serial + 1


def test_corrupt_cvd_on_a_legacy_upper_is_refused(legacy_tree, apache_listing, sub, pum):
    cvd = legacy_tree / "test.cvd"
    data = bytearray(cvd.read_bytes())
    data[3000] ^= 0x01
    cvd.write_bytes(bytes(data))
    address, _log = apache_listing(legacy_tree)
    copy = sub("sub", address)
    result = pum("--config", copy.conf, "run")
    assert result.code == ExitStatus.VERIFY
    assert f"http://{address}/test.cvd: refused" in result.err
    assert not copy.docroot.exists()


def test_upper_with_neither_manifest_nor_listing_is_an_upstream_error(tmp_path, sub, static, pum):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = pum("--config", sub("sub", static(empty).address).conf, "run")
    assert result.code == ExitStatus.UPSTREAM
    assert "no release manifest and no index page" in result.err


def test_index_links_keep_files_and_directories_below_the_base():
    page = """<html><body>
    <a href="?C=N;O=D">Name</a> <a href="/">Parent Directory</a> <a href="../">up</a>
    <a href="test.cvd">test.cvd</a> <a href="ibm/">ibm/</a> <a href="read%20me.txt">read me</a>
    <a href="http://elsewhere.example/x.cvd">x</a> <a href="https://127.0.0.1:8080/y">y</a>
    <a href="%2e%2e/etc/passwd">p</a> <a href="a%2Fb">s</a> <a href="#top">top</a> <a>no href</a>
    <a href=".htaccess">h</a> <a href=".pum/">p</a>
    </body></html>"""
    files, directories = index_links(page, BASE, BASE)
    assert files == ["test.cvd", "read me.txt"]
    assert directories == ["ibm"]


def test_index_links_of_a_subdirectory_page_are_relative_to_the_base():
    page = '<a href="../">Parent</a><a href="PSHB06.lst">l</a><a href="/ibm/power/x.bin">x</a>'
    files, directories = index_links(page, BASE + "ibm/power/", BASE)
    assert files == ["ibm/power/PSHB06.lst", "ibm/power/x.bin"]
    assert directories == ["ibm"]


def test_index_links_stay_under_a_base_path():
    base = "http://127.0.0.1:8080/pum/"
    page = '<a href="/">root</a><a href="/other/z.cvd">z</a><a href="/pum/a.cvd">a</a><a href="b/">b</a>'
    files, directories = index_links(page, base, base)
    assert files == ["a.cvd"]
    assert directories == ["b"]
