"""`pum daemon`: the update cycle every interval (plus a random jitter), in the foreground, until SIGTERM.

For containers and service managers that keep one process running instead of a timer or cron. A failed
cycle is logged and the next one comes at its time. SIGTERM (or SIGINT) while waiting stops at once;
during a cycle it aborts the cycle the way a killed `pum run` is safe to abort (the staged tree is
dropped, the served release stays, the lock is released, finished downloads are kept for next time),
except inside the store's publish, switch and prune (the store's critical section), which are let finish
first.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

from pum.config import Config
from pum.errors import ConfigError, PumError
from pum.run import run_once
from pum.runlog import RunLog
from pum.store import CRITICAL

DEFAULT_INTERVAL = 3600.0
DEFAULT_JITTER = 300.0
_RECHECK = 0.05  # seconds: how soon a stop requested inside a store operation is looked at again

Say = Callable[[str], None]


class Stopped(BaseException):
    """Raised in the cycle by the SIGTERM handler. A BaseException, like KeyboardInterrupt, so that no
    `except Exception` on the way can swallow it; the cycle's `finally` blocks clean up."""


def _say_on_stderr(text: str) -> None:
    print(f"pum daemon: {text}", file=sys.stderr, flush=True)


class _StopSignal:
    """SIGTERM/SIGINT: wake the wait, or stop the cycle at the next point where stopping is safe."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.name = ""
        self.in_cycle = False
        self._raised = False
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._on_signal)
        self._previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, self._on_alarm)

    def restore(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.name = signal.Signals(signum).name
        self.requested.set()
        self._stop_cycle()

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        self._stop_cycle()

    def _stop_cycle(self) -> None:
        if not self.in_cycle or self._raised:
            return
        if CRITICAL.active:  # publish, switch or prune: milliseconds; look again right after
            signal.setitimer(signal.ITIMER_REAL, _RECHECK)
            return
        self._raised = True
        raise Stopped(self.name)


def run_daemon(
    config: Config,
    make_log: Callable[[], RunLog],
    interval: float = DEFAULT_INTERVAL,
    jitter: float = DEFAULT_JITTER,
    say: Say = _say_on_stderr,
    max_cycles: int | None = None,
) -> int:
    """Run `run_once` now (after up to `jitter` seconds) and then every `interval` + up to `jitter`
    seconds, until SIGTERM or SIGINT (or `max_cycles`). Returns the number of cycles run."""
    if interval <= 0:
        raise ConfigError(f"--interval must be more than 0 seconds, got {interval:g}")
    if jitter < 0:
        raise ConfigError(f"--jitter must be 0 or more seconds, got {jitter:g}")
    stop = _StopSignal()
    stop.install()
    cycles = 0
    say(f"started (pid {os.getpid()}): a cycle every {interval:g} s + up to {jitter:g} s; SIGTERM stops")
    try:
        wait = random.uniform(0, jitter)
        while max_cycles is None or cycles < max_cycles:
            if stop.requested.wait(wait):
                say(f"{stop.name}: stopped between cycles")
                break
            cycles += 1
            started = time.monotonic()
            if not _cycle(config, make_log, stop, cycles, say):
                break
            # the interval counts from the start of a cycle, so cycles keep their rhythm
            wait = max(0.0, interval - (time.monotonic() - started)) + random.uniform(0, jitter)
            if max_cycles is None or cycles < max_cycles:
                say(f"next cycle in {wait:.0f} s" if wait >= 10 else f"next cycle in {wait:.1f} s")
    finally:
        stop.restore()
    return cycles


def _cycle(config: Config, make_log: Callable[[], RunLog], stop: _StopSignal, number: int, say: Say) -> bool:
    """One cycle; False when a stop signal ended it."""
    log = make_log()
    try:
        stop.in_cycle = True
        try:
            outcome = run_once(config, log)
        finally:
            stop.in_cycle = False
            signal.setitimer(signal.ITIMER_REAL, 0)
    except Stopped as stopped:
        log.line(f"stopped by {stopped}: this run was abandoned; the served release is unchanged")
        say(f"{stopped}: cycle {number} abandoned, the served release is unchanged; stopped")
        return False
    except PumError as error:
        # run_once has logged it; the served release is untouched and the next cycle tries again
        say(f"cycle {number} failed: {error}")
    except OSError as error:
        log.error(f"{error.filename or ''}: {error.strerror or error}")
        say(f"cycle {number} failed: {error.filename or ''}: {error.strerror or error}")
    else:
        result = f"release {outcome.published} published" if outcome.published else "no new release"
        say(f"cycle {number}: {result}")
    finally:
        log.close()
    if stop.requested.is_set():
        say(f"{stop.name}: stopped after cycle {number}")
        return False
    return True
