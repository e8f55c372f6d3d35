"""Access-log lines as `pum serve` writes them, for the fleet tests."""

from __future__ import annotations

import time

from pum.serve.accesslog import combined_line, log_time

UUID = "5e159fd6-2785-4d37-9f80-196f19085e1d"


def agent(uuid: str = UUID, version: str = "1.4.6") -> str:
    return f"ClamAV/{version} (OS: Linux, ARCH: x86_64, CPU: x86_64, UUID: {uuid})"


NOW = time.time() + 3600  # log lines an hour ahead: after the release each test serves


def line(target: str, status: int = 200, who: str = agent(), when: float = NOW) -> str:
    return combined_line("10.0.0.7", log_time(when), f"GET {target} HTTP/1.1", status, 900, "", who)
