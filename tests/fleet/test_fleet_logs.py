"""`pum fleet` reading logs: only what is new, across rotation (renamed, gzip'd, truncated), hostile
lines skipped and counted, proscanup and sub-PUM reports in query strings."""

from __future__ import annotations

import email.utils
import gzip
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import write_config
from serve.backends import world_readable_dir
from serve.releases import TESTDATA, ReleaseTree, build_time

from pum.config import load_config
from pum.errors import ExitStatus
from pum.fleet.logs import Positions, ReadCounts, generations, live_logs, read_new_lines
from pum.formats.accesslog import MAX_LINE_BYTES
from pum.lock import RunLock

from .lines import NOW, UUID, agent, line


@pytest.fixture
def main(tmp_path: Path):
    """A served tree at test version 6 and the pum.conf reading `client_logs`=<tmp>/access.log."""
    base = world_readable_dir("pum-fleet-logs-")
    tree = ReleaseTree(base)
    tree.release(3)  # served before: its CVD header's build time is known
    tree.serve(6)
    log = tmp_path / "access.log"
    conf = write_config(
        tmp_path / "main",
        update_servers="127.0.0.1:9",
        docroot=tree.docroot,
        data_dir=tree.data_dir,
        access_log=tmp_path / "none.log",
        client_logs=log,
    )
    yield conf, log
    shutil.rmtree(base, ignore_errors=True)


def fleet(pum, conf: Path) -> dict:
    result = pum("--config", conf, "fleet", "--json")
    assert result.code == 0, result
    return json.loads(result.out)


def by_id(document: dict) -> dict[str, dict]:
    return {row["id"]: row for row in document["clients"]}


def test_a_second_read_takes_only_the_new_lines(main, pum):
    conf, log = main
    log.write_text(line("/test-5.cdiff"))
    assert fleet(pum, conf)["lines"] == 1
    with log.open("a") as stream:
        stream.write(line("/test-6.cdiff"))
    document = fleet(pum, conf)
    assert document["lines"] == 2  # counted over all reads: one more
    assert by_id(document)[UUID]["has"] == {"test": 6}


def test_a_line_still_being_written_waits_for_the_next_read(main, pum):
    conf, log = main
    whole = line("/test-6.cdiff")
    log.write_text(whole[:40])
    assert fleet(pum, conf)["clients"] == []
    with log.open("a") as stream:
        stream.write(whole[40:])
    assert by_id(fleet(pum, conf))[UUID]["has"] == {"test": 6}


def test_rotation_between_two_reads_loses_nothing_and_reads_nothing_twice(main, pum):
    conf, log = main
    other = "0b6f51c2-9a1e-4d7e-8c55-1f0e2a3b4c5d"
    log.write_text(line("/test-4.cdiff"))
    fleet(pum, conf)
    with log.open("a") as stream:
        stream.write(line("/test-5.cdiff"))  # written after the read, before the rotation
    os.rename(log, log.with_name("access.log.1"))
    log.write_text(line("/test-6.cdiff", who=agent(other)))
    document = fleet(pum, conf)
    assert document["lines"] == 3
    assert by_id(document)[UUID]["has"] == {"test": 5}
    assert by_id(document)[other]["has"] == {"test": 6}


def test_a_rotated_log_compressed_at_once_is_read_from_its_gzip(main, pum):
    conf, log = main
    log.write_text(line("/test-4.cdiff"))
    fleet(pum, conf)
    with log.open("a") as stream:
        stream.write(line("/test-5.cdiff"))
    with gzip.open(log.with_name("access.log.1.gz"), "wb") as packed:
        packed.write(log.read_bytes())
    log.unlink()
    log.write_text("")
    document = fleet(pum, conf)
    assert document["lines"] == 2
    assert by_id(document)[UUID]["has"] == {"test": 5}


