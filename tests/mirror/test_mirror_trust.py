"""The chain of trust in mirror mode: a sub serves only what it verified itself, by server mode's rules
(VDF names only at the root, each by its own signature, `.sign` files over their file, no downgrade)."""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile

import pytest
from conftest import run_freshclam
from upstream import TESTDATA

from pum.config import load_config
from pum.errors import ExitStatus
from pum.store import Store

from .conftest import publish_files, world_readable_dir

GENUINE = {"test.cvd": (TESTDATA / "test-6.cvd").read_bytes(), "dns.txt": b"x\n"}


def stripped_cld() -> bytes:
    """What the attack served as test.cld: the genuine version-6 header over a tar holding only COPYING
    and test.info (no signatures at all): freshclam 1.4 took it, and scanning was silently disabled."""
    cvd = (TESTDATA / "test-6.cvd").read_bytes()
    kept = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(gzip.decompress(cvd[512:]))) as source,
        tarfile.open(fileobj=kept, mode="w", format=tarfile.USTAR_FORMAT) as stripped,
    ):
        for member in source.getmembers():
            if member.name in ("COPYING", "test.info"):
                stripped.addfile(member, source.extractfile(member))
    return cvd[:512] + kept.getvalue()


def test_a_stripped_cld_from_the_upper_is_refused_and_freshclam_stays_on_the_genuine_cvd(
    tmp_path, sub, static, pum, pum_serve
):
    upper_root = publish_files(tmp_path / "upper", GENUINE)
    upper = static(upper_root)
    copy = sub("sub", upper.address)
    assert pum("--config", copy.conf, "run").code == 0
    serial = copy.serial()
    served = f"http://{pum_serve(copy).address}"
    client = tmp_path / "client"
    result = run_freshclam(tmp_path, served, client, private=True)
    assert "test.cvd updated (version: 6" in result.stdout, result.stdout + result.stderr

    publish_files(tmp_path / "upper", {"test.cld": stripped_cld()})
    result = pum("--config", copy.conf, "run")
    assert result.code == ExitStatus.VERIFY, result
    assert "test.cld: a .cld is never served" in result.err
    assert copy.serial() == serial and not (copy.docroot / "test.cld").exists()
    assert not [r for r in upper.requests if r.path == "/test.cld"]  # refused by name, never fetched

    result = run_freshclam(tmp_path, served, client, private=True)
    assert "test.cvd database is up-to-date (version: 6" in result.stdout, result.stdout + result.stderr
    assert (client / "test.cvd").read_bytes() == GENUINE["test.cvd"]
    assert not (client / "test.cld").exists()


@pytest.mark.parametrize(
    ("name", "sign", "trust_test_root", "expected"),
    [
        ("test-6.cvd.sign", b"<html><body>Not Found</body></html>\n", "yes", "not a .sign file"),
        (
            "test-6.cvd.sign",
            (TESTDATA / "test-5.cvd.sign").read_bytes(),
            "yes",
            "signature is over other bytes",
        ),
        (
            "test-5.cvd.sign",
            (TESTDATA / "test-5.cvd.sign").read_bytes(),
            "yes",
            "signs version 5 of test.cvd, which is at version 6",
        ),
        (
            "test-6.cvd.sign",
            (TESTDATA / "test-6.cvd.sign").read_bytes(),
            "no",
            "does not chain to a pinned ClamAV root",
        ),
    ],
    ids=["garbage", "a .sign of another file", "a .sign of a version not served", "test root not trusted"],
)
def test_a_bad_sign_file_from_the_upper_is_refused(
    tmp_path, sub, static, pum, name, sign, trust_test_root, expected
):
    upper_root = publish_files(tmp_path / "upper", {**GENUINE, name: sign})
    upper = static(upper_root)
    copy = sub("sub", upper.address, trust_test_root=trust_test_root)
    result = pum("--config", copy.conf, "run")
    assert result.code == ExitStatus.VERIFY, result
    assert f"{upper.url(name)}: refused: {name}" in result.err
    assert expected in result.err
    assert not copy.docroot.exists()


