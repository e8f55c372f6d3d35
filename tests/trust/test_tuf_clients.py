"""TUF's guarantees on releases signed by the main PUM, checked by both clients on the same files: PUM's
pure verifier (what proscanup runs) and python-tuf's ngclient (what sub-PUMs run) accept the same good
repositories and refuse the same bad ones."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from pum.formats import FormatError
from pum.formats.tuf_metadata import TargetInfo
from pum.trust import repository as signing
from pum.trust.host import check_file
from pum.trust.keys import rotate_keys

from .clients import check, pure_client, tuf_files
from .conftest import Repository


def test_every_file_of_a_release_is_a_target_with_its_sha256_and_length(repository, tmp_path):
    repository.publish({"daily.cvd": b"daily", "ibm/power/bin/scan": b"module", "ibm/power/PSHB06.lst": b"x"})
    targets = check(repository.docroot, repository.root_path(), tmp_path).accepted
    manifest = json.loads((repository.docroot / ".pum/manifest.json").read_bytes())
    signed_files = {path for path in manifest["files"] if not path.startswith(".pum/tuf/")}
    assert set(targets) == signed_files
    for path in ("daily.cvd", "ibm/power/bin/scan"):
        data = (repository.docroot / path).read_bytes()
        assert targets[path] == (len(data), hashlib.sha256(data).hexdigest())


def test_metadata_names_carry_the_release_serial(repository):
    serial = repository.publish({"a": b"1"})
    names = sorted(path.name for path in tuf_files(repository.docroot).iterdir())
    assert names == ["1.root.json", f"{serial}.snapshot.json", f"{serial}.targets.json", "timestamp.json"]


def test_a_forged_target_hash_is_refused(repository, tmp_path):
    repository.publish({"a": b"1"})
    served = tuf_files(repository.docroot) / "1.targets.json"
    document = json.loads(served.read_bytes())
    document["signed"]["targets"]["a"]["hashes"]["sha256"] = hashlib.sha256(b"trojan").hexdigest()
    _rewrite(served, json.dumps(document).encode())
    assert check(repository.docroot, repository.root_path(), tmp_path).refused()


def test_a_forged_timestamp_signature_is_refused(repository, tmp_path):
    repository.publish({"a": b"1"})
    served = tuf_files(repository.docroot) / "timestamp.json"
    document = json.loads(served.read_bytes())
    signature = document["signatures"][0]["sig"]
    document["signatures"][0]["sig"] = ("0" if signature[0] != "0" else "1") + signature[1:]
    _rewrite(served, json.dumps(document).encode())
    assert "valid signature" in check(repository.docroot, repository.root_path(), tmp_path).refused()


def test_a_release_signed_with_other_keys_is_refused(tmp_path, other_keys, keys_template):
    stranger = Repository(tmp_path / "stranger", other_keys)
    stranger.publish({"a": b"1"})
    pinned = keys_template / "root" / "1.root.json"
    assert "valid signature" in check(stranger.docroot, pinned, tmp_path / "states").refused()


def test_an_unsigned_release_is_refused(tmp_path, keys_template):
    unsigned = Repository(tmp_path / "unsigned", None)
    unsigned.publish({"a": b"1"})
    pinned = keys_template / "root" / "1.root.json"
    assert "not found" in check(unsigned.docroot, pinned, tmp_path / "states").refused()


def test_rollback_to_an_older_signed_release_is_refused(repository, tmp_path):
    repository.publish({"a": b"1"})
    repository.publish({"a": b"2"})
    assert check(repository.docroot, repository.root_path(), tmp_path).accepted["a"][0] == 1
    repository.store.switch_to(1)  # an attacker (or a mirror) replays release 1, validly signed then
    assert "rollback" in check(repository.docroot, repository.root_path(), tmp_path).refused()


def test_a_client_that_never_saw_the_newer_release_takes_the_older_one(repository, tmp_path):
    repository.publish({"a": b"1"})
    repository.publish({"a": b"2"})
    repository.store.switch_to(1)
    assert "a" in check(repository.docroot, repository.root_path(), tmp_path).accepted


def test_expired_metadata_is_refused(repository, tmp_path, monkeypatch):
    monkeypatch.setattr(signing, "METADATA_LIFETIME", -signing.METADATA_LIFETIME)
    repository.publish({"a": b"1"})
    assert "expired" in check(repository.docroot, repository.root_path(), tmp_path).refused()


def test_metadata_of_two_releases_do_not_mix(repository, tmp_path):
    repository.publish({"a": b"1"})
    repository.publish({"a": b"2"})
    old = repository.store.releases / "1" / ".pum/tuf/1.targets.json"
    served = tuf_files(repository.docroot) / "2.targets.json"
    _rewrite(served, old.read_bytes())  # release 2's snapshot with release 1's (validly signed) targets
    assert check(repository.docroot, repository.root_path(), tmp_path).refused()


def test_an_older_snapshot_under_a_newer_timestamp_is_refused(repository, tmp_path):
    repository.publish({"a": b"1"})
    repository.publish({"a": b"2"})
    old = repository.store.releases / "1" / ".pum/tuf/1.snapshot.json"
    _rewrite(tuf_files(repository.docroot) / "2.snapshot.json", old.read_bytes())
    assert check(repository.docroot, repository.root_path(), tmp_path).refused()


def test_a_client_pinned_to_the_old_root_follows_a_key_rotation(repository, tmp_path):
    repository.publish({"a": b"1"})
    assert check(repository.docroot, repository.root_path(1), tmp_path).accepted
    rotate_keys(repository.config)
    repository.publish({"a": b"2"})
    assert sorted(p.name for p in tuf_files(repository.docroot).glob("*.root.json")) == [
        "1.root.json",
        "2.root.json",
    ]
    targets = check(repository.docroot, repository.root_path(1), tmp_path).accepted
    assert targets["a"] == (1, hashlib.sha256(b"2").hexdigest())
    assert (tmp_path / "pure" / "root.json").read_bytes() == repository.root_path(2).read_bytes()


def test_after_a_rotation_metadata_signed_with_the_old_online_key_is_refused(repository, tmp_path):
    repository.publish({"a": b"1"})
    signed_with_old_key = repository.store.releases / "1" / ".pum/tuf"
    rotate_keys(repository.config)
    repository.publish({"a": b"2"})
    assert check(repository.docroot, repository.root_path(1), tmp_path).accepted
    served = tuf_files(repository.docroot)
    for name in ("timestamp.json", "2.snapshot.json", "2.targets.json"):
        _rewrite(served / name, b"")
    shutil.copy(signed_with_old_key / "timestamp.json", served / "timestamp.json")
    assert check(repository.docroot, repository.root_path(1), tmp_path / "fresh").refused()


def test_a_root_key_kept_offline_signs_the_rotation(tmp_path):
    offline = tmp_path / "usb"
    repo = Repository(tmp_path / "main", None)
    from pum.trust.keys import init_keys

    init_keys(repo.config, offline_root=offline)
    assert not (repo.keys / "root.pem").exists()
    assert (offline / "root.pem").stat().st_mode & 0o777 == 0o600
    assert (repo.keys / "online.pem").stat().st_mode & 0o777 == 0o600
    repo.publish({"a": b"1"})
    with pytest.raises(Exception, match="key not found"):
        rotate_keys(repo.config)
    rotate_keys(repo.config, offline_root=offline, new_root_key=True)
    repo.publish({"a": b"2"})
    assert check(repo.docroot, repo.root_path(1), tmp_path / "states").accepted["a"][0] == 1


def _rewrite(path, data: bytes) -> None:
    """Replace a file of a release (read-only, and possibly a hard link into another release)."""
    path.unlink()
    path.write_bytes(data)


def _new_root_version(repo: Repository, change, signers: list) -> None:
    """Root version n+1 made by hand with `change(root)`, signed by `signers` (CryptoSigners)."""
    from tuf.api.metadata import Metadata, Root
    from tuf.api.serialization.json import JSONSerializer

    history = sorted(repo.keys.glob("root/*.root.json"), key=lambda p: int(p.name.split(".")[0]))
    metadata = Metadata[Root].from_bytes(history[-1].read_bytes())
    metadata.signed.version += 1
    change(metadata.signed)
    metadata.signatures.clear()
    for signer in signers:
        metadata.sign(signer, append=True)
    path = repo.keys / "root" / f"{metadata.signed.version}.root.json"
    path.write_bytes(metadata.to_bytes(JSONSerializer()))


def _signer(path):
    from pum.trust.keys import _load_signer

    return _load_signer(path)


def test_targets_below_their_threshold_of_signatures_are_refused(repository, tmp_path):
    root_key = _signer(repository.keys / "root.pem")
    _new_root_version(repository, lambda root: setattr(root.roles["targets"], "threshold", 2), [root_key])
    repository.publish({"a": b"1"})
    assert "threshold 2" in check(repository.docroot, repository.root_path(1), tmp_path).refused()


def test_a_new_root_not_signed_by_the_old_root_key_is_refused(repository, tmp_path):
    from securesystemslib.signer import CryptoSigner

    usurper = CryptoSigner.generate_rsa()

    def take_over(root) -> None:
        for keyid in list(root.roles["root"].keyids):
            root.revoke_key(keyid, "root")
        root.add_key(usurper.public_key, "root")

    _new_root_version(repository, take_over, [usurper])
    repository.publish({"a": b"1"})
    assert "role root" in check(repository.docroot, repository.root_path(1), tmp_path).refused()


def test_a_host_refuses_a_file_that_is_not_the_signed_target(repository, tmp_path):
    repository.publish({"ibm/power/bin/scan": b"module"})
    targets = pure_client(repository.docroot, repository.root_path(), tmp_path / "state")
    signed = {path: TargetInfo(*info) for path, info in targets.items()}
    check_file(signed, "ibm/power/bin/scan", str(repository.docroot / "ibm/power/bin/scan"))
    trojan = tmp_path / "scan"
    trojan.write_bytes(b"trojan")
    with pytest.raises(FormatError, match="is not the signed"):
        check_file(signed, "ibm/power/bin/scan", str(trojan))
    with pytest.raises(FormatError, match="not in the signed targets"):
        check_file(signed, "ibm/power/post_update.sh", str(trojan))


def test_both_clients_agree_on_every_flipped_byte(repository, tmp_path):
    """One byte of one metadata file changed, at many places: both clients accept or both refuse."""
    import tempfile
    from pathlib import Path

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    repository.publish({"a": b"1", "b/c": b"2"})
    served = tuf_files(repository.docroot)
    names = sorted(path.name for path in served.iterdir())
    originals = {name: (served / name).read_bytes() for name in names}

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.sampled_from(names), st.integers(0, 10**6), st.integers(1, 255))
    def flipped(name: str, position: int, mask: int) -> None:
        data = bytearray(originals[name])
        data[position % len(data)] ^= mask
        try:
            _rewrite(served / name, bytes(data))
            with tempfile.TemporaryDirectory(dir=tmp_path) as states:
                verdict = check(repository.docroot, repository.root_path(), Path(states))
                pure_ok = not isinstance(verdict.pure, Exception)
                ng_ok = not isinstance(verdict.ng, Exception)
                assert pure_ok == ng_ok, (name, position % len(data), verdict.pure, verdict.ng)
        finally:
            _rewrite(served / name, originals[name])

    flipped()


def test_a_root_key_kept_online_renews_the_root_before_it_expires(tmp_path):
    import datetime as dt

    from pum.trust.keys import ROOT_LIFETIME, init_keys
    from pum.trust.repository import resign_reason

    repo = Repository(tmp_path / "main", None)
    init_keys(repo.config, now=dt.datetime.now(dt.UTC) - ROOT_LIFETIME + dt.timedelta(days=30))
    repo.publish({"a": b"1"})  # the publish renews it already
    assert resign_reason(repo.config, repo.store.current_dir()) is None
    assert sorted(p.name for p in tuf_files(repo.docroot).glob("*.root.json")) == [
        "1.root.json",
        "2.root.json",
    ]
    assert check(repo.docroot, repo.root_path(1), tmp_path / "states").accepted


def test_the_next_run_signs_again_when_the_served_root_nears_its_expiry(repository, tmp_path, monkeypatch):
    import datetime as dt

    from pum.trust import keys
    from pum.trust.repository import resign_reason

    repository.publish({"a": b"1"})
    assert resign_reason(repository.config, repository.store.current_dir()) is None
    monkeypatch.setattr(keys, "ROOT_RENEW", keys.ROOT_LIFETIME + dt.timedelta(days=1))
    reason = resign_reason(repository.config, repository.store.current_dir())
    assert reason is not None and reason.startswith("root metadata version 1 expires ")


def test_metadata_longer_than_its_parent_says_is_refused(repository, tmp_path):
    repository.publish({"a": b"1"})
    served = tuf_files(repository.docroot) / "1.snapshot.json"
    _rewrite(served, served.read_bytes() + b" ")
    assert check(repository.docroot, repository.root_path(), tmp_path).refused()
