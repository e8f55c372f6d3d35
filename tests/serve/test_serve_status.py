"""The status document of a served release, its HTML page and its /metrics rendering."""

from __future__ import annotations

import json

from pum.config import Config
from pum.serve.metrics import BYTES, STATUS_INDEX, Board, render_metrics
from pum.serve.status_page import render_html
from pum.status import collect_status

from .releases import ReleaseTree


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
    assert 'pum_http_requests_total{status="200"} 5.0' in text
    assert 'pum_http_requests_total{status="304"} 1.0' in text
    assert "pum_http_sent_bytes_total 1024.0" in text
    assert 'pum_database_version{database="test"} 6.0' in text
    assert "pum_release_serial 1.0" in text
    assert "pum_seconds_since_last_good_release " in text
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
    assert 'pum_database_version{database="daily"} 27748.0' in text
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
