"""Mirror mode by the upper's manifest: what a sub fetches, what it refuses, what it publishes."""

from __future__ import annotations

import json
import os
import sys
import threading

from conftest import free_port
from upstream import TESTDATA

from pum.errors import ExitStatus
from pum.lock import RunLock

from .conftest import publish_files


def fetched_paths(server) -> set[str]:
    """The files fetched, not the upper's manifest or changelog."""
    return {r.path for r in server.requests if r.status in (200, 206) and not r.path.startswith("/.pum/")}


def test_sub_copies_the_mains_release_with_its_names_mtimes_and_dns_txt(
    upstream_tree, main, sub, static, pum
):
    upstream_tree.publish(3)
    assert pum("--config", main.conf, "run").code == 0
    upper = static(main)
    copy = sub("sub", upper.address)
    result = pum("--config", copy.conf, "run")
    assert result.code == 0, result
    assert copy.files() == main.files()
    for relpath in main.files():
        mine, theirs = (copy.docroot / relpath).stat(), (main.docroot / relpath).stat()
        assert int(mine.st_mtime) == int(theirs.st_mtime), relpath
    assert (copy.docroot / "dns.txt").read_bytes() == (main.docroot / "dns.txt").read_bytes()
    assert "mirroring mode" in copy.log
    assert f"files checked {len(main.files())}, fetched {len(main.files())}, bytes " in copy.log


def test_unchanged_upper_costs_one_request_and_no_payload(upstream_tree, main, sub, static, pum):
    upstream_tree.publish(3)
    assert pum("--config", main.conf, "run").code == 0
    upper = static(main)
    copy = sub("sub", upper.address)
    assert pum("--config", copy.conf, "run").code == 0
    serial = copy.serial()
    upper.clear()
    assert pum("--config", copy.conf, "run").code == 0
    assert [(r.path, r.status) for r in upper.requests] == [(f"/.pum/changes/{main.serial()}.json", 304)]
    assert upper.payload_bytes() == 0
    assert copy.serial() == serial
    assert copy.log.splitlines()[-2:] == ["files checked 0, fetched 0, bytes 0", "no update"]


class ServedTreeWatch:
    """Every open, link, directory listing, mkdir and lstat under the given directories, while `on`."""

    def __init__(self, monkeypatch, *roots) -> None:
        self.roots = tuple(f"{root}/" for root in roots)
        self.on = False
        self.touched: list[tuple[str, str]] = []
        sys.addaudithook(self._audit)  # audit hooks stay: `on` turns this one off after the test
        lstat = os.lstat

        def counting_lstat(path, *args, **kwargs):
            self._note("lstat", path)
            return lstat(path, *args, **kwargs)

        monkeypatch.setattr(os, "lstat", counting_lstat)

    def _audit(self, event: str, args: tuple) -> None:
        if event in ("open", "os.link", "os.scandir", "os.listdir", "os.mkdir") and args:
            self._note(event, args[0])

    def _note(self, event: str, path: object) -> None:
        if self.on and isinstance(path, str | os.PathLike) and os.fspath(path).startswith(self.roots):
            self.touched.append((event, os.fspath(path)))


def copied_sub(upstream_tree, main, sub, static, pum):
    """A sub that copied the main's release 3."""
    upstream_tree.publish(3)
    assert pum("--config", main.conf, "run").code == 0
    upper = static(main)
    copy = sub("sub", upper.address)
    assert pum("--config", copy.conf, "run").code == 0
    return copy


def test_unchanged_upper_begins_no_staging_tree_and_reads_no_served_file(
    upstream_tree, main, sub, static, pum, monkeypatch
):
    copy = copied_sub(upstream_tree, main, sub, static, pum)
    serial = copy.serial()
    watch = ServedTreeWatch(monkeypatch, copy.docroot.resolve(), copy.data / "staging")
    watch.on = True
    try:
        result = pum("--config", copy.conf, "run")
    finally:
        watch.on = False
    assert result.code == 0, result
    assert watch.touched == []
    assert not (copy.data / "staging").exists()
    assert copy.serial() == serial
    assert copy.log.splitlines()[-1] == "no update"


def test_a_sub_with_local_content_keeps_it_over_the_unchanged_upper(
    upstream_tree, main, sub, static, pum, tmp_path
):
    upstream_tree.publish(3)
    assert pum("--config", main.conf, "run").code == 0
    upper = static(main)
    copy = sub("sub", upper.address)
    assert pum("--config", copy.conf, "run").code == 0
    local = tmp_path / "local"
    local.mkdir()
    (local / "notes.txt").write_text("ours\n")
    imported = pum("--config", copy.conf, "import", local)
    assert imported.code == 0, imported
    files = copy.files()
    assert "notes.txt" in files, files
    for _ in range(2):
        assert pum("--config", copy.conf, "run").code == 0
        assert copy.files() == files


