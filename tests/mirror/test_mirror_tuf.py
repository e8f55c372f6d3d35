"""The chain of trust through the tiers: a main PUM with keys signs every release (TUF), a sub-PUM pinned
to the main's root checks each upper release with ngclient before copying, and carries the main's
metadata unchanged so that a host checks what the sub serves against the main's root (pure verifier)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from pum.config import Config
from pum.errors import ExitStatus
from pum.trust import TUF_DIR
from pum.trust import repository as signing
from pum.trust.host import verified_targets
from pum.trust.keys import init_keys, rotate_keys


@pytest.fixture(scope="module")
def made_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keys made once (RSA 3072 takes a while), copied into each test's main PUM."""
    data = tmp_path_factory.mktemp("keys")
    init_keys(Config(docroot=data / "www", data_dir=data))
    return data / "keys"


@pytest.fixture
def signing_main(main, made_keys):
    shutil.copytree(made_keys, main.data / "keys")
    return main


def pinned(tier) -> Path:
    return tier.data / "keys" / "root" / "1.root.json"


def host_check(docroot: Path, root: Path, state: Path) -> dict:
    """What a host with TrustedRoot= does (proscanup's hook): the signed targets of what it is served."""

    def fetch(name: str, max_length: int) -> bytes | None:
        path = docroot / TUF_DIR / name
        return path.read_bytes()[: max_length + 1] if path.is_file() else None

    return verified_targets(fetch, str(root), str(state))


def test_sub_carries_the_mains_signed_metadata_and_a_host_checks_it_end_to_end(
    upstream_tree, signing_main, sub, static, pum, tmp_path
):
    upstream_tree.publish(3)
    assert pum("--config", signing_main.conf, "run").code == 0
    vendor = tmp_path / "vendor"
    (vendor / "ibm/packages").mkdir(parents=True)
    (vendor / "ibm/packages/tool-1.2.tar.gz").write_bytes(b"the operator's vendor package")
    assert pum("--config", signing_main.conf, "import", vendor).code == 0
    copy = sub("sub", static(signing_main).address, trusted_root=pinned(signing_main))
    result = pum("--config", copy.conf, "run")
    assert result.code == 0, result
    ours, theirs = copy.docroot / TUF_DIR, signing_main.docroot / TUF_DIR
    assert sorted(p.name for p in ours.iterdir()) == sorted(p.name for p in theirs.iterdir())
    for path in theirs.iterdir():
        assert (ours / path.name).read_bytes() == path.read_bytes(), path.name
    targets = host_check(copy.docroot, pinned(signing_main), tmp_path / "host")
    served = [path for path in copy.files() if not path.startswith(".pum/")]
    assert "ibm/packages/tool-1.2.tar.gz" in served
    for relpath in served:
        data = (copy.docroot / relpath).read_bytes()
        assert targets[relpath] == (len(data), hashlib.sha256(data).hexdigest()), relpath


def test_a_sub_copying_the_same_upper_release_again_publishes_nothing(
    upstream_tree, signing_main, sub, static, pum
):
    upstream_tree.publish(3)
    assert pum("--config", signing_main.conf, "run").code == 0
    copy = sub("sub", static(signing_main).address, trusted_root=pinned(signing_main))
    assert pum("--config", copy.conf, "run").code == 0
    (copy.data / "state" / "mirror.json").unlink()  # no validators: the manifest comes again, whole
    assert pum("--config", copy.conf, "run").code == 0
    assert copy.serial() == 1
    assert copy.log.splitlines()[-1] == "no update"


def test_a_tampered_product_file_is_refused_by_the_sub(upstream_tree, signing_main, sub, static, pum):
    upstream_tree.publish(3)
    assert pum("--config", signing_main.conf, "run").code == 0
    # whoever controls the upper rewrites a file and its manifest entry alike: only the signature holds
    served = signing_main.docroot / "dns.txt"
    trojan = b"0.103.0:62:3:1700000000:1:90:49192:336\n"
    served.unlink()
    served.write_bytes(trojan)
    manifest_path = signing_main.docroot / ".pum/manifest.json"
    manifest = json.loads(manifest_path.read_bytes())
    record = manifest["files"]["dns.txt"]
    record.update(
        size=len(trojan), sha256=hashlib.sha256(trojan).hexdigest(), mtime=int(served.stat().st_mtime)
    )
    manifest_path.unlink()
    manifest_path.write_text(json.dumps(manifest))
    copy = sub("sub", static(signing_main).address, trusted_root=pinned(signing_main))
    result = pum("--config", copy.conf, "run")
    assert result.code == ExitStatus.VERIFY
    assert "dns.txt: manifest sha256" in result.err and "differs from the signed" in result.err
    assert not copy.docroot.exists()


