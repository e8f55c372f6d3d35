"""Run one external command (freshclam, post_update.sh, an installer) with a time limit, output shown.

The deadline holds whatever the command does:
- it runs in a session of its own (`setsid`), so at the time limit its whole process group is signalled;
- it carries a marker in its environment (`PROSCANUP_SESSION=<random token>`), which everything it starts
  inherits, so a grandchild that left the group with `setsid` is found too: at the time limit `ps axeww`
  (procps and AIX print the environment after the command with `e`) lists the processes carrying the
  marker, and they are signalled as well. No /proc, no cgroups: AIX has neither in the form Linux has.
- its output goes to an unlinked temporary file opened for appending, which we read as it grows and cut
  back to nothing once read (so `exec yes` never fills the temporary filesystem), keeping the first
  `SHOWN_HEAD` bytes (shown as they come) and the last `KEPT_TAIL` bytes (shown at the end).
After a normal exit nothing is killed: a post_update.sh may leave the scanner daemon running.

A file rather than a pipe: a daemon the command starts may keep writing to it after we are gone, without
SIGPIPE, and we never wait for it.
"""

import fcntl
import os
import re
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

from pum.errors import PumError

SESSION_ENV = "PROSCANUP_SESSION"
KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
POLL = 0.1  # seconds between looks at the output while the command runs
TAIL = 20  # lines of output kept for the error message
SHOWN_HEAD = 512 << 10  # bytes of output shown as they come
KEPT_TAIL = 512 << 10  # bytes of output kept beyond those, shown at the end
LINE_MAX = 4096  # a longer line (or output without newlines) is shown in pieces of this size
SWEEPS = 10  # rounds of SIGKILL to marked processes (one may fork while we kill)
PS_TIMEOUT = 30.0  # seconds for `ps` to list processes
MARKER_MAX = 1000  # characters of inherited markers kept (nesting is shallow; the environment is not)


class CommandError(PumError):
    """A command proscanup runs failed, could not start, or ran past CommandTimeout."""


class Finished(NamedTuple):
    returncode: Optional[int]  # None when killed at the time limit
    timed_out: bool
    output: List[str]  # the last TAIL lines
    omitted: int  # bytes of output neither shown nor kept (at least)


