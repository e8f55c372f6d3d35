"""What `pum import` refuses, before anything is written: unsafe member names, links, devices, VDF names."""

from __future__ import annotations

import os
import tarfile

import pytest

from pum.errors import ExitStatus

from .archives import tar_member, write_tgz, write_tree, write_zip
from .conftest import local_area, serial


def assert_nothing_written(conf, before_serial: int = 1) -> None:
    assert serial(conf) == before_serial
    assert not (local_area(conf) / "index.json").exists()
    trees = local_area(conf) / "trees"
    assert not trees.exists() or not any(trees.iterdir())


def test_zip_slip_absolute_and_symlink_members_are_all_refused_by_name(served, pum, tmp_path):
    conf = served()
    archive = write_zip(
        tmp_path / "hostile.zip",
        {"ibm/power/ok.txt": b"fine\n", "../../etc/x": b"owned\n", "/etc/cron.d/x": b"owned\n"},
        symlinks={"ibm/power/link": "/etc/shadow"},
        dirs=False,
    )
    result = pum("--config", conf, "import", archive)
    assert result.code == ExitStatus.VERIFY, result
    assert "nothing imported" in result.err
    for member in ("'../../etc/x'", "'/etc/cron.d/x'", "'ibm/power/link' is a symbolic link"):
        assert member in result.err
    assert_nothing_written(conf)
    assert not (tmp_path / "etc").exists()


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        (tar_member("pkg/link", tarfile.SYMTYPE, "/etc/passwd"), "symbolic link to '/etc/passwd'"),
        (tar_member("pkg/hard", tarfile.LNKTYPE, "pkg/ok.txt"), "hard link to 'pkg/ok.txt'"),
        (tar_member("pkg/null", tarfile.CHRTYPE), "a device file"),
        (tar_member("pkg/fifo", tarfile.FIFOTYPE), "a FIFO"),
        (tar_member("pkg/../../x", tarfile.DIRTYPE), "'..' component"),
    ],
    ids=["symlink", "hardlink", "device", "fifo", "dotdot-directory"],
)
def test_tar_members_that_are_not_plain_files_are_refused(served, pum, tmp_path, member, expected):
    conf = served()
    archive = write_tgz(tmp_path / "hostile.tar.gz", {"pkg/ok.txt": b"fine\n"}, [member])
    result = pum("--config", conf, "import", archive)
    assert result.code == ExitStatus.VERIFY, result
    assert expected in result.err
    assert_nothing_written(conf)


def test_a_directory_holding_a_symlink_is_refused(served, pum, tmp_path):
    conf = served()
    tree = write_tree(tmp_path / "tree", {"ibm/power/ok.txt": b"fine\n"})
    os.symlink("/etc", tree / "ibm" / "etc")
    result = pum("--config", conf, "import", tree)
    assert result.code == ExitStatus.VERIFY, result
    assert "'ibm/etc' is a symbolic link" in result.err
    assert_nothing_written(conf)


@pytest.mark.parametrize(
    "name", ["test.cvd", "dns.txt", "test-4.cdiff", "test-4.cdiff.sign", "mirror/daily.cvd", "main.cld"]
)
def test_content_that_would_shadow_a_vdf_file_is_refused(served, pum, tmp_path, name):
    conf = served()
    cvd_before = (conf.parent / "www" / "pum" / "test.cvd").read_bytes()
    result = pum("--config", conf, "import", write_zip(tmp_path / "vdf.zip", {name: b"not a database\n"}))
    assert result.code == ExitStatus.VERIFY, result
    assert f"'{name}'" in result.err and "VDF file" in result.err or "version record" in result.err
    assert_nothing_written(conf)
    assert (conf.parent / "www" / "pum" / "test.cvd").read_bytes() == cvd_before


def test_dot_files_and_the_release_manifest_are_refused(served, pum, tmp_path):
    conf = served()
    result = pum(
        "--config",
        conf,
        "import",
        write_zip(tmp_path / "dot.zip", {".pum/manifest.json": b"{}", "a/.x": b""}),
    )
    assert result.code == ExitStatus.VERIFY, result
    assert "'.pum/manifest.json': a dot-file" in result.err and "'a/.x': a dot-file" in result.err
    assert_nothing_written(conf)


def test_a_member_twice_or_a_file_where_a_directory_is_needed_is_refused(served, pum, tmp_path):
    conf = served()
    archive = tmp_path / "twice.tgz"
    write_tgz(archive, {"a/b": b"1", "./a/b": b"2", "c": b"file", "c/d": b"below a file"})
    result = pum("--config", conf, "import", archive)
    assert result.code == ExitStatus.VERIFY, result
    assert "a/b appears twice" in result.err
    assert "'c/d' needs c/ to be a directory" in result.err
    assert_nothing_written(conf)


def test_a_dest_outside_the_tree_is_refused(served, pum, tmp_path):
    conf = served()
    result = pum("--config", conf, "import", write_zip(tmp_path / "a.zip", {"x": b"x"}), "--dest", "../up")
    assert result.code == ExitStatus.VERIFY, result
    assert "--dest '../up'" in result.err
    assert_nothing_written(conf)


def test_something_not_an_archive_is_refused(served, pum, tmp_path):
    conf = served()
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    result = pum("--config", conf, "import", text)
    assert result.code == ExitStatus.VERIFY and "expected .zip, .tar.gz/.tgz or a directory" in result.err
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK not really")
    result = pum("--config", conf, "import", broken)
    assert result.code == ExitStatus.VERIFY and "not a readable zip archive" in result.err
    assert_nothing_written(conf)


def test_import_is_refused_while_publishing_is_held(served, pum, tmp_path):
    conf = served()
    assert pum("--config", conf, "hold", "--reason", "suspect daily").code == 0
    result = pum("--config", conf, "import", write_zip(tmp_path / "a.zip", {"x": b"x"}))
    assert result.code == ExitStatus.STORE and "publishing is held: suspect daily" in result.err
    assert_nothing_written(conf)


def test_a_member_clashing_with_earlier_local_content_is_refused(served, pum, tmp_path):
    conf = served()
    assert pum("--config", conf, "import", write_zip(tmp_path / "a.zip", {"ibm/power/x": b"x"})).code == 0
    result = pum("--config", conf, "import", write_zip(tmp_path / "b.zip", {"ibm/power": b"a file"}))
    assert result.code == ExitStatus.VERIFY, result
    assert "member 'ibm/power' clashes with the local file 'ibm/power/x'" in result.err
    assert serial(conf) == 2
