"""The one exception family of PUM and the exit status each maps to (host side too: Python 3.6-clean)."""

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1
    CONFIG = 2
    LOCK_HELD = 3
    UPSTREAM = 4
    VERIFY = 5
    STORE = 6
    INTERRUPTED = 130


class PumError(Exception):
    """An error a person can act on; its message is the one line shown to them."""

    exit_status = ExitStatus.ERROR


class ConfigError(PumError):
    exit_status = ExitStatus.CONFIG


class LockHeld(PumError):
    exit_status = ExitStatus.LOCK_HELD


class UpstreamError(PumError):
    exit_status = ExitStatus.UPSTREAM


class VerifyError(PumError):
    exit_status = ExitStatus.VERIFY


class StoreError(PumError):
    exit_status = ExitStatus.STORE
