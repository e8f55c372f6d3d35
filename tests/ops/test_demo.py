"""`pum demo`: PUM's whole job offline, on the signed test databases packaged with PUM."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib

from conftest import pum_command, require_program
from upstream import TESTDATA

from pum.config import load_config
from pum.demo import StaticServer, publish_upstream, served_version


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


def test_every_file_of_the_test_data_ships_in_the_package():
    # pyproject's package-data globs (setuptools' glob: `*` stops at `/`) must take each file of
    # src/pum/testdata, the certificates too: `pum demo` and an installed PUM read them from the package
    package = TESTDATA.parent
    globs = tomllib.loads((package.parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["pum"]
    shipped = {path for pattern in globs for path in package.glob(pattern) if path.is_file()}
    files = {path for path in TESTDATA.rglob("*") if path.is_file() and "__pycache__" not in path.parts}
    assert TESTDATA / "certs" / "clamav-test-root.crt" in files
    assert files - shipped == set()
