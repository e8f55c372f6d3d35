"""The status document of a served release, its HTML page and its /metrics rendering."""

from __future__ import annotations

import json
import time

from pum import __version__
from pum.config import Config
from pum.serve.metrics import BYTES, STATUS_INDEX, Board, render_metrics
from pum.serve.status_page import render_html
from pum.status import collect_status, render_text, status_dir, write_status_files
from pum.store import Store

from .releases import TESTDATA, ReleaseTree, build_time

BUILT6 = build_time(TESTDATA / "test-6.cvd")


def read_status(tree: ReleaseTree) -> dict:
    return collect_status(Config(docroot=tree.docroot, data_dir=tree.data_dir))


def _write_last_run(tree: ReleaseTree, **values: object) -> None:
    state = tree.data_dir / "state"
    state.mkdir(exist_ok=True)
    document = {
        "result": "ok",
        "started": "2025-09-01T03:32:05+00:00",
        "finished": "2025-09-01T03:32:09+00:00",
        "error": None,
        "upstream": "clamav-latest.example.com",
        "serial": 1,
    }
    document.update(values)
    (state / "last_run.json").write_text(json.dumps(document))


def test_status_names_served_versions_release_last_run_and_upstream(tree):
    tree.serve(6)
    _write_last_run(tree)
    document = read_status(tree)
    assert document["versions"]["test"]["version"] == 6
    assert document["release"]["serial"] == 1
    assert document["release"]["created"]
    assert document["version_record"].startswith("1.4.6:")
    assert document["last_run"]["result"] == "ok"
    assert document["upstream"] == "clamav-latest.example.com"


def test_status_of_a_docroot_without_release_says_so(tree):
    document = read_status(tree)
    assert document["release"] is None and document["versions"] == {}
    assert "nothing is served" in document["release_error"]
    assert "no release" in render_html(document) or "nothing is served" in render_html(document)


def test_html_page_shows_the_document_escaped(tree):
    tree.serve(6)
    _write_last_run(tree, result="error", error="upstream <b>down</b>")
    page = render_html(read_status(tree))
    assert "<td>test</td><td>6</td><td>14</td>" in page
    assert "serial 1" in page
    assert "clamav-latest.example.com" in page
    assert "upstream &lt;b&gt;down&lt;/b&gt;" in page and "<b>down" not in page
    assert 'class="error"' in page


def test_metrics_sum_every_workers_counters_and_render_the_status(tree):
    tree.serve(6)
    _write_last_run(tree)
    board = Board(2)
    board.row(0)[STATUS_INDEX[200]] += 3
    board.row(1)[STATUS_INDEX[200]] += 2
    board.row(1)[STATUS_INDEX[304]] += 1
    board.row(0)[BYTES] += 1000
    board.row(1)[BYTES] += 24
    text = render_metrics(board, lambda: read_status(tree)).decode()
    assert 'pum_http_requests_total{code="200"} 5.0' in text
    assert 'pum_http_requests_total{code="304"} 1.0' in text
    assert "pum_http_sent_bytes_total 1024.0" in text
    assert 'pum_database_version{db="test"} 6.0' in text
    assert "pum_release_serial 1.0" in text
    assert "pum_seconds_since_last_good_release" not in text  # derivable from the creation time
    assert "pum_release_created_timestamp_seconds " in text
    assert f'pum_database_build_timestamp_seconds{{db="test"}} {float(BUILT6):.9e}' in text
    assert f'pum_build_info{{version="{__version__}"}} 1.0' in text
    assert "pum_last_run_duration_seconds 4.0" in text
    assert "pum_publishing_held 0.0" in text
    assert "pum_last_run_success 1.0" in text
    assert "pum_serve_workers 2.0" in text


