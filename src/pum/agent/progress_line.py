"""One plain progress line for downloads, on a terminal only: name, size so far of total, percent, ETA."""

import sys
import time
from typing import IO, Optional

MB = 1 << 20
EVERY = 0.25  # seconds between redraws


def format_progress(name: str, received: int, total: Optional[int], elapsed: float) -> str:
    """`proscan.tar.gz  12.0 of 48.0 MB  25%  ETA 0:36` (no total: `12.0 MB`)."""
    if total is None or total <= 0:
        return f"{name}  {received / MB:.1f} MB"
    percent = min(100, received * 100 // total)
    rate = received / elapsed if elapsed > 0 else 0.0
    eta = "--:--"
    if rate > 0 and received < total:
        seconds = int((total - received) / rate)
        eta = f"{seconds // 60}:{seconds % 60:02d}"
    elif received >= total:
        eta = "0:00"
    return f"{name}  {received / MB:.1f} of {total / MB:.1f} MB  {percent}%  ETA {eta}"


class ProgressLine:
    """Redraws one line on `stream` (carriage return, no colours); does nothing unless it is a TTY."""

    def __init__(self, stream: Optional[IO[str]] = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.name = ""
        self.started = 0.0
        self.drawn = 0.0
        self.width = 0

    def __call__(self, name: str, received: int, total: Optional[int]) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if name != self.name:
            self.finish()
            self.name, self.started, self.drawn = name, now, 0.0
        done = total is not None and received >= total
        if now - self.drawn < EVERY and not done:
            return
        self.drawn = now
        line = format_progress(name, received, total, now - self.started)
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.width = len(line)

    def finish(self) -> None:
        if self.enabled and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0
