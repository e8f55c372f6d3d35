"""Real freshclam (Debian's clamav-freshclam) updates from `pum serve`, Apache and nginx alike."""

from __future__ import annotations

import shutil

from conftest import run_freshclam

from .backends import SwitchingRelay
from .releases import TESTDATA


def _output(result) -> str:
    return result.stdout + result.stderr


def _client_holding(directory, version: int):
    directory.mkdir()
    shutil.copyfile(TESTDATA / f"test-{version}.cvd", directory / "test.cvd")
    return directory


def test_freshclam_updates_incrementally(backend, shared_tree, tmp_path):
    shared_tree.serve(6)
    client = _client_holding(tmp_path / "client", 1)
    before = len(backend.log_entries())
    result = run_freshclam(tmp_path, backend.url, client)
    assert "test.cld updated (version: 6" in result.stdout, _output(result)
    entries = backend.entries_after(before, 6)
    assert [e.path for e in entries if e.status == 200] == [f"/test-{n}.cdiff" for n in range(2, 7)]
    assert all(e.status != 403 for e in entries)


def test_freshclam_downloads_the_whole_cvd_into_an_empty_directory(backend, shared_tree, tmp_path):
    shared_tree.serve(6)
    client = tmp_path / "empty"
    result = run_freshclam(tmp_path, backend.url, client)
    assert "test.cvd updated (version: 6" in result.stdout, _output(result)
    assert (client / "test.cvd").read_bytes() == (TESTDATA / "test-6.cvd").read_bytes()


def test_a_second_run_is_up_to_date_without_a_download(backend, shared_tree, tmp_path):
    shared_tree.serve(6)
    client = _client_holding(tmp_path / "client", 1)
    assert "test.cld updated (version: 6" in run_freshclam(tmp_path, backend.url, client).stdout
    before = len(backend.log_entries())
    result = run_freshclam(tmp_path, backend.url, client)
    assert "test.cld database is up-to-date (version: 6" in result.stdout, _output(result)
    entries = backend.entries_after(before, 1)
    assert entries, "freshclam asked nothing"
    for entry in entries:
        assert entry.status in (304, 206), entry
        assert entry.body_bytes <= 512, entry


def test_freshclam_with_a_private_mirror(backend, shared_tree, tmp_path):
    shared_tree.serve(6)
    client = _client_holding(tmp_path / "client", 1)
    before = len(backend.log_entries())
    result = run_freshclam(tmp_path, backend.url, client, private=True)
    # A private mirror is asked for test.cld first; its 404 (never 403) sends freshclam to test.cvd.
    assert "test.cvd updated (version: 6" in result.stdout, _output(result)
    again = run_freshclam(tmp_path, backend.url, client, private=True)
    assert "test.cvd database is up-to-date (version: 6" in again.stdout, _output(again)
    statuses = {e.status for e in backend.entries_after(before, 4)}
    assert 403 not in statuses and 404 in statuses


def test_a_release_switched_during_a_download_gives_a_consistent_file(backend, shared_tree, tmp_path):
    release3 = shared_tree.serve(3)
    release6 = shared_tree.release(6)

    def switch_and_prune() -> None:
        shared_tree.publish(release6)
        shutil.rmtree(release3)

    relay = SwitchingRelay(backend.port, "/test.cvd", switch_and_prune)
    try:
        client = tmp_path / "client"
        result = run_freshclam(tmp_path, relay.url, client)
    finally:
        relay.close()
    assert relay.fired, "freshclam never downloaded test.cvd whole"
    assert "test.cvd updated (version: 3" in result.stdout, _output(result)
    assert (client / "test.cvd").read_bytes() == (TESTDATA / "test-3.cvd").read_bytes()
    result = run_freshclam(tmp_path, backend.url, client)
    assert "test.cld updated (version: 6" in result.stdout, _output(result)
