"""The vendor's engine upgrade as its hosts ran it: a package in the vendor's layout published by `pum run`,
served by `pum serve`, installed by `proscanup upgrade` (alone or from post_update.sh) on a fake ProScan
host whose `clamd -V` reports the engine under its EngineDir. Every failure puts both trees back."""

import contextlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from agent.conftest import LIBRARY, MODULE, POST_UPDATE
from pum.agent.nested import RunSlot
from pum.errors import ExitStatus
from pum.formats.rollout import host_share

PACKAGE = "ProScan_for_IBM_AIX-6.0.7.ppc.tar.gz"
TOP = "ProScan_for_IBM_AIX"
OLD_ENGINE, NEW_ENGINE = "0.100.0", "0.101.5"
PYTHON = sys.executable
LIB = "$1/../../usr/lib/clamav"  # the fake host's /usr/lib/clamav, as its installer finds it


def engine_dir(h) -> Path:
    return h.root / "usr" / "lib" / "clamav"


def make_host(host, engine: str = OLD_ENGINE, **options):
    name = options.pop("name", "host")
    root = host(name, **options).root  # then its proscan.conf again, naming a file under that root:
    h = host(name, **{"UpgradeBackupPaths": root / "etc" / "clamd.conf", **options})
    (h.root / "etc").mkdir()
    (h.root / "etc" / "clamd.conf").write_text("LocalSocket /tmp/clamd.sock\n")
    (h.root / "etc" / "clamd.conf").chmod(0o640)
    lib = engine_dir(h)
    lib.mkdir(parents=True)
    (lib / "engine.version").write_text(engine + "\n")
    (lib / "libclamav.so.9").write_bytes(b"engine " + engine.encode())
    (lib / "libclamav.so.9").chmod(0o755)
    (lib / "main.conf").write_text("engine settings\n")
    (lib / "main.conf").chmod(0o600)
    clamd = h.install / "bin" / "clamd"
    clamd.write_text(f'#!/bin/sh\necho "ClamAV $(cat {lib}/engine.version)/25916/Mon Aug 31 09:26:49 2020"\n')
    clamd.chmod(0o755)
    (h.install / "bin" / "proscand").write_text("#!/bin/sh\necho proscand 6.0.6\n")
    (h.install / "bin" / "proscand").chmod(0o755)
    (h.install / "etc").mkdir()
    (h.install / "etc" / "proscan.rules").write_text("rules of the old version\n")
    return h


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, raw in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(raw))
    return buffer.getvalue()


def auto_install(engine: str = NEW_ENGINE) -> str:
    """The vendor's installer, in short: the engine into EngineDir (the host's /usr/lib/clamav), the binaries
    into InstallDir."""
    return (
        "#!/bin/sh\nset -e\n"
        'echo "ProScan for IBM AIX: installing into $1"\n'
        f'gzip -dc clamav/clamav-{engine}.tar.gz | (cd "{LIB}" && tar xf -)\n'
        'cp bin_6.0.7/proscand "$1/bin/proscand"\n'
        'echo "ProScan for IBM AIX: done"\n'
    )


def publish_vendor_package(
    site, installer: str, engine: str = NEW_ENGINE, version_txt: str | None = None, **extra
):
    files: dict[str, str | bytes] = {
        "auto_install.sh": installer,
        "clamav_version.txt": (version_txt if version_txt is not None else seven(engine)) + "\n",
        "bin_6.0.7/proscand": "#!/bin/sh\necho proscand 6.0.7\n",
        f"clamav/clamav-{engine}.tar.gz": tar_gz(
            {"engine.version": f"{engine}\n".encode(), "libclamav.so.9": b"engine " + engine.encode()}
        ),
        "lib.tar.gz": tar_gz({"libproscan.a": b"library"}),
        "vdf.tar.gz": tar_gz({"daily.cvd": b"not a real database"}),
        "uninstall.sh": "#!/bin/sh\necho uninstall\n",
        **extra,
    }
    path = site.tree.package(PACKAGE, files, top=TOP)
    site.publish(MODULE, LIBRARY, POST_UPDATE, path)
    return path


