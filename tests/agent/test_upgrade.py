"""`proscanup upgrade`: newer packages only, free space first, resume, old installation kept on failure."""

from __future__ import annotations

import io
import random
import tarfile
from pathlib import Path

import pytest
from conftest import serve_directory

from agent.conftest import LIBRARY, MODULE, POST_UPDATE
from pum.errors import ExitStatus

PACKAGE = "proscan-ibm-aix-6.0.6.9.ppc.tar.gz"
TOP = "proscan-6.0.6.9"
INSTALLER = (
    '#!/bin/sh\nset -e\necho "installing into $1"\ncp VERSION "$1/VERSION"\ncp proscand "$1/bin/proscand"\n'
)
NEW_FILES = {"VERSION": "6.0.6.9\n", "proscand": "#!/bin/sh\necho proscand 6.0.6.9\n"}


def publish_package(site, installer: str = INSTALLER, name: str = PACKAGE, **extra: str | bytes) -> str:
    path = site.tree.package(name, {"install.sh": installer, **NEW_FILES, **extra}, top=TOP)
    site.publish(MODULE, LIBRARY, POST_UPDATE, path)
    return path


def installed(h, version: str = "6.0.6.8"):
    """A host with ProScan `version` installed (and modules from the first update)."""
    (h.install / "VERSION").write_text(version + "\n")
    (h.install / "bin" / "proscand").write_text(f"#!/bin/sh\necho proscand {version}\n")
    (h.install / "etc").mkdir(exist_ok=True)
    (h.install / "etc" / "proscan.rules").write_text("rules of the old version\n")
    return h


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mode)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def downloads(h) -> Path:
    return h.root / "var" / "proscanup" / "downloads"


def test_newer_package_is_installed_then_deleted(site, host, proscanup):
    publish_package(site)
    h = installed(host())
    result = proscanup("--config", h.conf, "-V", "upgrade")
    assert result.code == 0, result
    assert (h.install / "VERSION").read_text() == "6.0.6.9\n"
    assert (h.install / "bin" / "proscand").read_text() == NEW_FILES["proscand"]
    assert f"installing into {h.install}" in result.out
    assert "Upgrade 6.0.6.8 -> 6.0.6.9" in result.out
    assert not (downloads(h) / PACKAGE).exists()
    assert not (h.root / "var" / "proscanup" / "backup").exists()


def test_versions_compare_as_numbers_not_as_text(site, host, proscanup):
    publish_package(site)
    h = installed(host(), "6.0.6.10")
    before = snapshot(h.install)
    result = proscanup("--config", h.conf, "-V", "upgrade")
    assert result.code == 0, result
    assert "Installed version 6.0.6.10 is current (the server offers 6.0.6.9)" in result.out
    assert snapshot(h.install) == before
    assert not (downloads(h) / PACKAGE).exists()


def test_a_package_found_not_newer_is_not_downloaded_again(site, host, proscanup):
    publish_package(site)
    h = installed(host(), "6.0.6.10")
    assert proscanup("--config", h.conf, "upgrade").code == 0
    again = proscanup("--config", h.conf, "-V", "upgrade")
    assert again.code == 0, again
    assert "Installed version 6.0.6.10 is current" in again.out
    assert f"Downloading file {PACKAGE}" not in again.out


def test_upgrade_is_refused_when_free_space_is_short(site, host, proscanup):
    publish_package(site)
    h = installed(host(UpgradeFreeSpace=f"/usr/lib:{10**9}"))
    before = snapshot(h.install)
    result = proscanup("--config", h.conf, "upgrade")
    assert result.code == ExitStatus.STORE, result
    assert "not enough free space for the upgrade on /usr/lib:" in result.err
    assert "(1000000000 MB by UpgradeFreeSpace" in result.err
    assert snapshot(h.install) == before
    assert not downloads(h).exists()


def test_failing_installer_leaves_the_previous_installation_intact(site, host, proscanup):
    breaking = (
        '#!/bin/sh\necho "half way"\ncp proscand "$1/bin/proscand"\nrm "$1/etc/proscan.rules"\n'
        'mkdir "$1/newdir" && echo new > "$1/newdir/file"\nexit 3\n'
    )
    publish_package(site, installer=breaking)
    h = installed(host(DatabaseDir=None))  # the default: databases inside the install directory
    database = h.install / "var" / "clamav" / "test.cvd"
    database.parent.mkdir(parents=True)
    database.write_bytes(b"a database the installer must not lose")
    before = snapshot(h.install)
    result = proscanup("--config", h.conf, "upgrade")
    assert result.code == ExitStatus.ERROR, result
    assert "installer exited 3 (half way)" in result.err
    assert snapshot(h.install) == before
    assert not (h.install / "newdir").exists()
    assert (downloads(h) / PACKAGE).exists()  # kept for the next attempt


