"""SelfUpdate: a proscanup.pyz on a host replaces itself by its PUM's (beside and renamed over); a pyz that
is not the release's is refused and the running file stays; SelfUpdate=no leaves it alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import PumResult, require_program

from agent.test_trusted_root import fake_pum, signed_site
from pum.errors import ExitStatus

PYZ = ".pum/client/proscanup.pyz"


@pytest.fixture(params=("pyz", "pypy3"))
def run_pyz(request):
    """Run a given proscanup.pyz file: run_pyz(pyz, "--config", conf, "-V")."""
    interpreter = [sys.executable, "-I", "-S"] if request.param == "pyz" else [require_program("pypy3")]

    def invoke(pyz: Path, *args: object) -> PumResult:
        done = subprocess.run(
            [*interpreter, str(pyz), *map(str, args)], capture_output=True, text=True, timeout=600
        )
        return PumResult(done.returncode, done.stdout, done.stderr)

    return invoke


def older_pyz(proscanup_pyz: Path, dest: Path) -> Path:
    """A valid proscanup.pyz with other bytes than the release's (as an older build would have)."""
    shutil.copyfile(proscanup_pyz, dest)
    with zipfile.ZipFile(dest, "a") as archive:
        archive.writestr("older.txt", "an older build\n")
    dest.chmod(0o755)
    return dest


def test_an_older_pyz_updates_itself_from_its_pum(site, host, run_pyz, proscanup_pyz):
    h = host()
    pyz = older_pyz(proscanup_pyz, h.root / "proscanup.pyz")
    before = pyz.stat().st_ino
    result = run_pyz(pyz, "--config", h.conf, "-V")
    assert result.code == 0, result
    assert pyz.read_bytes() == proscanup_pyz.read_bytes()
    assert pyz.stat().st_ino != before
    assert pyz.stat().st_mode & 0o777 == 0o755
    assert "proscanup updated itself (sha256 " in result.out
    assert not (h.root / "proscanup.pyz.proscanup-new").exists()
    again = run_pyz(pyz, "--config", h.conf, "-V")
    assert again.code == 0, again
    assert "proscanup.pyz is the PUM's (sha256 " in again.out
    assert "updated itself" not in again.out


def test_a_pyz_the_manifest_does_not_name_is_refused(site, host, run_pyz, proscanup_pyz, tmp_path):
    copy, fake = fake_pum(site, tmp_path)
    try:
        served = copy / PYZ
        older_pyz(proscanup_pyz, served)  # a valid pyz, but not the one the manifest names
        h = host(UpdateServer=fake.address)
        pyz = older_pyz(proscanup_pyz, h.root / "proscanup.pyz")
        running = pyz.read_bytes()
        before = pyz.stat().st_ino
        result = run_pyz(pyz, "--config", h.conf, "-V")
    finally:
        fake.stop()
    assert result.code == ExitStatus.VERIFY, result
    assert "the release manifest says" in result.err and "refused" in result.err
    assert pyz.read_bytes() == running and pyz.stat().st_ino == before
    assert not (h.root / "proscanup.pyz.proscanup-new").exists()
    assert (h.install / "bin" / "proscand").is_file()  # the module step went on as usual


def test_self_update_no_leaves_the_pyz_alone(site, host, run_pyz, proscanup_pyz):
    h = host(SelfUpdate="no")
    pyz = older_pyz(proscanup_pyz, h.root / "proscanup.pyz")
    running = pyz.read_bytes()
    result = run_pyz(pyz, "--config", h.conf, "-V")
    assert result.code == 0, result
    assert pyz.read_bytes() == running
    assert "updated itself" not in result.out and "is the PUM's" not in result.out


def test_with_trusted_root_the_pyz_is_the_signed_target(site, host, run_pyz, proscanup_pyz):
    root = signed_site(site)
    h = host(TrustedRoot=root)
    pyz = older_pyz(proscanup_pyz, h.root / "proscanup.pyz")
    result = run_pyz(pyz, "--config", h.conf, "-V")
    assert result.code == 0, result
    assert "proscanup updated itself (sha256 " in result.out
    assert pyz.read_bytes() == proscanup_pyz.read_bytes()


def test_no_pum_answering_is_not_asked_again_for_the_pyz(host, run_pyz, proscanup_pyz):
    from conftest import free_port

    h = host(UpdateServer=f"127.0.0.1:{free_port()}")
    pyz = older_pyz(proscanup_pyz, h.root / "proscanup.pyz")
    running = pyz.read_bytes()
    result = run_pyz(pyz, "--config", h.conf, "-V")
    assert result.code == ExitStatus.UPSTREAM, result
    assert "manifest.json" not in result.err and "proscanup.pyz" not in result.err
    assert pyz.read_bytes() == running
