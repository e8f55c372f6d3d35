"""From log lines to clients: who asked, and what their requests show they have.

freshclam (libfreshclam/libfreshclam.c, HTTP mode) asks `<db>.cvd` with `Range: bytes=0-511` and
`If-Modified-Since` set to its copy's build time: a 304 means it is current; a 206 of the header means
it is behind and walks the CDIFFs `<db>-<N>.cdiff` from its version + 1; a whole CVD (200) replaces
its copy. A CDIFF it cannot get (404) it asks again, then settles for the partial update: that is a
client failing. A private mirror is asked `<db>.cld` first; its 404 is normal and not counted.
proscanup and sub-PUMs say what they have in the query string (see `pum.formats.accesslog`).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path

from pum.fleet.table import MAX_CLIENTS, Client, ServedHistory
from pum.formats import FormatError
from pum.formats.accesslog import (
    CLAMAV_AGENT,
    AccessRecord,
    HostReport,
    VdfRequest,
    parse_freshclam_agent,
    parse_host_report,
    parse_line,
    parse_sub_report,
    parse_vdf_path,
)
from pum.formats.cvd import CVD_HEADER_SIZE, parse_cvd_header
from pum.formats.manifest import parse_manifest
from pum.formats.paths import changes_serial

MANIFEST_REQUEST = "/.pum/manifest.json"
_CACHE_LIMIT = 50_000  # agent strings and paths remembered while reading: bounded like everything else
_NOT_VDF = VdfRequest("", "", None)
_FAILED_STATUSES = frozenset((403, 404, 416, 429, 500, 502, 503, 504))


@dataclass
class IngestCounts:
    lines: int = 0
    skipped: int = 0  # unreadable: overlong, not UTF-8, not combined format, forged agent or report
    anonymous: int = 0  # requests that name no client (browsers, monitoring, older proscanup)
    refused_clients: int = 0  # new ids past MAX_CLIENTS
    reasons: dict[str, int] = field(default_factory=dict)

    def skip(self, why: str) -> None:
        self.skipped += 1
        if len(self.reasons) < 20 or why in self.reasons:
            self.reasons[why] = self.reasons.get(why, 0) + 1


class Ingest:
    """Applies log lines, in order, to the clients loaded from the table."""

    def __init__(self, clients: dict[str, Client], served: ServedHistory) -> None:
        self.clients = clients
        self.served = served
        self.changed: set[str] = set()
        self.counts = IngestCounts()
        self._agents: dict[str, tuple[str, str | None]] = {}
        self._paths: dict[str, VdfRequest] = {}
        self._reports: dict[str, HostReport | None] = {}  # a host sends the same query every run

    def lines(self, batch: Iterable[bytes]) -> None:
        counts = self.counts
        for line in batch:
            counts.lines += 1
            try:
                record = parse_line(line)
            except FormatError as error:
                counts.skip(_reason(error))
                continue
            try:
                self.record(record)
            except FormatError as error:
                counts.skip(_reason(error))

    def record(self, record: AccessRecord) -> None:
        agent = record.agent
        if agent.startswith(CLAMAV_AGENT):
            known = self._agents.get(agent)
            if known is None:
                parsed = parse_freshclam_agent(agent)  # FormatError: a forged agent is skipped
                known = (parsed.version, parsed.uuid)
                if len(self._agents) < _CACHE_LIMIT:
                    self._agents[agent] = known
            version, uuid = known
            self._freshclam(record, uuid or f"addr:{record.address}", version)
        elif record.query:
            if record.path.endswith(".lst"):
                query = record.query
                if query in self._reports:
                    report = self._reports[query]
                else:
                    report = parse_host_report(query)  # FormatError: a wrong report is skipped
                    if len(self._reports) < _CACHE_LIMIT:
                        self._reports[query] = report
                if report is not None:
                    client = self._client(report.host, "proscanup", record)
                    if client is not None:
                        client.name = report.name or client.name
                        client.engine = report.engine or client.engine
                        client.product = report.product or client.product
                        client.modules = report.modules or client.modules
                        client.last_result = report.last or client.last_result
                        client.check = report.check or client.check
                        if record.status >= 400:
                            client.add_error(
                                record.time, f"{record.method} {record.path} {record.status}", "list"
                            )
                        else:
                            client.succeeded("list")
                    return
            elif record.path == MANIFEST_REQUEST or changes_serial(record.path[1:]) is not None:
                sub = parse_sub_report(record.query)
                if sub is not None:
                    client = self._client(f"pum:{sub.name}", "pum", record)
                    if client is not None:
                        client.name = sub.name
                        client.serial = sub.serial
                    return
            self.counts.anonymous += 1
        else:
            self.counts.anonymous += 1

    def _client(self, ident: str, kind: str, record: AccessRecord) -> Client | None:
        client = self.clients.get(ident)
        if client is None:
            if len(self.clients) >= MAX_CLIENTS:
                self.counts.refused_clients += 1
                return None
            client = self.clients[ident] = Client(ident, kind, record.address, record.time, record.time)
        elif record.time > client.last_seen:
            client.last_seen = record.time
        client.address = record.address
        self.changed.add(ident)
        return client

    def _freshclam(self, record: AccessRecord, ident: str, version: str) -> None:
        client = self._client(ident, "freshclam", record)
        if client is None:
            return
        client.engine = version
        path = record.path
        vdf = self._paths.get(path)
        if vdf is None:
            vdf = parse_vdf_path(path) or _NOT_VDF
            if len(self._paths) < _CACHE_LIMIT:
                self._paths[path] = vdf
        if vdf is _NOT_VDF:
            return
        status = record.status
        db = vdf.database
        if vdf.kind == "cdiff":
            assert vdf.version is not None
            if status == 200:
                if vdf.version > client.has.get(db, 0):
                    client.has[db] = vdf.version
                client.succeeded(db)
            elif status in _FAILED_STATUSES:
                client.add_error(record.time, f"{record.method} {path} {status}", db)
            return
        if status == 304 or (status == 200 and record.size > CVD_HEADER_SIZE):
            served = self.served.at(db, record.time)
            if served is not None:
                client.has[db] = served
            client.succeeded(db)
        elif status in (200, 206) and record.if_modified_since:
            held = self._version_by_build_time(db, record.if_modified_since)
            if held is not None:
                client.has[db] = held
        elif status in _FAILED_STATUSES and not (vdf.kind == "cld" and status == 404):
            client.add_error(record.time, f"{record.method} {path} {status}", db)

    def _version_by_build_time(self, db: str, http_date: str) -> int | None:
        try:
            when = int(parsedate_to_datetime(http_date).timestamp())
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        return self.served.by_build_time.get((db, when))


def _reason(error: FormatError) -> str:
    """The kind of a refusal, to count by: its message without numbers or quoted values."""
    text = re.sub(r"\d{2,}", "N", re.sub(r"'[^']*'|\"[^\"]*\"", "…", str(error)))
    return text[:60]


def served_releases(releases_dir: Path, history: ServedHistory) -> None:
    """Add the database versions of every release kept on disk, since its manifest's creation time."""
    try:
        serials = [name for name in os.listdir(releases_dir) if name.isdigit()]
    except OSError:
        return
    for name in serials:
        release = releases_dir / name
        try:
            manifest = parse_manifest((release / ".pum" / "manifest.json").read_bytes())
            created = dt.datetime.fromisoformat(manifest.created.replace("Z", "+00:00"))
        except (OSError, FormatError, ValueError):
            continue
        if created.tzinfo is None:
            created = created.astimezone()
        since = int(created.timestamp())
        for path in manifest.files:
            if "/" in path or not path.endswith(".cvd"):
                continue
            try:
                with open(release / path, "rb") as stream:
                    header = parse_cvd_header(stream.read(CVD_HEADER_SIZE))
            except (OSError, FormatError):
                continue
            history.add(path[: -len(".cvd")], header.version, since, header.build_time)
