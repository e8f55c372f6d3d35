"""The fleet as data: `state/fleet.json` (every client, served as `/.pum/fleet.json` for a main to roll
up), `state/fleet_summary.json` (what the status page shows), and the table/CSV `pum fleet` prints."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from pum.config import Config
from pum.fleet.states import STATES, Served
from pum.formats.fleet import FLEET_GENERATION

FLEET_JSON = "fleet.json"
SUMMARY_JSON = "fleet_summary.json"
TROUBLED_SHOWN = 50


def trouble_key(row: dict[str, Any], now: int) -> tuple[int, int, int, str]:
    """Failing first, then stale, behind, unknown, current; within a state the worst lag, then the oldest."""
    lag = row["behind_versions"] + (row.get("behind_releases") or 0)
    return (STATES.index(row["state"]), -lag, row["last_seen"] - now, f"{row.get('tier') or ''}/{row['id']}")


def build_document(
    config: Config,
    served: Served,
    own: list[dict[str, Any]],
    rolled_up: list[dict[str, Any]],
    counters: dict[str, int],
    now: int,
) -> dict[str, Any]:
    clients = sorted(own + rolled_up, key=lambda row: trouble_key(row, now))
    counts = dict.fromkeys(STATES, 0)
    kinds: dict[str, dict[str, int]] = {}
    engine_counts = {"upgraded": 0, "not upgraded": 0}
    for row in clients:
        counts[row["state"]] += 1
        per_kind = kinds.setdefault(row["kind"], dict.fromkeys(STATES, 0))
        per_kind[row["state"]] += 1
        if row.get("engine_state") in engine_counts:
            engine_counts[row["engine_state"]] += 1
    tiers = [
        {
            "name": row["name"],
            "address": row["address"],
            "serial": row["serial"],
            "behind_releases": row["behind_releases"],
            "state": row["state"],
            "last_seen": row["last_seen"],
            "via": row.get("tier") or "",
        }
        for row in clients
        if row["kind"] == "pum"
    ]
    return {
        "generation": FLEET_GENERATION,
        "name": _host_name(),
        "generated": now,
        "served": {"serial": served.serial, "versions": served.versions},
        "stale_hours": config.fleet_stale_hours,
        "engine": config.fleet_engine,
        "counts": counts,
        "kinds": kinds,
        "engine_counts": engine_counts if config.fleet_engine else None,
        "tiers": sorted(tiers, key=lambda tier: (tier["via"], tier["name"] or "")),
        "oldest_seen": min((row["last_seen"] for row in clients), default=None),
        "lines": counters.get("lines", 0),
        "skipped": counters.get("skipped", 0),
        "clients": clients,
    }


def summary(document: dict[str, Any]) -> dict[str, Any]:
    """The document without its client rows, with the TROUBLED_SHOWN most troubled clients."""
    brief = {key: value for key, value in document.items() if key != "clients"}
    brief["troubled"] = [row for row in document["clients"] if row["state"] != "current"][:TROUBLED_SHOWN]
    brief["clients"] = len(document["clients"])
    return brief


def write_json(path: Path, document: dict[str, Any]) -> None:
    """fleet.json and fleet_summary.json beside it, each replaced whole by rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, content in ((path, document), (path.with_name(SUMMARY_JSON), summary(document))):
        temporary = target.with_name(f".{target.name}.new")
        temporary.write_text(json.dumps(content, separators=(",", ":")))
        temporary.chmod(0o644)
        os.replace(temporary, target)


def read_summary(config: Config) -> dict[str, Any] | None:
    """The summary the last `pum fleet` wrote, for the status document; None before the first."""
    try:
        document = json.loads((config.state_dir / SUMMARY_JSON).read_bytes())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _host_name() -> str:
    name = socket.gethostname().split(".")[0]
    return "".join(c for c in name if c.isalnum() or c in "._-")[:64] or "pum"


# -- what `pum fleet` prints ------------------------------------------------------------------------

COLUMNS = (
    "state",
    "kind",
    "id",
    "name",
    "address",
    "behind",
    "engine",
    "product",
    "check",
    "has",
    "last_seen",
    "note",
)


def _behind(row: dict[str, Any]) -> str:
    if row.get("behind_releases"):
        return f"{row['behind_releases']} releases"
    if row["behind_versions"]:
        return f"{row['behind_versions']} versions"
    return ""


def _note(row: dict[str, Any]) -> str:
    if row.get("last_result") and row["last_result"] != "ok":
        return str(row["last_result"])
    if row["state"] == "failing" and row["errors"]:
        return str(row["errors"][-1][1])
    if row.get("engine_state") == "not upgraded":
        return "not upgraded"
    return ""


def _cells(row: dict[str, Any]) -> list[str]:
    has = " ".join(f"{db}:{version}" for db, version in sorted(row["has"].items()))
    if row["kind"] == "pum" and row.get("serial") is not None:
        has = f"release:{row['serial']}"
    ident = f"{row['tier']}/{row['id']}" if row.get("tier") else row["id"]
    seen = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["last_seen"]))
    fields = (row["state"], row["kind"], ident, row.get("name") or "", row["address"], _behind(row))
    versions = (row.get("engine") or "", row.get("product") or "", row.get("check") or "")
    return [*fields, *versions, has, seen, _note(row)]


def render_table(rows: list[dict[str, Any]]) -> str:
    table = [list(COLUMNS), *(_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in table
    )


def render_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(_cells(row))
    return out.getvalue()


def render_counts(document: dict[str, Any]) -> str:
    counts = ", ".join(f"{n} {state}" for state, n in document["counts"].items() if n)
    served = document["served"]
    versions = " ".join(f"{db}:{v}" for db, v in sorted(served["versions"].items()))
    line = f"{sum(document['counts'].values())} clients: {counts or 'none seen yet'} (served: {versions}"
    line += f", release {served['serial']})" if served.get("serial") is not None else ")"
    if document.get("engine_counts"):
        engine = document["engine_counts"]
        line += f"; engine {document['engine']}: {engine['upgraded']} upgraded, {engine['not upgraded']} not"
    if document.get("skipped"):
        line += f"; {document['skipped']} log lines skipped"
    return line


def select_rows(
    document: dict[str, Any], behind: bool, stale: bool, failing: bool, engine_below: str | None
) -> list[dict[str, Any]]:
    """The clients `pum fleet` lists: all, or those in any of the states asked, or below an engine."""
    from pum.formats.accesslog import version_key

    wanted = {state for state, asked in (("behind", behind), ("stale", stale), ("failing", failing)) if asked}
    rows: list[dict[str, Any]] = document["clients"]
    if wanted:
        rows = [row for row in rows if row["state"] in wanted]
    if engine_below:
        limit = version_key(engine_below)
        rows = [row for row in rows if row.get("engine") and version_key(row["engine"]) < limit]
    return rows
