"""Run one external command (freshclam, post_update.sh, an installer) with a time limit, output shown.

The command gets its own process group, so that at the time limit everything it started is killed too
(a shell script's `sleep` would otherwise keep running). After a normal exit the group is left alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pum.errors import PumError

KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL of the group
POLL = 0.1  # seconds between looks at the output while the command runs
TAIL = 20  # lines of output kept for the error message


class CommandError(PumError):
    """A command proscanup runs failed, could not start, or ran past CommandTimeout."""


@dataclass
class Finished:
    returncode: int | None  # None when killed at the time limit
    timed_out: bool
    output: list[str] = field(default_factory=list)


def run_command(
    argv: Sequence[str],
    *,
    timeout: float,
    show: Callable[[str], None],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> Finished:
    """Run `argv`, passing each output line (stdout and stderr together) to `show` as it comes.

    Output goes to an unlinked temporary file, not a pipe: a daemon the command starts (a post_update.sh
    restarting the scanner) may keep writing to it after we are gone, without SIGPIPE, and we never wait
    for it. We read the file with pread, so the command's own file offset is never moved.
    """
    with tempfile.TemporaryFile() as log:
        try:
            process = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:
            raise CommandError(f"cannot run {argv[0]}: {error.strerror or error}") from None
        lines = _LineReader(log.fileno(), show)
        deadline = time.monotonic() + timeout
        timed_out = False
        try:
            while process.poll() is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    kill_group(process)
                    break
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=min(left, POLL))
                lines.read()
        except BaseException:
            kill_group(process, grace=0)
            raise
        lines.read(final=True)
    return Finished(None if timed_out else process.returncode, timed_out, lines.tail)


class _LineReader:
    """New whole lines of the output file, from our own position."""

    def __init__(self, fd: int, show: Callable[[str], None]) -> None:
        self.fd, self.show = fd, show
        self.position = 0
        self.pending = b""
        self.tail: list[str] = []

    def read(self, final: bool = False) -> None:
        while chunk := os.pread(self.fd, 65536, self.position):
            self.position += len(chunk)
            *complete, self.pending = (self.pending + chunk).split(b"\n")
            for raw in complete:
                self._emit(raw)
        if final and self.pending:
            self._emit(self.pending)
            self.pending = b""

    def _emit(self, raw: bytes) -> None:
        line = raw.decode(errors="replace").rstrip("\r")
        self.tail = [*self.tail[-(TAIL - 1) :], line]
        self.show(line)


def kill_group(process: subprocess.Popen[bytes], grace: float = KILL_GRACE) -> None:
    """SIGTERM to the whole group, SIGKILL after `grace` seconds; then SIGKILL to whatever of the group
    outlived its leader."""
    _signal_group(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group is already gone
        os.killpg(pgid, sig)


def script_argv(script: Path) -> list[str]:
    """An executable script with a `#!` line runs by it; any other by /bin/sh (as `sh script` would)."""
    with open(script, "rb") as stream:
        shebang = stream.read(2) == b"#!"
    return [str(script)] if shebang and os.access(script, os.X_OK) else ["/bin/sh", str(script)]