def seven(engine: str) -> str:
    major, minor, patch = (int(part) for part in engine.split("."))
    return f"{major:02d}{minor:03d}{patch:02d}"


def snapshot(*directories: Path) -> dict[str, tuple[bytes, int]]:
    """Every file, symlink and directory with its content and mode."""
    found = {}
    for directory in directories:
        for path in sorted(directory.rglob("*")):
            content = path.read_bytes() if path.is_file() else b""
            found[str(path)] = (content, path.lstat().st_mode)
    return found


def trees(h) -> tuple[Path, Path, Path]:
    """InstallDir, EngineDir and the directory of the UpgradeBackupPaths file."""
    return h.install, engine_dir(h), h.root / "etc"


def reported_engine(h) -> str:
    return (engine_dir(h) / "engine.version").read_text().strip()


def test_the_vendors_package_upgrades_the_engine(site, host, proscanup):
    h = make_host(host)
    publish_vendor_package(site, auto_install())
    result = proscanup("--config", h.conf, "-V", "upgrade")
    assert result.code == 0, result
    assert "found new engine version (0010105 > 0010000)" in result.out
    assert "auto_install.sh executing..." in result.out
    assert f"ProScan for IBM AIX: installing into {h.install}" in result.out
    assert "The engine is now 0.101.5" in result.out
    assert reported_engine(h) == NEW_ENGINE
    assert (h.install / "bin" / "proscand").read_text() == "#!/bin/sh\necho proscand 6.0.7\n"
    assert not list(h.root.rglob(".*.proscanup-*"))  # no saved copy left


def test_a_dotted_clamav_version_txt_is_read_too(site, host, proscanup):
    h = make_host(host, MaxRate=50_000_000)
    publish_vendor_package(site, auto_install(), version_txt=NEW_ENGINE)
    result = proscanup("--config", h.conf, "-V", "upgrade")
    assert result.code == 0, result
    assert "found new engine version (0010105 > 0010000)" in result.out


def test_an_engine_as_new_as_the_package_is_not_upgraded(site, host, proscanup):
    h = make_host(host, engine=NEW_ENGINE)
    publish_vendor_package(site, auto_install())
    before = snapshot(*trees(h))
    result = proscanup("--config", h.conf, "-V", "upgrade")
    assert result.code == 0, result
    assert f"Installed engine 0.101.5 is current ({PACKAGE} carries 0.101.5)" in result.out
    assert snapshot(*trees(h)) == before
    again = proscanup("--config", h.conf, "-V", "upgrade")
    assert f"Downloading file {PACKAGE}" not in again.out  # remembered: not fetched at every run


@pytest.mark.parametrize(("at_most", "upgraded"), [("0.101.5", True), ("0.99.0", False)])
def test_engine_at_most_applies_the_vendors_2020_rule(site, host, proscanup, at_most, upgraded):
    h = make_host(host)
    publish_vendor_package(site, auto_install())
    result = proscanup("--config", h.conf, "-V", "upgrade", "--engine-at-most", at_most)
    assert result.code == 0, result
    assert (reported_engine(h) == NEW_ENGINE) is upgraded
    if not upgraded:
        assert "Installed engine 0.100.0 is above --engine-at-most 0.99.0: not upgraded" in result.out


BREAKING = (
    'echo "changing both trees"\n'
    "echo broken > {lib}/libclamav.so.9\n"
    "echo added > {lib}/added.so\n"
    "rm {lib}/main.conf\n"
    'rm "$1/etc/proscan.rules"\n'
    'echo "TCPSocket 3310" >> "$1/../../etc/clamd.conf"\n'
    'chmod 600 "$1/bin/proscand"\n'
    'mkdir "$1/newdir" && echo new > "$1/newdir/file"\n'
)


