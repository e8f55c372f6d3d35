"""Upstream servers that told us to go away (403, 429): cool-downs persisted across runs."""

from __future__ import annotations

import re
import time
from pathlib import Path

from pum.common.servers import Server
from pum.formats.httpdate import parse_http_date
from pum.store.state import (
    CoolDown,
    Report,
    cool_downs_from_json,
    cool_downs_to_json,
    read_document,
    write_document,
)

# freshclam's own cool-downs (libfreshclam.c): 403 -> 24 h, 429 without Retry-After -> 4 h
COOL_DOWN_FORBIDDEN = 24 * 3600
COOL_DOWN_TOO_MANY = 4 * 3600
# a Retry-After beyond a day is not etiquette but a fault (or a hostile server parking us for years)
MAX_COOL_DOWN = 24 * 3600
_DELTA_SECONDS = re.compile(r"[0-9]{1,10}", re.ASCII)


class CoolDowns:
    """Servers that told us to go away (403, 429), persisted so that later runs respect it too."""

    def __init__(self, path: Path, report: Report | None = None) -> None:
        self.path = path
        self._until: dict[str, CoolDown] = read_document(path, cool_downs_from_json, report) or {}

    def active(self, server: Server, now: float | None = None) -> CoolDown | None:
        entry = self._until.get(str(server))
        if entry and entry.until > (now or time.time()):
            return entry
        return None

    def add(self, server: Server, seconds: float, reason: str) -> None:
        self._until[str(server)] = CoolDown(until=time.time() + min(seconds, MAX_COOL_DOWN), reason=reason)
        write_document(self.path, cool_downs_to_json(self._until))


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After in either form RFC 9110 allows: delta-seconds (ASCII digits) or an HTTP date; capped at
    MAX_COOL_DOWN. None for anything else (the caller then uses freshclam's default)."""
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(min(int(value), MAX_COOL_DOWN))
    when = parse_http_date(value)
    if when is None:
        return None
    return min(max(0.0, when - (now or time.time())), MAX_COOL_DOWN)
