"""The old habit (`cd /var/www/html && unzip ClamAV_ProScan.zip`) is caught: `pum verify` reports it and
`pum run` / `pum import` refuse to build on a release changed behind PUM's back."""

from __future__ import annotations

import os
import shutil
import zipfile

from upstream import header_stime

from pum.errors import ExitStatus

from .archives import vendor_files, write_zip
from .conftest import docroot, serial


def test_files_unzipped_into_the_served_tree_are_reported_and_block_the_next_run(served, pum, tmp_path):
    conf = served()
    archive = write_zip(tmp_path / "ClamAV_ProScan.zip", vendor_files())
    with zipfile.ZipFile(archive) as opened:
        opened.extractall(docroot(conf))  # what `cd <docroot> && unzip ClamAV_ProScan.zip` does

    verified = pum("--config", conf, "verify")
    assert verified.code == ExitStatus.VERIFY, verified
    assert "ibm/power/post_update.sh: not in the manifest" in verified.out

    for command in (("run",), ("import", archive)):
        refused = pum("--config", conf, *command)
        assert refused.code == ExitStatus.STORE, refused
        assert "was changed behind PUM's back" in refused.err
        assert f"{docroot(conf)}/ibm/packages/" in refused.err and "(and 2 more)" in refused.err
        assert "'pum import'" in refused.err and "'pum verify'" in refused.err
    assert serial(conf) == 1

    # the recovery the message gives: move the files out, then import them
    shutil.move(docroot(conf) / "ibm", tmp_path / "moved-out")
    assert pum("--config", conf, "verify").code == 0
    result = pum("--config", conf, "import", archive)
    assert result.code == 0, result
    assert pum("--config", conf, "run").code == 0


def test_a_served_file_modified_in_place_blocks_the_next_run(served, pum):
    conf = served()
    with open(docroot(conf) / "dns.txt", "a") as stream:
        stream.write("edited by hand\n")
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.STORE, result
    assert f"{docroot(conf)}/dns.txt: modified (size" in result.err
    assert serial(conf) == 1


def test_a_served_file_only_touched_keeps_its_content_and_gets_its_mtime_back(served, pum, upstream_tree):
    conf = served()
    cvd = docroot(conf) / "test.cvd"
    os.utime(cvd, (1_000_000_000, 1_000_000_000))
    upstream_tree.publish(4)
    result = pum("--config", conf, "run")
    assert result.code == 0, result
    assert serial(conf) == 2
    previous = conf.parent / "data" / "releases" / "1" / "test.cvd"
    assert int(previous.stat().st_mtime) == header_stime(
        previous
    )  # freshclam's If-Modified-Since works again