def test_the_first_read_takes_gzipped_generations_oldest_first(main, pum):
    conf, log = main
    with gzip.open(log.with_name("access.log.2.gz"), "wt") as packed:
        packed.write(line("/test-3.cdiff", when=NOW - 7200))
    log.with_name("access.log.1").write_text(line("/test-4.cdiff", when=NOW - 3600))
    log.write_text(line("/test-5.cdiff"))
    document = fleet(pum, conf)
    assert document["lines"] == 3
    row = by_id(document)[UUID]
    assert row["has"] == {"test": 5} and row["first_seen"] < row["last_seen"]


def test_a_log_truncated_in_place_is_read_from_its_start(main, pum):
    conf, log = main
    log.write_text(line("/test-4.cdiff") * 3)
    fleet(pum, conf)
    log.write_text(line("/test-6.cdiff"))  # copytruncate, then one new line
    assert by_id(fleet(pum, conf))[UUID]["has"] == {"test": 6}


def test_a_hostile_log_is_skipped_and_counted(main, pum):
    conf, log = main
    hostile = [
        b"x" * (MAX_LINE_BYTES * 3) + b"\n",
        line("/ibm/power/PSHB06.lst?host=h1&name=" + "n" * 100_000).encode(),  # a 100 kB query
        "ünïcode but not a log line\n".encode("latin-1"),
        line("/test-6.cdiff", who=agent().replace(UUID, "'; DROP")).encode(),
        line("/ibm/power/PSHB06.lst?host=h2&modules=NOT-HEX", who="proscanup/2.0").encode(),
        b"\x00\xff\xfe garbage\n",
        line("/test-6.cdiff").encode(),
    ]
    log.write_bytes(b"".join(hostile))
    document = fleet(pum, conf)
    assert document["skipped"] == 6
    assert [row["id"] for row in document["clients"]] == [UUID]


def test_proscanup_reports_are_read_from_the_product_list_request(main, pum):
    conf, log = main
    ok = "host=h-ok&name=scan01&engine=0.103.12&product=6.0.6.9&modules=1a2b3c4d&last=ok&check=md5"
    failed = "host=h-bad&name=scan02&engine=1.4.6&product=6.1.0.0&modules=deadbeef&last=failed%3Amodules"
    log.write_text(
        line(f"/ibm/power/PSHB06.lst?{ok}", who="proscanup/2.0")
        + line(f"/ibm/power/PSHB06.lst?{failed}&check=signed", who="proscanup/2.0")
        + line("/ibm/power/PSHB06.lst?host=h-new&last=ok&check=sha3", who="proscanup/3.0")  # not ours
        + line("/ibm/power/PSHB06.lst", who="proscanup/1.0")  # an older proscanup: anonymous
    )
    document = fleet(pum, conf)
    assert document["skipped"] == 0
    rows = by_id(document)
    assert (rows["h-ok"]["state"], rows["h-ok"]["name"]) == ("current", "scan01")
    assert (rows["h-ok"]["engine"], rows["h-ok"]["product"]) == ("0.103.12", "6.0.6.9")
    assert (rows["h-bad"]["state"], rows["h-bad"]["last_result"]) == ("failing", "failed:modules")
    assert [rows[h]["check"] for h in ("h-ok", "h-bad", "h-new")] == ["md5", "signed", None]
    result = pum("--config", conf, "fleet", "--engine-below", "1.0.0")
    assert "h-ok" in result.out and "h-bad" not in result.out
    header, *lines = pum("--config", conf, "fleet", "--csv").out.splitlines()
    column = header.split(",").index("check")
    assert {line.split(",")[2]: line.split(",")[column] for line in lines} == {
        "h-ok": "md5", "h-bad": "signed", "h-new": ""
    }  # fmt: skip
    assert " check " in pum("--config", conf, "fleet").out.splitlines()[1]


def test_a_client_table_from_before_the_check_column_gets_it(main, pum):
    conf, log = main
    old = load_config(conf).data_dir / "fleet.sqlite"
    old.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(old) as db:  # the table as an older pum made it, with one host in it
        db.executescript(OLD_CLIENTS)
    db.close()
    log.write_text(line("/ibm/power/PSHB06.lst?host=h-new&last=ok&check=signed", who="proscanup/2.0"))
    rows = by_id(fleet(pum, conf))
    assert (rows["h-old"]["check"], rows["h-old"]["name"]) == (None, "scan00")
    assert rows["h-new"]["check"] == "signed"


