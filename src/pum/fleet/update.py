"""One fleet update: read what is new in the access logs into the client table, prune, write fleet.json."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pum.config import Config
from pum.errors import ConfigError
from pum.fleet.document import FLEET_JSON, build_document, write_json
from pum.fleet.ingest import Ingest, IngestCounts, served_releases
from pum.fleet.logs import Positions, ReadCounts, live_logs, read_new_lines
from pum.fleet.rollup import fetch_subs, read_rolled_up
from pum.fleet.states import Served, assess
from pum.fleet.table import ClientTable
from pum.lock import RunLock
from pum.status import served_versions

POSITIONS_FILE = "fleet_logs.json"
LOCK_FILE = "fleet.lock"


@dataclass
class FleetUpdate:
    document: dict[str, Any]
    counts: IngestCounts
    read: ReadCounts
    pruned: int


def log_paths(config: Config) -> list[Path]:
    """`pum serve`'s own access log, then every log `client_logs` names."""
    return live_logs((str(config.access_log), *config.client_logs))


def served_now(config: Config) -> Served:
    release = Path(os.path.realpath(config.docroot))
    versions = {db: info["version"] for db, info in served_versions(release).items()}
    serial = int(release.name) if release.name.isdigit() else None
    return Served(versions, serial)


def update_fleet(config: Config, now: int | None = None) -> FleetUpdate:
    """Ingest new log lines, prune rows older than `fleet_keep_days`, write `state/fleet.json`.

    One update at a time (`state/fleet.lock`): two reading the same new lines would count them twice."""
    with RunLock(config.state_dir / LOCK_FILE):
        return _update(config, int(time.time()) if now is None else now)


def _update(config: Config, moment: int) -> FleetUpdate:
    table = ClientTable(config.data_dir)
    try:
        clients = table.clients(tier="")
        history = table.served()
        served_releases(config.releases_dir, history)
        ingest = Ingest(clients, history)
        read = ReadCounts()
        positions = Positions(config.state_dir / POSITIONS_FILE)
        for path in log_paths(config):
            for batch in read_new_lines(path, positions, read):
                ingest.lines(batch)
        ingest.counts.skipped += read.overlong
        if read.overlong:
            ingest.counts.reasons["overlong line"] = read.overlong
        table.save(
            (clients[ident] for ident in ingest.changed),
            history,
            {"lines": ingest.counts.lines, "skipped": ingest.counts.skipped},
        )
        positions.save()
        # by the real clock: a --now in the future judges staleness, it must not drop rows
        pruned = table.prune(int(time.time()) - config.fleet_keep_days * 86400)
        served = served_now(config)
        stale = int(config.fleet_stale_hours * 3600)
        own = [
            assess(client, served, moment, stale, config.fleet_engine).as_dict()
            for client in table.clients(tier="").values()
        ]
        problems = fetch_subs(config) if config.fleet_subs else []
        document = build_document(
            config, served, own, read_rolled_up(config, moment, stale), table.counters(), moment
        )
        document["sub_errors"] = problems
        document["skipped_now"] = dict(ingest.counts.reasons)
    finally:
        table.close()
    write_json(config.state_dir / FLEET_JSON, document)
    return FleetUpdate(document, ingest.counts, read, pruned)


def parse_now(text: str | None) -> int | None:
    """--now: epoch seconds or an ISO 8601 time (naive = local time)."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    import datetime as dt

    try:
        return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except ValueError:
        raise ConfigError(f"--now {text!r}: expected epoch seconds or an ISO 8601 time") from None
