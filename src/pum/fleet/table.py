"""The client table: one row per client id in `<data_dir>/fleet.sqlite` (stdlib sqlite3, WAL).

Also kept there: which database versions the PUM served since when (`served`), so that a 304 or a
whole CVD in an old log line is read against the release served at that time, and the counts of lines
skipped. Rows not seen for `fleet_keep_days` are pruned, and the table never holds more than
MAX_CLIENTS rows: a log full of invented ids cannot make it grow without end.
"""

from __future__ import annotations

import json
import sqlite3
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pum.errors import StoreError

TABLE_FILE = "fleet.sqlite"
MAX_CLIENTS = 200_000
MAX_ERRORS = 5  # recent errors kept per client

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clients (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    address TEXT NOT NULL,
    name TEXT,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    has TEXT NOT NULL,
    engine TEXT,
    product TEXT,
    modules TEXT,
    serial INTEGER,
    last_result TEXT,
    failures TEXT NOT NULL,
    errors TEXT NOT NULL,
    tier TEXT NOT NULL DEFAULT '',
    "check" TEXT
);
CREATE TABLE IF NOT EXISTS served (
    db TEXT NOT NULL,
    version INTEGER NOT NULL,
    since INTEGER NOT NULL,
    build_time INTEGER,
    PRIMARY KEY (db, version)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_COLUMNS = (
    "id, kind, address, name, first_seen, last_seen, has, engine, product, modules, serial, "
    'last_result, failures, errors, tier, "check"'
)
_ADDED_COLUMNS = (("check", "TEXT"),)  # columns a fleet.sqlite made by an older pum lacks


@dataclass(slots=True)
class Client:
    """What one client (freshclam installation, proscanup host, sub-PUM) showed of itself."""

    id: str
    kind: str  # freshclam | proscanup | pum
    address: str
    first_seen: int
    last_seen: int
    name: str | None = None
    has: dict[str, int] = field(default_factory=dict)  # database -> version; a sub-PUM: "release"
    engine: str | None = None
    product: str | None = None
    modules: str | None = None
    serial: int | None = None
    last_result: str | None = None
    failures: dict[str, int] = field(default_factory=dict)  # database -> errors since its last success
    errors: list[list[Any]] = field(default_factory=list)  # [[time, "GET /x 404"], ...] newest last
    tier: str = ""  # "" for our own clients; the sub-PUM's name for a rolled-up one
    check: str | None = None  # proscanup: "signed" (TrustedRoot) or "md5" (legacy, MD5 only)

    def add_error(self, when: int, text: str, what: str) -> None:
        """An error on a file it needs for `what` (a database, or its product list)."""
        self.failures[what] = self.failures.get(what, 0) + 1
        self.errors.append([when, text])
        del self.errors[:-MAX_ERRORS]

    def succeeded(self, what: str) -> None:
        if self.failures:
            self.failures.pop(what, None)

    @property
    def fail_count(self) -> int:
        """Errors since the last success, on the database (or list) that has the most."""
        return max(self.failures.values(), default=0)

    def row(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.kind,
            self.address,
            self.name,
            self.first_seen,
            self.last_seen,
            json.dumps(self.has, separators=(",", ":")),
            self.engine,
            self.product,
            self.modules,
            self.serial,
            self.last_result,
            json.dumps(self.failures, separators=(",", ":")),
            json.dumps(self.errors, separators=(",", ":")),
            self.tier,
            self.check,
        )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Client:
        (ident, kind, address, name, first, last, has, engine, product, modules, serial, result, fails,
         errors, tier, check) = row  # fmt: skip
        return cls(
            ident, kind, address, first, last, name, json.loads(has), engine, product, modules, serial,
            result, json.loads(fails), json.loads(errors), tier, check,
        )  # fmt: skip


class ServedHistory:
    """Which version of each database was served from when: database -> sorted [(since, version)]."""

    def __init__(self, rows: Iterable[tuple[str, int, int, int | None]] = ()) -> None:
        self.since: dict[str, list[tuple[int, int]]] = {}
        self.by_build_time: dict[tuple[str, int], int] = {}
        self._lookup: dict[str, tuple[list[int], list[int]]] = {}  # db -> (times, newest version by then)
        for db, version, since, build_time in rows:
            self.add(db, version, since, build_time)

    def add(self, db: str, version: int, since: int, build_time: int | None) -> None:
        entries = self.since.setdefault(db, [])
        for index, (when, known) in enumerate(entries):
            if known == version:
                if since < when:
                    entries[index] = (since, version)
                    entries.sort()
                break
        else:
            entries.append((since, version))
            entries.sort()
        if build_time is not None:
            self.by_build_time[(db, build_time)] = version
        self._lookup.pop(db, None)

    def at(self, db: str, when: int) -> int | None:
        """The version of `db` served at `when` (the newest one served by then), None if not known."""
        lookup = self._lookup.get(db)
        if lookup is None:
            entries = self.since.get(db, [])
            newest, running = [], 0
            for _since, version in entries:
                running = max(running, version)
                newest.append(running)
            lookup = self._lookup[db] = ([since for since, _version in entries], newest)
        times, newest = lookup
        index = bisect_right(times, when)
        return newest[index - 1] if index else None

    def rows(self) -> list[tuple[str, int, int, int | None]]:
        build = {(db, version): time for (db, time), version in self.by_build_time.items()}
        return [
            (db, version, since, build.get((db, version)))
            for db, entries in self.since.items()
            for since, version in entries
        ]


class ClientTable:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / TABLE_FILE
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            self._add_missing_columns()
        except (OSError, sqlite3.Error) as error:
            raise StoreError(f"{self.path}: cannot open the client table: {error}") from None

    def _add_missing_columns(self) -> None:
        have = {row[1] for row in self.db.execute("PRAGMA table_info(clients)")}
        for name, kind in _ADDED_COLUMNS:
            if name not in have:
                self.db.execute(f'ALTER TABLE clients ADD COLUMN "{name}" {kind}')

    def close(self) -> None:
        self.db.close()

    def clients(self, tier: str | None = None) -> dict[str, Client]:
        query = f"SELECT {_COLUMNS} FROM clients"
        rows = self.db.execute(query) if tier is None else self.db.execute(query + " WHERE tier = ?", (tier,))
        return {row[0]: Client.from_row(row) for row in rows}

    def served(self) -> ServedHistory:
        return ServedHistory(self.db.execute("SELECT db, version, since, build_time FROM served"))

    def counters(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT name, value FROM counters"))

    def save(
        self,
        clients: Iterable[Client],
        served: ServedHistory,
        counters: dict[str, int],
        replace_tier: str | None = None,
    ) -> None:
        """Write changed clients, the served history and counters in one transaction."""
        try:
            with self.db:
                if replace_tier is not None:
                    self.db.execute("DELETE FROM clients WHERE tier = ?", (replace_tier,))
                self.db.executemany(
                    f"INSERT OR REPLACE INTO clients ({_COLUMNS}) VALUES ({','.join('?' * 16)})",
                    (client.row() for client in clients),
                )
                self.db.executemany("INSERT OR REPLACE INTO served VALUES (?, ?, ?, ?)", served.rows())
                self.db.executemany(
                    "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + ?",
                    ((name, value, value) for name, value in counters.items()),
                )
        except sqlite3.Error as error:
            raise StoreError(f"{self.path}: cannot write the client table: {error}") from None

    def prune(self, older_than: int) -> int:
        """Drop clients last seen before `older_than`, then the oldest beyond MAX_CLIENTS."""
        with self.db:
            dropped = self.db.execute("DELETE FROM clients WHERE last_seen < ?", (older_than,)).rowcount
            dropped += self.db.execute(
                "DELETE FROM clients WHERE id IN (SELECT id FROM clients ORDER BY last_seen DESC "
                "LIMIT -1 OFFSET ?)",
                (MAX_CLIENTS,),
            ).rowcount
        return dropped

    def tiers(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT DISTINCT tier FROM clients WHERE tier != ''")]