def test_an_older_signed_release_replayed_to_the_sub_is_refused(
    upstream_tree, signing_main, sub, static, pum
):
    upstream_tree.publish(3)
    assert pum("--config", signing_main.conf, "run").code == 0
    copy = sub("sub", static(signing_main).address, trusted_root=pinned(signing_main))
    assert pum("--config", copy.conf, "run").code == 0
    upstream_tree.publish(4)
    assert pum("--config", signing_main.conf, "run").code == 0
    assert pum("--config", copy.conf, "run").code == 0
    assert copy.serial() == 2
    assert pum("--config", signing_main.conf, "rollback").code == 0  # the upper serves release 1 again
    result = pum("--config", copy.conf, "run")
    assert result.code == ExitStatus.VERIFY
    assert "BadVersionNumberError" in result.err
    assert copy.serial() == 2


def test_expired_metadata_is_refused_by_the_sub(upstream_tree, signing_main, sub, static, pum, monkeypatch):
    monkeypatch.setattr(signing, "METADATA_LIFETIME", -signing.METADATA_LIFETIME)
    upstream_tree.publish(3)
    assert pum("--config", signing_main.conf, "run").code == 0
    copy = sub("sub", static(signing_main).address, trusted_root=pinned(signing_main))
    result = pum("--config", copy.conf, "run")
    assert result.code == ExitStatus.VERIFY
    assert "ExpiredMetadataError" in result.err
    assert not copy.docroot.exists()


def test_metadata_of_another_release_with_these_files_is_refused(
    upstream_tree, signing_main, sub, static, pum
):
    upstream_tree.publish(3)
    assert pum("--config", signing_main.conf, "run").code == 0
    upstream_tree.publish(4)
    assert pum("--config", signing_main.conf, "run").code == 0
    served = signing_main.docroot / TUF_DIR
    older = signing_main.data / "releases" / "1" / TUF_DIR
    for path in served.iterdir():
        path.unlink()
    for path in older.iterdir():
        shutil.copy(path, served / path.name)
    copy = sub("sub", static(signing_main).address, trusted_root=pinned(signing_main))
    result = pum("--config", copy.conf, "run")
    assert result.code == ExitStatus.VERIFY
    assert "differs from the signed" in result.err
    assert not copy.docroot.exists()


def test_an_unsigned_upper_is_refused_by_a_sub_with_a_trusted_root(
    upstream_tree, main, sub, static, pum, made_keys
):
    upstream_tree.publish(3)
    assert pum("--config", main.conf, "run").code == 0
    copy = sub("sub", static(main).address, trusted_root=made_keys / "root" / "1.root.json")
    result = pum("--config", copy.conf, "run")
    assert result.code == ExitStatus.VERIFY
    assert "refused by the signed metadata check" in result.err
    assert not copy.docroot.exists()


def test_a_sub_pinned_to_the_old_root_follows_a_key_rotation(
    upstream_tree, signing_main, sub, static, pum, tmp_path
):
    upstream_tree.publish(3)
    assert pum("--config", signing_main.conf, "run").code == 0
    copy = sub("sub", static(signing_main).address, trusted_root=pinned(signing_main))
    assert pum("--config", copy.conf, "run").code == 0
    rotate_keys(Config(docroot=signing_main.docroot, data_dir=signing_main.data))
    assert pum("--config", signing_main.conf, "run").code == 0
    assert "sign the served files again: root version 2 is not served yet (keys rotated)" in signing_main.log
    assert pum("--config", copy.conf, "run").code == 0
    assert copy.serial() == 2
    assert (copy.docroot / TUF_DIR / "2.root.json").read_bytes() == (
        signing_main.data / "keys" / "root" / "2.root.json"
    ).read_bytes()
    assert host_check(copy.docroot, pinned(signing_main), tmp_path / "host")


