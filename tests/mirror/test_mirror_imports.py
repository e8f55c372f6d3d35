"""What an unchanged tier's run loads: its time is Python's start-up and imports, so a 304 run imports
nothing it does not use (no download threads, no CVD or tar reader, no signature checks)."""

from __future__ import annotations

from conftest import dataclasses_of_a_run, modules_of_a_run

from pum.config import Config
from pum.store import Store

from .test_mirror_sync import copied_sub

NOT_FOR_A_304 = {
    "concurrent.futures",  # the parallel downloads
    "pum.sync.parallel",
    "tarfile",  # the CVD body check
    "pum.formats.cvd",
    "pum.sync.vdfcheck",  # signature checks of downloaded VDF files
    "pum.formats.tuf_metadata",
    "subprocess",  # validate_command
    "difflib",  # pum.conf's "did you mean"
}


def test_a_run_the_upper_answers_304_imports_nothing_it_does_not_use(upstream_tree, main, sub, static, pum):
    copy = copied_sub(upstream_tree, main, sub, static, pum)
    modules = modules_of_a_run("--config", copy.conf, "run")
    assert "not modified (304)" in copy.log.splitlines()[-3]
    assert sorted(NOT_FOR_A_304 & modules) == []


NOT_FOR_A_PLAIN_COPY = {
    "click",  # a plain `pum run` is read by pum.cli itself
    "pum.commands",
    "pum.sync.vdfcheck",  # no VDF among the files: no signature check, no CVD reader
    "pum.formats.cvd",
    "pum.formats.pkcs7",
    "pum.formats.tuf_metadata",  # an unsigned upper, a mirror: nothing to sign or check by TUF
    "pum.trust.keys",
    "tuf",
    "pum.sync.local_content",  # no local content imported (`pum import`): nothing to lay over
    "pum.store.local_area",
}


def test_a_first_copy_of_plain_files_imports_nothing_it_does_not_use(tmp_path, sub, static):
    upper = Store(Config(docroot=tmp_path / "main" / "www", data_dir=tmp_path / "main" / "data"))
    staging = upper.begin()
    staging.start_from_current()
    for n in range(4):
        staging.write_bytes(f"d{n % 2}/file-{n}.bin", bytes([n]) * 2048, mtime=1_700_000_000)
    upper.publish(staging)
    copy = sub("sub", static(upper.docroot).address)
    modules = modules_of_a_run("--config", copy.conf, "run")
    assert copy.serial() == 1
    assert (copy.docroot / "d1" / "file-3.bin").read_bytes() == bytes([3]) * 2048
    assert sorted(NOT_FOR_A_PLAIN_COPY & modules) == []


# Config (pum.conf's key table is read from its fields) is the one dataclass left on a run's path
ONLY_DATACLASS = {"pum.config.Config"}


def test_a_mirror_run_creates_no_record_type_as_a_dataclass(tmp_path, sub, static):
    # each dataclass is ~0.7 ms of start-up: the records on a run's path are NamedTuples or slots classes
    upper = Store(Config(docroot=tmp_path / "main" / "www", data_dir=tmp_path / "main" / "data"))
    staging = upper.begin()
    staging.write_bytes("file.bin", b"x" * 2048, mtime=1_700_000_000)
    upper.publish(staging)
    copy = sub("sub", static(upper.docroot).address)
    assert dataclasses_of_a_run("--config", copy.conf, "run") == ONLY_DATACLASS  # a first copy
    assert copy.serial() == 1
    assert dataclasses_of_a_run("--config", copy.conf, "run") == ONLY_DATACLASS  # the upper's 304
    assert "not modified (304)" in copy.log.splitlines()[-3]
