"""proscanup against a PUM: modules, the VDF by real freshclam, and the post-update protocol."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from products.tree import md5_of
from upstream import TESTDATA

from agent.conftest import LIBRARY, MODULE, POST_UPDATE
from pum.errors import ExitStatus


def marker_script(marker: Path, extra: str = "") -> str:
    return f'#!/bin/sh\necho "post update running in $(pwd)"\necho ran >> {marker}\n{extra}'


def runs(marker: Path) -> int:
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def served(site) -> Path:
    return site.conf.parent / "www" / "pum"


def test_first_update_prints_the_original_transcript(site, host, proscanup):
    h = host()
    result = proscanup("--config", h.conf, "-V")
    assert result.code == 0, result
    expected_in_order = [
        f"Trying update from server http://{site.address}/ibm/power/PSHB06.lst",
        "Downloading file PSHB06.lst, Please wait...",
        "Success: Get Update list(PSHB06.lst)",
        "Downloading Post-update file, Please wait...",
        f"Success: Get post update file [md5sum {md5_of(site.tree.read(POST_UPDATE))}]",
        "ClamAV update ....",
        "-----",
        "test.cvd updated (version: 3",
        "-----",
        "post_update.sh executing...",
        "-----",
        "post update",
        "-----",
        "post_update.sh execute successfully",
    ]
    position = 0
    for expected in expected_in_order:
        found = result.out.find(expected, position)
        assert found >= 0, f"{expected!r} missing after position {position} in:\n{result.out}"
        position = found + len(expected)


def test_modules_are_installed_below_the_install_directory(site, host, proscanup):
    h = host()
    assert proscanup("--config", h.conf).code == 0
    assert (h.install / "bin" / "proscand").read_bytes() == site.tree.read(MODULE)
    assert (h.install / "lib" / "libproscan.so").read_bytes() == site.tree.read(LIBRARY)
    assert os.access(h.install / "bin" / "proscand", os.X_OK)
    assert not os.access(h.install / "lib" / "libproscan.so", os.X_OK)


def test_quiet_run_prints_nothing_on_success(site, host, proscanup):
    result = proscanup("--config", host().conf)
    assert result.code == 0 and result.out == "" and result.err == "", result


def test_changed_module_is_replaced_while_a_process_runs_it(site, host, proscanup):
    sleep_binary = Path(shutil.which("sleep") or "/bin/sleep").read_bytes()
    site.tree.put(MODULE, sleep_binary)
    site.publish()
    h = host()
    assert proscanup("--config", h.conf).code == 0
    installed = h.install / "bin" / "proscand"
    running = subprocess.Popen([str(installed), "60"])
    library = open(h.install / "lib" / "libproscan.so", "rb")  # noqa: SIM115 - held open across the update
    try:
        new_binary = Path(shutil.which("true") or "/bin/true").read_bytes()
        site.tree.put(MODULE, new_binary)
        site.tree.put(LIBRARY, b"\x7fELF fake library 2\n")
        site.publish()
        result = proscanup("--config", h.conf, "-V")
        assert result.code == 0, result
        assert "Text file busy" not in result.out + result.err
        assert installed.read_bytes() == new_binary
        assert running.poll() is None  # still running the old inode
        assert os.readlink(f"/proc/{running.pid}/exe").endswith("(deleted)")
        assert library.read() == b"\x7fELF fake library 1\n"  # the open handle keeps the old file whole
        assert (h.install / "lib" / "libproscan.so").read_bytes() == b"\x7fELF fake library 2\n"
        assert not list(h.install.rglob("*.proscanup-new*"))
    finally:
        library.close()
        running.kill()
        running.wait()


def test_module_with_wrong_md5_is_refused_and_no_module_changes(site, host, proscanup):
    h = host()
    assert proscanup("--config", h.conf).code == 0
    site.tree.put(MODULE, "#!/bin/sh\necho proscand 2\n")
    site.tree.put(LIBRARY, b"\x7fELF fake library 2\n")
    site.publish()
    tampered = served(site) / LIBRARY
    os.chmod(tampered, 0o644)
    tampered.write_bytes(b"\x7fELF tampered on the way\n")
    result = proscanup("--config", h.conf)
    assert result.code == ExitStatus.VERIFY, result
    assert f"http://{site.address}/{LIBRARY}: md5" in result.err
    assert (h.install / "bin" / "proscand").read_bytes() == b"#!/bin/sh\necho proscand 1\n"
    assert (h.install / "lib" / "libproscan.so").read_bytes() == b"\x7fELF fake library 1\n"
    assert not list(h.install.rglob("*.proscanup-new*"))


def test_vdf_is_updated_incrementally_by_freshclam(site, host, proscanup, upstream_tree):
    h = host()
    h.databases.mkdir(parents=True)
    shutil.copyfile(TESTDATA / "test-3.cvd", h.databases / "test.cvd")  # what the site serves now
    upstream_tree.publish(6)
    site.publish()
    result = proscanup("--config", h.conf, "-V")
    assert result.code == 0, result
    assert "test.cld updated (version: 6" in result.out, result.out  # .cld: patched by the CDIFFs


def test_post_update_runs_once_and_again_after_its_local_copy_is_deleted(site, host, proscanup, tmp_path):
    marker = tmp_path / "marker"
    site.tree.put(POST_UPDATE, marker_script(marker))
    site.publish()
    h = host()
    assert proscanup("--config", h.conf).code == 0
    assert runs(marker) == 1
    assert (h.post_update).read_bytes() == site.tree.read(POST_UPDATE)

    second = proscanup("--config", h.conf, "-V")
    assert second.code == 0
    assert runs(marker) == 1
    assert "post_update.sh executing" not in second.out

    h.post_update.unlink()
    assert proscanup("--config", h.conf).code == 0
    assert runs(marker) == 2


def test_post_update_runs_in_the_install_bin_directory(site, host, proscanup, tmp_path):
    marker = tmp_path / "marker"
    site.tree.put(POST_UPDATE, marker_script(marker))
    site.publish()
    h = host()
    result = proscanup("--config", h.conf, "-V")
    assert f"post update running in {h.install / 'bin'}" in result.out


def test_reload_application_no_never_runs_post_update(site, host, proscanup, tmp_path):
    marker = tmp_path / "marker"
    site.tree.put(POST_UPDATE, marker_script(marker))
    site.publish()
    h = host(ReloadApplication="no")
    result = proscanup("--config", h.conf, "-V")
    assert result.code == 0
    assert "ReloadApplication=no: post_update.sh not executed" in result.out
    assert h.post_update.exists() and runs(marker) == 0

    # turning it on later does not run the script downloaded before
    turned_on = host(ReloadApplication="yes")
    assert turned_on.conf == h.conf
    assert proscanup("--config", h.conf).code == 0
    assert runs(marker) == 0


def test_post_update_past_command_timeout_is_killed_with_what_it_started(site, host, proscanup, tmp_path):
    child_pid = tmp_path / "child.pid"
    site.tree.put(POST_UPDATE, f"#!/bin/sh\necho started\nsleep 60 &\necho $! > {child_pid}\nwait\n")
    site.publish()
    # the time limit under test is post_update.sh's, not freshclam's (slower on a loaded machine); 3 s,
    # not 1: the script must have started its child and written child.pid before the limit
    h = host(CommandTimeout=3, VdfCommand="/bin/true")
    result = proscanup("--config", h.conf, "-V")
    assert result.code == ExitStatus.ERROR, result
    assert f"{h.post_update}: killed after CommandTimeout=3s" in result.err
    assert "started" in result.out
    assert not process_alive(int(child_pid.read_text()))


def test_post_update_with_wrong_md5_is_neither_kept_nor_run(site, host, proscanup, tmp_path):
    marker = tmp_path / "marker"
    site.tree.put(POST_UPDATE, marker_script(marker))
    site.publish()
    tampered = served(site) / POST_UPDATE
    os.chmod(tampered, 0o644)
    tampered.write_text(marker_script(marker, "echo injected\n"))
    h = host()
    result = proscanup("--config", h.conf)
    assert result.code == ExitStatus.VERIFY, result
    assert POST_UPDATE in result.err
    assert not h.post_update.exists() and runs(marker) == 0


def test_vdf_command_is_configurable_with_host_and_port(site, host, proscanup, tmp_path):
    said = tmp_path / "said"
    host_part, port = site.address.split(":")
    h = host(VdfCommand=f'/bin/sh -c "echo --update-host={{host}} --update-port={{port}} > {said}"')
    assert proscanup("--config", h.conf).code == 0
    assert said.read_text().split() == [f"--update-host={host_part}", f"--update-port={port}"]


def test_vdf_command_past_command_timeout_is_killed_and_post_update_still_runs(
    site, host, proscanup, tmp_path
):
    marker = tmp_path / "marker"
    site.tree.put(POST_UPDATE, marker_script(marker))
    site.publish()
    h = host(VdfCommand="sleep 60", CommandTimeout=1)
    result = proscanup("--config", h.conf)
    assert result.code == ExitStatus.ERROR
    assert "ClamAV update (sleep) killed after CommandTimeout=1s" in result.err
    assert runs(marker) == 1  # downloaded in this run: executed in this run, or never


def test_unreachable_pum_is_an_upstream_error_naming_the_url(host, proscanup, tmp_path):
    from conftest import free_port

    dead = f"127.0.0.1:{free_port()}"
    h = host(UpdateServer=dead, VdfCommand="true")
    result = proscanup("--config", h.conf)
    assert result.code == ExitStatus.UPSTREAM
    assert f"http://{dead}/ibm/power/PSHB06.lst" in result.err


def test_second_pum_is_used_when_the_first_is_down(site, host, proscanup):
    from conftest import free_port

    h = host(UpdateServer=f"127.0.0.1:{free_port()}, {site.address}")
    assert proscanup("--config", h.conf).code == 0
    assert (h.install / "bin" / "proscand").exists()
    assert (h.databases / "test.cvd").exists()


def process_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (nobody reaps in some containers) counts as gone."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state == "Z":
            return False
        time.sleep(0.05)
    return True


def test_post_update_may_start_a_daemon_that_outlives_it(site, host, proscanup, tmp_path):
    daemon_pid = tmp_path / "daemon.pid"
    site.tree.put(POST_UPDATE, f"#!/bin/sh\nsleep 120 &\necho $! > {daemon_pid}\necho restarted\n")
    site.publish()
    h = host(CommandTimeout=60)
    result = proscanup("--config", h.conf, "-V")
    pid = int(daemon_pid.read_text())
    try:
        assert result.code == 0, result
        assert "restarted" in result.out
        assert Path(f"/proc/{pid}").exists()  # proscanup neither killed it nor waited for it
    finally:
        os.kill(pid, 9)