OLD_CLIENTS = """
CREATE TABLE clients (id TEXT PRIMARY KEY, kind TEXT NOT NULL, address TEXT NOT NULL, name TEXT,
    first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, has TEXT NOT NULL, engine TEXT, product TEXT,
    modules TEXT, serial INTEGER, last_result TEXT, failures TEXT NOT NULL, errors TEXT NOT NULL,
    tier TEXT NOT NULL DEFAULT '');
INSERT INTO clients VALUES ('h-old', 'proscanup', '10.0.0.8', 'scan00', strftime('%s'), strftime('%s'), '{}',
    NULL, NULL, NULL, NULL, 'ok', '{}', '[]', '');
"""


def test_positions_are_kept_per_log_by_inode_and_offset(tmp_path):
    log = tmp_path / "a.log"
    log.write_bytes(b"one\ntwo\nthr")
    positions = Positions(tmp_path / "positions.json")
    taken = [line for batch in read_new_lines(log, positions, ReadCounts()) for line in batch]
    assert taken == [b"one", b"two"]
    positions.save()
    again = Positions(tmp_path / "positions.json")
    assert again.positions[str(log)].offset == 8
    assert again.positions[str(log)].inode == log.stat().st_ino


def test_new_ids_past_the_table_limit_are_refused(main, pum, monkeypatch):
    conf, log = main
    monkeypatch.setattr("pum.fleet.ingest.MAX_CLIENTS", 2)
    uuids = [f"5e159fd6-2785-4d37-9f80-196f19085e{n:02x}" for n in range(5)]
    log.write_text("".join(line("/test-6.cdiff", who=agent(uuid)) for uuid in uuids))
    assert len(fleet(pum, conf)["clients"]) == 2


def test_clients_not_seen_for_fleet_keep_days_are_pruned(main, pum):
    conf, log = main
    other = "0b6f51c2-9a1e-4d7e-8c55-1f0e2a3b4c5d"
    log.write_text(line("/test-6.cdiff", who=agent(other), when=NOW - 91 * 86400) + line("/test-6.cdiff"))
    assert [row["id"] for row in fleet(pum, conf)["clients"]] == [UUID]


def test_if_modified_since_in_the_log_tells_the_version_a_client_holds(main, pum):
    conf, log = main
    built = email.utils.formatdate(build_time(TESTDATA / "test-3.cvd"), usegmt=True)
    log.write_text(line("/test.cvd", status=206).rstrip("\n") + f' "{built}"\n')
    row = by_id(fleet(pum, conf))[UUID]
    assert (row["has"], row["state"], row["behind_versions"]) == ({"test": 3}, "behind", 3)


def test_a_glob_names_the_live_logs_and_leaves_their_generations_out(tmp_path):
    for name in ("access.log", "access.log.1", "access.log.2.gz", "access.log-20261201.gz", "other.log"):
        (tmp_path / name).write_text("")
    found = live_logs((f"{tmp_path}/*.log*",))
    assert sorted(path.name for path in found) == ["access.log", "other.log"]
    assert [path.name for path in generations(tmp_path / "access.log")] == [
        "access.log-20261201.gz",
        "access.log.2.gz",
        "access.log.1",
    ]


def test_one_fleet_update_at_a_time(main, pum):
    conf, log = main
    log.write_text(line("/test-6.cdiff"))
    with RunLock(load_config(conf).state_dir / "fleet.lock"):
        result = pum("--config", conf, "fleet")
    assert result.code == ExitStatus.LOCK_HELD and "holds the lock" in result.err
    assert by_id(fleet(pum, conf))[UUID]["has"] == {"test": 6}  # the lines wait for the next update


def test_a_log_pum_fleet_cannot_read_is_an_error_not_an_empty_fleet(main, pum):
    conf, log = main
    log.mkdir()  # (as root every file is readable: a directory is not a log either way)
    result = pum("--config", conf, "fleet")
    assert result.code == ExitStatus.ERROR and "cannot read the access log" in result.err
