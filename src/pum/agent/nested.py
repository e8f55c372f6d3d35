"""One proscanup run at a time, except a run its own post_update.sh starts.

The vendor's post_update.sh calls `proscanup upgrade` while the `proscanup` that ran it still holds the
run lock. The holder writes a random token beside the lock and puts it in its environment
(`PROSCANUP_LOCK_TOKEN`), which the script and everything it starts inherit. A run that finds the lock held
and that same token in both places is nested: it runs without the lock, and records a failure in
`nested-<token>.failed`, which the parent reads when the script ends, so that a failed upgrade is never
reported as "execute successfully" even by a script that ignores its exit status. Any other run still
gets "another run holds the lock" (exit 3).
"""

import os
import uuid
from pathlib import Path
from typing import List, Optional

from pum.common.runlock import RunLock
from pum.errors import LockHeld

LOCK = "proscanup.lock"
TOKEN_ENV = "PROSCANUP_LOCK_TOKEN"
TOKEN_FILE = "proscanup.lock.token"
FAILED_LIMIT = 64 << 10  # bytes of a child's failure record read


class RunSlot:
    """The run lock, or the parent's when this run is nested in it (`nested` says which)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.nested = False
        self.token = ""
        self._lock: Optional[RunLock] = None
        self._previous_env: Optional[str] = None

    def __enter__(self) -> "RunSlot":
        inherited = os.environ.get(TOKEN_ENV, "")
        holder_token = _read(self.state_dir / TOKEN_FILE, 100).strip()
        if inherited and holder_token == inherited and _held(self.state_dir):
            self.nested, self.token = True, inherited
            return self
        self._lock = RunLock(self.state_dir / LOCK)
        self._lock.acquire()
        self.token = uuid.uuid4().hex
        _write(self.state_dir / TOKEN_FILE, self.token + "\n")
        self._previous_env = os.environ.get(TOKEN_ENV)
        os.environ[TOKEN_ENV] = self.token
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is None:
            return
        if self._previous_env is None:
            os.environ.pop(TOKEN_ENV, None)
        else:
            os.environ[TOKEN_ENV] = self._previous_env
        for path in (self.state_dir / TOKEN_FILE, self._failed_path()):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        self._lock.release()
        self._lock = None

    def record_failure(self, line: str) -> None:
        """In a nested run: tell the parent this run failed."""
        if self.nested:
            with open(str(self._failed_path()), "a", encoding="utf-8") as record:
                record.write(" ".join(line.split())[:1000] + "\n")

    def _failed_path(self) -> Path:
        return _failed_path(self.state_dir, self.token)


def child_failures(state_dir: Path) -> List[str]:
    """In the run holding the lock: the failures its nested runs recorded since the last call."""
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        return []
    path = _failed_path(state_dir, token)
    lines = [line for line in _read(path, FAILED_LIMIT).splitlines() if line.strip()]
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    return lines


def _failed_path(state_dir: Path, token: str) -> Path:
    return state_dir / f"nested-{token}.failed"


def _held(state_dir: Path) -> bool:
    """Whether some process holds the run lock now (the parent may have died, leaving its token)."""
    probe = RunLock(state_dir / LOCK)
    try:
        probe.acquire()
    except LockHeld:  # the parent is alive and holds it
        return True
    probe.release()
    return False


def _read(path: Path, limit: int) -> str:
    try:
        with open(str(path), "rb") as stream:
            return stream.read(limit).decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    with open(str(part), "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(str(part), str(path))
