"""The access log of `pum serve`: Apache's "combined" format, buffered, rotated daily like the run log.

Workers append whole lines through their own O_APPEND descriptor, so lines of several processes never
interleave. At the first flush of a new day the file is rotated with `pum.runlog.rotate_daily` under a
lock on its directory, so only the first worker to notice rotates; the others see a file already
written today and just reopen. Lines still buffered from the day before are written after the rotation
through the old descriptor, which by then is `<log>.1`: each line lands in the file of its own day.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import re
import stat
import time
from pathlib import Path

from pum.runlog import rotate_daily

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
FLUSH_BYTES = 64 * 1024


def log_time(seconds: float) -> str:
    """Apache's %t: `[10/Oct/2000:13:55:36 -0700]`, local time."""
    t = time.localtime(seconds)
    offset = t.tm_gmtoff or 0
    sign = "-" if offset < 0 else "+"
    offset = abs(offset) // 60
    return (
        f"[{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        f" {sign}{offset // 60:02d}{offset % 60:02d}]"
    )


_ESCAPES = {i: f"\\x{i:02x}" for i in (*range(0x20), *range(0x7F, 0x100))}
_ESCAPES[ord('"')] = '\\"'
_ESCAPES[ord("\\")] = "\\\\"


_NEEDS_ESCAPE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]").search


def escape(text: str) -> str:
    """Quote a field the way Apache's mod_log_config does: `"`, `\\` and non-printables escaped."""
    if _NEEDS_ESCAPE(text) is None:
        return text
    return text.translate(_ESCAPES)


def combined_line(
    remote: str, when: str, request_line: str, status: int, body_bytes: int, referer: str, agent: str
) -> str:
    """One line of `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"`."""
    return f"{remote} - - {when} {logged_request(request_line, status, body_bytes, referer, agent)}"


def logged_request(request_line: str, status: int, body_bytes: int, referer: str, agent: str) -> str:
    """What a combined line says after the time: the same for every answer to the same request, so
    the server escapes it once and keeps it."""
    size = str(body_bytes) if body_bytes else "-"
    return f'"{escape(request_line)}" {status} {size} "{escape(referer) or "-"}" "{escape(agent) or "-"}"\n'


class AccessLog:
    """Buffered appends to one log file; `flush` is called about once a second and on close."""

    def __init__(self, path: Path | None, rotate: bool = True, generations: int = 5) -> None:
        self.path = path
        self.rotate = rotate
        self.generations = max(1, generations)
        self._pending: list[str] = []
        self._pending_size = 0
        self._fd = -1
        self._day = dt.date.today()
        self._stamp_second = -1
        self._stamp = ""
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._rotate_if_due(self._day)
            self._open()

    def stamp(self, now: float) -> str:
        second = int(now)
        if second != self._stamp_second:
            self._stamp_second = second
            self._stamp = log_time(second)
        return self._stamp

    def write(self, line: str) -> bool:
        """Buffer a line; True when it is the first one waiting, so the caller can schedule a flush."""
        if self._fd < 0:
            return False
        self._pending.append(line)
        self._pending_size += len(line)
        if self._pending_size >= FLUSH_BYTES:
            self.flush()
        return len(self._pending) == 1

    def flush(self) -> None:
        if self._fd < 0:
            return
        today = dt.date.today()
        if today != self._day:
            self._day = today
            self._rotate_if_due(today)
            self._write_pending()
            os.close(self._fd)
            self._open()
        else:
            self._write_pending()

    def close(self) -> None:
        if self._fd >= 0:
            self._write_pending()
            os.close(self._fd)
            self._fd = -1

    def _open(self) -> None:
        assert self.path is not None
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _write_pending(self) -> None:
        if not self._pending:
            return
        data = "".join(self._pending).encode("utf-8", "replace")
        self._pending.clear()
        self._pending_size = 0
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def _rotate_if_due(self, today: dt.date) -> None:
        if not self.rotate or self.path is None:
            return
        try:
            if not stat.S_ISREG(self.path.stat().st_mode):
                return
        except FileNotFoundError:
            return
        directory = os.open(self.path.parent, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(directory, fcntl.LOCK_EX)
            rotate_daily(self.path, self.generations, today)
        finally:
            os.close(directory)
