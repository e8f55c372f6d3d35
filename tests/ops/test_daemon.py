"""`pum daemon`: cycles on an interval, survives a failed cycle, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import pum_command

from pum.lock import RunLock

STOP_TIMEOUT = 15.0


def start_daemon(conf: Path, *options: str) -> tuple[subprocess.Popen, Path]:
    """The daemon in a child process; its own lines (stderr) go to a file the test reads as it grows."""
    said = conf.parent / "daemon.err"
    with open(said, "wb") as stderr:
        process = subprocess.Popen(
            [*pum_command(), "--config", str(conf), "daemon", *options],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    return process, said


def wait_for(predicate, what: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            raise AssertionError(f"the daemon exited {process.returncode} before {what}")
        time.sleep(0.02)
    raise AssertionError(f"not reached in {timeout:g} s: {what}")


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"the daemon did not stop within {STOP_TIMEOUT:g} s of SIGTERM") from None


def version_served(conf: Path) -> int:
    return int((conf.parent / "www" / "pum" / "test.cvd").read_bytes()[:512].decode().split(":")[2])


def lock_is_free(conf: Path) -> bool:
    lock = RunLock(conf.parent / "data" / "pum.lock")
    lock.acquire()  # raises LockHeld if a run still holds it
    lock.release()
    return True


def test_the_daemon_runs_two_cycles_and_stops_cleanly_on_sigterm(upstream_tree, upstream, pum_conf):
    conf = pum_conf()
    upstream_tree.publish(3)
    process, said = start_daemon(conf, "--interval", "0.3", "--jitter", "0")
    try:
        wait_for(lambda: "cycle 2:" in said.read_text(), "two cycles", process)
    finally:
        code = stop(process)
    assert code == 0, said.read_text()
    lines = said.read_text()
    assert "cycle 1: release 1 published" in lines
    assert "cycle 2: no new release" in lines
    assert "SIGTERM: stopped" in lines
    log = (conf.parent / "log" / "pum.log").read_text()
    assert log.count("pum REV=") >= 2
    assert version_served(conf) == 3
    assert lock_is_free(conf)


def test_sigterm_in_mid_cycle_abandons_the_run_and_keeps_the_served_release(
    upstream_tree, upstream, pum_conf, pum
):
    conf = pum_conf()
    upstream_tree.publish(3)
    assert pum("--config", conf, "run").code == 0
    docroot = conf.parent / "www" / "pum"
    before = (os.readlink(docroot), sorted(p.name for p in docroot.iterdir()))
    upstream_tree.publish(6)
    # the CVD comes first, then the patches from the newest down (max_parallel at once): the last one hangs
    upstream.fault("test-4.cdiff", slow=60)
    process, said = start_daemon(conf, "--interval", "3600", "--jitter", "0")
    try:
        upstream.wait_for_start("test-4.cdiff", faulted=True)  # the run is inside the hanging download
        downloads = conf.parent / "data" / "downloads"
        wait_for(
            lambda: all((downloads / name).exists() for name in ("test-6.cdiff", "test-5.cdiff")),
            "the patches above the hanging one",
            process,
        )
    finally:
        code = stop(process)
    assert code == 0, said.read_text()
    assert "cycle 1 abandoned, the served release is unchanged" in said.read_text()
    assert (os.readlink(docroot), sorted(p.name for p in docroot.iterdir())) == before
    assert version_served(conf) == 3
    assert not (conf.parent / "data" / "staging").exists()
    assert lock_is_free(conf)
    assert "stopped by SIGTERM" in (conf.parent / "log" / "pum.log").read_text()
    # the next run finishes the job without fetching again what it had
    upstream.faults.clear()
    upstream.clear()
    assert pum("--config", conf, "run").code == 0
    assert version_served(conf) == 6
    assert [p for p in upstream.paths() if p.endswith(".cdiff")] == ["/test-4.cdiff"]


def test_a_failed_cycle_is_logged_and_the_next_cycle_runs(upstream_tree, upstream, pum_conf):
    conf = pum_conf()  # the upstream is empty: the first cycle finds no test.cvd
    process, said = start_daemon(conf, "--interval", "0.3", "--jitter", "0")
    try:
        wait_for(lambda: "cycle 1 failed" in said.read_text(), "a failed cycle", process)
        upstream_tree.publish(3)
        wait_for(lambda: "release 1 published" in said.read_text(), "a good cycle after it", process)
    finally:
        code = stop(process)
    assert code == 0, said.read_text()
    assert "ERROR: " in (conf.parent / "log" / "pum.log").read_text()
    assert version_served(conf) == 3


def test_sigterm_between_cycles_exits_at_once_with_status_0(upstream_tree, upstream, pum_conf):
    conf = pum_conf()
    upstream_tree.publish(3)
    process, said = start_daemon(conf, "--interval", "3600", "--jitter", "0")
    try:
        wait_for(lambda: "next cycle in" in said.read_text(), "the first cycle", process)
    finally:
        code = stop(process)
    assert code == 0
    assert "stopped between cycles" in said.read_text()


def test_a_bad_interval_is_a_config_error(pum_conf, pum):
    result = pum("--config", pum_conf(), "daemon", "--interval", "0")
    assert result.code == 2
    assert "--interval must be more than 0 seconds" in result.err


def test_a_stop_inside_the_store_switch_waits_for_it_then_stops_the_cycle():
    from pum import daemon
    from pum.store import CRITICAL

    stop = daemon._StopSignal()
    stop.install()
    try:
        stop.in_cycle, stop.name = True, "SIGTERM"

        def switch_like() -> str:
            with CRITICAL.entered():
                stop._stop_cycle()  # SIGTERM arrives here: not raised inside
                return "switched"

        assert switch_like() == "switched"
        with pytest.raises(daemon.Stopped):
            for _ in range(500):  # the re-check (SIGALRM) stops the cycle once outside
                time.sleep(0.01)
    finally:
        stop.restore()


def test_the_store_publish_switch_and_prune_are_its_critical_section(tmp_path, monkeypatch):
    from pum.config import parse_config
    from pum.store import CRITICAL, Store

    store = Store(parse_config(f"data_dir={tmp_path}/data\ndocroot={tmp_path}/www\n", tmp_path / "pum.conf"))
    seen = []
    monkeypatch.setattr("pum.store.releases._fsync_dir", lambda path: seen.append(CRITICAL.active))
    staging = store.begin()
    staging.write_bytes("a.txt", b"a")
    store.publish(staging)
    assert seen and all(seen) and not CRITICAL.active
