"""A download's pace: `MaxRate` (bytes/s) and, on a terminal only, one progress line with size and ETA.

Called after every chunk written (`agent/pum_client.py` download's `progress`); it sleeps when the download is
ahead of MaxRate. Under cron (no terminal) it prints nothing. Python 3.6-clean, no rich on the host side.
"""

import sys
import time
from typing import Callable, Optional, TextIO

REDRAW = 0.5  # seconds between redraws of the progress line
MB = 1 << 20


class Pace:
    def __init__(
        self,
        name: str,
        max_rate: int,
        stream: Optional[TextIO] = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name, self.max_rate = name, max_rate
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = self.stream.isatty()
        self.clock, self.sleep = clock, sleep
        self.started = clock()
        self.first: Optional[int] = None  # bytes already there when this download began (a resume)
        self.drawn = 0.0
        self.done = 0
        self.total: Optional[int] = None

    def __call__(self, done: int, total: Optional[int]) -> None:
        if self.first is None:
            self.first = done
        self.done, self.total = done, total
        moved = done - self.first
        elapsed = self.clock() - self.started
        if self.max_rate > 0 and moved / self.max_rate > elapsed:
            self.sleep(moved / self.max_rate - elapsed)
        if self.terminal and self.clock() - self.drawn >= REDRAW:
            self.drawn = self.clock()
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def line(self) -> str:
        moved = self.done - (self.first or 0)
        elapsed = max(self.clock() - self.started, 1e-6)
        rate = moved / elapsed
        text = f"{self.name}: {self.done / MB:.1f} MB"
        if self.total:
            text += f" of {self.total / MB:.1f} MB ({100 * self.done // self.total}%)"
            if rate > 0:
                left = int((self.total - self.done) / rate)
                text += f", ETA {left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}"
        return text + f", {rate / 1024:.0f} KB/s"

    def finish(self) -> None:
        if self.terminal and self.first is not None:
            self.stream.write("\r" + self.line() + "\n")
            self.stream.flush()