def test_only_changed_files_are_fetched_and_the_rest_are_hard_links(upstream_tree, main, sub, static, pum):
    upstream_tree.publish(3)
    assert pum("--config", main.conf, "run").code == 0
    upper = static(main)
    copy = sub("sub", upper.address)
    assert pum("--config", copy.conf, "run").code == 0
    first = copy.docroot.resolve()
    assert pum("--config", main.conf, "run").code == 0  # nothing new upstream: no new release on the main
    upstream_tree.publish(6)
    assert pum("--config", main.conf, "run").code == 0
    held = json.loads((first / ".pum" / "manifest.json").read_text())["files"]
    changed = {relpath for relpath, record in main.files().items() if held.get(relpath) != record}
    upper.clear()
    assert pum("--config", copy.conf, "run").code == 0
    assert fetched_paths(upper) == {"/" + p for p in changed}
    assert copy.files() == main.files()
    second = copy.docroot.resolve()
    for relpath in set(main.files()) - changed:
        assert os.path.samefile(first / relpath, second / relpath)


def test_file_corrupted_on_the_main_is_refused_and_the_last_good_release_stays(
    upstream_tree, main, sub, static, pum
):
    upstream_tree.publish(3)
    assert pum("--config", main.conf, "run").code == 0
    upper = static(main)
    copy = sub("sub", upper.address)
    assert pum("--config", copy.conf, "run").code == 0
    before = copy.docroot.resolve()
    upstream_tree.publish(6)
    assert pum("--config", main.conf, "run").code == 0
    cdiff = main.docroot / "test-5.cdiff"
    cdiff.chmod(0o644)
    data = bytearray(cdiff.read_bytes())
    data[200] ^= 0x01
    cdiff.write_bytes(bytes(data))
    result = pum("--config", copy.conf, "run")
    assert result.code == ExitStatus.VERIFY
    assert f"{upper.url('test-5.cdiff')}: refused: sha256" in result.err
    assert "differs from the upper's manifest" in copy.log
    assert "the last good release stays served" in copy.log
    assert copy.docroot.resolve() == before


def test_cvd_that_matches_the_manifest_but_not_its_signature_is_refused(tmp_path, sub, static, pum):
    forged = bytearray((TESTDATA / "test-6.cvd").read_bytes())
    forged[-10] ^= 0x01  # in the signed body: the header's MD5 no longer matches
    upper_root = publish_files(tmp_path / "upper", {"test.cvd": bytes(forged), "dns.txt": b"x\n"})
    upper = static(upper_root)
    copy = sub("sub", upper.address)
    result = pum("--config", copy.conf, "run")
    assert result.code == ExitStatus.VERIFY
    assert f"{upper.url('test.cvd')}: refused" in result.err
    assert not copy.docroot.exists()


def test_cdiff_is_checked_against_the_version_in_its_name(tmp_path, sub, static, pum):
    upper_root = publish_files(tmp_path / "upper", {"test-4.cdiff": (TESTDATA / "test-5.cdiff").read_bytes()})
    copy = sub("sub", static(upper_root).address)
    result = pum("--config", copy.conf, "run")
    assert result.code == ExitStatus.VERIFY
    assert "test-4.cdiff: refused" in result.err


def test_dot_files_of_the_upper_release_are_its_own_records_and_not_copied(tmp_path, sub, static, pum):
    # a main carrying products has .pum/products.json in its manifest; `pum serve` never serves it
    upper_root = publish_files(
        tmp_path / "upper", {"dns.txt": b"x\n", ".pum/products.json": b"{}", "ibm/.hidden": b"h"}
    )
    upper = static(upper_root)
    copy = sub("sub", upper.address)
    result = pum("--config", copy.conf, "run")
    assert result.code == 0, result
    assert set(copy.files()) == {"dns.txt"}
    # (then the upper's changelog since the release copied: what the next run asks for)
    assert upper.paths() == ["/.pum/manifest.json", "/dns.txt", "/.pum/changes/1.json"]
    assert "not copied: .pum/products.json, ibm/.hidden" in copy.log