def test_installer_that_does_not_set_the_new_version_is_rolled_back(site, host, proscanup):
    publish_package(site, installer='#!/bin/sh\ncp proscand "$1/bin/proscand"\n')
    h = installed(host())
    before = snapshot(h.install)
    result = proscanup("--config", h.conf, "upgrade")
    assert result.code == ExitStatus.ERROR, result
    assert "says 6.0.6.8, expected 6.0.6.9" in result.err
    assert snapshot(h.install) == before


def test_installer_past_command_timeout_is_killed_and_rolled_back(site, host, proscanup):
    publish_package(site, installer='#!/bin/sh\ncp VERSION "$1/VERSION"\nsleep 60\n')
    h = installed(host(CommandTimeout=1))
    before = snapshot(h.install)
    result = proscanup("--config", h.conf, "upgrade")
    assert result.code == ExitStatus.ERROR, result
    assert "installer killed after CommandTimeout=1s" in result.err
    assert snapshot(h.install) == before


def test_upgrade_resumes_a_partly_downloaded_package(site, host, proscanup):
    noise = random.Random(5).randbytes(300_000)  # incompressible, so the package is large
    path = publish_package(site, noise=noise)
    whole = site.tree.read(path)
    static = serve_directory(site.conf.parent / "www" / "pum")
    try:
        h = installed(host(UpdateServer=static.address))
        part = downloads(h) / (PACKAGE + ".part")
        part.parent.mkdir(parents=True)
        part.write_bytes(whole[:100_000])  # what an interrupted attempt left
        result = proscanup("--config", h.conf, "-V", "upgrade")
        assert result.code == 0, result
        assert "Resuming the download of" in result.out
        (request,) = [r for r in static.requests if r.path == f"/{path}"]
        assert request.headers.get("Range") == "bytes=100000-"
        assert request.body_bytes == len(whole) - 100_000
        assert (h.install / "VERSION").read_text() == "6.0.6.9\n"
    finally:
        static.stop()


def test_upgrade_reuses_a_package_downloaded_before(site, host, proscanup):
    path = publish_package(site)
    static = serve_directory(site.conf.parent / "www" / "pum")
    try:
        h = installed(host(UpdateServer=static.address))
        downloads(h).mkdir(parents=True)
        (downloads(h) / PACKAGE).write_bytes(site.tree.read(path))
        result = proscanup("--config", h.conf, "-V", "upgrade")
        assert result.code == 0, result
        assert f"/{path}" not in static.paths()
        assert (h.install / "VERSION").read_text() == "6.0.6.9\n"
    finally:
        static.stop()


@pytest.mark.parametrize("member", ["../escaped.sh", "/tmp/absolute.sh"])
def test_package_member_outside_its_directory_is_refused(site, host, proscanup, member):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in [("install.sh", INSTALLER), (member, "#!/bin/sh\necho gotcha\n")]:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content.encode()))
    path = f"ibm/packages/{PACKAGE}"
    site.tree.put(path, buffer.getvalue())
    site.publish(MODULE, LIBRARY, POST_UPDATE, path)
    h = installed(host())
    before = snapshot(h.install)
    result = proscanup("--config", h.conf, "upgrade")
    assert result.code == ExitStatus.VERIFY, result
    assert f"{PACKAGE}: member {member!r} refused" in result.err
    assert snapshot(h.install) == before
    assert not list(h.root.rglob("escaped.sh"))


def test_no_package_on_the_server_is_nothing_to_do(site, host, proscanup):
    h = installed(host())
    result = proscanup("--config", h.conf, "-V", "upgrade")
    assert result.code == 0
    assert "No upgrade package on the server" in result.out


def test_package_download_cut_off_midway_resumes_in_the_same_run(site, host, proscanup):
    path = publish_package(site, noise=random.Random(6).randbytes(300_000))
    static = serve_directory(site.conf.parent / "www" / "pum")
    try:
        static.fault(path, truncate=120_000, times=1)
        h = installed(host(UpdateServer=static.address))
        result = proscanup("--config", h.conf, "upgrade")
        assert result.code == 0, result
        requests = [r for r in static.requests if r.path == f"/{path}"]
        assert [r.headers.get("Range") for r in requests] == [None, "bytes=120000-"]
        assert (h.install / "VERSION").read_text() == "6.0.6.9\n"
    finally:
        static.stop()