def run_command(
    argv: Sequence[str],
    timeout: float,
    show: Callable[[str], None],
    cwd: Optional[Path] = None,
    env: Optional[Dict[str, str]] = None,
    token: Optional[str] = None,
) -> Finished:
    """Run `argv`, passing each output line (stdout and stderr together) to `show` as it comes. `token` is
    the marker its processes carry (`new_token()` when not given)."""
    token = token or new_token()
    child_env = dict(os.environ if env is None else env)
    # Keep the marker of a command we run inside (a proscanup that post_update.sh runs): stopping that
    # one must reach what we start too.
    outer = child_env.get(SESSION_ENV, "")
    child_env[SESSION_ENV] = f"{outer},{token}" if outer and len(outer) < MARKER_MAX else token
    fd, name = tempfile.mkstemp(prefix="proscanup-output-")
    try:
        os.unlink(name)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
        try:
            process = subprocess.Popen(
                list(argv),
                cwd=None if cwd is None else str(cwd),
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:
            raise CommandError(f"cannot run {argv[0]}: {error.strerror or error}") from None
        output = BoundedOutput(fd, show)
        deadline = time.monotonic() + timeout
        timed_out = False
        try:
            while process.poll() is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    stop_session(process, token)
                    break
                try:
                    process.wait(timeout=min(left, POLL))
                except subprocess.TimeoutExpired:
                    pass
                output.read()
        except BaseException:
            stop_session(process, token, grace=0)
            raise
        output.read()
        output.finish()
    finally:
        os.close(fd)
    return Finished(None if timed_out else process.returncode, timed_out, output.last_lines, output.omitted)


def new_token() -> str:
    return uuid.uuid4().hex


class BoundedOutput:
    """The command's output file, read from our own position: the head shown line by line, then only the
    tail kept; the file is cut back to nothing whenever it is all read."""

    def __init__(self, fd: int, show: Callable[[str], None]) -> None:
        self.fd, self.show = fd, show
        self.position = 0
        self.shown = 0
        self.pending = b""
        self.tail = bytearray()
        self.omitted = 0
        self.last_lines: List[str] = []

    def read(self) -> None:
        size = os.fstat(self.fd).st_size
        if self.shown < SHOWN_HEAD and self.position < size:
            chunk = os.pread(self.fd, min(SHOWN_HEAD - self.shown, size - self.position), self.position)
            self.position += len(chunk)
            self.shown += len(chunk)
            self._lines(chunk)
        if self.position < size:
            if size - self.position > KEPT_TAIL:
                self.omitted += size - self.position - KEPT_TAIL + len(self.tail)
                self.tail = bytearray()
                self.position = size - KEPT_TAIL
            self.tail += os.pread(self.fd, size - self.position, self.position)
            self.position = size
            if len(self.tail) > KEPT_TAIL:
                self.omitted += len(self.tail) - KEPT_TAIL
                del self.tail[: len(self.tail) - KEPT_TAIL]
        if self.position > SHOWN_HEAD + KEPT_TAIL:
            # Whatever the command appends between our fstat and this cut is lost: it is in the middle of
            # an output already too long to keep, and `omitted` is then a lower bound.
            os.ftruncate(self.fd, 0)
            self.position = 0

    def finish(self) -> None:
        if self.tail:
            if self.pending:
                self._emit(self.pending)
                self.pending = b""
            if self.omitted:
                self._emit(f"[... {self.omitted} bytes of output not shown ...]".encode())
            self._lines(bytes(self.tail))
            self.tail = bytearray()
        if self.pending:
            self._emit(self.pending)
            self.pending = b""

    def _lines(self, chunk: bytes) -> None:
        parts = (self.pending + chunk).split(b"\n")
        self.pending = parts.pop()
        for raw in parts:
            self._emit(raw)
        while len(self.pending) > LINE_MAX:
            self._emit(self.pending[:LINE_MAX])
            self.pending = self.pending[LINE_MAX:]

    def _emit(self, raw: bytes) -> None:
        for start in range(0, max(len(raw), 1), LINE_MAX):
            line = raw[start : start + LINE_MAX].decode("utf-8", "replace").rstrip("\r")
            self.last_lines = self.last_lines[-(TAIL - 1) :] + [line]
            self.show(line)


def stop_session(process: "subprocess.Popen[bytes]", token: str, grace: float = KILL_GRACE) -> None:
    """SIGTERM to the command's group and to every process carrying its marker, SIGKILL after `grace`
    seconds; then SIGKILL to whatever of them outlived the leader, until none is left (bounded)."""
    _signal_group(process.pid, signal.SIGTERM)
    _signal_marked(token, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()
    stop_marked(token)


def stop_marked(token: str) -> None:
    """SIGKILL to every process carrying the marker `token`, until none is left (bounded)."""
    for _sweep in range(SWEEPS):
        if not _signal_marked(token, signal.SIGKILL):
            break
        time.sleep(POLL)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:  # the whole group is already gone
        pass


def _signal_marked(token: str, sig: int) -> int:
    """Signal every process whose environment carries `token`; how many were signalled."""
    signalled = 0
    for pid in marked_processes(token):
        try:
            os.kill(pid, sig)
            signalled += 1
        except ProcessLookupError:
            pass
    return signalled


def marked_processes(token: str) -> List[int]:
    """Processes with `token` in `PROSCANUP_SESSION` (`<outer>,<token>` when nested) in their environment,
    from `ps axeww`; zombies (already dead, waiting for their parent) are left out."""
    marker = re.compile(
        rb"(?:^|\s)" + SESSION_ENV.encode() + rb"=(?:\S*,)?" + token.encode() + rb"(?:,|\s|$)"
    )
    try:
        ps = subprocess.Popen(
            ["ps", "axeww"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
    except OSError:
        return []
    try:
        listing, _ = ps.communicate(timeout=PS_TIMEOUT)
    except subprocess.TimeoutExpired:
        ps.kill()
        ps.wait()
        return []
    pids = []
    for line in listing.splitlines()[1:]:
        fields = line.split(None, 4)
        if not marker.search(line) or len(fields) < 3 or not fields[0].isdigit():
            continue
        pid = int(fields[0])
        if pid not in (os.getpid(), ps.pid) and not fields[2].startswith(b"Z"):
            pids.append(pid)
    return pids


def script_argv(script: Path) -> List[str]:
    """An executable script with a `#!` line runs by it; any other by /bin/sh (as `sh script` would)."""
    with open(str(script), "rb") as stream:
        shebang = stream.read(2) == b"#!"
    return [str(script)] if shebang and os.access(str(script), os.X_OK) else ["/bin/sh", str(script)]
