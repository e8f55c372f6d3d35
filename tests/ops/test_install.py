"""`pum install` / `pum uninstall` into a temporary root: the expected files, idempotent, reversible."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import require_program

from pum.config import parse_config
from pum.deploy.cron import parse_schedule
from pum.deploy.install import default_config_text
from pum.deploy.systemd import on_calendar
from pum.errors import ExitStatus

SYSTEMD_FILES = {
    "etc/pum/pum.conf",
    "etc/systemd/system/pum-run.service",
    "etc/systemd/system/pum-run.timer",
    "etc/systemd/system/pum-serve.service",
    "var/lib/pum/installed.json",
}
CRON_NGINX_FILES = {
    "etc/pum/pum.conf",
    "etc/cron.d/pum",
    "etc/nginx/conf.d/pum.conf",
    "var/lib/pum/installed.json",
}
MADE_DIRECTORIES = {"etc", "etc/pum", "var", "var/lib", "var/lib/pum", "var/log", "var/log/pum", "var/www"}


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def dirs_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir() and not p.is_symlink()}


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode)
        for p in root.rglob("*")
        if p.is_file()
    }


def install(pum, root: Path, *args: str):
    return pum("install", "--root", root, *args)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    directory = tmp_path / "root"
    directory.mkdir()
    return directory


def test_install_with_systemd_and_pum_serve_writes_exactly_the_config_units_and_record(pum, root):
    result = install(pum, root, "--scheduler", "systemd", "--web", "pum")
    assert result.code == 0, result
    assert files_under(root) == SYSTEMD_FILES
    assert dirs_under(root) == MADE_DIRECTORIES | {"var/www/pum", "etc/systemd", "etc/systemd/system"}
    for path in SYSTEMD_FILES:
        assert f"wrote {root / path}" in result.out


def test_install_with_cron_and_nginx_writes_exactly_the_config_cron_file_web_config_and_record(pum, root):
    result = install(pum, root, "--scheduler", "cron", "--web", "nginx", "--flavor", "debian")
    assert result.code == 0, result
    assert files_under(root) == CRON_NGINX_FILES
    assert "now run: nginx -t && systemctl reload nginx" in result.out


def test_a_second_install_changes_nothing_and_says_unchanged(pum, root):
    options = ("--scheduler", "cron", "--web", "nginx", "--flavor", "debian")
    assert install(pum, root, *options).code == 0
    before = snapshot(root)
    result = install(pum, root, *options)
    assert result.code == 0, result
    assert snapshot(root) == before
    assert "wrote" not in result.out and "made" not in result.out
    assert result.out.count("unchanged ") == len(CRON_NGINX_FILES)
    assert result.out.rstrip().endswith("nothing changed")


def test_a_second_install_with_systemd_changes_nothing(pum, root):
    assert install(pum, root, "--scheduler", "systemd", "--web", "pum").code == 0
    before = snapshot(root)
    result = install(pum, root, "--scheduler", "systemd", "--web", "pum")
    assert snapshot(root) == before
    assert "to start" not in result.out and result.out.rstrip().endswith("nothing changed")


def test_the_written_pum_conf_is_the_commented_default_and_loads(pum, root):
    install(pum, root, "--scheduler", "cron", "--web", "none")
    written = (root / "etc/pum/pum.conf").read_text()
    assert written == default_config_text()
    assert parse_config(written, Path("/etc/pum/pum.conf")).update_servers[0].host == "database.clamav.net"
    assert (root / "etc/pum/pum.conf").stat().st_mode & 0o777 == 0o640


def test_install_with_web_pum_and_a_port_sets_listen_in_a_new_pum_conf(pum, root):
    install(pum, root, "--scheduler", "systemd", "--web", "pum", "--port", "8080")
    config = parse_config((root / "etc/pum/pum.conf").read_text())
    assert config.listen == "0.0.0.0:8080"


def test_install_never_overwrites_an_existing_pum_conf(pum, root):
    conf = root / "etc/pum/pum.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("update_servers=mirror.example.net\nupdate_protocol=http\n")
    before = conf.read_bytes()
    result = install(pum, root, "--scheduler", "cron", "--web", "none")
    assert result.code == 0, result
    assert conf.read_bytes() == before
    assert f"kept {conf}" in result.out


def test_install_uses_the_original_products_pum_conf_where_it_is(pum, root):
    original = root / "opt/proscan/pum/pum.conf"
    original.parent.mkdir(parents=True)
    original.write_text("mode=server\nupdate_servers=clamav-latest.example.com\ndns_resolve=no\n")
    result = install(pum, root, "--scheduler", "cron", "--web", "none")
    assert result.code == 0, result
    assert not (root / "etc/pum/pum.conf").exists()
    assert "--config /opt/proscan/pum/pum.conf run" in (root / "etc/cron.d/pum").read_text()


def test_install_refuses_a_pum_conf_with_an_error_and_writes_nothing_else(pum, root):
    conf = root / "etc/pum/pum.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("update_server=x.example.com\n")
    result = install(pum, root, "--scheduler", "cron", "--web", "none")
    assert result.code == ExitStatus.CONFIG
    assert f"{conf}:1: unknown key 'update_server'" in result.err
    assert files_under(root) == {"etc/pum/pum.conf"}


def test_the_cron_job_runs_pum_hourly_at_minute_20_after_a_random_sleep(pum, root):
    install(pum, root, "--scheduler", "cron", "--web", "none")
    job = [line for line in (root / "etc/cron.d/pum").read_text().splitlines() if line[:1].isdigit()]
    assert len(job) == 1
    assert job[0].startswith("20 * * * * root sleep $((RANDOM \\% 300)) && ")
    assert job[0].endswith(" --config /etc/pum/pum.conf run")
    assert "SHELL=/bin/bash" in (root / "etc/cron.d/pum").read_text()


def test_the_cron_command_is_valid_bash_once_cron_unescapes_it(pum, root):
    bash = require_program("bash")
    install(pum, root, "--scheduler", "cron", "--web", "none", "--schedule", "*/15 2-4 * * mon-fri")
    job = next(line for line in (root / "etc/cron.d/pum").read_text().splitlines() if line.startswith("*/15"))
    fields = job.split(None, 6)
    assert fields[:6] == ["*/15", "2-4", "*", "*", "mon-fri", "root"]
    command = fields[6].replace("\\%", "%")
    assert subprocess.run([bash, "-n", "-c", command], capture_output=True).returncode == 0
    delay = subprocess.run([bash, "-c", "echo $((RANDOM % 300))"], capture_output=True, text=True)
    assert 0 <= int(delay.stdout) < 300


def test_schedule_and_random_delay_options_reach_the_timer(pum, root):
    install(
        pum,
        root,
        "--scheduler",
        "systemd",
        "--web",
        "none",
        "--schedule",
        "*/15 * * * *",
        "--random-delay",
        "90",
    )
    timer = (root / "etc/systemd/system/pum-run.timer").read_text()
    assert "OnCalendar=*-*-* *:00,15,30,45:00\n" in timer
    assert "RandomizedDelaySec=90\n" in timer


def test_no_random_delay_means_no_sleep_in_the_cron_job(pum, root):
    install(pum, root, "--scheduler", "cron", "--web", "none", "--random-delay", "0")
    assert "sleep" not in (root / "etc/cron.d/pum").read_text().splitlines()[-1]


@pytest.mark.parametrize("schedule", ["61 * * * *", "20 * * *", "20 * * * funday", "5-1 * * * *"])
def test_a_bad_schedule_is_refused_before_anything_is_written(pum, root, schedule):
    result = install(pum, root, "--scheduler", "cron", "--web", "none", "--schedule", schedule)
    assert result.code == ExitStatus.CONFIG
    assert f"--schedule {schedule!r}" in result.err
    assert list(root.iterdir()) == []


def test_web_pum_without_systemd_is_refused(pum, root):
    result = install(pum, root, "--scheduler", "cron", "--web", "pum")
    assert result.code == ExitStatus.CONFIG
    assert "needs systemd" in result.err
    assert list(root.iterdir()) == []


def test_installing_with_another_web_server_removes_the_first_ones_config(pum, root):
    install(pum, root, "--scheduler", "cron", "--web", "nginx", "--flavor", "debian")
    result = install(pum, root, "--scheduler", "cron", "--web", "apache", "--flavor", "debian")
    assert f"removed {root / 'etc/nginx/conf.d/pum.conf'}" in result.out
    assert not (root / "etc/nginx/conf.d/pum.conf").exists()
    assert (root / "etc/apache2/conf-available/pum.conf").is_file()


def test_the_install_record_lists_every_file_written(pum, root):
    install(pum, root, "--scheduler", "systemd", "--web", "pum")
    record = json.loads((root / "var/lib/pum/installed.json").read_text())
    assert set(record["files"]) == {"/" + path for path in SYSTEMD_FILES} - {"/var/lib/pum/installed.json"}
    assert record["config"] == "/etc/pum/pum.conf" and record["config_written"] is True
    assert record["units"] == ["pum-serve.service", "pum-run.timer"]


def fake_data(root: Path) -> dict[str, bytes]:
    """What a few runs leave behind: a release, the docroot symlink to it, state and logs."""
    release = root / "var/lib/pum/releases/1"
    (release / ".pum").mkdir(parents=True)
    (release / "test.cvd").write_bytes(b"release bytes")
    (release / ".pum/manifest.json").write_text("{}")
    (root / "var/lib/pum/generation").write_text("1\n")
    (root / "var/www/pum").rmdir()
    (root / "var/www/pum").symlink_to("/var/lib/pum/releases/1")
    (root / "var/log/pum/pum.log").write_text("pum REV=2.0.0 start\n")
    (root / "var/log/pum/pum.log.1").write_text("older\n")
    return {p: (root / p).read_bytes() for p in ("var/lib/pum/releases/1/test.cvd", "var/log/pum/pum.log")}


def test_reinstalling_over_a_used_installation_keeps_config_releases_and_logs(pum, root):
    install(pum, root, "--scheduler", "systemd", "--web", "pum")
    conf = root / "etc/pum/pum.conf"
    conf.write_text(conf.read_text().replace("keep_releases=3", "keep_releases=5"))  # the operator's edit
    data = fake_data(root)
    result = install(pum, root, "--scheduler", "systemd", "--web", "pum")  # what an upgrade runs again
    assert result.code == 0, result
    assert f"kept {conf}" in result.out
    assert parse_config(conf.read_text()).keep_releases == 5
    assert {p: (root / p).read_bytes() for p in data} == data
    assert os.readlink(root / "var/www/pum") == "/var/lib/pum/releases/1"


def test_uninstall_removes_what_install_wrote_and_keeps_config_and_data(pum, root):
    install(pum, root, "--scheduler", "systemd", "--web", "pum")
    data = fake_data(root)
    result = pum("uninstall", "--root", root)
    assert result.code == 0, result
    assert not (root / "etc/systemd/system").exists()
    assert not (root / "var/lib/pum/installed.json").exists()
    assert {p: (root / p).read_bytes() for p in data} == data
    assert (root / "etc/pum/pum.conf").read_text() == default_config_text()
    assert (root / "var/www/pum").is_symlink()
    assert "--purge removes them" in result.out


def test_uninstall_of_an_unused_installation_leaves_only_the_pum_conf(pum, root):
    install(pum, root, "--scheduler", "cron", "--web", "nginx", "--flavor", "debian")
    assert pum("uninstall", "--root", root).code == 0
    assert files_under(root) == {"etc/pum/pum.conf"}
    assert dirs_under(root) == {"etc", "etc/pum"}


def test_uninstall_purge_leaves_the_root_as_it_was(pum, root):
    install(pum, root, "--scheduler", "systemd", "--web", "pum")
    fake_data(root)
    result = pum("uninstall", "--root", root, "--purge")
    assert result.code == 0, result
    assert list(root.iterdir()) == []


def test_uninstall_twice_says_there_is_nothing_to_uninstall(pum, root):
    install(pum, root, "--scheduler", "cron", "--web", "none")
    assert pum("uninstall", "--root", root).code == 0
    result = pum("uninstall", "--root", root)
    assert result.code == 0
    assert "nothing to uninstall" in result.out


def test_purge_refuses_a_data_dir_that_holds_no_pum_data(pum, root):
    conf = root / "etc/pum/pum.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("data_dir=/srv\n")
    install(pum, root, "--scheduler", "cron", "--web", "none")
    (root / "srv/precious").parent.mkdir(parents=True, exist_ok=True)
    (root / "srv/precious").write_text("not PUM's")
    result = pum("uninstall", "--root", root, "--purge")
    assert result.code != 0
    assert "holds no PUM data" in result.err
    assert (root / "srv/precious").exists()


def test_the_systemd_units_pass_systemd_analyze_verify(pum, root):
    analyze = require_program("systemd-analyze")
    install(pum, root, "--scheduler", "systemd", "--web", "pum")
    units = root / "etc/systemd/system"
    result = subprocess.run(
        [analyze, "verify", "pum-run.service", "pum-run.timer", "pum-serve.service"],
        cwd=units,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "pum-" not in result.stdout + result.stderr, result.stderr


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("20 * * * *", ["*-*-* *:20:00"]),
        ("*/15 * * * *", ["*-*-* *:00,15,30,45:00"]),
        ("0 3 * * mon-fri", ["Mon,Tue,Wed,Thu,Fri *-*-* 03:00:00"]),
        ("30 2 1,15 * 7", ["*-*-01,15 02:30:00", "Sun *-*-* 02:30:00"]),
        ("@daily", ["*-*-* 00:00:00"]),
    ],
)
def test_cron_schedules_become_calendar_events_systemd_accepts(schedule, expected):
    analyze = require_program("systemd-analyze")
    lines = on_calendar(parse_schedule(schedule))
    assert lines == expected
    for line in lines:
        assert subprocess.run([analyze, "calendar", line], capture_output=True, timeout=30).returncode == 0


def test_installing_into_the_running_system_enables_the_timer_and_pum_serve(monkeypatch, tmp_path):
    import pum.deploy.install
    from pum.deploy.install import InstallRecord, _activate, _Tree

    ran: list[list[str]] = []
    monkeypatch.setattr(pum.deploy.install.systemd, "systemd_running", lambda: True)
    monkeypatch.setattr(
        pum.deploy.install, "_run", lambda command, say, must_succeed=True: ran.append(command)
    )
    record = InstallRecord(config="/etc/pum/pum.conf", units=["pum-serve.service", "pum-run.timer"])
    tree = _Tree(tmp_path, lambda line: None, record)
    tree.changed = ["/etc/systemd/system/pum-run.timer"]
    _activate(tree, Path("/"), "systemd", "pum", None)
    assert ran == [
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", "pum-serve.service", "pum-run.timer"],
    ]


def test_install_that_cannot_tell_the_distribution_writes_nothing(tmp_path):
    from pum.deploy.install import install
    from pum.errors import ConfigError

    (tmp_path / "etc" / "nginx").mkdir(parents=True)
    with pytest.raises(ConfigError):
        install(root=tmp_path, web="nginx", scheduler="cron", say=lambda line: None)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert written == ["etc", "etc/nginx"]