def test_same_content_under_a_new_mtime_is_copied_locally_not_fetched(tmp_path, sub, static, pum):
    upper_root = publish_files(
        tmp_path / "upper", {"a.bin": b"A" * 1000, "b.bin": b"B" * 1000}, mtime=1_600_000_000
    )
    upper = static(upper_root)
    copy = sub("sub", upper.address)
    assert pum("--config", copy.conf, "run").code == 0
    publish_files(
        tmp_path / "upper", {"a.bin": b"A" * 1000, "b.bin": None, "c.bin": b"B" * 1000}, mtime=1_700_000_000
    )
    upper.clear()
    assert pum("--config", copy.conf, "run").code == 0
    assert fetched_paths(upper) == set()
    assert copy.files()["a.bin"]["mtime"] == 1_700_000_000
    assert int((copy.docroot / "a.bin").stat().st_mtime) == 1_700_000_000
    assert set(copy.files()) == {"a.bin", "c.bin"}


def test_upper_publishing_during_the_copy_is_followed_not_refused(tmp_path, sub, static, pum):
    # x.bin comes slowly; meanwhile the upper publishes y.bin anew: the sub sees a y.bin unlike its
    # manifest, reads the manifest again, and copies the newer release instead of refusing (one connection:
    # y.bin is answered after x.bin, pipelined or not; in parallel, y.bin would come before the upper
    # publishes, a consistent copy of release 1)
    base = tmp_path / "upper"
    upper_root = publish_files(base, {"x.bin": b"x" * 1000, "y.bin": b"old" * 100})
    upper = static(upper_root)
    copy = sub("sub", upper.address, max_parallel=1)
    held = upper.fault("x.bin", slow=30, times=1)

    def publish_while_x_is_coming() -> None:
        upper.wait_for_start("x.bin", faulted=True, timeout=20)
        publish_files(base, {"y.bin": b"new" * 100})
        held.released.set()

    publisher = threading.Thread(target=publish_while_x_is_coming)
    publisher.start()
    try:
        result = pum("--config", copy.conf, "run")
    finally:
        publisher.join()
    assert result.code == 0, result
    assert (copy.docroot / "y.bin").read_bytes() == b"new" * 100
    assert copy.files() == json.loads((upper_root / ".pum" / "manifest.json").read_text())["files"]
    assert "the upper server published release 2 meanwhile" in copy.log


def test_main_down_the_sub_uses_its_second_upper(upstream_tree, main, sub, static, pum):
    upstream_tree.publish(3)
    assert pum("--config", main.conf, "run").code == 0
    upper = static(main)
    dead = f"127.0.0.1:{free_port()}"
    copy = sub("sub", dead, upper.address)
    result = pum("--config", copy.conf, "run")
    assert result.code == 0, result
    assert copy.files() == main.files()
    assert f"update host({dead}) failed" in copy.log
    assert f"update server is {upper.address}" in copy.log
    assert copy.state()["upper"] == upper.address


def test_rollback_holds_the_sub_and_after_unhold_it_catches_up(upstream_tree, main, sub, static, pum):
    upstream_tree.publish(3)
    assert pum("--config", main.conf, "run").code == 0
    upper = static(main)
    copy = sub("sub", upper.address)
    assert pum("--config", copy.conf, "run").code == 0
    upstream_tree.publish(6)
    assert pum("--config", main.conf, "run").code == 0
    assert pum("--config", copy.conf, "run").code == 0
    newest = copy.files()
    assert pum("--config", copy.conf, "rollback").code == 0
    upper.clear()
    assert pum("--config", copy.conf, "run").code == 0
    assert upper.requests == []  # held: nothing fetched
    assert "test-6.cdiff" not in copy.files()
    assert pum("--config", copy.conf, "unhold").code == 0
    assert pum("--config", copy.conf, "run").code == 0
    # the validators remembered belong to the release rolled away from: asked without them, so not a 304
    assert upper.requests[0].status == 200
    assert copy.files() == newest


def test_a_run_while_another_holds_the_lock_fetches_nothing(upstream_tree, main, sub, static, pum):
    upstream_tree.publish(3)
    assert pum("--config", main.conf, "run").code == 0
    upper = static(main)
    copy = sub("sub", upper.address)
    with RunLock(copy.data / "pum.lock"):
        result = pum("--config", copy.conf, "run")
    assert result.code == ExitStatus.LOCK_HELD
    assert upper.requests == []


