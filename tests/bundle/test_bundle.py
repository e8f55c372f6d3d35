"""Across the air gap: `pum export` on the connected side, the bundle carried on removable media, and a
closed PUM that takes it as its upstream (`update_servers=file://...` or `pum import --bundle`)."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import require_program, run_freshclam
from mirror.conftest import Tier
from upstream import TESTDATA

from pum.errors import ExitStatus


@pytest.fixture
def closed(sub, tmp_path: Path) -> Tier:
    """The closed network's PUM: mirror mode, its upstream the USB stick's mount point."""
    return sub("closed", f"file://{tmp_path / 'usb' / 'pum'}")


class FatMedium:
    """A USB stick: a real FAT file system in an image (mkfs.vfat), written and read with mtools, so the
    bundle goes through FAT's rules (8.3 aliases, no owners, 2-second mtimes) as on a real stick. The
    closed side reads it at `mount` (the stick's mount point, as update_servers names it)."""

    def __init__(self, tmp_path: Path) -> None:
        self.image = tmp_path / "usb.img"
        self.mount = tmp_path / "usb"
        with open(self.image, "wb") as stream:
            stream.truncate(32 << 20)
        subprocess.run([require_program("mkfs.vfat"), str(self.image)], check=True, capture_output=True)

    def carry(self, bundle: Path) -> Path:
        """Write the bundle onto the stick, then plug it in on the closed side."""
        mcopy = require_program("mcopy")
        subprocess.run([mcopy, "-i", str(self.image), "-s", "-m", "-o", str(bundle), "::/pum"], check=True)
        if self.mount.exists():
            shutil.rmtree(self.mount) if self.mount.is_dir() else self.mount.unlink()
        self.mount.mkdir()
        subprocess.run([mcopy, "-i", str(self.image), "-s", "-m", "::/pum", str(self.mount)], check=True)
        subprocess.run([require_program("mdeltree"), "-i", str(self.image), "::/pum"], check=True)
        return self.mount / "pum"


def forge(bundle: Path, relpath: str, data: bytes) -> None:
    """Rewrite a carried file, and the manifest and index with it, as a forger with no keys can."""
    (bundle / "files" / relpath).write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    manifest = json.loads(gzip.decompress((bundle / "manifest.json.gz").read_bytes()))
    manifest["files"][relpath].update(size=len(data), sha256=sha)
    raw = gzip.compress((json.dumps(manifest, sort_keys=True, indent=1) + "\n").encode())
    (bundle / "manifest.json.gz").write_bytes(raw)
    index = json.loads((bundle / "pum-bundle.json").read_text())
    index["files"][relpath] = {"size": len(data), "sha256": sha}
    index["manifest"] = {"size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    (bundle / "pum-bundle.json").write_text(json.dumps(index))


def export(pum, main: Tier, dest: Path, *args: str):
    result = pum("--config", main.conf, "export", dest, *args)
    assert result.code == 0, result
    return json.loads((dest / "pum-bundle.json").read_text()) if dest.is_dir() else None


def test_a_day_of_changes_crosses_the_gap_and_freshclam_updates_by_cdiffs(
    upstream_tree, main, closed, pum, pum_serve, tmp_path
):
    upstream_tree.publish(3)
    assert pum("--config", main.conf, "run").code == 0
    full = tmp_path / "full"
    export(pum, main, full, "--full")
    medium = FatMedium(tmp_path)
    medium.carry(full)
    assert pum("--config", closed.conf, "run").code == 0
    assert closed.files() == {k: v for k, v in main.files().items() if not k.startswith(".")}
    status = pum("--config", closed.conf, "status")
    assert "bundle" in status.out
    first = closed.serial()

    served_before, files_before = main.serial(), main.files()
    upstream_tree.publish(6)
    assert pum("--config", main.conf, "run").code == 0
    day = tmp_path / "day"
    index = export(pum, main, day, "--since", str(served_before))
    # only the change: the new cdiffs and .sign files, the CVD that changed, and dns.txt
    changed = {
        path
        for path, record in main.files().items()
        if not path.startswith(".") and files_before.get(path, {}).get("sha256") != record["sha256"]
    }
    assert set(index["files"]) == changed | {"dns.txt"}
    assert {"test.cvd", "test-4.cdiff", "test-5.cdiff", "test-6.cdiff"} <= changed
    medium.carry(day)
    assert pum("--config", closed.conf, "run").code == 0
    assert closed.serial() == first + 1
    assert closed.files() == {k: v for k, v in main.files().items() if not k.startswith(".")}

    client = tmp_path / "client"
    client.mkdir()
    shutil.copyfile(TESTDATA / "test-3.cvd", client / "test.cvd")
    served = pum_serve(closed)
    result = run_freshclam(tmp_path, f"http://{served.address}", client)
    assert "test.cld updated (version: 6" in result.stdout, result.stdout + result.stderr
    fetched = {path for path, status, size in served.requests() if status == 200}
    assert {"/test-4.cdiff", "/test-5.cdiff", "/test-6.cdiff"} <= fetched
    assert not [1 for path, status, size in served.requests() if path == "/test.cvd" and size > 512]


def test_reimporting_the_same_bundle_changes_nothing(upstream_tree, main, closed, pum, tmp_path):
    upstream_tree.publish(4)
    assert pum("--config", main.conf, "run").code == 0
    bundle = tmp_path / "b.tar"
    result = pum("--config", main.conf, "export", bundle, "--full", "--tar")
    assert result.code == 0, result
    assert pum("--config", closed.conf, "import", "--bundle", bundle).code == 0
    serial = closed.serial()
    again = pum("--config", closed.conf, "import", "--bundle", bundle)
    assert again.code == 0, again
    assert "no new release" in again.out
    assert closed.serial() == serial


def test_a_skipped_bundle_is_refused_with_the_serial_it_needs(upstream_tree, main, closed, pum, tmp_path):
    upstream_tree.publish(3)
    assert pum("--config", main.conf, "run").code == 0
    export(pum, main, tmp_path / "full", "--full")
    assert pum("--config", closed.conf, "import", "--bundle", tmp_path / "full").code == 0
    held = closed.serial()
    mains_first = main.serial()
    upstream_tree.publish(4)
    assert pum("--config", main.conf, "run").code == 0
    mains_second = main.serial()
    upstream_tree.publish(5)
    assert pum("--config", main.conf, "run").code == 0
    # the bundle since the main's second release skips the one the closed side lacks
    export(pum, main, tmp_path / "late", "--since", str(mains_second))
    result = pum("--config", closed.conf, "import", "--bundle", tmp_path / "late")
    assert result.code == 5, result
    assert f"--since {mains_first}" in result.err
    assert closed.serial() == held


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "extra file"])
def test_a_damaged_directory_bundle_is_refused_and_nothing_is_published(
    upstream_tree, main, closed, pum, tmp_path, damage
):
    upstream_tree.publish(3)
    assert pum("--config", main.conf, "run").code == 0
    served_before = main.serial()
    export(pum, main, tmp_path / "full", "--full")
    assert pum("--config", closed.conf, "import", "--bundle", tmp_path / "full").code == 0
    held = closed.files()
    upstream_tree.publish(5)
    assert pum("--config", main.conf, "run").code == 0
    day = tmp_path / "day"
    export(pum, main, day, "--since", str(served_before))
    cdiff = day / "files" / "test-5.cdiff"
    if damage == "flipped byte":
        data = bytearray(cdiff.read_bytes())
        data[len(data) // 2] ^= 0x01
        cdiff.write_bytes(bytes(data))
    elif damage == "truncated":
        cdiff.write_bytes(cdiff.read_bytes()[:-10])
    else:
        (day / "files" / "extra.bin").write_bytes(b"not in the index")
    result = pum("--config", closed.conf, "import", "--bundle", day)
    assert result.code == 5, result
    assert result.err.count("\n") == 1 and ("refused" in result.err), result.err
    assert closed.files() == held


def test_a_truncated_tar_is_refused(upstream_tree, main, closed, pum, tmp_path):
    upstream_tree.publish(3)
    assert pum("--config", main.conf, "run").code == 0
    bundle = tmp_path / "b.tar"
    assert pum("--config", main.conf, "export", bundle, "--full", "--tar").code == 0
    with tarfile.open(bundle) as tar:
        assert tar.getnames()[0] == "pum-bundle.json"
    data = bundle.read_bytes()
    bundle.write_bytes(data[: len(data) // 2])
    result = pum("--config", closed.conf, "import", "--bundle", bundle)
    assert result.code == 5, result
    assert "truncated" in result.err
    assert not closed.docroot.exists()


def test_a_bundle_whose_cdiff_is_re_signed_garbage_is_refused_by_its_signature(
    upstream_tree, main, closed, pum, tmp_path
):
    """A bundle made by hand (index and manifest agreeing on a forged cdiff) is still refused: each VDF
    file is checked against its own signature, not only against the bundle's checksums."""
    upstream_tree.publish(3)
    assert pum("--config", main.conf, "run").code == 0
    served_before = main.serial()
    export(pum, main, tmp_path / "full", "--full")
    assert pum("--config", closed.conf, "import", "--bundle", tmp_path / "full").code == 0
    upstream_tree.publish(4)
    assert pum("--config", main.conf, "run").code == 0
    day = tmp_path / "day"
    export(pum, main, day, "--since", str(served_before))
    cdiff = (day / "files" / "test-4.cdiff").read_bytes()
    forge(day, "test-4.cdiff", cdiff[:-40] + b"0" * 40)
    result = pum("--config", closed.conf, "import", "--bundle", day)
    assert result.code == 5, result
    assert "test-4.cdiff: refused" in result.err


def test_export_refuses_an_existing_destination_and_an_unknown_serial(upstream_tree, main, pum, tmp_path):
    upstream_tree.publish(3)
    assert pum("--config", main.conf, "run").code == 0
    (tmp_path / "there").mkdir()
    result = pum("--config", main.conf, "export", tmp_path / "there", "--full")
    assert result.code == 6 and "already exists" in result.err, result
    result = pum("--config", main.conf, "export", tmp_path / "x", "--since", "99")
    assert result.code == 6 and "--since 99" in result.err, result
    assert not (tmp_path / "x").exists()


def test_file_servers_need_mirror_mode(pum_conf, pum, tmp_path):
    conf = pum_conf("x", update_servers=f"file://{tmp_path}/usb")
    result = pum("--config", conf, "config", "check")
    assert result.code == 2 and "mode=mirror" in result.err, result


def test_a_signed_main_reaches_hosts_across_the_gap_and_a_forged_bundle_is_refused(
    upstream_tree, main, sub, pum, tmp_path
):
    """With trusted_root on the closed side, the bundle's release is checked against the main's signed
    metadata (TUF), which travels in the bundle so that hosts there check end to end against the main's
    root; a bundle whose file and manifest were rewritten together is refused."""
    from mirror.test_mirror_tuf import host_check

    from pum.config import Config
    from pum.trust.keys import init_keys

    init_keys(Config(docroot=main.docroot, data_dir=main.data))
    root = main.data / "keys" / "root" / "1.root.json"
    upstream_tree.publish(3)
    assert pum("--config", main.conf, "run").code == 0
    closed = sub("signed-closed", f"file://{tmp_path / 'usb'}", trusted_root=root)
    export(pum, main, tmp_path / "usb", "--full")
    result = pum("--config", closed.conf, "run")
    assert result.code == 0, result
    targets = host_check(closed.docroot, root, tmp_path / "host-state")
    assert targets["test.cvd"][1] == closed.files()["test.cvd"]["sha256"]

    first = main.serial()
    upstream_tree.publish(4)
    assert pum("--config", main.conf, "run").code == 0
    day = tmp_path / "day"
    export(pum, main, day, "--since", str(first))
    forge(day, "dns.txt", (day / "files" / "dns.txt").read_bytes().replace(b"\n", b"\n\n"))
    held = closed.serial()
    refused = pum("--config", closed.conf, "import", "--bundle", day)
    assert refused.code == ExitStatus.VERIFY, refused
    assert "dns.txt: manifest sha256" in refused.err and "differs from the signed" in refused.err
    assert closed.serial() == held


def test_the_closed_side_shows_its_last_bundle_on_the_page_and_in_metrics(
    upstream_tree, main, closed, pum, tmp_path
):
    from pum.serve.metrics import render_metrics
    from pum.serve.status_page import render_html
    from pum.status import collect_status

    upstream_tree.publish(3)
    assert pum("--config", main.conf, "run").code == 0
    export(pum, main, tmp_path / "full", "--full")
    assert pum("--config", closed.conf, "import", "--bundle", tmp_path / "full").code == 0
    from pum.config import load_config

    document = collect_status(load_config(str(closed.conf)))
    assert "last bundle</th><td>release " in render_html(document)
    metrics = render_metrics(None, lambda: document).decode()
    assert f"pum_bundle_release {float(main.serial())}" in metrics
    assert "pum_bundle_imported_timestamp_seconds" in metrics