def breaking_installer(end: str) -> str:
    return "#!/bin/sh\n" + BREAKING.format(lib=f'"{LIB}"') + end


@pytest.mark.parametrize(
    ("installer", "options", "message"),
    [
        (
            breaking_installer('echo "cannot finish"\nexit 1\n'),
            {},
            f"{PACKAGE}: installer exited 1 (cannot finish); the previous installation is restored",
        ),
        (breaking_installer("sleep 60\n"), {"CommandTimeout": 2}, "installer killed after CommandTimeout=2s"),
        (
            '#!/bin/sh\ncp bin_6.0.7/proscand "$1/bin/proscand"\n',
            {},
            "installer finished but the engine command reports 0.100.0, expected 0.101.5",
        ),
    ],
    ids=["exit-status", "command-timeout", "old-engine-left"],
)
def test_a_failed_install_restores_both_trees(site, host, proscanup, installer, options, message):
    h = make_host(host, **options)
    publish_vendor_package(site, installer)
    before = snapshot(*trees(h))
    result = proscanup("--config", h.conf, "upgrade")
    assert result.code == ExitStatus.ERROR, result
    assert message in result.err
    assert snapshot(*trees(h)) == before


def test_a_missing_version_file_is_not_a_failure(site, host, proscanup):
    h = make_host(host)
    assert not (h.install / "VERSION").exists()
    publish_vendor_package(site, auto_install())
    assert proscanup("--config", h.conf, "upgrade").code == 0
    assert reported_engine(h) == NEW_ENGINE


def run_proscanup(h, *args: str, executable: list[str] | None = None, **popen) -> subprocess.Popen:
    argv = executable or [PYTHON, "-m", "pum.agent.main"]
    env = {k: v for k, v in os.environ.items() if k != "PROSCANUP_LOCK_TOKEN"}
    return subprocess.Popen(
        [*argv, "--config", str(h.conf), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        **popen,
    )


def wait_for(path: Path) -> str:
    for _ in range(600):
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


@pytest.mark.parametrize("next_run", [["upgrade"], []], ids=["upgrade", "update"])
def test_proscanup_killed_mid_install_is_restored_by_the_next_run(site, host, proscanup, next_run):
    h = make_host(host)
    mark = h.root / "installer.pid"
    publish_vendor_package(site, breaking_installer(f"echo $$ > {mark}\nsleep 60\n"))
    before = snapshot(*trees(h))
    running = run_proscanup(h, "upgrade")
    try:
        installer = int(wait_for(mark))
    finally:
        running.send_signal(signal.SIGKILL)
        running.communicate()
    assert snapshot(*trees(h)) != before  # the installer changed things before the kill
    site.publish(MODULE, LIBRARY, POST_UPDATE)  # the package withdrawn: the next run only repairs
    result = proscanup("--config", h.conf, "-V", *next_run)
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0] == f"An upgrade was interrupted ({PACKAGE}): restoring the previous installation"
    assert lines[1] == "The previous installation is restored"
    if next_run:
        assert snapshot(*trees(h)) == before
    else:  # then the update run brings its modules into the restored tree
        assert snapshot(engine_dir(h)) == {
            k: v for k, v in before.items() if k.startswith(str(engine_dir(h)))
        }
        assert (h.install / "etc" / "proscan.rules").exists() and not (h.install / "newdir").exists()
    with contextlib.suppress(ProcessLookupError):
        os.kill(installer, 0)
        state = subprocess.run(["ps", "-o", "stat=", "-p", str(installer)], stdout=subprocess.PIPE).stdout
        assert state.strip().startswith(b"Z") or not state.strip()  # the left-over installer was stopped


