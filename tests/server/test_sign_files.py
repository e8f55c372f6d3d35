"""Detached `.sign` files (ClamAV >= 1.5) in server mode and `pum verify`: each is checked over the file it
signs and chained to a pinned ClamAV root, and a bad one is refused like a bad CVD."""

from __future__ import annotations

import shutil

import pytest
from upstream import TESTDATA

from pum.errors import ExitStatus

GARBAGE = b"<html><body>Not Found</body></html>\n"


def test_the_upstreams_sign_files_are_verified_and_served(upstream_tree, upstream, pum_conf, pum):
    upstream_tree.publish(3)
    conf = pum_conf()
    assert pum("--config", conf, "run").code == 0
    upstream_tree.publish(4)
    assert pum("--config", conf, "run").code == 0
    served = conf.parent / "www" / "pum"
    for name in ("test-4.cvd.sign", "test-4.cdiff.sign"):
        assert (served / name).read_bytes() == (TESTDATA / name).read_bytes()
    assert pum("--config", conf, "verify").code == 0


@pytest.mark.parametrize(
    ("sign", "expected"),
    [(GARBAGE, "not a .sign file"), ((TESTDATA / "test-2.cvd.sign").read_bytes(), "over other bytes")],
    ids=["garbage", "a .sign of another file"],
)
def test_a_bad_sign_file_upstream_fails_the_run_and_nothing_is_published(
    upstream_tree, upstream, pum_conf, pum, sign, expected
):
    upstream_tree.publish(3)
    (upstream_tree.root / "test-3.cvd.sign").write_bytes(sign)
    conf = pum_conf()
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.VERIFY, result
    assert f"{upstream.url('test-3.cvd.sign')}: refused: test-3.cvd.sign" in result.err
    assert expected in result.err
    assert not (conf.parent / "www" / "pum").exists()


def test_a_bad_cdiff_sign_file_is_refused_too(upstream_tree, upstream, pum_conf, pum):
    upstream_tree.publish(3)
    conf = pum_conf()
    assert pum("--config", conf, "run").code == 0
    upstream_tree.publish(4)
    shutil.copyfile(TESTDATA / "test-3.cdiff.sign", upstream_tree.root / "test-4.cdiff.sign")
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.VERIFY, result
    assert "test-4.cdiff.sign: refused: test-4.cdiff.sign:2: the signature is over other bytes" in result.err


def test_only_the_production_root_is_trusted_by_default(upstream_tree, upstream, pum_conf, pum):
    upstream_tree.publish(3)
    conf = pum_conf(trust_test_root="no")
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.VERIFY, result
    assert "does not chain to a pinned ClamAV root" in result.err


def test_an_older_upstream_cvd_is_taken_only_with_allow_downgrade(upstream_tree, upstream, pum_conf, pum):
    upstream_tree.publish(4)
    conf = pum_conf()
    assert pum("--config", conf, "run").code == 0
    upstream_tree.publish(3)
    assert pum("--config", conf, "run").code == 0
    served = conf.parent / "www" / "pum"
    assert (served / "test.cvd").read_bytes() == (TESTDATA / "test-4.cvd").read_bytes()
    assert pum("--config", conf, "run", "--allow-downgrade").code == 0
    assert (served / "test.cvd").read_bytes() == (TESTDATA / "test-3.cvd").read_bytes()
    log = (conf.parent / "log" / "pum.log").read_text()
    assert "test: upstream is behind (3 < 4), taking 3 (--allow-downgrade)" in log
    assert (served / "test-3.cvd.sign").exists() and not (served / "test-4.cvd.sign").exists()


def _publish_by_hand(conf, files: dict[str, bytes]) -> None:
    """A release holding `files` published past PUM's checks (as an older PUM would have)."""
    from pum.config import load_config
    from pum.store import Store

    store = Store(load_config(conf))
    staging = store.begin()
    staging.start_from_current()
    for relpath, data in files.items():
        staging.write_bytes(relpath, data)
    store.publish(staging)
    shutil.rmtree(store.staging_root)


@pytest.mark.parametrize(
    ("relpath", "data", "expected"),
    [
        ("test-6.cvd.sign", GARBAGE, "test-6.cvd.sign: signature check failed: test-6.cvd.sign: not a .sign"),
        ("test-6.cvd.sign", (TESTDATA / "test-5.cvd.sign").read_bytes(), "over other bytes"),
        ("test.cld", b"stripped", "test.cld: a .cld is never served"),
        ("mirror/daily.cvd", (TESTDATA / "test-6.cvd").read_bytes(), "a VDF name below the root"),
    ],
    ids=["garbage sign", "sign of another file", "cld", "vdf name in a subdirectory"],
)
def test_pum_verify_flags_what_no_run_would_have_served(
    upstream_tree, upstream, pum_conf, pum, relpath, data, expected
):
    upstream_tree.publish(6)
    conf = pum_conf()
    assert pum("--config", conf, "run").code == 0
    _publish_by_hand(conf, {relpath: data})
    result = pum("--config", conf, "verify")
    assert result.code == ExitStatus.VERIFY, result
    assert expected in result.out


@pytest.mark.parametrize(
    ("relpath", "problem"),
    [
        ("test.cvd", None),
        ("daily-27748.cdiff", None),
        ("daily-27748.cvd.sign", None),
        ("daily-27748.cdiff.sign", None),
        ("dns.txt", None),
        ("custom.ndb", None),  # plain-text databases are operator content (DatabaseCustomURL)
        ("ibm/power/module.bin", None),
        ("daily.cld", "a .cld is never served"),
        ("daily.cud", "a .cud"),
        ("Test.cvd", "a CVD is named <db>.cvd"),
        ("daily.cdiff", "a CDIFF is named <db>-<N>.cdiff"),
        ("daily.cvd.sign", "a .sign is named"),
        ("daily-1.cld.sign", "a .sign is named"),
        ("mirror/daily.cvd", "a VDF name below the root"),
        ("a/dns.txt", "a VDF name below the root"),
        ("a/b/daily-2.cdiff.sign", "a VDF name below the root"),
    ],
)
def test_which_vdf_names_a_release_may_hold(relpath, problem):
    from pum.sync.vdfcheck import name_problem

    found = name_problem(relpath)
    assert (found is None) if problem is None else (found is not None and problem in found)
