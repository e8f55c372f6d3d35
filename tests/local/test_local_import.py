"""`pum import`: the vendor's ClamAV_ProScan.zip imported, served, carried by every later run."""

from __future__ import annotations

import hashlib
import subprocess

import httpx
from conftest import serve_directory

from pum.errors import ExitStatus

from .archives import (
    LIST_PATH,
    PACKAGE_PATH,
    md5,
    product_list,
    vendor_files,
    write_tgz,
    write_tree,
    write_zip,
)
from .conftest import docroot, local_area, manifest, serial


def test_vendor_zip_is_imported_published_and_served(served, pum, tmp_path):
    conf = served()
    files = vendor_files()
    archive = write_zip(tmp_path / "ClamAV_ProScan.zip", files)
    result = pum("--config", conf, "import", archive)
    assert result.code == 0, result
    for path, data in files.items():
        assert f"added     {path} (md5 {md5(data)})" in result.out
    assert "release 2 published" in result.out
    assert serial(conf) == 2
    recorded = manifest(conf)["files"]
    assert {*files, "test.cvd", "dns.txt"} <= set(recorded)
    for path, data in files.items():
        assert recorded[path]["sha256"] == hashlib.sha256(data).hexdigest()
    server = serve_directory(docroot(conf))
    try:
        with httpx.Client(base_url=server.url(), timeout=10) as client:
            for path, data in files.items():
                answer = client.get(path)
                assert answer.status_code == 200 and answer.content == data
            assert client.get("test.cvd").status_code == 200
    finally:
        server.stop()


def test_tar_gz_and_directory_import_under_dest(served, pum, tmp_path):
    conf = served()
    tgz = write_tgz(tmp_path / "extra.tgz", {"notes/readme.txt": b"hello\n"})
    assert pum("--config", conf, "import", tgz, "--dest", "vendor/extra").code == 0
    tree = write_tree(tmp_path / "tree", {"bin/tool.sh": b"#!/bin/sh\n", "README": b"read me\n"})
    result = pum("--config", conf, "import", tree, "--dest", "vendor")
    assert result.code == 0, result
    served_files = set(manifest(conf)["files"])
    assert {"vendor/extra/notes/readme.txt", "vendor/bin/tool.sh", "vendor/README"} <= served_files
    assert (docroot(conf) / "vendor" / "README").read_bytes() == b"read me\n"


def test_local_content_survives_the_next_server_mode_run(served, pum, tmp_path, upstream_tree):
    conf = served()
    files = vendor_files()
    assert pum("--config", conf, "import", write_zip(tmp_path / "v.zip", files)).code == 0
    upstream_tree.publish(4)
    result = pum("--config", conf, "run")
    assert result.code == 0, result
    assert serial(conf) == 3
    assert int((docroot(conf) / "test.cvd").read_bytes()[:512].decode().split(":")[2]) == 4
    for path, data in files.items():
        assert (docroot(conf) / path).read_bytes() == data
    assert "local content: 3 files (0 added, 0 replaced)" in (conf.parent / "log" / "pum.log").read_text()


def test_importing_the_same_content_again_publishes_nothing(served, pum, tmp_path):
    conf = served()
    archive = write_zip(tmp_path / "v.zip", vendor_files())
    assert pum("--config", conf, "import", archive).code == 0
    result = pum("--config", conf, "import", archive)
    assert result.code == 0, result
    assert "unchanged ibm/power/post_update.sh" in result.out
    assert "no new release: the served one already holds this content" in result.out
    assert serial(conf) == 2
    # the bytes are still kept once: the served file and the local copy are one inode
    served_file = docroot(conf) / "ibm" / "power" / "post_update.sh"
    local_copies = list((local_area(conf) / "trees").glob("*/ibm/power/post_update.sh"))
    assert [copy.stat().st_ino for copy in local_copies] == [served_file.stat().st_ino]


def test_a_listed_file_whose_md5_differs_is_refused_and_nothing_published(served, pum, tmp_path):
    conf = served()
    files = vendor_files()
    files["ibm/power/post_update.sh"] = b"#!/bin/sh\necho changed after the list was made\n"
    result = pum("--config", conf, "import", write_zip(tmp_path / "bad.zip", files))
    assert result.code == ExitStatus.VERIFY, result
    assert f"{LIST_PATH}:" in result.err and "ibm/power/post_update.sh has md5" in result.err
    assert "nothing published" in result.err
    assert serial(conf) == 1
    assert not (local_area(conf) / "index.json").exists()
    assert not any((local_area(conf) / "trees").iterdir())


def test_a_listed_file_that_is_missing_is_refused(served, pum, tmp_path):
    conf = served()
    files = vendor_files()
    del files[PACKAGE_PATH]
    result = pum("--config", conf, "import", write_zip(tmp_path / "bad.zip", files))
    assert result.code == ExitStatus.VERIFY, result
    assert f"{PACKAGE_PATH} is listed but not there" in result.err
    assert serial(conf) == 1


def test_a_list_may_name_files_the_release_already_has(served, pum, tmp_path):
    conf = served()
    cvd = (docroot(conf) / "test.cvd").read_bytes()
    files = {"extra/PSHB99.lst": product_list({"test.cvd": cvd})}
    result = pum("--config", conf, "import", write_zip(tmp_path / "list.zip", files))
    assert result.code == 0, result


def test_a_tarball_made_with_tar_c_dir_dot_is_imported(served, pum, tmp_path):
    conf = served()
    files = vendor_files()
    tree = write_tree(tmp_path / "tree", files)
    archive = tmp_path / "ClamAV_ProScan.tar.gz"
    subprocess.run(["tar", "czf", str(archive), "-C", str(tree), "."], check=True)
    result = pum("--config", conf, "import", archive)
    assert result.code == 0, result
    for path, data in files.items():
        assert (docroot(conf) / path).read_bytes() == data
