"""State files and upstream answers that are not what PUM expects: reported, bounded, never fatal, never a
traceback (issue #12 items 5 and 6)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pum.common.servers import Server
from pum.errors import ExitStatus
from pum.net.cooldown import MAX_COOL_DOWN, CoolDowns, retry_after_seconds


def run_log(conf: Path) -> str:
    return (conf.parent / "log" / "pum.log").read_text()


@pytest.mark.parametrize(
    "value, expected",
    [
        ("120", 120.0),
        ("99999999999", None),  # more than 10 digits: not delta-seconds PUM believes
        ("86400000", float(MAX_COOL_DOWN)),
        ("1" * 400, None),
        ("٣٠", None),  # non-ASCII digits
        ("-5", None),
        ("1e9", None),
        ("soon", None),
    ],
)
def test_retry_after_is_parsed_strictly_and_capped_at_a_day(value, expected):
    assert retry_after_seconds(value) == expected


def test_a_retry_after_date_years_ahead_is_capped_at_a_day():
    assert retry_after_seconds("Fri, 01 Jan 5195 00:00:00 GMT") == MAX_COOL_DOWN


def test_a_cool_down_is_never_longer_than_a_day(tmp_path):
    cool_downs = CoolDowns(tmp_path / "cooldown.json")
    cool_downs.add(Server("mirror.example"), 10**12, "answered 429")
    written = json.loads((tmp_path / "cooldown.json").read_text())
    assert written["mirror.example"]["until"] <= time.time() + MAX_COOL_DOWN + 1


@pytest.mark.parametrize(
    "damage",
    [
        '{"127.0.0.1:1": {"until": Infinity, "reason": "x"}}',
        '{"127.0.0.1:1": {"until": "tomorrow", "reason": "x"}}',
        "[1, 2",
        "\xff\xfe",
    ],
)
def test_a_damaged_cooldown_file_is_reported_and_reset_not_fatal(
    upstream_tree, upstream, pum_conf, pum, damage
):
    conf = pum_conf()
    state = conf.parent / "data" / "state"
    state.mkdir(parents=True)
    (state / "cooldown.json").write_bytes(damage.encode("latin-1"))
    upstream_tree.publish(3)
    assert pum("--config", conf, "status").code == 0
    result = pum("--config", conf, "run")
    assert result.code == 0, result
    assert (state / "cooldown.json.corrupt").exists()
    assert "cooldown.json is damaged" in run_log(conf) or not (state / "cooldown.json").exists()


def test_a_damaged_last_run_file_does_not_stop_status(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    upstream_tree.publish(3)
    assert pum("--config", conf, "run").code == 0
    (conf.parent / "data" / "state" / "last_run.json").write_text('{"result": NaN')
    result = pum("--config", conf, "status")
    assert result.code == 0 and "last run: never" in result.out


def test_a_redirect_loop_is_an_upstream_error_naming_the_url(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    upstream_tree.publish(3)
    upstream.fault("test.cvd", status=302, headers={"Location": f"http://{upstream.address}/test.cvd"})
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.UPSTREAM, result
    assert f"http://{upstream.address}/test.cvd: too many redirects" in result.err
    assert f"ERROR: http://{upstream.address}/test.cvd: too many redirects" in run_log(conf)
    last_run = json.loads((conf.parent / "data" / "state" / "last_run.json").read_text())
    assert last_run["result"] == "error"


def test_a_hold_reads_back_as_written_and_any_text_holds():
    from pum.store.state import Hold

    assert Hold.from_text(Hold("rolled back to release 3", "2025-09-01 03:32:05").text() + "\n") == Hold(
        "rolled back to release 3", "2025-09-01 03:32:05"
    )
    assert Hold.from_text("") == Hold("held", None)
    assert Hold.from_text("vendor asked us to wait\n").text() == "vendor asked us to wait"


def test_a_huge_hold_file_is_read_only_in_part(pum_conf, pum):
    conf = pum_conf()
    state = conf.parent / "data" / "state"
    state.mkdir(parents=True)
    (state / "hold").write_bytes(b"x" * (8 << 20))
    result = pum("--config", conf, "status", "--json")
    assert result.code == 0
    assert len(json.loads(result.out)["held"]) <= 4096
