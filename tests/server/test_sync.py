"""Server mode: versions, what is fetched, verification, release, as the protocol says."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from upstream import header_stime

from pum.errors import ExitStatus


def served(conf: Path) -> Path:
    return conf.parent / "www" / "pum"


def manifest(conf: Path) -> dict:
    return json.loads((served(conf) / ".pum" / "manifest.json").read_text())


def cvd_version(path: Path) -> int:
    return int(path.read_bytes()[:512].decode().split(":")[2])


def test_first_run_from_empty_releases_the_verified_cvd_and_the_patch_history(
    upstream_tree, upstream, pum_conf, pum
):
    upstream_tree.publish(3)
    conf = pum_conf()
    result = pum("--config", conf, "run")
    assert result.code == 0, result
    docroot = served(conf)
    assert docroot.is_symlink()
    assert cvd_version(docroot / "test.cvd") == 3
    assert (docroot / "test-3.cvd.sign").exists()
    assert (docroot / "dns.txt").read_text().strip() == (upstream_tree.root / "dns.txt").read_text().strip()
    files = manifest(conf)["files"]
    # the patches upstream still has, so that clients already behind need not fetch the whole CVD
    assert set(files) == {
        "test.cvd", "test-3.cvd.sign", "dns.txt",
        "test-2.cdiff", "test-2.cdiff.sign", "test-3.cdiff", "test-3.cdiff.sign",
        ".pum/client/proscanup.pyz",
    }  # fmt: skip


def test_first_run_history_stops_at_initial_cdiffs_and_at_a_gap(upstream_tree, upstream, pum_conf, pum):
    upstream_tree.publish(6)
    conf = pum_conf(initial_cdiffs=2)
    assert pum("--config", conf, "run").code == 0
    assert {name for name in manifest(conf)["files"] if name.endswith(".cdiff")} == {
        "test-5.cdiff",
        "test-6.cdiff",
    }
    assert "patches fetched down to 5 (initial_cdiffs=2)" in (conf.parent / "log" / "pum.log").read_text()

    (upstream_tree.root / "test-4.cdiff").unlink()
    # patches are asked for in one stream from the newest down, a window of about 2 * max_parallel
    # downloads (a patch and its .sign each) ahead of the one being checked: one at a time nothing below
    # the gap is asked for, and nothing below the gap is ever served
    below_the_gap = {"/test-3.cdiff", "/test-2.cdiff"}
    for name, parallel, asked_below in (("one", 1, set()), ("four", 4, below_the_gap)):
        fresh = pum_conf(name, max_parallel=parallel)
        upstream.clear()
        assert pum("--config", fresh, "run").code == 0
        assert {name for name in manifest(fresh)["files"] if name.endswith(".cdiff")} == {
            "test-5.cdiff",
            "test-6.cdiff",
        }
        below = {r.path for r in upstream.requests if r.path in below_the_gap}
        assert below <= asked_below


def test_a_forged_version_jump_costs_one_refused_download_not_a_request_per_number(
    upstream_tree, upstream, pum_conf, pum
):
    upstream_tree.publish(3)
    conf = pum_conf()
    assert pum("--config", conf, "run").code == 0
    # a forged 512-byte header (the version `test` is learnt from) claims a far newer version
    cvd = upstream_tree.root / "test.cvd"
    data = cvd.read_bytes()
    fields = data[:512].split(b":")
    fields[2] = b"1000000000"
    header = b":".join(fields)
    cvd.write_bytes(header.rstrip(b" ")[:512].ljust(512, b" ") + data[512:])
    upstream.clear()
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.VERIFY, result
    assert "test.cvd" in result.err and "refused" in result.err
    assert len(upstream.requests) < 10
    assert cvd_version(served(conf) / "test.cvd") == 3


def test_a_client_far_behind_gets_at_most_max_cdiffs_patches(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf(max_cdiffs=2, initial_cdiffs=0)
    upstream_tree.publish(1)
    assert pum("--config", conf, "run").code == 0
    upstream_tree.publish(6)
    upstream.clear()
    assert pum("--config", conf, "run").code == 0
    assert sorted(r.path for r in upstream.requests if r.path.endswith(".cdiff")) == [
        "/test-5.cdiff",
        "/test-6.cdiff",
    ]
    assert "patches fetched down to 5 (max_cdiffs=2)" in (conf.parent / "log" / "pum.log").read_text()


def test_cvd_mtime_is_its_header_build_time(upstream_tree, upstream, pum_conf, pum):
    upstream_tree.publish(3)
    conf = pum_conf()
    assert pum("--config", conf, "run").code == 0
    cvd = served(conf) / "test.cvd"
    assert int(cvd.stat().st_mtime) == header_stime(cvd)


def test_each_run_fetches_exactly_the_new_cdiffs_and_cvd(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    upstream_tree.publish(1)
    assert pum("--config", conf, "run").code == 0

    upstream_tree.publish(3)
    upstream.clear()
    assert pum("--config", conf, "run").code == 0
    fetched = {r.path for r in upstream.requests if r.status in (200, 206) and r.body_bytes > 512}
    assert fetched == {
        "/test-2.cdiff",
        "/test-3.cdiff",
        "/test.cvd",
        "/test-2.cdiff.sign",
        "/test-3.cdiff.sign",
        "/test-3.cvd.sign",
    }
    assert cvd_version(served(conf) / "test.cvd") == 3

    upstream_tree.publish(6)
    upstream.clear()
    assert pum("--config", conf, "run").code == 0
    cdiffs = sorted(r.path for r in upstream.requests if r.path.endswith(".cdiff"))
    assert cdiffs == ["/test-4.cdiff", "/test-5.cdiff", "/test-6.cdiff"]
    full_cvd = [r for r in upstream.requests if r.path == "/test.cvd" and not r.headers.get("Range")]
    assert len(full_cvd) == 1
    names = set(manifest(conf)["files"])
    assert {f"test-{n}.cdiff" for n in range(2, 7)} <= names
    assert "test-3.cvd.sign" not in names and "test-6.cvd.sign" in names


def test_run_with_nothing_new_downloads_no_payload_and_publishes_nothing(
    upstream_tree, upstream, pum_conf, pum
):
    upstream_tree.publish(6)
    conf = pum_conf()
    assert pum("--config", conf, "run").code == 0
    serial = manifest(conf)["serial"]
    upstream.clear()
    assert pum("--config", conf, "run").code == 0
    assert manifest(conf)["serial"] == serial
    # the version file, then the 512-byte header read for `test`, which a version record does not carry
    assert upstream.paths() == ["/dns.txt", "/test.cvd"]
    assert upstream.requests[1].headers.get("Range") == "bytes=0-511"
    assert upstream.payload_bytes() <= len((upstream_tree.root / "dns.txt").read_bytes()) + 512


def test_unchanged_files_are_hard_links_into_the_previous_release(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    upstream_tree.publish(2)
    assert pum("--config", conf, "run").code == 0
    first = served(conf).resolve()
    upstream_tree.publish(3)
    assert pum("--config", conf, "run").code == 0
    second = served(conf).resolve()
    assert first != second
    assert os.path.samefile(first / "test-2.cdiff", second / "test-2.cdiff")
    upstream_tree.publish(4)
    assert pum("--config", conf, "run").code == 0
    third = served(conf).resolve()
    assert os.path.samefile(second / "test-3.cdiff", third / "test-3.cdiff")


def test_flipped_byte_in_cvd_is_refused_and_old_release_stays(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    upstream_tree.publish(3)
    assert pum("--config", conf, "run").code == 0
    before = served(conf).resolve()
    upstream_tree.publish(6)
    cvd = upstream_tree.root / "test.cvd"
    data = bytearray(cvd.read_bytes())
    data[4000] ^= 0x01
    cvd.write_bytes(bytes(data))
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.VERIFY
    assert "test.cvd" in result.err and "refused" in result.err
    assert served(conf).resolve() == before
    assert cvd_version(served(conf) / "test.cvd") == 3
    log = (conf.parent / "log" / "pum.log").read_text()
    assert "the last good release stays served" in log


def test_truncated_cvd_is_refused(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    upstream_tree.publish(6)
    cvd = upstream_tree.root / "test.cvd"
    cvd.write_bytes(cvd.read_bytes()[:-100])
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.VERIFY
    assert not served(conf).exists()


def test_flipped_byte_in_cdiff_is_refused(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    upstream_tree.publish(3)
    assert pum("--config", conf, "run").code == 0
    upstream_tree.publish(4)
    cdiff = upstream_tree.root / "test-4.cdiff"
    data = bytearray(cdiff.read_bytes())
    data[100] ^= 0x20
    cdiff.write_bytes(bytes(data))
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.VERIFY
    assert "test-4.cdiff" in result.err
    assert cvd_version(served(conf) / "test.cvd") == 3


def test_next_run_recovers_after_upstream_is_fixed(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    upstream_tree.publish(6)
    cvd = upstream_tree.root / "test.cvd"
    good = cvd.read_bytes()
    cvd.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    assert pum("--config", conf, "run").code == ExitStatus.VERIFY
    cvd.write_bytes(good)
    assert pum("--config", conf, "run").code == 0
    assert cvd_version(served(conf) / "test.cvd") == 6


def test_missing_cdiff_upstream_is_logged_and_the_cvd_still_goes_out(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    upstream_tree.publish(3)
    assert pum("--config", conf, "run").code == 0
    upstream_tree.publish(5)
    (upstream_tree.root / "test-4.cdiff").unlink()
    assert pum("--config", conf, "run").code == 0
    log = (conf.parent / "log" / "pum.log").read_text()
    assert "test-4.cdiff: not on update server" in log
    names = set(manifest(conf)["files"])
    assert cvd_version(served(conf) / "test.cvd") == 5
    assert "test-5.cdiff" in names
    assert "test-4.cdiff" not in names and "test-3.cdiff" not in names  # below the gap: unusable


def test_cdiffs_older_than_retention_period_are_dropped(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf(retention_period=10)
    upstream_tree.publish(3)
    assert pum("--config", conf, "run").code == 0
    upstream_tree.publish(5)
    old = time.time() - 20 * 86400
    os.utime(upstream_tree.root / "test-4.cdiff", (old, old))
    assert pum("--config", conf, "run").code == 0
    names = set(manifest(conf)["files"])
    assert "test-5.cdiff" in names
    assert "test-4.cdiff" not in names and "test-4.cdiff.sign" not in names


def test_missing_sign_files_upstream_are_fine(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    upstream_tree.publish(6, signs=False)
    assert pum("--config", conf, "run").code == 0
    assert not any(name.endswith(".sign") for name in manifest(conf)["files"])


def test_dns_txt_is_in_every_release(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    upstream_tree.publish(2)
    assert pum("--config", conf, "run").code == 0
    upstream_tree.publish(3)
    assert pum("--config", conf, "run").code == 0
    for release in (conf.parent / "data" / "releases").iterdir():
        assert (release / "dns.txt").exists()
        assert "dns.txt" in json.loads((release / ".pum" / "manifest.json").read_text())["files"]


def test_validate_command_failure_blocks_the_release(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf(validate_command="test -e {dir}/no-such-file")
    upstream_tree.publish(3)
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.VERIFY
    assert "validate_command exited 1" in result.err
    assert not served(conf).exists()


def test_validate_command_sees_the_staged_tree(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf(validate_command="test -s {dir}/test.cvd")
    upstream_tree.publish(3)
    assert pum("--config", conf, "run").code == 0


def test_nothing_is_downloaded_twice_across_runs(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf(validate_command="test -e {dir}/allow")
    upstream_tree.publish(3)
    assert pum("--config", conf, "run").code == ExitStatus.VERIFY
    upstream.clear()
    conf.write_text(conf.read_text().replace("validate_command=test -e {dir}/allow\n", ""))
    assert pum("--config", conf, "run").code == 0
    assert not [r for r in upstream.requests if r.path == "/test.cvd" and not r.headers.get("Range")]


def test_a_cvd_kept_from_a_failed_run_is_not_reused_for_a_newer_version(
    upstream_tree, upstream, pum_conf, pum
):
    conf = pum_conf(validate_command="test -e {dir}/allow")
    upstream_tree.publish(5)
    assert pum("--config", conf, "run").code == ExitStatus.VERIFY
    upstream_tree.publish(6)
    conf.write_text(conf.read_text().replace("validate_command=test -e {dir}/allow\n", ""))
    assert pum("--config", conf, "run").code == 0
    assert cvd_version(served(conf) / "test.cvd") == 6


def test_upstream_going_backwards_publishes_no_older_dns_txt(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    upstream_tree.publish(4)
    assert pum("--config", conf, "run").code == 0
    ours = (served(conf) / "dns.txt").read_bytes()
    upstream_tree.publish(3)  # a mirror restored from an old copy: older CVD, older record time
    result = pum("--config", conf, "run")
    assert result.code == 0, result
    assert manifest(conf)["serial"] == 1
    assert (served(conf) / "dns.txt").read_bytes() == ours
    older, newer = header_stime(upstream_tree.root / "test.cvd"), int(ours.split(b":")[3])
    log = (conf.parent / "log" / "pum.log").read_text()
    assert f"dns.txt: upstream's record time {older} is older than ours {newer}, keeping ours" in log
    assert log.splitlines()[-1] == "no update"
