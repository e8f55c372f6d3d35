"""`pum demo`: PUM's whole job offline, on the signed test databases packaged with PUM."""

from __future__ import annotations

import os
import re
import subprocess
from importlib import resources
from pathlib import Path

import pytest
from conftest import pum_command, require_program
from upstream import TESTDATA

from pum.config import load_config
from pum.demo import StaticServer, publish_upstream, served_version

SHARED_TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "clamav"


def run_demo(*options: str) -> subprocess.CompletedProcess[str]:
    # no proxy from the environment may take the demo's loopback traffic
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and k != "PUM_CONFIG"}
    return subprocess.run(
        [*pum_command(), "demo", *options], capture_output=True, text=True, timeout=300, env=env
    )


def test_pum_demo_runs_every_step_to_success_offline():
    require_program("freshclam")
    result = run_demo()
    assert result.returncode == 0, result.stdout + result.stderr
    steps = [line for line in result.stdout.splitlines() if re.match(r"^\S+ \d+\. ", line)]
    assert steps, result.stdout
    assert all(line.startswith("✔") for line in steps), result.stdout
    numbers = [int(line.split()[1].rstrip(".")) for line in steps]
    assert numbers == list(range(1, len(steps) + 1))
    out = result.stdout
    assert "freshclam, empty: test.cvd updated to version 3" in out
    assert "freshclam, update: test.cld updated to version 6" in out
    assert "sub-PUM: mirror of" in out
    assert "pum serve (sub-PUM): http://127.0.0.1:" in out
    assert "PUM demo done" in out


def test_pum_demo_dir_keeps_a_tree_that_reads_as_a_tiered_installation(tmp_path):
    directory = tmp_path / "demo"
    result = run_demo("--dir", str(directory))
    assert result.returncode == 0, result.stdout + result.stderr
    main = load_config(directory / "main" / "pum.conf")
    sub = load_config(directory / "sub" / "pum.conf")
    assert (main.mode, sub.mode) == ("server", "mirror")
    assert served_version(main) == served_version(sub) == 6
    assert "release new vdf" in main.logfile.read_text()


def test_a_failed_step_is_marked_and_the_demo_exits_non_zero(tmp_path):
    directory = tmp_path / "demo"
    (directory / "main").mkdir(parents=True)
    (directory / "main" / "www").write_text("a file where the docroot goes\n")  # the main PUM can't publish
    result = run_demo("--dir", str(directory))
    assert result.returncode != 0
    assert re.search(r"^✘ 2\. main PUM: ", result.stdout, re.MULTILINE), result.stdout
    assert "step 2 (main PUM) failed" in result.stderr


def test_the_demo_upstream_answers_a_header_read_with_206_and_a_missing_file_with_404(tmp_path):
    import httpx

    publish_upstream(tmp_path, 3)
    with StaticServer(tmp_path) as server, httpx.Client() as client:
        header = client.get(f"http://{server.address}/test.cvd", headers={"Range": "bytes=0-511"})
        missing = client.get(f"http://{server.address}/test-9.cdiff")
    assert header.status_code == 206 and len(header.content) == 512
    assert header.content.startswith(b"ClamAV-VDB:") and header.content.split(b":")[2] == b"3"
    assert missing.status_code == 404


def test_the_packaged_test_databases_are_the_projects_signed_test_data():
    if not SHARED_TESTDATA.is_dir():
        pytest.skip("no ../shared/testdata here: tests already use the packaged copy")
    packaged = resources.files("pum").joinpath("testdata")
    names = sorted(p.name for p in SHARED_TESTDATA.iterdir())
    assert sorted(p.name for p in packaged.iterdir() if p.name != "__pycache__") == names
    for name in names:
        assert packaged.joinpath(name).read_bytes() == (SHARED_TESTDATA / name).read_bytes(), name
    assert TESTDATA.is_dir()
