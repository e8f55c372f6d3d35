"""The one build cycle of `pum run`, `pum import` and `pum rollback`: the hold read again at publish, what
the run log says clients get after a failure, last_run.json written by every build."""

from __future__ import annotations

import errno
import json
from pathlib import Path

from pum.errors import ExitStatus


def run_log(conf: Path) -> str:
    return (conf.parent / "log" / "pum.log").read_text()


def last_run(conf: Path) -> dict:
    return json.loads((conf.parent / "data" / "state" / "last_run.json").read_text())


def test_a_hold_that_comes_during_a_run_stops_its_publish(upstream_tree, upstream, pum_conf, pum):
    state = Path(pum_conf().parent / "data" / "state")
    # the operator's `pum hold` lands while the run validates: after fetching, before publishing
    conf = pum_conf(validate_command=f"mkdir -p {state} && echo 'held by operator' > {state}/hold")
    upstream_tree.publish(3)
    result = pum("--config", conf, "run")
    assert result.code == 0, result
    assert "publishing is held: held by operator; nothing published ('pum unhold' resumes)" in run_log(conf)
    assert not (conf.parent / "www" / "pum").exists()
    assert (conf.parent / "data" / "downloads" / "test-3.cvd").is_file()  # kept for the run after unhold


def test_a_failure_after_publishing_says_the_new_release_is_served(
    upstream_tree, upstream, pum_conf, pum, monkeypatch
):
    from pum.store import Store

    def disk_full(store: Store, last_run: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(store.state / "last_run.json"))

    monkeypatch.setattr(Store, "write_last_run", disk_full)
    conf = pum_conf()
    upstream_tree.publish(3)
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.STORE
    log = run_log(conf)
    assert "release 1 is served: the error came after publishing it" in log
    assert "the last good release stays served" not in log
    assert (conf.parent / "www" / "pum" / "test.cvd").is_file()


def test_a_failed_first_run_says_nothing_is_served_yet(upstream, pum_conf, pum):
    conf = pum_conf()
    upstream.fault("dns.txt", status=500)
    upstream.fault("test.cvd", status=500)
    result = pum("--config", conf, "run")
    assert result.code != 0
    log = run_log(conf)
    assert "nothing is served yet" in log
    assert "the last good release stays served" not in log
    assert last_run(conf)["result"] == "error"


def test_import_is_recorded_like_a_run(upstream_tree, upstream, pum_conf, pum, tmp_path):
    conf = pum_conf()
    upstream_tree.publish(3)
    assert pum("--config", conf, "run").code == 0
    content = tmp_path / "content"
    content.mkdir()
    (content / "readme.txt").write_text("read me\n")
    assert pum("--config", conf, "import", content).code == 0
    assert last_run(conf)["result"] == "ok" and last_run(conf)["serial"] == 2
    assert "release new content (release 2)" in run_log(conf)
    assert "local content: 1 file (1 added, 0 replaced)" in run_log(conf)


def test_rollback_goes_through_the_run_lock_and_the_run_log(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    for version in (3, 4):
        upstream_tree.publish(version)
        assert pum("--config", conf, "run").code == 0
    result = pum("--config", conf, "rollback")
    assert result.code == 0, result
    assert "rollback: serving release 1; publishing is held until 'pum unhold'" in run_log(conf)


def test_an_import_without_room_is_refused_in_the_run_log(
    upstream_tree, upstream, pum_conf, pum, tmp_path, monkeypatch
):
    import os

    conf = pum_conf()
    upstream_tree.publish(3)
    assert pum("--config", conf, "run").code == 0
    content = tmp_path / "content"
    content.mkdir()
    (content / "readme.txt").write_text("read me\n")  # 8 bytes: one whole block on disk
    full = os.statvfs_result((4096, 4096, 1000, 0, 0, 1000, 0, 0, 0, 255))
    monkeypatch.setattr("pum.importer.os.statvfs", lambda path: full)
    result = pum("--config", conf, "import", content)
    assert result.code == ExitStatus.STORE
    assert f"ERROR: {content}: needs 4096 bytes on disk" in run_log(conf)
    assert last_run(conf)["result"] == "error"


def test_a_failed_prune_after_publishing_says_the_new_release_is_served(
    upstream_tree, upstream, pum_conf, pum, monkeypatch
):
    from pum.store import Store

    def prune_fails(store: Store) -> list[int]:
        raise OSError(errno.EACCES, "Permission denied", str(store.releases / "1"))

    monkeypatch.setattr(Store, "prune", prune_fails)
    conf = pum_conf()
    upstream_tree.publish(3)
    assert pum("--config", conf, "run").code == ExitStatus.STORE
    assert "release 1 is served: the error came after publishing it" in run_log(conf)


def test_an_import_filling_the_disk_names_the_data_dir_in_the_error_and_the_run_log(tmp_path, pum_conf, pum):
    import os
    import subprocess

    from pum.client_bundle import build_client_bytes

    tiny = tmp_path / "tiny"
    tiny.mkdir()
    pyz_pages = -(-len(build_client_bytes()) // 4096)  # every release holds proscanup.pyz
    size = f"size={64 + 4 * pyz_pages}k"
    subprocess.run(["mount", "-t", "tmpfs", "-o", size, "tmpfs", str(tiny)], check=True)
    try:
        conf = pum_conf(data_dir=tiny / "data", docroot=tmp_path / "www" / "pum")
        first = tmp_path / "first"
        first.mkdir()
        (first / "a.txt").write_bytes(b"a")
        assert pum("--config", conf, "import", first).code == 0
        content = tmp_path / "content"
        content.mkdir()
        room = os.statvfs(tiny)
        # passes the room check, then the release's own files (its manifest) find the disk full
        (content / "big.bin").write_bytes(b"x" * (room.f_bavail * room.f_frsize - room.f_frsize))
        result = pum("--config", conf, "import", content)
        assert result.code == ExitStatus.STORE, result
        assert result.err == f"pum: {tiny / 'data'}: No space left on device; free some space and run again\n"
        assert f"ERROR: {tiny / 'data'}: No space left on device" in run_log(conf)
    finally:
        subprocess.run(["umount", "-l", str(tiny)], check=False)
