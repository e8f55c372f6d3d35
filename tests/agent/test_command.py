"""External commands under CommandTimeout: the deadline holds whatever the output, the output stays bounded,
and everything the command started is stopped, a `setsid` grandchild too."""

import os
import subprocess
import time
from pathlib import Path

from agent.conftest import POST_UPDATE
from pum.agent import command
from pum.agent.command import KEPT_TAIL, SHOWN_HEAD, run_command
from pum.errors import ExitStatus


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "command.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped (`ps` on the pid, as the code under test does)."""
    listing = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], stdout=subprocess.PIPE).stdout
    return bool(listing.strip()) and not listing.strip().startswith(b"Z")


def wait_for_file(path: Path) -> str:
    for _ in range(600):
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} never written")


def test_exec_yes_is_killed_at_the_time_limit_with_bounded_output(tmp_path):
    shown = []
    finished = run_command([str(script(tmp_path, "exec yes\n"))], timeout=1, show=shown.append)
    assert finished.timed_out and finished.returncode is None
    assert sum(len(line) + 1 for line in shown) <= SHOWN_HEAD + KEPT_TAIL + 200
    assert finished.omitted > 0
    assert any("bytes of output not shown" in line for line in shown)
    assert finished.output[-1] in ("y", "")


def test_output_without_newlines_is_shown_in_bounded_pieces(tmp_path):
    shown = []
    body = "head -c 3000000 /dev/zero | tr '\\0' x\n"
    finished = run_command([str(script(tmp_path, body))], timeout=60, show=shown.append)
    assert finished.returncode == 0
    assert max(len(line) for line in shown) <= command.LINE_MAX
    assert sum(len(line) for line in shown) <= SHOWN_HEAD + KEPT_TAIL + 200  # and one line saying so


def test_short_output_is_shown_whole_and_in_order(tmp_path):
    shown = []
    finished = run_command(
        [str(script(tmp_path, "echo one\necho two >&2\nprintf three\nexit 4\n"))],
        timeout=60,
        show=shown.append,
    )
    assert (finished.returncode, finished.timed_out, finished.omitted) == (4, False, 0)
    assert shown == ["one", "two", "three"]


def test_a_setsid_grandchild_is_stopped_at_the_time_limit(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    body = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' &\nexec sleep 300\n"
    # 3 s, not 1: the grandchild must be running before the limit (a loaded machine starts it late)
    finished = run_command([str(script(tmp_path, body))], timeout=3, show=lambda line: None)
    assert finished.timed_out
    pid = int(wait_for_file(pidfile))
    assert not alive(pid)


def test_a_daemon_left_by_a_command_that_exits_is_not_stopped(tmp_path):
    pidfile = tmp_path / "daemon.pid"
    body = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' </dev/null >/dev/null 2>&1 &\nexit 0\n"
    finished = run_command([str(script(tmp_path, body))], timeout=60, show=lambda line: None)
    assert finished.returncode == 0
    pid = int(wait_for_file(pidfile))
    try:
        assert alive(pid)
    finally:
        os.kill(pid, 9)


def test_a_command_run_inside_another_carries_both_markers(tmp_path):
    """post_update.sh runs proscanup, which runs an installer: stopping the script reaches the installer."""
    outer, inner = command.new_token(), command.new_token()
    sleeper = subprocess.Popen(
        ["sleep", "300"], env={**os.environ, command.SESSION_ENV: f"{outer},{inner}"}, start_new_session=True
    )
    try:
        assert sleeper.pid in command.marked_processes(outer)
        assert sleeper.pid in command.marked_processes(inner)
        assert sleeper.pid not in command.marked_processes(outer[:-1])
    finally:
        sleeper.kill()
        sleeper.wait()


def test_the_inherited_marker_is_kept_in_the_child(tmp_path, monkeypatch):
    monkeypatch.setenv(command.SESSION_ENV, "outer0")
    shown = []
    run_command(
        [str(script(tmp_path, f'echo "${command.SESSION_ENV}"\n'))], timeout=60, show=shown.append, token="t1"
    )
    assert shown == ["outer0,t1"]


def test_post_update_running_exec_yes_is_stopped_at_command_timeout(site, host, proscanup):
    site.tree.put(POST_UPDATE, "#!/bin/sh\necho starting\nexec yes\n")
    site.publish()
    h = host(CommandTimeout=2)
    result = proscanup("--config", h.conf, "-V")
    assert result.code == ExitStatus.ERROR, result
    assert f"{h.post_update}: killed after CommandTimeout=2s" in result.err
    assert "post_update.sh execute successfully" not in result.out
    assert len(result.out) < SHOWN_HEAD + KEPT_TAIL + 100_000  # what freshclam and the steps print besides
