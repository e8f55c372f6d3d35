"""Server mode, product lists: what is fetched, what is refused, what a release carries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from products.tree import POWER_LIST, md5_of
from pum.errors import ExitStatus

MODULE = "ibm/power/bin/proscand"
LIBRARY = "ibm/power/lib/libproscan.so"
POST_UPDATE = "ibm/power/post_update.sh"
ALL = [MODULE, LIBRARY, POST_UPDATE]


def served(conf: Path) -> Path:
    return conf.parent / "www" / "pum"


def manifest(conf: Path) -> dict:
    return json.loads((served(conf) / ".pum" / "manifest.json").read_text())


def run_log(conf: Path) -> str:
    return (conf.parent / "log" / "pum.log").read_text()


def test_first_run_releases_the_list_and_its_files_at_their_paths(product_tree, products_conf, pum):
    conf = products_conf()
    result = pum("--config", conf, "run")
    assert result.code == 0, result
    for path in [POWER_LIST, *ALL]:
        assert (served(conf) / path).read_bytes() == product_tree.read(path)
    files = manifest(conf)["files"]
    assert {POWER_LIST, *ALL, "test.cvd"} <= set(files)


def test_product_files_keep_the_upstream_last_modified(product_tree, products_conf, pum):
    product_tree.put(MODULE, "#!/bin/sh\necho proscand 1\n", mtime=1_600_000_000)
    conf = products_conf()
    assert pum("--config", conf, "run").code == 0
    assert int((served(conf) / MODULE).stat().st_mtime) == 1_600_000_000


def test_unchanged_list_costs_one_request_and_makes_no_release(product_tree, upstream, products_conf, pum):
    conf = products_conf()
    assert pum("--config", conf, "run").code == 0
    serial = manifest(conf)["serial"]
    upstream.clear()
    assert pum("--config", conf, "run").code == 0
    assert manifest(conf)["serial"] == serial
    product_requests = [r for r in upstream.requests if r.path.startswith("/ibm/")]
    assert [(r.path, r.status) for r in product_requests] == [(f"/{POWER_LIST}", 304)]
    assert "If-Modified-Since" in product_requests[0].headers


def test_changed_file_is_the_only_one_downloaded(product_tree, upstream, products_conf, pum):
    conf = products_conf()
    assert pum("--config", conf, "run").code == 0
    first = served(conf).resolve()
    product_tree.put(MODULE, "#!/bin/sh\necho proscand 2\n")
    product_tree.write_list(POWER_LIST, ALL, mtime=2_000_000_000)
    upstream.clear()
    assert pum("--config", conf, "run").code == 0
    downloaded = {r.path for r in upstream.requests if r.path.startswith("/ibm/") and r.status == 200}
    assert downloaded == {f"/{POWER_LIST}", f"/{MODULE}"}
    assert (served(conf) / MODULE).read_text() == "#!/bin/sh\necho proscand 2\n"
    assert (served(conf) / LIBRARY).samefile(first / LIBRARY)  # unchanged: a hard link, not a copy
    assert "release new products (release 2)" in run_log(conf)  # no VDF file changed


def test_file_no_longer_listed_leaves_the_release(product_tree, products_conf, pum):
    conf = products_conf()
    assert pum("--config", conf, "run").code == 0
    product_tree.write_list(POWER_LIST, [MODULE, POST_UPDATE], mtime=2_000_000_000)
    assert pum("--config", conf, "run").code == 0
    assert not (served(conf) / LIBRARY).exists()
    assert LIBRARY not in manifest(conf)["files"]
    assert f"remove {LIBRARY} (no longer in a product list)" in run_log(conf)


def test_list_dropped_from_products_takes_its_files_with_it(product_tree, products_conf, pum):
    product_tree.put("ibm/x86/bin/proscand", "x86 module\n")
    product_tree.write_list("ibm/x86/PSHB03.lst", ["ibm/x86/bin/proscand"])
    conf = products_conf(products=f"{POWER_LIST},ibm/x86/PSHB03.lst")
    assert pum("--config", conf, "run").code == 0
    assert (served(conf) / "ibm/x86/bin/proscand").exists()
    conf = products_conf(products=POWER_LIST)
    assert pum("--config", conf, "run").code == 0
    files = manifest(conf)["files"]
    assert "ibm/x86/bin/proscand" not in files and "ibm/x86/PSHB03.lst" not in files
    assert MODULE in files


def test_an_upgrade_package_in_another_directory_travels_with_the_list(product_tree, products_conf, pum):
    package = product_tree.package("proscan-ibm-aix-6.0.6.9.ppc.tar.gz", {"install.sh": "exit 0\n"})
    product_tree.write_list(POWER_LIST, [*ALL, package])
    conf = products_conf()
    assert pum("--config", conf, "run").code == 0
    assert (served(conf) / package).read_bytes() == product_tree.read(package)


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (f"{md5_of(b'x')}  /etc/passwd", "absolute path"),
        (f"{md5_of(b'x')}  ../../etc/passwd", "'..' component"),
        (f"{md5_of(b'x')}  ibm/power/../../../etc/passwd", "'..' component"),
        (f"{md5_of(b'x')} ibm/power/one-blank-only", "expected '<32 hex md5>  <path>'"),
        ("not a checksum line", "expected '<32 hex md5>  <path>'"),
        (f"{md5_of(b'x')}  .pum/manifest.json", "a dot-file"),
        (f"{md5_of(b'x')}  test.cvd", "would shadow a VDF file (*.cvd)"),
        (f"{md5_of(b'x')}  ibm/power/daily.cvd", "would shadow a VDF file (*.cvd)"),
    ],
)
def test_hostile_list_entry_is_refused_with_list_and_line(product_tree, products_conf, pum, line, why):
    conf = products_conf()
    assert pum("--config", conf, "run").code == 0
    before = served(conf).resolve()
    product_tree.put(MODULE, "#!/bin/sh\necho proscand 2\n")
    product_tree.write_list(POWER_LIST, ALL, extra_lines=(line,), mtime=2_000_000_000)
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.VERIFY, result
    where = f"{POWER_LIST}:5:"  # a comment, three files, then the hostile line
    assert where in result.err and why in result.err, result.err
    assert where in run_log(conf)
    assert served(conf).resolve() == before
    assert (served(conf) / MODULE).read_text() == "#!/bin/sh\necho proscand 1\n"  # nothing of the list


def test_md5_mismatch_is_refused_and_the_last_release_stays(product_tree, upstream, products_conf, pum):
    conf = products_conf()
    assert pum("--config", conf, "run").code == 0
    before = served(conf).resolve()
    product_tree.put(MODULE, "#!/bin/sh\necho tampered\n")
    product_tree.write_list(POWER_LIST, ALL, md5s={MODULE: md5_of(b"what the vendor built")}, mtime=2e9)
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.VERIFY, result
    assert upstream.url(MODULE) in result.err and f"{POWER_LIST}:2" in result.err
    assert served(conf).resolve() == before
    downloads = conf.parent / "data" / "downloads" / "products"
    assert not any(p.is_file() and p.name == "proscand" for p in downloads.rglob("*"))


def test_listed_file_missing_upstream_fails_the_run(product_tree, products_conf, pum):
    product_tree.write_list(POWER_LIST, ALL)
    (product_tree.root / LIBRARY).unlink()
    result = pum("--config", products_conf(), "run")
    assert result.code == ExitStatus.UPSTREAM, result
    assert LIBRARY in result.err and f"{POWER_LIST}:3" in result.err


def test_two_lists_may_share_a_package_but_not_disagree_on_it(product_tree, products_conf, pum):
    package = product_tree.package("proscan-6.0.6.9.tar.gz", {"install.sh": "exit 0\n"})
    product_tree.write_list(POWER_LIST, [*ALL, package])
    product_tree.write_list("ibm/s390/PSHB08.lst", [package])
    conf = products_conf(products=f"{POWER_LIST},ibm/s390/PSHB08.lst")
    assert pum("--config", conf, "run").code == 0

    product_tree.write_list("ibm/s390/PSHB08.lst", [package], md5s={package: md5_of(b"other")}, mtime=2e9)
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.VERIFY
    assert "ibm/s390/PSHB08.lst:2" in result.err and f"{POWER_LIST}:5" in result.err


def test_interrupted_download_of_a_product_file_is_resumed(product_tree, upstream, products_conf, pum):
    big = bytes(range(256)) * 4096
    md5 = product_tree.put(LIBRARY, big)
    product_tree.write_list(POWER_LIST, ALL)
    conf = products_conf()
    part = conf.parent / "data" / "downloads" / "products" / md5 / (LIBRARY + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(big[:300_000])  # what a killed run left behind
    assert pum("--config", conf, "run").code == 0
    (request,) = [r for r in upstream.requests if r.path == f"/{LIBRARY}"]
    assert request.headers.get("Range") == "bytes=300000-"
    assert (served(conf) / LIBRARY).read_bytes() == big


def test_a_removed_directory_can_become_a_file(product_tree, products_conf, pum):
    conf = products_conf()
    assert pum("--config", conf, "run").code == 0
    (product_tree.root / LIBRARY).unlink()
    (product_tree.root / LIBRARY).parent.rmdir()
    product_tree.put("ibm/power/lib", b"now a file\n")
    product_tree.write_list(POWER_LIST, [MODULE, POST_UPDATE, "ibm/power/lib"], mtime=2e9)
    result = pum("--config", conf, "run")
    assert result.code == 0, result
    assert (served(conf) / "ibm/power/lib").read_bytes() == b"now a file\n"


def test_a_file_may_not_sit_below_another_product_file(product_tree, products_conf, pum):
    conf = products_conf()
    assert pum("--config", conf, "run").code == 0
    product_tree.write_list(POWER_LIST, ALL, extra_lines=(f"{md5_of(b'x')}  {MODULE}/inner",), mtime=2e9)
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.VERIFY
    assert f"{POWER_LIST}:5: {MODULE + '/inner'!r} would sit below {MODULE!r} ({POWER_LIST}:2)" in result.err


def test_finished_download_left_by_a_killed_run_is_not_fetched_again(
    product_tree, upstream, products_conf, pum
):
    conf = products_conf()
    kept = conf.parent / "data" / "downloads" / "products" / md5_of(product_tree.read(LIBRARY)) / LIBRARY
    kept.parent.mkdir(parents=True)
    kept.write_bytes(product_tree.read(LIBRARY))
    assert pum("--config", conf, "run").code == 0
    assert f"/{LIBRARY}" not in upstream.paths()
    assert (served(conf) / LIBRARY).read_bytes() == product_tree.read(LIBRARY)


def test_an_answer_in_an_encoding_not_asked_for_is_refused_naming_the_url(
    product_tree, upstream, products_conf, pum
):
    conf = products_conf()
    upstream.fault("ibm/power/PSHB06.lst", status=200, headers={"Content-Encoding": "gzip"})
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.UPSTREAM, result
    assert "PSHB06.lst: answered with Content-Encoding 'gzip', not asked for: refused" in result.err
