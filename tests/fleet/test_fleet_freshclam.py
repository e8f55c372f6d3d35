"""Real freshclam clients against `pum serve` and nginx, then `pum fleet`: who is current, behind,
failing, stale; and a real sub-PUM seen with the release it serves."""

from __future__ import annotations

import json
import shutil
import time
from email.utils import parsedate_to_datetime
from pathlib import Path

from conftest import run_freshclam, write_config
from serve.releases import TESTDATA, build_time

from pum.formats.accesslog import parse_line

STALE = 27 * 3600  # past fleet_stale_hours=26


def _client(directory: Path, version: int | None) -> Path:
    """A freshclam installation: its own database directory, so its own UUID in freshclam.dat."""
    directory.mkdir()
    if version is not None:
        shutil.copyfile(TESTDATA / f"test-{version}.cvd", directory / "test.cvd")
    return directory


def _update(tmp_path: Path, server, directory: Path, expected_lines: int) -> str:
    before = len(server.log_entries())
    result = run_freshclam(tmp_path, server.url, directory)
    server.entries_after(before, expected_lines)  # pum serve writes its log once a loop turn
    return result.stdout + result.stderr


def _uuid(directory: Path) -> str:
    # freshclam.dat (freshclam_dat_v1_t, libfreshclam/libfreshclam_internal.h): the 13-byte magic
    # "FreshClamData", a uint32 version (1), the UUID as 37 bytes of NUL-terminated text, retry_after.
    # One per database directory: distinct directories are distinct installations to a mirror.
    data = (directory / "freshclam.dat").read_bytes()
    assert data[:13] == b"FreshClamData", data[:13]
    return data[17 : 17 + 36].decode("ascii")


def _fleet(pum, conf: Path, *options: object) -> dict:
    result = pum("--config", conf, "fleet", "--json", *options)
    assert result.code == 0, result
    return json.loads(result.out)


def _states(document: dict) -> dict[str, str]:
    return {row["id"]: row["state"] for row in document["clients"]}


def test_pum_fleet_tells_current_behind_failing_and_stale_freshclam_clients(
    server, tree, tmp_path, fleet_conf, pum
):
    behind = _client(tmp_path / "behind", 1)
    assert "updated (version: 3" in _update(tmp_path, server, behind, 3)  # then it stops coming
    release = tree.serve(6)
    current = _client(tmp_path / "current", 1)
    assert "updated (version: 6" in _update(tmp_path, server, current, 6)
    assert "up-to-date (version: 6" in _update(tmp_path, server, current, 1)
    fresh = _client(tmp_path / "fresh", None)
    assert "test.cvd updated (version: 6" in _update(tmp_path, server, fresh, 2)
    (release / "test-4.cdiff").unlink()  # the failing one's next cdiff is gone
    failing = _client(tmp_path / "failing", 2)
    output = _update(tmp_path, server, failing, 5)
    assert "partial-update" in output, output

    conf = fleet_conf()
    document = _fleet(pum, conf)
    assert _states(document) == {
        _uuid(behind): "behind",
        _uuid(current): "current",
        _uuid(fresh): "current",
        _uuid(failing): "failing",
    }
    rows = {row["id"]: row for row in document["clients"]}
    assert rows[_uuid(behind)]["has"] == {"test": 3} and rows[_uuid(behind)]["behind_versions"] == 3
    assert rows[_uuid(failing)]["errors"][-1][1] == "GET /test-4.cdiff 404"
    assert [row["state"] for row in document["clients"]] == ["failing", "behind", "current", "current"]
    assert document["counts"] == {"failing": 1, "stale": 0, "behind": 1, "unknown": 0, "current": 2}

    later = int(time.time()) + STALE
    assert set(_states(_fleet(pum, conf, "--now", later)).values()) == {"stale"}
    assert [row["id"] for row in _fleet(pum, conf, "--behind")["clients"]] == [_uuid(behind)]
    assert [row["id"] for row in _fleet(pum, conf, "--failing")["clients"]] == [_uuid(failing)]


def test_the_table_lists_trouble_first_and_filters_by_engine(server, tmp_path, fleet_conf, pum):
    _update(tmp_path, server, _client(tmp_path / "one", 1), 3)
    conf = fleet_conf(fleet_engine="1.5.0")
    table = pum("--config", conf, "fleet")
    assert table.code == 0, table
    assert table.out.splitlines()[0].startswith("1 clients: 1 current")
    assert "engine 1.5.0: 0 upgraded, 1 not" in table.out.splitlines()[0]
    assert "1.4.6" in table.out
    assert len(_fleet(pum, conf, "--engine-below", "1.5")["clients"]) == 1
    assert _fleet(pum, conf, "--engine-below", "1.4.6")["clients"] == []
    csv = pum("--config", conf, "fleet", "--csv").out.splitlines()
    assert csv[0].startswith("state,kind,id") and csv[1].startswith("current,freshclam,")


def test_a_sub_pum_is_seen_with_the_release_it_serves(server, tree, tmp_path, fleet_conf, pum):
    sub = write_config(tmp_path / "sub", mode="mirror", update_servers=server.url.removeprefix("http://"))
    assert pum("--config", sub, "run").code == 0  # copies release 1, having nothing: serial=0
    before = len(server.log_entries())
    assert pum("--config", sub, "run").code == 0  # asks again, serving a copy of release 1
    server.entries_after(before, 1)
    conf = fleet_conf()
    (row,) = [row for row in _fleet(pum, conf)["clients"] if row["kind"] == "pum"]
    assert (row["serial"], row["state"]) == (1, "current")
    tree.serve(6)
    (row,) = [row for row in _fleet(pum, conf)["clients"] if row["kind"] == "pum"]
    assert (row["serial"], row["state"], row["behind_releases"]) == (1, "behind", 1)
    document = _fleet(pum, conf)
    assert document["tiers"][0]["serial"] == 1 and document["tiers"][0]["behind_releases"] == 1


def test_nginx_logging_if_modified_since_shows_what_a_client_holds_before_it_updates(
    nginx_with_ims, tree, tmp_path
):
    client = _client(tmp_path / "client", 1)
    assert "updated (version: 3" in run_freshclam(tmp_path, nginx_with_ims.url, client).stdout
    tree.serve(6)
    run_freshclam(tmp_path, nginx_with_ims.url, client)
    records = [parse_line(raw) for raw in nginx_with_ims.access_log.read_bytes().splitlines()]
    probes = [r for r in records if r.path == "/test.cvd" and r.status == 206 and r.if_modified_since]
    held = parsedate_to_datetime(probes[-1].if_modified_since).timestamp()
    assert held == build_time(TESTDATA / "test-3.cvd")  # the build time of the copy it held: version 3
