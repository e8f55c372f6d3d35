"""One run at a time: an flock'd file holding the PID of the run that owns it."""

import fcntl
import os
import time
from pathlib import Path
from typing import Optional

from pum.errors import LockHeld


class RunLock:
    """flock is released by the kernel when the holder dies (SIGKILL included), so a lock is never stale;
    the PID and start time inside are only there to tell a person who holds it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: Optional[int] = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").split()
            os.close(fd)
            pid = holder[0] if holder else "?"
            since = time.strftime("%H:%M:%S", time.localtime(float(holder[1]))) if len(holder) > 1 else "?"
            raise LockHeld(
                f"another run (pid {pid}) holds the lock {self.path} since {since}; this run did nothing"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {time.time():.0f}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