def test_a_bad_sign_file_the_sub_already_serves_is_checked_again(tmp_path, sub, static, pum):
    files = {**GENUINE, "test-6.cvd.sign": b"<html><body>Not Found</body></html>\n"}
    upper = static(publish_files(tmp_path / "upper", files, mtime=1_700_000_000))
    copy = sub("sub", upper.address)
    # as a PUM that did not check .sign files published it: the same records as the upper's
    store = Store(load_config(copy.conf))
    staging = store.begin()
    for relpath, data in files.items():
        staging.write_bytes(relpath, data, mtime=1_700_000_000)
    store.publish(staging)
    result = pum("--config", copy.conf, "run")
    assert result.code == ExitStatus.VERIFY, result
    assert f"{upper.url('test-6.cvd.sign')}: refused: test-6.cvd.sign: not a .sign file" in result.err
    assert not [r for r in upper.requests if r.path == "/test-6.cvd.sign"]  # carried, not fetched


def test_a_genuine_sign_file_is_copied(tmp_path, sub, static, pum):
    sign = (TESTDATA / "test-6.cvd.sign").read_bytes()
    upper_root = publish_files(tmp_path / "upper", {**GENUINE, "test-6.cvd.sign": sign})
    copy = sub("sub", static(upper_root).address)
    result = pum("--config", copy.conf, "run")
    assert result.code == 0, result
    assert (copy.docroot / "test-6.cvd.sign").read_bytes() == sign


def test_an_older_cvd_from_the_upper_is_refused_unless_the_operator_allows_the_downgrade(
    tmp_path, sub, static, pum
):
    upper_root = publish_files(tmp_path / "upper", GENUINE)
    copy = sub("sub", static(upper_root).address)
    assert pum("--config", copy.conf, "run").code == 0
    serial = copy.serial()
    publish_files(tmp_path / "upper", {"test.cvd": (TESTDATA / "test-5.cvd").read_bytes()})
    result = pum("--config", copy.conf, "run")
    assert result.code == ExitStatus.VERIFY, result
    assert "test.cvd is version 5, older than the version 6 we serve (a downgrade)" in result.err
    assert copy.serial() == serial

    result = pum("--config", copy.conf, "run", "--allow-downgrade")
    assert result.code == 0, result
    assert (copy.docroot / "test.cvd").read_bytes() == (TESTDATA / "test-5.cvd").read_bytes()
    assert "test.cvd is version 5, older than the version 6 we serve (a downgrade): accepted" in copy.log


@pytest.mark.parametrize(
    "relpath", ["mirror/test.cvd", "ibm/test-6.cdiff", "a/b/test-6.cvd.sign", "x/dns.txt"]
)
def test_vdf_names_below_the_root_of_the_upper_are_refused(tmp_path, sub, static, pum, relpath):
    data = (TESTDATA / "test-6.cvd").read_bytes()
    upper_root = publish_files(tmp_path / "upper", {**GENUINE, relpath: data})
    upper = static(upper_root)
    copy = sub("sub", upper.address)
    result = pum("--config", copy.conf, "run")
    assert result.code == ExitStatus.VERIFY, result
    assert f"refused: {relpath}: a VDF name below the root" in result.err
    assert not copy.docroot.exists()


@pytest.mark.parametrize("relpath", ["mirror/test.cvd", "test.cld"])
def test_vdf_names_a_crawled_upper_lists_are_refused_like_a_manifests(apache_listing, sub, pum, relpath):
    root = world_readable_dir("pum-mirror-trust-")
    try:
        shutil.copyfile(TESTDATA / "test-6.cvd", root / "test.cvd")
        (root / relpath).parent.mkdir(exist_ok=True)
        (root / relpath).parent.chmod(0o755)
        (root / relpath).write_bytes(stripped_cld() if relpath.endswith(".cld") else GENUINE["test.cvd"])
        (root / relpath).chmod(0o644)
        address, _log = apache_listing(root)
        copy = sub("sub", address)
        result = pum("--config", copy.conf, "run")
        assert result.code == ExitStatus.VERIFY, result
        assert f"http://{address}/: refused: {relpath}" in result.err
        assert not copy.docroot.exists()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_bad_sign_file_on_a_crawled_upper_is_refused(apache_listing, sub, pum):
    root = world_readable_dir("pum-mirror-trust-")
    try:
        shutil.copyfile(TESTDATA / "test-6.cvd", root / "test.cvd")
        shutil.copyfile(TESTDATA / "test-6.cdiff.sign", root / "test-6.cvd.sign")
        address, _log = apache_listing(root)
        copy = sub("sub", address)
        result = pum("--config", copy.conf, "run")
        assert result.code == ExitStatus.VERIFY, result
        assert f"http://{address}/test-6.cvd.sign: refused" in result.err
        assert "signature is over other bytes" in result.err
    finally:
        shutil.rmtree(root, ignore_errors=True)
