"""Local content over product files: it wins (logged with both checksums), keeps winning, never clashes."""

from __future__ import annotations

import os
import time

from pum.errors import ExitStatus

from .archives import LIST_PATH, POST_UPDATE, md5, vendor_files, write_zip
from .conftest import UPSTREAM_POST_UPDATE, docroot, serial


def run_log(conf) -> str:
    return (conf.parent / "log" / "pum.log").read_text()


def test_imported_files_replace_product_files_and_both_md5s_are_printed(served_with_products, pum, tmp_path):
    conf = served_with_products()
    result = pum("--config", conf, "import", write_zip(tmp_path / "v.zip", vendor_files()))
    assert result.code == 0, result
    expected = f"replaced  ibm/power/post_update.sh (md5 {md5(UPSTREAM_POST_UPDATE)} -> {md5(POST_UPDATE)})"
    assert expected in result.out
    assert f"replaced  {LIST_PATH} (md5 " in result.out
    assert "unchanged ibm/packages/" in result.out
    assert expected in run_log(conf)
    assert (docroot(conf) / "ibm" / "power" / "post_update.sh").read_bytes() == POST_UPDATE


def test_local_content_keeps_winning_over_the_product_server_at_each_run(served_with_products, pum, tmp_path):
    conf = served_with_products()
    assert pum("--config", conf, "import", write_zip(tmp_path / "v.zip", vendor_files())).code == 0
    serials = []
    for _ in range(2):
        result = pum("--config", conf, "run")
        assert result.code == 0, result
        assert (docroot(conf) / "ibm" / "power" / "post_update.sh").read_bytes() == POST_UPDATE
        assert (docroot(conf) / LIST_PATH).read_bytes() == vendor_files()[LIST_PATH]
        serials.append(serial(conf))
    # the first run may re-record what the product source saw (.pum/products.json); then nothing changes
    assert serials[1] == serials[0]


def test_replacing_a_listed_file_without_its_list_warns_that_clients_will_refuse_it(
    served_with_products, pum, tmp_path
):
    conf = served_with_products()
    archive = write_zip(tmp_path / "only.zip", {"ibm/power/post_update.sh": POST_UPDATE})
    result = pum("--config", conf, "import", archive)
    assert result.code == 0, result
    assert f"warning: {LIST_PATH}:" in result.out
    assert "clients will refuse it until a matching list is imported too" in result.out


def test_a_local_file_where_the_release_has_a_directory_is_refused(served_with_products, pum, tmp_path):
    conf = served_with_products()
    result = pum("--config", conf, "import", write_zip(tmp_path / "b.zip", {"ibm/power": b"a file"}))
    assert result.code == ExitStatus.STORE, result
    assert "local file 'ibm/power' would replace the directory ibm/power/" in result.err
    result = pum("--config", conf, "import", write_zip(tmp_path / "c.zip", {f"{LIST_PATH}/x": b"below"}))
    assert result.code == ExitStatus.STORE, result
    assert f"needs {LIST_PATH}/ to be a directory" in result.err
    assert serial(conf) == 1


def test_a_product_file_that_local_content_replaces_is_not_downloaded_again(
    served_with_products, pum, tmp_path, upstream
):
    conf = served_with_products()
    assert pum("--config", conf, "import", write_zip(tmp_path / "v.zip", vendor_files())).code == 0
    upstream_list = upstream.root / LIST_PATH
    upstream.clear()
    for run in range(2):
        later = time.time() + 60 * (run + 1)  # the vendor republishes its list: answered 200, not 304
        os.utime(upstream_list, (later, later))
        assert pum("--config", conf, "run").code == 0
    assert f"/{LIST_PATH}" in upstream.paths()
    assert "/ibm/power/post_update.sh" not in upstream.paths()
    assert (docroot(conf) / "ibm" / "power" / "post_update.sh").read_bytes() == POST_UPDATE
    assert "ibm/power/post_update.sh: provided by local content" in run_log(conf)
