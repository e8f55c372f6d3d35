"""Real proscanup hosts in `pum fleet`: what they report on the product-list request, as `pum serve` logged
it, read back into the fleet view (host id, name, check=md5, a failed step)."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from agent.conftest import LIBRARY
from pum.errors import ExitStatus


def _wait_for_list_requests(log: Path, count: int) -> None:
    """`pum serve` flushes its access log about once a second: wait (bounded) for the list requests."""
    for _ in range(300):
        if log.exists() and log.read_text().count(".lst?host=") >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{log}: fewer than {count} reporting list requests")


@pytest.mark.parametrize("proscanup", ["pyz"], indirect=True)  # the single file, as hosts run it
def test_pum_fleet_shows_real_proscanup_hosts_and_the_one_that_failed(site, host, proscanup, pum):
    good = host("good")
    for _ in range(2):  # the second run reports the first one's result
        result = proscanup("--config", good.conf)
        assert result.code == 0, result

    tampered = site.conf.parent / "www" / "pum" / LIBRARY  # served with another md5 than its list says
    os.chmod(tampered, 0o644)
    tampered.write_bytes(b"\x7fELF tampered on the way\n")
    bad = host("bad")
    for _ in range(2):
        result = proscanup("--config", bad.conf)
        assert result.code == ExitStatus.VERIFY, result

    _wait_for_list_requests(site.conf.parent / "log" / "access.log", 4)
    result = pum("--config", site.conf, "fleet", "--json")
    assert result.code == 0, result
    hosts = {row["id"]: row for row in json.loads(result.out)["clients"] if row["kind"] == "proscanup"}
    good_id, bad_id = ((h.root / "var" / "proscanup" / "host_id").read_text().strip() for h in (good, bad))
    assert sorted(hosts) == sorted((good_id, bad_id))
    name = socket.gethostname()[:64]
    assert (hosts[good_id]["name"], hosts[good_id]["check"]) == (name, "md5")
    assert (hosts[good_id]["state"], hosts[good_id]["last_result"]) == ("current", "ok")
    assert (hosts[bad_id]["name"], hosts[bad_id]["check"]) == (name, "md5")
    assert (hosts[bad_id]["state"], hosts[bad_id]["last_result"]) == ("failing", "failed:modules")

    failing = pum("--config", site.conf, "fleet", "--failing", "--csv").out
    assert bad_id in failing and good_id not in failing and ",md5," in failing
