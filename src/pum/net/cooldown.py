"""Upstream servers that told us to go away (403, 429): cool-downs persisted across runs."""

from __future__ import annotations

import email.utils
import json
import os
import time
from pathlib import Path

from pum.config import Server

# freshclam's own cool-downs (libfreshclam.c): 403 -> 24 h, 429 without Retry-After -> 4 h
COOL_DOWN_FORBIDDEN = 24 * 3600
COOL_DOWN_TOO_MANY = 4 * 3600


class CoolDowns:
    """Servers that told us to go away (403, 429), persisted so that later runs respect it too."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._until: dict[str, dict] = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            self._until = {}

    def active(self, server: Server, now: float | None = None) -> dict | None:
        entry = self._until.get(str(server))
        if entry and entry["until"] > (now or time.time()):
            return entry
        return None

    def add(self, server: Server, seconds: float, reason: str) -> None:
        self._until[str(server)] = {"until": time.time() + seconds, "reason": reason}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._until, indent=1))
        os.replace(tmp, self.path)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After in either form RFC 9110 allows: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now or time.time()))
