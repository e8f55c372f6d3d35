"""Tiers of PUM on loopback, each served by a real `pum serve`: main -> sub -> sub-sub -> freshclam."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

from conftest import pum_command, run_freshclam
from upstream import TESTDATA

from .conftest import publish_files


def test_releases_propagate_down_a_chain_and_freshclam_updates_incrementally_at_the_bottom(
    upstream_tree, main, sub, pum_serve, pum, tmp_path
):
    main_served = pum_serve(main)
    first = sub("sub", main_served.address)
    second = sub("subsub", pum_serve(first).address)
    bottom = pum_serve(second)

    # a main's first run fetches no CDIFF history: version 3 goes down first, then 6 with CDIFFs 4-6
    upstream_tree.publish(3)
    for tier in (main, first, second):
        result = pum("--config", tier.conf, "run")
        assert result.code == 0, (tier.conf, result)
    assert second.files() == main.files()
    client = tmp_path / "client"
    client.mkdir()
    shutil.copyfile(TESTDATA / "test-3.cvd", client / "test.cvd")

    upstream_tree.publish(6)
    for tier in (main, first, second):
        assert pum("--config", tier.conf, "run").code == 0
    assert second.files() == main.files()
    assert {f"test-{n}.cdiff" for n in (4, 5, 6)} <= set(second.files())
    assert (second.docroot / "dns.txt").read_bytes() == (main.docroot / "dns.txt").read_bytes()

    seen = len(bottom.requests())
    result = run_freshclam(tmp_path, f"http://{bottom.address}", client)
    assert "test.cld updated (version: 6" in result.stdout, result.stdout + result.stderr
    asked = bottom.requests()[seen:]
    assert {path for path, status, _ in asked if status == 200} >= {
        "/test-4.cdiff",
        "/test-5.cdiff",
        "/test-6.cdiff",
    }
    assert not [1 for path, status, size in asked if path == "/test.cvd" and status == 200 and size > 512]

    # nothing new: each tier asks its upper's changelog since the release it copied once and gets a 304
    seen = len(main_served.requests())
    assert pum("--config", first.conf, "run").code == 0
    # (the query string tells the upper's fleet view which release this sub serves)
    assert [(path.partition("?")[0], status) for path, status, _ in main_served.requests()[seen:]] == [
        (f"/.pum/changes/{main.serial()}.json", 304)
    ]


def test_sub_killed_midway_then_a_clean_run_completes_without_fetching_twice(tmp_path, sub, static):
    big = os.urandom(4 << 20)
    upper_root = publish_files(tmp_path / "upper", {"a.bin": b"a" * 5000, "big.bin": big})
    upper = static(upper_root)
    copy = sub("sub", upper.address, read_timeout=60)
    upper.fault("big.bin", slow=60, slow_after=1 << 20, times=1)
    run = subprocess.Popen(
        [*pum_command(), "--config", str(copy.conf), "run"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    part = copy.data / "downloads" / "big.bin.part"
    deadline = time.monotonic() + 30
    while not (part.exists() and part.stat().st_size > 0) and time.monotonic() < deadline:
        assert run.poll() is None, run.communicate()
        time.sleep(0.05)
    assert part.exists() and part.stat().st_size > 0
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=10)
    assert not copy.docroot.exists()
    resumed_at = part.stat().st_size

    upper.clear()
    clean = subprocess.run(
        [*pum_command(), "--config", str(copy.conf), "run"], capture_output=True, text=True, timeout=60
    )
    assert clean.returncode == 0, clean.stderr
    assert (copy.docroot / "big.bin").read_bytes() == big
    # a.bin was kept; the changelog since the release copied is what the next run asks for
    assert [r.path for r in upper.requests] == ["/.pum/manifest.json", "/big.bin", "/.pum/changes/1.json"]
    assert upper.requests[1].headers.get("Range") == f"bytes={resumed_at}-"
