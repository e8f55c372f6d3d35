"""What an unchanged tier's run loads: its time is Python's start-up and imports, so a 304 run imports
nothing it does not use (no download threads, no CVD or tar reader, no signature checks)."""

from __future__ import annotations

from conftest import modules_of_a_run

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
}


def test_a_first_copy_over_plain_http_imports_nothing_it_does_not_use(upstream_tree, main, sub, static, pum):
    upstream_tree.publish(3)
    assert pum("--config", main.conf, "run").code == 0
    copy = sub("sub", static(main).address)
    modules = modules_of_a_run("--config", copy.conf, "run")
    assert copy.serial() == 1
    assert sorted(NOT_FOR_A_PLAIN_COPY & modules) == []
