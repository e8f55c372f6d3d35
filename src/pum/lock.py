"""One run at a time (the lock lives in the neutral layer: proscanup takes it too)."""

from pum.common.runlock import RunLock

__all__ = ["RunLock"]
