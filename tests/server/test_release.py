"""The release store and one run at a time: atomic switch, SIGKILL safety, lock, rollback, hold, log."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import pum_command
from upstream import TESTDATA

from pum.errors import ExitStatus
from pum.runlog import rotate_daily


def version_served(conf: Path) -> int:
    return int((conf.parent / "www" / "pum" / "test.cvd").read_bytes()[:512].decode().split(":")[2])


def start_run(conf: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*pum_command(), "--config", str(conf), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def test_sigkill_in_mid_download_leaves_the_served_tree_as_it_was(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    upstream_tree.publish(3)
    assert pum("--config", conf, "run").code == 0
    docroot = conf.parent / "www" / "pum"
    before_target = os.readlink(docroot)
    before_files = sorted(p.name for p in docroot.iterdir())
    upstream_tree.publish(6)
    # the CVD comes first, then the patches from the newest down (max_parallel at once): the last one hangs
    upstream.fault("test-4.cdiff", slow=30)
    process = start_run(conf)
    upstream.wait_for_start("test-4.cdiff", faulted=True)
    downloads = conf.parent / "data" / "downloads"
    wait_until(lambda: all((downloads / name).exists() for name in ("test-6.cdiff", "test-5.cdiff")))
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert os.readlink(docroot) == before_target
    assert sorted(p.name for p in docroot.iterdir()) == before_files
    assert version_served(conf) == 3
    upstream.faults.clear()
    upstream.clear()
    assert pum("--config", conf, "run").code == 0
    assert version_served(conf) == 6
    # what was fetched before the kill was kept, not fetched again
    assert [p for p in upstream.paths() if p.endswith(".cdiff")] == ["/test-4.cdiff"]
    assert not [r for r in upstream.requests if r.path == "/test.cvd" and not r.headers.get("Range")]


def test_a_second_run_while_one_holds_the_lock_exits_at_once(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    upstream_tree.publish(6)
    upstream.fault("test.cvd", slow=10, skip=1)
    first = start_run(conf)
    wait_until(
        lambda: (
            (conf.parent / "data" / "pum.lock").exists()
            and (conf.parent / "data" / "pum.lock").read_text().strip() != ""
        )
    )
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.LOCK_HELD
    assert f"another run (pid {first.pid}) holds the lock" in result.err
    first.send_signal(signal.SIGKILL)
    first.wait()
    upstream.faults.clear()
    assert pum("--config", conf, "run").code == 0  # the kernel dropped the dead run's lock


def test_rollback_serves_the_previous_release_and_holds(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    upstream_tree.publish(3)
    assert pum("--config", conf, "run").code == 0
    upstream_tree.publish(4)
    assert pum("--config", conf, "run").code == 0
    assert version_served(conf) == 4
    result = pum("--config", conf, "rollback")
    assert result.code == 0 and "held" in result.out
    assert version_served(conf) == 3
    upstream_tree.publish(5)
    assert pum("--config", conf, "run").code == 0
    assert version_served(conf) == 3
    assert "publishing is held" in (conf.parent / "log" / "pum.log").read_text()
    assert pum("--config", conf, "unhold").code == 0
    assert pum("--config", conf, "run").code == 0
    assert version_served(conf) == 5


def test_rollback_without_an_earlier_release_is_an_error(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    upstream_tree.publish(3)
    assert pum("--config", conf, "run").code == 0
    result = pum("--config", conf, "rollback")
    assert result.code == ExitStatus.STORE and "no earlier release" in result.err


def test_old_releases_are_pruned_to_keep_releases(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf(keep_releases=2)
    for version in (2, 3, 4, 5):
        upstream_tree.publish(version)
        assert pum("--config", conf, "run").code == 0
    releases = sorted(int(p.name) for p in (conf.parent / "data" / "releases").iterdir())
    assert releases == [3, 4]


def test_served_files_are_read_only(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    upstream_tree.publish(3)
    assert pum("--config", conf, "run").code == 0
    mode = (conf.parent / "www" / "pum" / "test.cvd").stat().st_mode
    assert mode & 0o222 == 0


def test_a_real_directory_at_docroot_is_not_overwritten(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    docroot = conf.parent / "www" / "pum"
    docroot.mkdir(parents=True)
    (docroot / "index.html").write_text("old site")
    upstream_tree.publish(3)
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.STORE
    assert "not the symlink PUM manages" in result.err
    assert (docroot / "index.html").read_text() == "old site"


def test_run_log_has_the_lines_operators_know(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    upstream_tree.publish(3)
    assert pum("--config", conf, "run").code == 0
    upstream_tree.publish(4)
    assert pum("--config", conf, "run").code == 0
    log = (conf.parent / "log" / "pum.log").read_text().splitlines()
    headers = [line for line in log if line.startswith("pum REV=") and line.endswith(" -----")]
    assert len(headers) == 2
    assert f"Read configuration file ({conf.resolve()})" in log
    assert f"check update host({upstream.address})" in log
    assert f"update server is {upstream.address}" in log
    assert any(line.startswith("Version: 1.4.3:62:27748:") for line in log)
    assert "FIELDS main=62 daily=27748 bytecode=336" in log
    assert "test old: 3 current: 4" in log
    assert any(line.startswith("download test-4.cdiff") for line in log)
    assert any(line.startswith("release new vdf") for line in log)


def test_log_rotates_daily_keeping_log_generation_generations(tmp_path):
    log = tmp_path / "pum.log"
    yesterday = time.time() - 86400
    for day in range(4):
        log.write_text(f"day {day}\n")
        os.utime(log, (yesterday, yesterday))
        assert rotate_daily(log, generations=2)
    assert log.read_text() == ""
    assert (tmp_path / "pum.log.1").read_text() == "day 3\n"
    assert (tmp_path / "pum.log.2").read_text() == "day 2\n"
    assert not (tmp_path / "pum.log.3").exists()


def test_log_does_not_rotate_twice_on_the_same_day(tmp_path):
    log = tmp_path / "pum.log"
    log.write_text("today\n")
    assert not rotate_daily(log, generations=5, today=dt.date.today())
    assert log.read_text() == "today\n"


def test_status_json_shows_versions_release_and_last_run(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    upstream_tree.publish(4)
    assert pum("--config", conf, "run").code == 0
    result = pum("--config", conf, "status", "--json")
    document = json.loads(result.out)
    assert document["versions"]["test"]["version"] == 4
    assert document["release"]["serial"] == 1
    assert document["last_run"]["result"] == "ok"
    assert document["last_run"]["upstream"] == upstream.address
    text = pum("--config", conf, "status").out
    assert "test: version 4" in text and "last run: ok" in text


def test_verify_passes_on_a_clean_release_and_names_a_changed_file(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    upstream_tree.publish(4)
    assert pum("--config", conf, "run").code == 0
    assert pum("--config", conf, "verify").code == 0
    served = conf.parent / "www" / "pum"
    target = served / "dns.txt"
    os.chmod(target, 0o644)
    target.write_text("tampered\n")
    (served / "extra.bin").write_bytes(b"x")
    (served / ".pum" / "changes" / "notes.json").write_bytes(b"{}")  # the changelog's names are digits only
    result = pum("--config", conf, "verify")
    assert result.code == ExitStatus.VERIFY
    assert "dns.txt: modified" in result.out
    assert "extra.bin: not in the manifest" in result.out
    assert ".pum/changes/notes.json: not in the manifest" in result.out
    assert ".pum/changes/1.json" not in result.out


def test_exit_statuses_are_distinct():
    assert len({ExitStatus.CONFIG, ExitStatus.LOCK_HELD, ExitStatus.UPSTREAM, ExitStatus.VERIFY}) == 4


def test_testdata_is_present():
    assert (TESTDATA / "test-6.cvd").exists(), sys.path


def test_a_full_disk_is_one_clear_line_and_the_old_release_stays(
    upstream_tree, upstream, pum_conf, pum, tmp_path
):
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    from pum.client_bundle import build_client_bytes

    pyz_pages = -(-len(build_client_bytes()) // 4096)  # every release holds proscanup.pyz
    size = f"size={52 + 4 * pyz_pages}k"  # and a page for the state line saying which one it is
    subprocess.run(["mount", "-t", "tmpfs", "-o", size, "tmpfs", str(tiny)], check=True)
    try:
        conf = pum_conf(data_dir=tiny / "data", docroot=tiny / "www")
        upstream_tree.publish(1)
        assert pum("--config", conf, "run").code == 0
        upstream_tree.publish(6)
        # five CDIFFs and their .sign files do not fit in 48 KiB (beside proscanup.pyz)
        result = pum("--config", conf, "run")
        assert result.code == ExitStatus.STORE, result
        assert "No space left on device" in result.err
        assert len(result.err.strip().splitlines()) == 1
        assert int((tiny / "www" / "test.cvd").read_bytes()[:512].decode().split(":")[2]) == 1
    finally:
        subprocess.run(["umount", "-l", str(tiny)], check=False)


def test_a_docroot_directory_pum_cannot_write_is_named_and_retries_leave_no_release_behind(
    upstream_tree, upstream, pum_conf, pum
):
    conf = pum_conf()
    upstream_tree.publish(3)
    www = conf.parent / "www"
    www.mkdir()
    subprocess.run(["chattr", "+i", str(www)], check=True)  # not writable, even by root
    try:
        for _ in range(2):
            result = pum("--config", conf, "run")
            assert result.code == ExitStatus.STORE, result
            assert result.err.startswith(f"pum: {www}: Operation not permitted: cannot switch the docroot")
            assert f"the user running pum must be able to write {www}" in result.err
            assert list((conf.parent / "data" / "releases").iterdir()) == []
    finally:
        subprocess.run(["chattr", "-i", str(www)], check=True)
    assert pum("--config", conf, "run").code == 0
    assert (www / "pum").resolve().name == "1"


def test_a_release_built_but_never_served_is_removed_by_the_next_run(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    upstream_tree.publish(3)
    assert pum("--config", conf, "run").code == 0
    releases = conf.parent / "data" / "releases"
    (releases / "2").mkdir()  # a run killed between building release 2 and serving it
    upstream_tree.publish(4)
    assert pum("--config", conf, "run").code == 0
    log = (conf.parent / "log" / "pum.log").read_text()
    assert "remove release 2: built by an earlier run but never served" in log
    assert sorted(p.name for p in releases.iterdir()) == ["1", "2"]
    assert version_served(conf) == 4


def test_a_release_left_newer_than_the_served_one_by_rollback_stays(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    for version in (3, 4):
        upstream_tree.publish(version)
        assert pum("--config", conf, "run").code == 0
    assert pum("--config", conf, "rollback").code == 0
    assert pum("--config", conf, "unhold").code == 0
    upstream_tree.publish(5)
    assert pum("--config", conf, "run").code == 0
    releases = conf.parent / "data" / "releases"
    assert sorted(p.name for p in releases.iterdir()) == ["1", "2", "3"]
    assert "never served" not in (conf.parent / "log" / "pum.log").read_text()
