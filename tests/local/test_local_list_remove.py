"""`pum import --list` and `pum import --remove PATH`."""

from __future__ import annotations

import hashlib

from pum.errors import ExitStatus

from .archives import LIST_PATH, PACKAGE_PATH, POST_UPDATE, md5, vendor_files, write_zip
from .conftest import UPSTREAM_POST_UPDATE, docroot, local_area, manifest, serial


def test_list_shows_each_entry_with_size_and_checksums(served, pum, tmp_path):
    conf = served()
    assert "no local content" in pum("--config", conf, "import", "--list").out
    files = vendor_files()
    assert pum("--config", conf, "import", write_zip(tmp_path / "v.zip", files)).code == 0
    listing = pum("--config", conf, "import", "--list")
    assert listing.code == 0, listing
    for path, data in files.items():
        line = next(line for line in listing.out.splitlines() if line.endswith(f"  {path}"))
        assert str(len(data)) in line and md5(data) in line and hashlib.sha256(data).hexdigest() in line
    assert f"3 files, {sum(len(d) for d in files.values())} bytes" in listing.out


def test_remove_publishes_a_release_without_the_file(served, pum, tmp_path):
    conf = served()
    files = {"tools/a.sh": b"a\n", "tools/b.sh": b"b\n", "docs/readme": b"r\n"}
    assert pum("--config", conf, "import", write_zip(tmp_path / "v.zip", files)).code == 0
    result = pum("--config", conf, "import", "--remove", "tools/a.sh")
    assert result.code == 0, result
    assert f"removed   tools/a.sh (md5 {md5(files['tools/a.sh'])})" in result.out
    assert "release 3 published" in result.out
    assert not (docroot(conf) / "tools" / "a.sh").exists()
    assert {"tools/b.sh", "docs/readme"} <= set(manifest(conf)["files"])
    assert "tools/a.sh" not in pum("--config", conf, "import", "--list").out
    # and it stays out
    assert pum("--config", conf, "run").code == 0
    assert "tools/a.sh" not in manifest(conf)["files"]


def test_remove_of_a_directory_takes_every_file_under_it(served, pum, tmp_path):
    conf = served()
    files = {"tools/a.sh": b"a\n", "tools/sub/b.sh": b"b\n", "toolsx": b"kept\n"}
    assert pum("--config", conf, "import", write_zip(tmp_path / "v.zip", files)).code == 0
    assert pum("--config", conf, "import", "--remove", "tools/").code == 0
    assert set(manifest(conf)["files"]) & set(files) == {"toolsx"}
    assert not (docroot(conf) / "tools").exists()


def test_remove_of_a_path_that_is_not_local_content_is_an_error(served, pum):
    conf = served()
    result = pum("--config", conf, "import", "--remove", "test.cvd")
    assert result.code == ExitStatus.STORE and "test.cvd: not in the local content" in result.err
    assert serial(conf) == 1


def test_remove_of_a_file_a_local_list_names_is_refused(served, pum, tmp_path):
    conf = served()
    assert pum("--config", conf, "import", write_zip(tmp_path / "v.zip", vendor_files())).code == 0
    result = pum("--config", conf, "import", "--remove", PACKAGE_PATH)
    assert result.code == ExitStatus.VERIFY, result
    assert f"{LIST_PATH}:" in result.err and f"{PACKAGE_PATH} is listed but not there" in result.err
    assert serial(conf) == 2
    assert PACKAGE_PATH in pum("--config", conf, "import", "--list").out
    assert pum("--config", conf, "import", "--remove", "ibm").code == 0
    assert serial(conf) == 3 and not (docroot(conf) / "ibm").exists()
    assert not any((local_area(conf) / "trees").glob("*/ibm"))


def test_a_removed_replacement_gives_the_product_file_back_at_the_next_run(
    served_with_products, pum, tmp_path
):
    conf = served_with_products()
    archive = write_zip(tmp_path / "v.zip", {"ibm/power/post_update.sh": POST_UPDATE})
    assert pum("--config", conf, "import", archive).code == 0
    assert (docroot(conf) / "ibm" / "power" / "post_update.sh").read_bytes() == POST_UPDATE
    assert pum("--config", conf, "import", "--remove", "ibm/power/post_update.sh").code == 0
    assert not (docroot(conf) / "ibm" / "power" / "post_update.sh").exists()
    assert pum("--config", conf, "run").code == 0
    assert (docroot(conf) / "ibm" / "power" / "post_update.sh").read_bytes() == UPSTREAM_POST_UPDATE


def test_import_needs_exactly_one_of_archive_list_remove(served, pum, tmp_path):
    conf = served()
    assert pum("--config", conf, "import").code == ExitStatus.CONFIG
    assert pum("--config", conf, "import", "--list", "--remove", "x").code == ExitStatus.CONFIG
    assert pum("--config", conf, "import", "--list", "--dest", "x").code == ExitStatus.CONFIG
