"""`pum run -v` on a terminal: run-log lines scroll above the live progress bars, never inside them."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys

# Bars live, log lines echoed meanwhile, more progress, then the bars go (transient): what `pum run -v` does.
SCRIPT = """
import sys
from pum.progress import download_progress
from pum.runlog import RunLog

log = RunLog(None, echo=sys.stderr)
with download_progress(True, log=log) as hook:
    hook("daily.cvd", 1000, 100000)
    log.line("LOG LINE ONE")
    hook("daily.cvd", 50000, 100000)
    log.line("LOG LINE TWO")
    hook("daily.cvd", 90000, 100000)
log.line("LOG LINE AFTER")
"""


def screen_of(output: str, width: int = 80) -> list[str]:
    """What a terminal shows after `output`: the few controls rich's live display uses (carriage return,
    newline, cursor up, erase line, colours), enough to tell a line that stayed from one erased."""
    lines = [""]
    row = column = 0
    for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|.", output, re.DOTALL):
        if token == "\r":
            column = 0
        elif token == "\n":
            row += 1
            column = 0
            if row == len(lines):
                lines.append("")
        elif token.startswith("\x1b["):
            command, argument = token[-1], token[2:-1]
            if command == "A":
                row = max(0, row - int(argument or 1))
            elif command == "K":
                lines[row] = "" if argument == "2" else lines[row][:column]
            elif command == "G":
                column = int(argument or 1) - 1
        elif token >= " " and column < width:
            line = lines[row].ljust(column)
            lines[row] = line[:column] + token + line[column + 1 :]
            column += 1
    return [line.rstrip() for line in lines]


def test_log_lines_scroll_above_live_progress_bars_on_a_terminal() -> None:
    leader, follower = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"},
        close_fds=True,
    )
    os.close(follower)
    output = b""
    for _ in range(1000):  # bounded: the child ends in well under a second (on an idle machine)
        # 60 s for the first byte: a loaded machine may take seconds to start Python and import rich,
        # and the loop ends as soon as the child closes the terminal
        ready, _w, _x = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert child.wait(timeout=30) == 0
    screen = [line for line in screen_of(output.decode("utf-8", errors="replace")) if line]
    assert screen == ["LOG LINE ONE", "LOG LINE TWO", "LOG LINE AFTER"], output
