"""TrustedRoot: proscanup checks what it installs against the main PUM's signed metadata (pum keys init;
pum run signs every release), from the pinned root. A fake PUM, a trojan post_update.sh, a tampered
module or a replayed older release is refused: nothing installed, no script run."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from products.tree import POWER_LIST, ProductTree
from upstream import Upstream

from agent.conftest import MODULE, POST_UPDATE
from agent.test_update import marker_script, runs
from pum.agent.pum_client import UpdateClient
from pum.common.servers import parse_servers
from pum.config import load_config
from pum.errors import ExitStatus, VerifyError
from pum.formats.tuf_metadata import TargetInfo


def signed_site(site) -> Path:
    """Keys for the site's PUM, a signed release; the root metadata a host pins."""
    result = site.pum("--config", site.conf, "keys", "init")
    assert result.code == 0, result
    site.publish()
    root = load_config(site.conf).data_dir / "keys" / "root" / "1.root.json"
    assert root.is_file()
    return root


def served_release(site) -> Path:
    return load_config(site.conf).docroot.resolve()


def fake_pum(site, tmp_path: Path) -> tuple[Path, Upstream]:
    """A copy of the served release (signed metadata included) on a plain static server."""
    copy = tmp_path / "fake"
    shutil.copytree(served_release(site), copy)
    for path in copy.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return copy, Upstream(copy).start()


def test_a_host_with_trusted_root_updates_from_a_signed_main(site, host, proscanup, tmp_path):
    root = signed_site(site)
    marker = tmp_path / "marker"
    site.tree.put(POST_UPDATE, marker_script(marker))
    site.publish()
    h = host(TrustedRoot=root)
    result = proscanup("--config", h.conf, "-V")
    assert result.code == 0, result
    assert f"Signed metadata checked against TrustedRoot {root}" in result.out
    assert (h.install / "bin" / "proscand").read_bytes() == site.tree.read(MODULE)
    assert runs(marker) == 1
    assert (h.root / "var" / "proscanup" / "tuf" / "timestamp.json").is_file()


def test_without_trusted_root_the_host_says_md5_only(site, host, proscanup):
    h = host()
    result = proscanup("--config", h.conf, "-V")
    assert result.code == 0, result
    assert "Files are checked by MD5 only (legacy): no TrustedRoot in proscan.conf" in result.out


@pytest.mark.parametrize("what", ["post_update", "module"])
def test_a_fake_pum_serving_a_trojan_is_refused_and_nothing_runs(site, host, proscanup, tmp_path, what):
    root = signed_site(site)
    copy, fake = fake_pum(site, tmp_path)
    try:
        marker = tmp_path / "trojan-ran"
        tree = ProductTree(copy)
        if what == "post_update":
            tree.put(POST_UPDATE, marker_script(marker))
        else:
            tree.put(MODULE, f"#!/bin/sh\necho trojan >> {marker}\n")
        tree.write_list(POWER_LIST, [MODULE, POST_UPDATE])  # the fake's own list names the trojan
        h = host(UpdateServer=fake.address, TrustedRoot=root, VdfCommand="true")
        result = proscanup("--config", h.conf, "-V")
        assert result.code == ExitStatus.VERIFY, result
        assert "not the signed" in result.err and "refused (TrustedRoot)" in result.err
        assert not (h.install / "bin" / "proscand").exists()
        assert not (h.install / "bin" / "post_update.sh").exists()
        assert not marker.exists()
    finally:
        fake.stop()


def test_a_replayed_older_release_is_refused(site, host, proscanup, tmp_path):
    root = signed_site(site)
    older = served_release(site)
    site.tree.put(MODULE, "#!/bin/sh\necho proscand 2\n")
    site.publish()
    h = host(TrustedRoot=root)
    assert proscanup("--config", h.conf).code == 0
    installed = (h.install / "bin" / "proscand").read_bytes()
    assert installed == site.tree.read(MODULE)
    (h.install / "bin" / "proscand").unlink()
    replay = Upstream(older).start()
    try:
        h.conf.write_text(h.conf.read_text().replace(site.address, replay.address))
        result = proscanup("--config", h.conf, "-V")
        assert result.code == ExitStatus.VERIFY, result
        assert "signed metadata refused" in result.err
        assert not (h.install / "bin" / "proscand").exists()
    finally:
        replay.stop()


def test_a_download_that_is_not_the_signed_target_is_never_renamed_into_place(static_pum, tmp_path):
    _tree, server = static_pum
    client = UpdateClient(parse_servers(server.address), "http", 5.0, 5.0, "test")
    data = (_tree.root / MODULE).read_bytes()
    md5 = hashlib.md5(data).hexdigest()
    client.targets = {MODULE: TargetInfo(len(data), "0" * 64)}
    dest = tmp_path / "proscand"
    with pytest.raises(VerifyError, match="refused \\(TrustedRoot\\)"):
        client.download(MODULE, dest, md5)
    assert not dest.exists() and not dest.with_name("proscand.part").exists()
    client.targets = {MODULE: TargetInfo(len(data), hashlib.sha256(data).hexdigest())}
    assert client.download(MODULE, dest, md5).read_bytes() == data


def test_a_download_longer_than_its_signed_length_is_cut_off(static_pum, tmp_path):
    _tree, server = static_pum
    client = UpdateClient(parse_servers(server.address), "http", 5.0, 5.0, "test")
    data = (_tree.root / MODULE).read_bytes()
    client.targets = {MODULE: TargetInfo(len(data) - 1, hashlib.sha256(data[:-1]).hexdigest())}
    dest = tmp_path / "proscand"
    with pytest.raises(VerifyError, match="larger than .* allowed \\(the signed length\\)"):
        client.download(MODULE, dest, hashlib.md5(data).hexdigest())
    assert not dest.exists() and not dest.with_name("proscand.part").exists()
