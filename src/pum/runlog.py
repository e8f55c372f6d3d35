"""The run log operators know: a start header per run, plain lines, daily rotation with N generations."""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from pum import __version__


def rotate_daily(path: Path, generations: int, today: dt.date | None = None) -> bool:
    """At the first write of a new day: path -> path.1 -> ... -> path.<generations>; the oldest is deleted.

    Returns True when it rotated. `path` is left in place, empty, as the original product did.
    """
    today = today or dt.date.today()
    try:
        stat = path.stat()
    except FileNotFoundError:
        return False
    if stat.st_size == 0 or dt.date.fromtimestamp(stat.st_mtime) >= today:
        return False
    path.with_name(f"{path.name}.{generations}").unlink(missing_ok=True)
    for number in range(generations - 1, 0, -1):
        older = path.with_name(f"{path.name}.{number}")
        if older.exists():
            older.rename(path.with_name(f"{path.name}.{number + 1}"))
    path.rename(path.with_name(f"{path.name}.1"))
    path.touch()
    return True


class RunLog:
    """Lines of one run, appended to the log file and, with `echo`, shown on the console."""

    def __init__(
        self, path: Path | None, *, rotate: bool = True, generations: int = 5, echo: TextIO | None = None
    ) -> None:
        self.path = path
        self.echo = echo
        self._echo_line: Callable[[str], None] | None = None  # while live progress bars own the terminal
        self._file: TextIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if rotate:
                rotate_daily(path, generations)
            self._file = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives for the run

    def start(self, config_path: Path | None, mode: str = "server") -> None:
        stamp = time.strftime("%a %b %e %H:%M:%S %Y")
        self.line(f"pum REV={__version__} start : {stamp} -----")
        if config_path is not None:
            self.line(f"Read configuration file ({config_path})")
        if mode == "mirror":
            self.line("mirroring mode")

    def line(self, text: str) -> None:
        if self._file is not None:
            self._file.write(text + "\n")
        if self.echo is None:
            return
        if self._echo_line is not None:
            self._echo_line(text)
        else:
            print(text, file=self.echo, flush=True)

    @contextmanager
    def echo_through(self, echo_line: Callable[[str], None]) -> Iterator[None]:
        """Echo lines through `echo_line` meanwhile: the console of live progress bars, which prints them
        above the bars (a plain write to the terminal would land inside a bar and be erased by its next
        refresh)."""
        self._echo_line = echo_line
        try:
            yield
        finally:
            self._echo_line = None

    def error(self, text: str) -> None:
        self.line(f"ERROR: {text}")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def null_log() -> RunLog:
    return RunLog(None)


def console_log(verbose: bool) -> TextIO | None:
    return sys.stderr if verbose else None
