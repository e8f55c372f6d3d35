"""The Fleet section of the status page, its lines in `pum status`, and its metrics: renderings of the
summary the last `pum fleet` wrote (`status["fleet"]`)."""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

from pum.fleet.states import STATES


def _when(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def fleet_html(summary: dict[str, Any] | None) -> str:
    """<h2>Fleet</h2>: counts per state, sub-PUMs with serial and lag, the most troubled hosts."""
    e = html.escape
    if not summary:
        return "<h2>Fleet</h2>\n<p>no fleet data yet: run <code>pum fleet</code></p>\n"
    counts = summary.get("counts") or {}
    cells = "".join(f"<th>{e(state)}</th>" for state in STATES)
    values = "".join(f"<td>{e(str(counts.get(state, 0)))}</td>" for state in STATES)
    tiers = "".join(
        f"<tr><td>{e(str(tier.get('via') or '-'))}</td><td>{e(str(tier.get('name')))}</td>"
        f"<td>{e(str(tier.get('address')))}</td><td>{e(str(tier.get('serial')))}</td>"
        f"<td>{e(str(tier.get('behind_releases') or 0))}</td><td>{e(str(tier.get('state')))}</td>"
        f"<td>{e(_when(tier.get('last_seen')))}</td></tr>"
        for tier in summary.get("tiers") or []
    )
    troubled = "".join(
        f"<tr><td>{e(str(row.get('state')))}</td><td>{e(str(row.get('kind')))}</td>"
        f"<td>{e(str(row.get('tier') or ''))}{'/' if row.get('tier') else ''}{e(str(row.get('id')))}</td>"
        f"<td>{e(str(row.get('name') or ''))}</td><td>{e(str(row.get('address')))}</td>"
        f"<td>{e(str(row.get('behind_versions') or row.get('behind_releases') or ''))}</td>"
        f"<td>{e(_when(row.get('last_seen')))}</td>"
        f"<td>{e(str((row.get('errors') or [[0, '']])[-1][1]))}</td></tr>"
        for row in summary.get("troubled") or []
    )
    parts = [
        "<h2>Fleet</h2>",
        f"<p>as of {e(_when(summary.get('generated')))} ({e(str(summary.get('clients', 0)))} clients)</p>",
        f"<table><tr>{cells}</tr><tr>{values}</tr></table>",
    ]
    if tiers:
        parts.append(
            "<h3>Sub-PUMs</h3><table><tr><th>via</th><th>name</th><th>address</th><th>serial</th>"
            f"<th>releases behind</th><th>state</th><th>last seen</th></tr>{tiers}</table>"
        )
    if troubled:
        parts.append(
            "<h3>Most troubled</h3><table><tr><th>state</th><th>kind</th><th>id</th><th>name</th>"
            f"<th>address</th><th>behind</th><th>last seen</th><th>last error</th></tr>{troubled}</table>"
        )
    return "\n".join(parts) + "\n"


def fleet_text(summary: dict[str, Any] | None) -> list[str]:
    """The `fleet:` line of `pum status`."""
    if not summary:
        return []
    counts = summary.get("counts") or {}
    shown = ", ".join(f"{counts[state]} {state}" for state in STATES if counts.get(state))
    return [f"fleet: {shown or 'no clients seen'} (as of {_when(summary.get('generated'))})"]


def fleet_metrics(summary: dict[str, Any] | None, now: float) -> Iterator[Metric]:
    """pum_fleet_clients{kind,state} and pum_fleet_oldest_client_seconds."""
    if not summary:
        return
    clients = GaugeMetricFamily(
        "pum_fleet_clients", "Clients by kind and state, as of the last pum fleet", labels=["kind", "state"]
    )
    for kind, counts in sorted((summary.get("kinds") or {}).items()):
        for state in STATES:
            if isinstance(counts.get(state), int):
                clients.add_metric([kind, state], counts[state])
    yield clients
    oldest = summary.get("oldest_seen")
    if isinstance(oldest, int | float):
        yield GaugeMetricFamily(
            "pum_fleet_oldest_client_seconds",
            "Seconds since the client seen longest ago came",
            value=max(0.0, now - oldest),
        )