def test_a_run_with_nothing_new_signs_again_before_the_metadata_expires(
    upstream_tree, signing_main, pum, monkeypatch
):
    upstream_tree.publish(3)
    assert pum("--config", signing_main.conf, "run").code == 0
    assert pum("--config", signing_main.conf, "run").code == 0
    assert signing_main.serial() == 1
    assert signing_main.log.splitlines()[-1] == "no update"
    monkeypatch.setattr(signing, "RESIGN_MARGIN", signing.METADATA_LIFETIME * 2)
    assert pum("--config", signing_main.conf, "run").code == 0
    assert signing_main.serial() == 2
    assert "sign the served files again: its signed metadata expires" in signing_main.log


def test_an_upper_without_a_manifest_is_not_crawled_with_a_trusted_root(
    sub, static, pum, made_keys, tmp_path
):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "dns.txt").write_text("1.0.7:62:27748:1756596540:1:90:49192:336\n")
    copy = sub("sub", static(plain).address, trusted_root=made_keys / "root" / "1.root.json")
    result = pum("--config", copy.conf, "run")
    assert result.code == ExitStatus.VERIFY
    assert "only a signed PUM release is copied" in result.err
    assert not copy.docroot.exists()


def test_pum_verify_checks_the_signed_metadata_of_the_served_release(upstream_tree, signing_main, pum):
    upstream_tree.publish(3)
    assert pum("--config", signing_main.conf, "run").code == 0
    result = pum("--config", signing_main.conf, "verify")
    assert result.code == 0, result
    served = signing_main.docroot / TUF_DIR / "timestamp.json"
    document = json.loads(served.read_bytes())
    document["signed"]["version"] += 1  # no longer what the online key signed
    served.unlink()
    served.write_text(json.dumps(document))
    result = pum("--config", signing_main.conf, "verify")
    assert result.code == ExitStatus.VERIFY
    assert ".pum/tuf/: timestamp.json version 2: 0 valid signature(s) of role timestamp" in result.out


def test_the_mains_signatures_hold_through_two_tiers_of_subs(
    upstream_tree, signing_main, sub, static, pum, tmp_path
):
    upstream_tree.publish(3)
    assert pum("--config", signing_main.conf, "run").code == 0
    first = sub("first", static(signing_main).address, trusted_root=pinned(signing_main))
    assert pum("--config", first.conf, "run").code == 0
    second = sub("second", static(first).address, trusted_root=pinned(signing_main))
    result = pum("--config", second.conf, "run")
    assert result.code == 0, result
    for path in (signing_main.docroot / TUF_DIR).iterdir():
        assert (second.docroot / TUF_DIR / path.name).read_bytes() == path.read_bytes(), path.name
    targets = host_check(second.docroot, pinned(signing_main), tmp_path / "host")
    for relpath in second.files():
        if not relpath.startswith(".pum/"):
            data = (second.docroot / relpath).read_bytes()
            assert targets[relpath] == (len(data), hashlib.sha256(data).hexdigest()), relpath


def test_a_file_a_sub_is_forced_to_serve_is_refused_by_the_hosts_check(
    upstream_tree, signing_main, sub, static, pum, tmp_path
):
    from pum.formats import FormatError
    from pum.trust.host import check_file

    upstream_tree.publish(3)
    vendor = tmp_path / "vendor" / "ibm" / "power"
    vendor.mkdir(parents=True)
    (vendor / "post_update.sh").write_text("#!/bin/sh\necho genuine\n")
    assert pum("--config", signing_main.conf, "import", tmp_path / "vendor").code == 0
    copy = sub("sub", static(signing_main).address, trusted_root=pinned(signing_main))
    assert pum("--config", copy.conf, "run").code == 0
    served = copy.docroot / "ibm/power/post_update.sh"
    served.unlink()  # whoever holds the sub's disk swaps the script
    served.write_text("#!/bin/sh\nid > /tmp/owned\n")
    targets = host_check(copy.docroot, pinned(signing_main), tmp_path / "host")
    with pytest.raises(FormatError, match="is not the signed"):
        check_file(targets, "ibm/power/post_update.sh", str(served))