def test_status_shows_the_upper_its_serial_and_how_far_behind(upstream_tree, main, sub, static, pum):
    upstream_tree.publish(3)
    assert pum("--config", main.conf, "run").code == 0
    upper = static(main)
    copy = sub("sub", upper.address)
    assert pum("--config", copy.conf, "run").code == 0
    status = json.loads(pum("--config", copy.conf, "status", "--json").out)["mirror"]
    assert (status["upper"], status["upper_serial"], status["behind_releases"]) == (upper.address, 1, 0)
    upstream_tree.publish(6)
    assert pum("--config", main.conf, "run").code == 0
    (main.docroot / "test-6.cdiff").chmod(0o644)
    (main.docroot / "test-6.cdiff").write_bytes(b"not a cdiff")
    assert pum("--config", copy.conf, "run").code == ExitStatus.VERIFY
    status = json.loads(pum("--config", copy.conf, "status", "--json").out)["mirror"]
    assert (status["upper_serial"], status["behind_releases"]) == (2, 1)
    text = pum("--config", copy.conf, "status").out
    assert f"upper server: {upper.address} serial 2 (behind by 1 release" in text


def test_interrupted_copy_is_resumed_from_the_download_area(tmp_path, sub, static, pum):
    upper_root = publish_files(tmp_path / "upper", {"a.bin": b"a" * 5000, "big.bin": os.urandom(300_000)})
    upper = static(upper_root)
    copy = sub("sub", upper.address, read_timeout=5)
    upper.fault("big.bin", truncate=100_000, times=1)
    assert pum("--config", copy.conf, "run").code == 0
    ranges = [r.headers.get("Range") for r in upper.requests if r.path == "/big.bin"]
    assert ranges == [None, "bytes=100000-"]
    assert (copy.docroot / "big.bin").read_bytes() == (upper_root / "big.bin").read_bytes()


def test_manifest_naming_a_file_that_is_also_a_directory_is_refused_as_a_bad_manifest(
    tmp_path, sub, static, pum
):
    # "a" and "a/b" cannot both be files: refused as a bad manifest, never "File exists" halfway through
    upper_root = tmp_path / "upper"
    (upper_root / ".pum").mkdir(parents=True)
    record = {"size": 1, "sha256": "a" * 64, "mtime": 1756690325}
    manifest = {"serial": 1, "created": "2025-09-01T03:32:05Z", "files": {"a": record, "a/b": record}}
    (upper_root / ".pum" / "manifest.json").write_text(json.dumps(manifest))
    copy = sub("sub", static(upper_root).address)
    result = pum("--config", copy.conf, "run")
    assert result.code == ExitStatus.VERIFY, result
    problem = "path 'a' is a file and also the directory of 'a/b'"
    assert f"not a PUM release manifest: manifest: {problem}" in result.err
    assert not copy.docroot.exists()


def test_repair_on_a_sub_copies_a_file_changed_in_place_from_the_upper_again(
    upstream_tree, main, sub, static, pum
):
    upstream_tree.publish(3)
    assert pum("--config", main.conf, "run").code == 0
    upper = static(main)
    copy = sub("sub", upper.address)
    assert pum("--config", copy.conf, "run").code == 0
    upstream_tree.publish(4)
    assert pum("--config", main.conf, "run").code == 0
    assert pum("--config", copy.conf, "run").code == 0
    changed = copy.docroot / "test-3.cdiff"
    changed.chmod(0o644)
    with open(changed, "r+b") as stream:  # in place: the sub's older release holds the same inode
        stream.write(b"tampered")
    upper.clear()
    result = pum("--config", copy.conf, "repair")
    assert result.code == 0, result
    assert "/test-3.cdiff" in upper.paths()
    assert copy.files() == main.files()
    assert (copy.docroot / "test-3.cdiff").read_bytes() == (main.docroot / "test-3.cdiff").read_bytes()
    assert pum("--config", copy.conf, "verify").code == 0


def test_parallel_downloads_with_one_failure_publish_nothing_partial(tmp_path, sub, static, pum):
    base = tmp_path / "upper"
    upper_root = publish_files(base, {f"d/f{n:02d}.bin": bytes([n]) * 500 for n in range(20)})
    upper = static(upper_root)
    copy = sub("sub", upper.address, max_parallel=4)
    assert pum("--config", copy.conf, "run").code == 0
    served = copy.files()
    publish_files(base, {f"d/f{n:02d}.bin": bytes([n + 1]) * 600 for n in range(20)})
    upper.fault("d/f07.bin", status=404)
    result = pum("--config", copy.conf, "run")
    assert result.code == ExitStatus.UPSTREAM, result
    assert "d/f07.bin: not found (404)" in result.err
    assert copy.files() == served
    assert all(
        (copy.docroot / p).read_bytes() == bytes([int(p[3:5])]) * 500 for p in served if p.startswith("d/")
    )
    assert not (copy.data / "staging").exists()
    upper.faults.clear()
    assert pum("--config", copy.conf, "run").code == 0
    assert (copy.docroot / "d" / "f07.bin").read_bytes() == bytes([8]) * 600
