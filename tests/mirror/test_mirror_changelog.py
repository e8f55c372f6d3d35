"""A sub-PUM follows a changed upper by its changelog (`.pum/changes/<S>.json`): it asks what changed since
the upper release it copied and fetches exactly those files; any doubt reads the whole manifest."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
from serve.backends import Nginx, PumServe, world_readable_dir

from mirror.conftest import publish_files
from pum.formats.changes import files_digest
from pum.formats.manifest import FileRecord

FILES = {f"d{n % 3}/file-{n:02d}.bin": os.urandom(700 + n) for n in range(30)}


@dataclass
class Upper:
    """A hand-made upper PUM (Store.publish writes its manifest and changelog) and the server in front."""

    base: Path
    address: str
    requests: Callable[[], list[tuple[str, int]]]  # (path without the query, status), oldest first

    @property
    def docroot(self) -> Path:
        return self.base / "www"

    def publish(self, files: dict[str, bytes | None]) -> None:
        publish_files(self.base, files)

    def files(self) -> dict[str, dict]:
        manifest = json.loads((self.docroot / ".pum" / "manifest.json").read_text())
        return {path: record for path, record in manifest["files"].items() if not path.startswith(".")}


@pytest.fixture(params=["upstream", "pum", "nginx"])
def upper(request, static) -> Iterator[Upper]:
    """The upper's release of FILES behind the recording test server, `pum serve` or nginx (the configs
    `pum deploy` writes for both)."""
    base = world_readable_dir("pum-changelog-upper-")
    publish_files(base, dict(FILES))
    if request.param == "upstream":
        server = static(base / "www")
        yield Upper(base, server.address, lambda: [(r.path, r.status) for r in server.requests])
        return
    tree = SimpleNamespace(docroot=base / "www", data_dir=base / "data")
    backend = (PumServe if request.param == "pum" else Nginx)(tree, world_readable_dir("pum-changelog-web-"))
    backend.start()
    try:
        yield Upper(
            base,
            f"127.0.0.1:{backend.port}",
            lambda: [(entry.path.partition("?")[0], entry.status) for entry in backend.log_entries()],
        )
    finally:
        backend.stop()


def _ours(copy) -> dict[str, dict]:
    return {path: record for path, record in copy.files().items() if not path.startswith(".")}


def _asked(upper: Upper, seen: int, expected: int) -> list[tuple[str, int]]:
    """The requests after the first `seen` (an access log is written after the answer: wait, bounded)."""
    import time

    deadline = time.monotonic() + 5
    while len(upper.requests()) < seen + expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return upper.requests()[seen:]


def test_ten_changed_files_are_fetched_by_the_changelog_and_nothing_else(upper, sub, pum):
    copy = sub("sub", upper.address)
    assert pum("--config", copy.conf, "run").code == 0
    assert _ours(copy) == upper.files()
    first = copy.state()["validators"]
    assert first["changes"] is True and first["copied_serial"] == 1

    changed = {path: os.urandom(900) for path in sorted(FILES)[:9]}
    upper.publish({**changed, "d9/new.bin": b"new" * 100, "d1/file-01.bin": None, "d2/file-02.bin": None})
    seen = len(upper.requests())
    result = pum("--config", copy.conf, "run")
    assert result.code == 0, result
    asked = _asked(upper, seen, 11)
    assert asked[0] == ("/.pum/changes/1.json", 200)
    assert sorted(asked[1:]) == sorted((f"/{path}", 200) for path in [*changed, "d9/new.bin"])
    assert _ours(copy) == upper.files()
    assert not (copy.docroot / "d1" / "file-01.bin").exists()  # removed upstairs, gone here
    assert "by its changelog: 10 files new or changed, 2 removed since release 1" in copy.log

    # nothing new: one request, 304
    seen = len(upper.requests())
    assert pum("--config", copy.conf, "run").code == 0
    assert _asked(upper, seen, 1) == [("/.pum/changes/2.json", 304)]
    assert copy.log.splitlines()[-2:] == ["files checked 0, fetched 0, bytes 0", "no update"]


def test_a_sub_further_behind_than_the_changelog_reads_the_whole_manifest(upper, sub, pum, monkeypatch):
    copy = sub("sub", upper.address)
    assert pum("--config", copy.conf, "run").code == 0
    monkeypatch.setattr("pum.store.changelog.KEEP_SERIALS", 2)
    for number in range(3):
        upper.publish({f"d0/file-0{number}.bin": os.urandom(800)})
    seen = len(upper.requests())
    assert pum("--config", copy.conf, "run").code == 0
    asked = _asked(upper, seen, 6)
    assert asked[:2] == [("/.pum/changes/1.json", 404), ("/.pum/manifest.json", 200)]
    assert sorted(asked[2:5]) == [(f"/d0/file-0{n}.bin", 200) for n in range(3)]
    assert asked[5:] == [("/.pum/changes/4.json", 200)]  # the changelog of the release copied: next run
    assert "no changelog reaches back to release 1: reading the whole manifest instead" in copy.log
    assert _ours(copy) == upper.files()
    assert copy.state()["validators"]["changes"] is True


def _tamper(upper: Upper, edit: Callable[[dict, Path], None]) -> None:
    """Rewrite the served release's changes since release 1 (a hostile or broken upper)."""
    path = upper.docroot / ".pum" / "changes" / "1.json"
    document = json.loads(path.read_bytes())
    edit(document, upper.base / "data" / "history" / "1.json")
    stat = path.stat()
    path.chmod(0o644)
    path.write_bytes(json.dumps(document).encode())
    os.utime(path, (stat.st_atime, stat.st_mtime))


