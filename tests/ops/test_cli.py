"""The `pum` command line as people type it: global options anywhere, exit statuses in --help, -m pum."""

from __future__ import annotations

import subprocess
import sys

from pum import __version__
from pum.errors import ExitStatus


def test_global_options_are_accepted_after_the_subcommand(upstream_tree, upstream, pum_conf, pum):
    conf = pum_conf()
    upstream_tree.publish(3)
    result = pum("run", "-v", "--config", conf)
    assert result.code == 0, result
    assert "release new vdf (release 1)" in result.err  # -v: the run log on the terminal
    status = pum("status", f"--config={conf}")
    assert status.code == 0 and "release: 1 " in status.out


def test_a_config_before_the_subcommand_still_works(pum_conf, pum):
    conf = pum_conf()
    result = pum("--config", conf, "config", "check")
    assert result.code == 0 and "OK (mode=server" in result.out
    assert pum("config", "check", "--config", conf).code == 0


def test_help_lists_every_exit_status(pum):
    result = pum("--help")
    assert result.code == 0
    for status in ExitStatus:
        assert f"{status.value:>3}  {status.name}" in result.out, status


def test_python_dash_m_pum_is_the_pum_command():
    done = subprocess.run(
        [sys.executable, "-m", "pum", "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and __version__ in done.stdout
