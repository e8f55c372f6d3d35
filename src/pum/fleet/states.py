"""Each client's state against the served release: current, behind, stale, failing, or unknown.

One state per client, the most urgent that holds: **stale** (not seen for `fleet_stale_hours`: what we
know of it is old), **failing** (repeated errors on files it needs since its last success, or proscanup's
`last=failed:<step>`), **behind** (older database versions than served, or a sub-PUM serving an older
release), **unknown** (it came but showed no version), **current**. Apart from it, when the operator
names an engine version, a client is **upgraded** or **not upgraded**.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pum.fleet.table import Client
from pum.formats.accesslog import version_key

STATES = ("failing", "stale", "behind", "unknown", "current")  # trouble first: the sort order
REPEATED = 2  # errors since the last success that make a client failing


@dataclass(frozen=True)
class Served:
    """What this PUM serves now: database versions and its release serial."""

    versions: dict[str, int]
    serial: int | None


@dataclass(frozen=True)
class Assessment:
    client: Client
    state: str
    behind_versions: int  # summed over databases
    behind_releases: int | None  # a sub-PUM
    engine_state: str | None  # "upgraded" | "not upgraded" | None (no engine named, or none reported)
    age: int  # seconds since last seen

    def as_dict(self) -> dict[str, Any]:
        client = self.client
        return {
            "id": client.id,
            "kind": client.kind,
            "address": client.address,
            "name": client.name,
            "state": self.state,
            "behind_versions": self.behind_versions,
            "behind_releases": self.behind_releases,
            "engine": client.engine,
            "engine_state": self.engine_state,
            "product": client.product,
            "modules": client.modules,
            "serial": client.serial,
            "has": client.has,
            "last_result": client.last_result,
            "check": client.check,
            "first_seen": client.first_seen,
            "last_seen": client.last_seen,
            "errors": client.errors,
            "tier": client.tier,
        }


def assess(
    client: Client, served: Served, now: int, stale_seconds: int, engine: str | None = None
) -> Assessment:
    behind_versions = sum(
        max(0, served.versions[db] - version) for db, version in client.has.items() if db in served.versions
    )
    behind_releases = None
    if client.kind == "pum" and client.serial is not None and served.serial is not None:
        behind_releases = max(0, served.serial - client.serial)
    age = max(0, now - client.last_seen)
    failed_report = bool(client.last_result and client.last_result.startswith("failed"))
    if age > stale_seconds:
        state = "stale"
    elif client.fail_count >= REPEATED or failed_report:
        state = "failing"
    elif behind_versions or behind_releases:
        state = "behind"
    elif not _showed_a_version(client, served):
        state = "unknown"
    else:
        state = "current"
    engine_state = None
    if engine and client.engine:
        engine_state = "upgraded" if version_key(client.engine) >= version_key(engine) else "not upgraded"
    return Assessment(client, state, behind_versions, behind_releases, engine_state, age)


def _showed_a_version(client: Client, served: Served) -> bool:
    if client.kind == "freshclam":
        return any(db in served.versions for db in client.has)
    if client.kind == "proscanup":
        return client.last_result is not None
    return client.serial is not None


def trouble_order(assessment: Assessment) -> tuple[int, int, int, str]:
    """Failing first, then stale, behind, unknown, current; within a state the worst lag, then the oldest."""
    return (
        STATES.index(assessment.state),
        -(assessment.behind_versions + (assessment.behind_releases or 0)),
        -assessment.age,
        assessment.client.id,
    )


def engine_below(client: Client, engine: str) -> bool:
    return client.engine is not None and version_key(client.engine) < version_key(engine)
