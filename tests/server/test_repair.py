"""Files written into the docroot by hand: `pum verify` names them in every kept release, `pum repair` puts
every release back to its manifest without serving a changed byte, and foreign files are moved aside."""

from __future__ import annotations

import json
import os
from pathlib import Path

from upstream import TESTDATA

from pum.errors import ExitStatus


def served(conf: Path) -> Path:
    return conf.parent / "www" / "pum"


def releases(conf: Path) -> Path:
    return conf.parent / "data" / "releases"


def serial(conf: Path) -> int:
    return json.loads((served(conf) / ".pum" / "manifest.json").read_text())["serial"]


def two_releases(upstream_tree, pum_conf, pum) -> Path:
    conf = pum_conf()
    for version in (3, 4):
        upstream_tree.publish(version)
        assert pum("--config", conf, "run").code == 0
    return conf


def change_in_place(path: Path, data: bytes) -> None:
    """What `cp new path` as root does: the same inode rewritten, so every release linking it changes."""
    os.chmod(path, 0o644)
    with open(path, "r+b") as stream:
        stream.write(data)


def test_verify_names_a_file_changed_in_place_in_every_release_sharing_it(upstream_tree, pum_conf, pum):
    conf = two_releases(upstream_tree, pum_conf, pum)
    change_in_place(served(conf) / "test-3.cdiff", b"tampered")
    result = pum("--config", conf, "verify")
    assert result.code == ExitStatus.VERIFY, result
    assert "release 2: test-3.cdiff: modified" in result.out
    assert "release 1: test-3.cdiff: modified" in result.out
    assert "3 problem(s) in release(s) 2, 1: 'pum repair' puts every kept release back" in result.err


def test_verify_checks_the_releases_kept_besides_the_served_one(upstream_tree, pum_conf, pum):
    conf = two_releases(upstream_tree, pum_conf, pum)
    result = pum("--config", conf, "verify")
    assert result.code == 0, result
    assert "releases kept: 1, every file as its manifest says" in result.out


def test_repair_fetches_a_file_changed_in_every_release_and_mends_the_older_one(
    upstream_tree, upstream, pum_conf, pum
):
    conf = two_releases(upstream_tree, pum_conf, pum)
    change_in_place(served(conf) / "test-3.cdiff", b"tampered")
    result = pum("--config", conf, "repair")
    assert result.code == 0, result
    assert serial(conf) == 3  # a clean release first; release 2 (changed) was never mended while served
    assert (served(conf) / "test-3.cdiff").read_bytes() == (TESTDATA / "test-3.cdiff").read_bytes()
    assert "release 2: test-3.cdiff changed and no intact copy is kept: fetched again" in result.out
    assert "release 1: test-3.cdiff put back from an intact copy" in result.out
    assert "/test-3.cdiff" in upstream.paths()
    assert pum("--config", conf, "verify").code == 0
    mended = releases(conf) / "1" / "test-3.cdiff"
    assert mended.read_bytes() == (TESTDATA / "test-3.cdiff").read_bytes()


def test_repair_takes_an_intact_copy_from_another_release_instead_of_fetching(
    upstream_tree, upstream, pum_conf, pum
):
    conf = two_releases(upstream_tree, pum_conf, pum)
    copy = served(conf) / "test-3.cdiff"
    copy.unlink()  # replaced, not rewritten: release 1 keeps the intact inode
    copy.write_bytes(b"tampered")
    upstream.clear()
    result = pum("--config", conf, "repair")
    assert result.code == 0, result
    intact = releases(conf) / "1" / "test-3.cdiff"
    assert f"release 2: test-3.cdiff changed; taken from the intact copy {intact}" in result.out
    assert upstream.paths() == []  # intact copies kept here: no upstream needed
    assert serial(conf) == 3
    assert (served(conf) / "test-3.cdiff").read_bytes() == (TESTDATA / "test-3.cdiff").read_bytes()
    assert pum("--config", conf, "verify").code == 0


def test_repair_moves_foreign_files_aside_for_pum_import_and_deletes_nothing(upstream_tree, pum_conf, pum):
    conf = two_releases(upstream_tree, pum_conf, pum)
    (served(conf) / "ibm").mkdir()
    (served(conf) / "ibm" / "module.bin").write_bytes(b"the operator's file")
    result = pum("--config", conf, "repair")
    assert result.code == 0, result
    assert serial(conf) == 2  # only a foreign file: nothing to publish
    aside = list((conf.parent / "data" / "strays").glob("*/release-2/ibm/module.bin"))
    assert [path.read_bytes() for path in aside] == [b"the operator's file"]
    assert f"release 2: moved ibm/module.bin aside to {aside[0]}: not in its manifest" in result.out
    assert "'pum import DIR' publishes those meant for clients" in result.out
    assert pum("--config", conf, "verify").code == 0
    upstream_tree.publish(5)
    assert pum("--config", conf, "run").code == 0  # runs build again


def test_repair_with_nothing_changed_says_so(upstream_tree, pum_conf, pum):
    conf = two_releases(upstream_tree, pum_conf, pum)
    result = pum("--config", conf, "repair")
    assert result.code == 0
    assert result.out == "every kept release matches its manifest: nothing to repair\n"
    assert serial(conf) == 2


def test_rollback_with_one_release_points_to_repair(upstream_tree, pum_conf, pum):
    conf = pum_conf()
    upstream_tree.publish(3)
    assert pum("--config", conf, "run").code == 0
    result = pum("--config", conf, "rollback")
    assert result.code == ExitStatus.STORE
    assert "no earlier release to roll back to" in result.err
    assert "'pum repair' puts them back" in result.err


def test_every_file_of_a_release_is_read_only(upstream_tree, pum_conf, pum):
    conf = two_releases(upstream_tree, pum_conf, pum)
    for directory, _subdirs, names in os.walk(served(conf).resolve()):
        for name in names:
            assert os.stat(os.path.join(directory, name)).st_mode & 0o222 == 0, name