def test_metrics_accept_the_document_of_pum_status():
    document = {
        "release": {"serial": 7, "created": "2025-09-01T03:32:09"},
        "versions": {"daily": {"version": 27748}},
        "last_run": {"result": "error", "finished": "2025-09-01T03:32:09"},
        "generated": 0,
    }
    text = render_metrics(Board(1), lambda: document).decode()
    assert 'pum_database_version{db="daily"} 27748.0' in text
    assert "pum_last_run_success 0.0" in text


def test_the_page_renders_the_document_of_pum_status():
    document = {
        "mode": "server",
        "release": {"serial": 7, "created": "2025-09-01T03:32:09", "files": 12, "path": "/var/lib/pum/7"},
        "versions": {"daily": {"version": 27748, "build_time": 1756596540, "signatures": 2077127}},
        "last_run": {"result": "ok", "finished": "2025-09-01T03:32:09", "error": None, "upstream": None},
        "upstream_servers": ["clamav-latest.example.com:8080"],
        "generated": 1756596600,
    }
    page = render_html(document)
    assert "<td>daily</td><td>27748</td><td>2077127</td>" in page
    assert "serial 7" in page and "(12 files)" in page
    assert "clamav-latest.example.com:8080" in page


def test_a_hold_shows_on_the_status_the_page_and_metrics(tree):
    tree.serve(6)
    _write_last_run(tree)
    Store(Config(docroot=tree.docroot, data_dir=tree.data_dir)).hold("rolled back to release 1")
    document = read_status(tree)
    assert document["held"]["reason"] == "rolled back to release 1"
    assert document["held"]["since"].endswith("Z")
    assert "Publishing is held since" in render_html(document) and "rolled back to release 1" in render_html(
        document
    )
    text = render_metrics(Board(1), lambda: document).decode()
    assert "pum_publishing_held 1.0" in text
    assert "pum_publishing_held_since_timestamp_seconds " in text
    assert "HELD: rolled back to release 1 (since " in render_text(document)


def test_json_times_are_utc_and_people_see_local_time_with_its_offset(tree, monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        tree.serve(6)
        _write_last_run(tree, finished="2025-09-01T03:32:09+00:00")
        document = read_status(tree)
        assert document["last_run"]["finished"] == "2025-09-01T03:32:09Z"
        assert document["versions"]["test"]["build_time"].endswith("Z")
        assert document["generated"].endswith("Z") and document["release"]["created"].endswith("Z")
        assert "last run: ok at 2025-09-01 12:32:09+09:00" in render_text(document)
        assert "2025-09-01 12:32:09+09:00" in render_html(document)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_the_files_for_apache_and_nginx_render_the_same_document(tree):
    tree.serve(6)
    _write_last_run(tree)
    config = Config(docroot=tree.docroot, data_dir=tree.data_dir)
    write_status_files(config)
    folder = status_dir(config)
    assert json.loads((folder / "status.json").read_text())["versions"]["test"]["version"] == 6
    assert "<td>test</td><td>6</td>" in (folder / "status.html").read_text()
    metrics = (folder / "metrics").read_text()
    assert 'pum_database_version{db="test"} 6.0' in metrics and "pum_http_requests" not in metrics
    assert str(tree.base) not in (folder / "status.json").read_text()  # others read them too


def test_a_sub_pums_lag_is_computed_for_the_release_served_now(tree):
    from pum.formats.manifest import Manifest
    from pum.sync.mirror import CopiedFrom, lag_now

    ours = CopiedFrom("upper.example:8000", 1, "2025-09-01T03:00:00Z", "0" * 64)
    served = Manifest(serial=4, created="2025-09-01T03:10:00Z", files={}, source=ours.text())
    state = {
        "upper": "upper.example:8000",
        "upper_serial": 3,
        "upper_created": "2025-09-01T05:05:00Z",
        "validators": {"files": "1" * 64},
        "behind": "0 releases",  # as of the last run, before a rollback to what release 1 copied
        "behind_releases": 0,
    }
    lag = lag_now(state, served)
    assert lag["behind_releases"] == 2
    assert lag["behind"] == "2 releases, 2h05m"