def test_the_updater_replaces_itself_while_running(site, host):
    h = make_host(host)
    launcher = h.install / "bin" / "proscanup"
    launcher.write_text(f"#!{PYTHON}\nimport sys\nfrom pum.agent.main import main\nsys.exit(main())\n")
    launcher.chmod(0o755)
    new = launcher.read_text().replace("import sys", "# proscanup of ProScan 6.0.7\nimport sys")
    publish_vendor_package(site, auto_install(), **{"bin_6.0.7/proscanup": new})
    inode = launcher.stat().st_ino
    running = run_proscanup(h, "-V", "upgrade", executable=[str(launcher)])
    out, _ = running.communicate(timeout=300)
    assert running.returncode == 0, out.decode()
    assert launcher.read_text() == new
    assert launcher.stat().st_ino != inode  # renamed over, never written into
    assert f"{launcher} replaced by the package's bin_6.0.7/proscanup" in out.decode()


def post_update_calling_upgrade(site, h, status: str = "exit 0") -> None:
    """The vendor's recipe: post_update.sh runs `proscanup upgrade` (and, here, ignores how it went)."""
    script = (
        "#!/bin/sh\n"
        'echo "post_update: upgrading the engine"\n'
        f"{PYTHON} -m pum.agent.main --config {h.conf} -V upgrade\n"
        f"{status}\n"
    )
    site.tree.put(POST_UPDATE, script)


def test_post_update_runs_the_upgrade_inside_the_update_run(site, host, proscanup):
    h = make_host(host)
    post_update_calling_upgrade(site, h)
    publish_vendor_package(site, auto_install())
    result = proscanup("--config", h.conf, "-V")
    assert result.code == 0, result
    assert "found new engine version (0010105 > 0010000)" in result.out
    assert "post_update.sh execute successfully" in result.out
    assert reported_engine(h) == NEW_ENGINE


def test_a_failed_upgrade_from_post_update_fails_the_parent_run(site, host, proscanup):
    h = make_host(host)
    post_update_calling_upgrade(site, h)
    publish_vendor_package(site, breaking_installer('echo "cannot finish"\nexit 1\n'))
    before = snapshot(engine_dir(h))
    result = proscanup("--config", h.conf, "-V")
    assert result.code == ExitStatus.ERROR, result
    assert "post_update.sh execute successfully" not in result.out
    assert "exited 0, but the proscanup it ran failed: " in result.err
    assert "installer exited 1 (cannot finish)" in result.err
    assert snapshot(engine_dir(h)) == before  # the install tree also got this run's modules
    assert (h.install / "etc" / "proscan.rules").exists() and not (h.install / "newdir").exists()