def test_setting_trusted_root_later_checks_and_carries_the_upper_release_at_the_next_run(
    upstream_tree, signing_main, sub, static, pum
):
    upstream_tree.publish(3)
    assert pum("--config", signing_main.conf, "run").code == 0
    copy = sub("sub", static(signing_main).address)
    assert pum("--config", copy.conf, "run").code == 0
    assert "trusted_root is not set: the upper's signed metadata is neither checked nor carried" in copy.log
    assert not (copy.docroot / TUF_DIR).exists()
    with copy.conf.open("a") as conf:
        conf.write(f"trusted_root={pinned(signing_main)}\n")
    assert pum("--config", copy.conf, "run").code == 0
    assert (copy.docroot / TUF_DIR / "timestamp.json").read_bytes() == (
        signing_main.docroot / TUF_DIR / "timestamp.json"
    ).read_bytes()


def test_a_trusted_root_that_cannot_be_read_is_a_configuration_error(
    upstream_tree, signing_main, sub, static, pum
):
    upstream_tree.publish(3)
    assert pum("--config", signing_main.conf, "run").code == 0
    copy = sub("sub", static(signing_main).address, trusted_root="/nonexistent/root.json")
    result = pum("--config", copy.conf, "run")
    assert result.code == ExitStatus.CONFIG
    assert "trusted_root /nonexistent/root.json: No such file or directory" in result.err


def test_a_sub_follows_a_signed_upper_by_its_changelog_and_a_forged_one_is_refused(
    upstream_tree, signing_main, sub, static, pum, tmp_path
):
    from pum.formats.changes import files_digest, parse_changes
    from pum.formats.manifest import FileRecord

    upstream_tree.publish(3)
    assert pum("--config", signing_main.conf, "run").code == 0
    upper = static(signing_main)
    copy = sub("sub", upper.address, trusted_root=pinned(signing_main))
    assert pum("--config", copy.conf, "run").code == 0
    upstream_tree.publish(4)
    assert pum("--config", signing_main.conf, "run").code == 0
    upper.clear()
    assert pum("--config", copy.conf, "run").code == 0
    asked = [r.path for r in upper.requests]
    assert asked[0] == "/.pum/changes/1.json" and "/.pum/manifest.json" not in asked
    assert copy.files() == {p: r for p, r in signing_main.files().items() if p in copy.files()}
    targets = host_check(copy.docroot, pinned(signing_main), tmp_path / "host")
    assert targets["dns.txt"][1] == copy.files()["dns.txt"]["sha256"]

    # whoever controls the upper rewrites a file and its changelog entry, the digest made to match: the
    # signed targets refuse the rebuilt manifest, the manifest read again disowns the file: refused
    upstream_tree.publish(5)
    assert pum("--config", signing_main.conf, "run").code == 0
    trojan = b"0.103.0:62:3:1700000000:1:90:49192:336\n"
    served = signing_main.docroot / "dns.txt"
    served.unlink()
    served.write_bytes(trojan)
    changes_file = signing_main.docroot / ".pum/changes/2.json"
    document = json.loads(changes_file.read_bytes())
    record = FileRecord(size=len(trojan), sha256=hashlib.sha256(trojan).hexdigest(), mtime=1700000000)
    document["set"]["dns.txt"] = {"size": record.size, "sha256": record.sha256, "mtime": record.mtime}
    kept = json.loads((copy.data / "state/upper_files.json").read_bytes())
    forged = parse_changes(json.dumps(document).encode())
    document["files"] = files_digest(forged.applied_to({p: FileRecord(*r) for p, r in kept.items()}))
    stat = changes_file.stat()
    changes_file.unlink()
    changes_file.write_text(json.dumps(document))
    os.utime(changes_file, (stat.st_atime, stat.st_mtime))
    result = pum("--config", copy.conf, "run")
    assert result.code == ExitStatus.VERIFY, result
    # the signed targets refused the rebuilt manifest; the manifest, read again, is another file set
    assert "by its changelog" in copy.log and "meanwhile: copying it instead" in copy.log
    assert "dns.txt: refused: sha256" in result.err
    assert copy.serial() == 2 and (copy.docroot / "dns.txt").read_bytes() != trojan
