"""The fleet in the status document, on the status page, in /metrics, and rolled up from sub-PUMs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import serve_directory, write_config
from serve.backends import world_readable_dir
from serve.releases import ReleaseTree

from pum.config import load_config
from pum.serve.metrics import Board, render_metrics
from pum.serve.status_page import render_html
from pum.status import collect_status

from .lines import UUID, agent, line

OTHER = "0b6f51c2-9a1e-4d7e-8c55-1f0e2a3b4c5d"


@pytest.fixture
def make_pum(tmp_path: Path):
    """make_pum(name, log text, **keys) -> pum.conf of a PUM serving test version 6, reading that log."""
    bases = []

    def make(name: str, text: str, **keys: object) -> Path:
        base = world_readable_dir(f"pum-fleet-{name}-")
        bases.append(base)
        tree = ReleaseTree(base)
        tree.serve(6)
        log = tmp_path / f"{name}.log"
        log.write_text(text)
        return write_config(
            tmp_path / name,
            update_servers="127.0.0.1:9",
            docroot=tree.docroot,
            data_dir=tree.data_dir,
            access_log=log,
            **keys,
        )

    yield make
    for base in bases:
        shutil.rmtree(base, ignore_errors=True)


def test_the_status_document_page_and_metrics_show_the_fleet(make_pum, pum):
    conf = make_pum("main", line("/test-6.cdiff") + line("/test-4.cdiff", who=agent(OTHER)))
    assert collect_status(load_config(conf))["fleet"] is None  # before the first pum fleet
    assert pum("--config", conf, "fleet").code == 0
    document = collect_status(load_config(conf))
    fleet = document["fleet"]
    assert fleet["counts"]["current"] == 1 and fleet["counts"]["behind"] == 1
    assert [row["id"] for row in fleet["troubled"]] == [OTHER]
    assert "clients" not in fleet or isinstance(fleet["clients"], int)

    page = render_html(document)
    assert "<h2>Fleet</h2>" in page and OTHER in page
    metrics = render_metrics(Board(1), lambda: document).decode()
    assert 'pum_fleet_clients{kind="freshclam",state="current"} 1.0' in metrics
    assert 'pum_fleet_clients{kind="freshclam",state="behind"} 1.0' in metrics
    assert "pum_fleet_oldest_client_seconds" in metrics
    status = pum("--config", conf, "status")
    assert "fleet: 1 behind, 1 current" in status.out


def test_a_sub_pum_writes_fleet_json_and_its_main_rolls_it_up(make_pum, pum, tmp_path):
    sub = make_pum("sub", line("/test-6.cdiff") + line("/test-4.cdiff", who=agent(OTHER)))
    assert pum("--config", sub, "fleet").code == 0
    written = load_config(sub).state_dir / "fleet.json"
    served = tmp_path / "sub-site"
    (served / ".pum").mkdir(parents=True)
    shutil.copyfile(written, served / ".pum" / "fleet.json")  # as the sub's web server serves it
    site = serve_directory(served)
    try:
        main = make_pum("main", line("/test-6.cdiff", who=agent("5e159fd6-2785-4d37-9f80-000000000001")),
                        fleet_subs=site.address)  # fmt: skip
        document = json.loads(pum("--config", main, "fleet", "--json").out)
    finally:
        site.stop()
    sub_name = json.loads(written.read_text())["name"]
    tiers = {(row.get("tier"), row["id"]): row["state"] for row in document["clients"]}
    assert tiers == {
        ("", "5e159fd6-2785-4d37-9f80-000000000001"): "current",
        (sub_name, UUID): "current",
        (sub_name, OTHER): "behind",
    }
    assert document["sub_errors"] == []
    assert site.paths() == ["/.pum/fleet.json"]


def test_a_forged_fleet_json_from_a_sub_is_refused(make_pum, pum, tmp_path):
    served = tmp_path / "forged"
    (served / ".pum").mkdir(parents=True)
    forged = {"generation": 1, "name": "x", "generated": 1, "clients": [{"id": "a" * 10_000}]}
    (served / ".pum" / "fleet.json").write_text(json.dumps(forged))
    site = serve_directory(served)
    try:
        main = make_pum("main", line("/test-6.cdiff"), fleet_subs=site.address)
        document = json.loads(pum("--config", main, "fleet", "--json").out)
    finally:
        site.stop()
    assert [row["id"] for row in document["clients"]] == [UUID]
    assert len(document["sub_errors"]) == 1 and "clients[0].id" in document["sub_errors"][0]


@pytest.mark.parametrize("path", ["/.pum/manifest.json", "/.pum/changes/1.json"])
def test_a_sub_pum_is_seen_by_its_manifest_or_changelog_request(make_pum, pum, path):
    # a sub asks for the changelog since the release it copied, else for the manifest: the same report
    conf = make_pum("main", line(f"{path}?serial=1&name=sub-a", status=304, who="PUM/1.0"))
    result = pum("--config", conf, "fleet", "--json")
    assert result.code == 0, result
    (row,) = json.loads(result.out)["clients"]
    assert (row["kind"], row["name"], row["serial"]) == ("pum", "sub-a", 1)