def test_an_unrelated_run_still_finds_the_lock_held(host):
    h = host()
    state = h.root / "var" / "proscanup"
    with RunSlot(state) as slot:
        other = run_proscanup(h, "upgrade")
        out, _ = other.communicate(timeout=120)
        assert other.returncode == ExitStatus.LOCK_HELD, out.decode()
        assert b"holds the lock" in out
        forged = subprocess.run(
            [PYTHON, "-m", "pum.agent.main", "--config", str(h.conf), "upgrade"],
            env={**os.environ, "PROSCANUP_LOCK_TOKEN": "0" * 32},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert forged.returncode == ExitStatus.LOCK_HELD, forged.stdout.decode()
        assert not slot.nested


@pytest.fixture
def small_filesystem(tmp_path: Path):
    """A 24 MB tmpfs mounted where the host fixture puts the host (`tmp_path/host`)."""
    mountpoint = tmp_path / "host"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def big_install(h, megabytes: int) -> None:
    (h.install / "lib").mkdir(exist_ok=True)
    (h.install / "lib" / "libproscan.a").write_bytes(os.urandom(megabytes << 20))


def test_free_space_counts_the_saved_copies(site, host, proscanup, small_filesystem):
    h = make_host(host, UpgradeFreeSpace=f"{small_filesystem}:8")
    big_install(h, 10)  # 24 MB: 14 free, 8 wanted + 10 to save does not fit
    publish_vendor_package(site, auto_install())
    before = snapshot(*trees(h))
    result = proscanup("--config", h.conf, "upgrade")
    assert result.code == ExitStatus.STORE, result
    assert (
        f"not enough free space for the upgrade on {small_filesystem}: 13 MB free, 19 MB needed" in result.err
    )
    assert snapshot(*trees(h)) == before
    assert not (h.root / "var" / "proscanup" / "downloads" / PACKAGE).exists()  # refused before the download


def test_a_save_that_runs_out_of_space_is_removed_and_refused(site, host, proscanup, small_filesystem):
    h = make_host(host, UpgradeFreeSpace="/tmp:1")  # the check looks elsewhere: the copy itself hits ENOSPC
    big_install(h, 14)
    publish_vendor_package(site, auto_install())
    before = snapshot(*trees(h))
    result = proscanup("--config", h.conf, "upgrade")
    assert result.code == ExitStatus.STORE, result
    assert f"the copy of {h.install} ran out of space on {h.install.parent}" in result.err
    assert "it was removed and nothing was changed" in result.err
    assert snapshot(*trees(h)) == before
    assert not list(h.root.rglob(".*.proscanup-*"))
    assert not (h.root / "var" / "proscanup" / "upgrade.journal").exists()


def host_with_id(host, name: str, host_id: str):
    h = make_host(host, name=name)
    state = h.root / "var" / "proscanup"
    state.mkdir(parents=True, exist_ok=True)
    (state / "host_id").write_text(host_id + "\n")
    return h


def ids_at(package: str, low: float, high: float) -> str:
    """A host id whose place in this package's rollout is in [low, high)."""
    for n in range(10_000):
        candidate = str(uuid.UUID(int=n + 1, version=4))
        if low <= host_share(package, candidate) < high:
            return candidate
    raise AssertionError("no such id")


@pytest.mark.parametrize(("percent", "upgraded"), [(0, []), (50, ["early"]), (100, ["early", "late"])])
def test_pum_rollout_lets_a_share_of_the_hosts_upgrade(site, host, proscanup, percent, upgraded):
    early, late = make_host_ids(site)
    hosts = {"early": host_with_id(host, "early", early), "late": host_with_id(host, "late", late)}
    path = publish_vendor_package(site, auto_install())
    rollout = site.pum("--config", site.conf, "rollout", path, "--percent", str(percent))
    assert rollout.code == 0, rollout
    site.publish(MODULE, LIBRARY, POST_UPDATE, path)  # a later pum run keeps the document
    done = []
    for name, h in hosts.items():
        result = proscanup("--config", h.conf, "-V", "upgrade")
        assert result.code == 0, result
        if "found new engine version" in result.out:
            done.append(name)
        else:
            assert f"Not upgraded now: the rollout of {path} is at {percent}% of hosts" in result.out
    assert done == upgraded


def test_pum_rollout_hosts_file_names_hosts_that_upgrade_now(site, host, proscanup, tmp_path):
    h = host_with_id(host, "listed", str(uuid.uuid4()))
    path = publish_vendor_package(site, auto_install())
    listed = tmp_path / "hosts.txt"
    listed.write_text(f"# the canary\n{(h.root / 'var' / 'proscanup' / 'host_id').read_text().strip()}\n")
    assert site.pum("--config", site.conf, "rollout", path, "--percent", "0", "--hosts", listed).code == 0
    result = proscanup("--config", h.conf, "-V", "upgrade")
    assert result.code == 0, result
    assert f"takes part in the rollout of {path} (0% of hosts)" in result.out
    assert reported_engine(h) == NEW_ENGINE


def make_host_ids(site) -> tuple[str, str]:
    package = f"ibm/packages/{PACKAGE}"
    return ids_at(package, 0, 50), ids_at(package, 50, 100)


def test_pum_rollout_refuses_a_package_the_release_does_not_serve(site):
    result = site.pum("--config", site.conf, "rollout", "ibm/packages/typo-6.0.7.tar.gz", "--percent", "5")
    assert result.code == ExitStatus.STORE, result
    assert "ibm/packages/typo-6.0.7.tar.gz: the served release has no such package" in result.err
