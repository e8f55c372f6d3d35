"""`proscanup install` / `uninstall` without systemd: proscan.conf defaults and one crontab line."""

from __future__ import annotations

import re
import subprocess
import sys

from pum.agent.cron_install import MARKER, Installer
from pum.agent.proscan_conf import DEFAULT_CONFIG

PROGRAM = "/opt/proscan/bin/proscanup.pyz"


def test_install_writes_defaults_and_an_hourly_line_at_a_random_minute(tmp_path):
    crontab = tmp_path / "crontab"
    crontab.write_text("5 4 * * * /usr/bin/backup\n")
    Installer(tmp_path, crontab).install(PROGRAM, lambda line: None)
    conf = tmp_path / "etc" / "opt" / "proscan" / "proscan.conf"
    assert "[update.options]" in conf.read_text()
    lines = crontab.read_text().splitlines()
    assert lines[0] == "5 4 * * * /usr/bin/backup"
    hourly = rf"([0-9]|[1-5][0-9]) \* \* \* \* {PROGRAM} --config {DEFAULT_CONFIG} .*{MARKER}"
    assert re.fullmatch(hourly, lines[1])


def test_install_keeps_an_existing_proscan_conf_and_one_line(tmp_path):
    crontab = tmp_path / "crontab"
    conf = tmp_path / "etc" / "opt" / "proscan" / "proscan.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("[update.options]\nUpdateServer = mine\n")
    installer = Installer(tmp_path, crontab)
    installer.install(PROGRAM, lambda line: None)
    installer.install(PROGRAM, lambda line: None)
    assert conf.read_text() == "[update.options]\nUpdateServer = mine\n"
    assert len(crontab.read_text().splitlines()) == 1
    installer.uninstall(lambda line: None)
    assert conf.exists()  # it was never ours


def test_uninstall_removes_what_install_wrote_and_nothing_else(tmp_path):
    crontab = tmp_path / "crontab"
    crontab.write_text("5 4 * * * /usr/bin/backup\n")
    installer = Installer(tmp_path, crontab)
    installer.install(PROGRAM, lambda line: None)
    installer.uninstall(lambda line: None)
    assert crontab.read_text() == "5 4 * * * /usr/bin/backup\n"
    assert not (tmp_path / "etc" / "opt" / "proscan" / "proscan.conf").exists()


def test_uninstall_keeps_a_proscan_conf_changed_since_install(tmp_path):
    installer = Installer(tmp_path, tmp_path / "crontab")
    installer.install(PROGRAM, lambda line: None)
    installer.config.write_text(installer.config.read_text() + "UpdateServer = pum.example.com\n")
    installer.uninstall(lambda line: None)
    assert installer.config.exists()


def test_the_single_file_installs_itself_by_its_own_path(tmp_path, proscanup_pyz):
    crontab = tmp_path / "crontab"
    run = [sys.executable, "-I", "-S", str(proscanup_pyz)]
    where = ["--root", str(tmp_path), "--crontab-file", str(crontab)]
    done = subprocess.run([*run, "install", *where], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"{proscanup_pyz} --config" in crontab.read_text()
    done = subprocess.run([*run, "uninstall", *where], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert crontab.read_text() == ""