def _forged_but_consistent(document: dict, manifest_of_1: Path) -> None:
    """Another sha256 for a changed file, with a files digest made to match: only the file itself tells."""
    path = sorted(document["set"])[0]
    document["set"][path]["sha256"] = "0" * 64
    files = {p: FileRecord(**r) for p, r in json.loads(manifest_of_1.read_bytes())["files"].items()}
    files.update({p: FileRecord(**r) for p, r in document["set"].items()})
    for removed in document["removed"]:
        files.pop(removed, None)
    document["files"] = files_digest(files)


TAMPERED = {
    "digest differs": (lambda d, _: d["set"][sorted(d["set"])[0]].update(size=1), "files_digest differs"),
    "hostile path": (lambda d, _: d["set"].update({"../escape": d["set"][sorted(d["set"])[0]]}), "refused"),
    "huge count": (lambda d, _: d.update(removed=[f"x{n}" for n in range(200_001)]), "entries, at most"),
    "not json": (lambda d, _: d.clear(), "refused"),
    "forged file": (_forged_but_consistent, None),
}


@pytest.mark.parametrize("kind", sorted(TAMPERED))
def test_a_tampered_changelog_never_publishes_a_wrong_tree(tmp_path, sub, static, pum, kind):
    base = tmp_path / "upper"
    publish_files(base, dict(FILES))
    server = static(base / "www")
    upper = Upper(base, server.address, lambda: [(r.path, r.status) for r in server.requests])
    copy = sub("sub", upper.address)
    assert pum("--config", copy.conf, "run").code == 0
    upper.publish({path: os.urandom(900) for path in sorted(FILES)[:10]})
    edit, logged = TAMPERED[kind]
    _tamper(upper, edit)
    result = pum("--config", copy.conf, "run")
    assert result.code == 0, result
    assert _ours(copy) == upper.files()
    if logged is not None:
        line = next(line for line in copy.log.splitlines() if "reading the whole manifest instead" in line)
        assert logged in line
    assert ("/.pum/manifest.json", 200) in upper.requests()


def _changelog(docroot: Path) -> list[int]:
    return sorted(int(path.stem) for path in (docroot / ".pum" / "changes").iterdir())


def test_each_release_carries_its_net_changes_since_each_ancestor(tmp_path, monkeypatch):
    from pum.config import Config
    from pum.formats.changes import parse_changes
    from pum.store import Store

    base = tmp_path / "upper"
    for number in range(4):
        docroot = publish_files(base, {"a.bin": bytes([number]) * 100, f"n{number}.bin": b"n"})
    assert _changelog(docroot) == [1, 2, 3, 4]
    store = Store(Config(docroot=base / "www", data_dir=base / "data"))
    since_1 = parse_changes((docroot / ".pum/changes/1.json").read_bytes())
    assert since_1.applied_to(store.manifest_of(1).files) == store.manifest_of(4).files
    assert sorted(since_1.set) == ["a.bin", "n1.bin", "n2.bin", "n3.bin"] and not since_1.removed
    mtimes = {path.stat().st_mtime for path in (docroot / ".pum/changes").iterdir()}
    assert len(mtimes) == 1  # one Last-Modified for the whole changelog of a release

    monkeypatch.setattr("pum.store.changelog.KEEP_SERIALS", 2)
    assert _changelog(publish_files(base, {"a.bin": b"five"})) == [3, 4, 5]


def test_a_release_after_a_rollback_carries_no_changes_since_the_release_left(tmp_path):
    from pum.config import Config
    from pum.store import Store

    base = tmp_path / "upper"
    for number in range(3):
        publish_files(base, {"a.bin": bytes([number]) * 100})
    Store(Config(docroot=base / "www", data_dir=base / "data")).rollback()  # serves 2 again
    assert _changelog(publish_files(base, {"a.bin": b"four"})) == [1, 2, 4]  # 3 is not an ancestor


def test_changes_larger_than_half_the_manifest_are_not_written(tmp_path):
    base = tmp_path / "upper"
    publish_files(base, {f"f{n:03d}.bin": b"x" for n in range(1000)})
    docroot = publish_files(base, {f"f{n:03d}.bin": b"y" for n in range(1000)})
    assert _changelog(docroot) == [2]  # only the empty changes since itself: subs read the manifest
