"""The module step is all or nothing, and its failure leaves the VDF step running (#12 item 9); after a
failover the transcript names the PUM that answered (#16 item 14)."""

from __future__ import annotations

import shutil

from agent.conftest import LIBRARY, MODULE
from pum.errors import ExitStatus


def _leftovers(h):
    return [p for p in h.install.rglob("*") if ".proscanup-" in p.name]


def test_a_module_that_cannot_be_written_changes_no_module_and_the_vdf_step_still_runs(site, host, proscanup):
    h = host()
    assert proscanup("--config", h.conf).code == 0
    old_module = (h.install / "bin" / "proscand").read_bytes()
    site.tree.put(MODULE, "#!/bin/sh\necho proscand 2\n")
    site.tree.put(LIBRARY, b"library 2")
    site.publish()
    shutil.rmtree(h.databases)
    library = h.install / "lib" / "libproscan.so"
    library.unlink()
    library.mkdir()  # a directory where the module goes: its rename fails after proscand's succeeded
    (library / "keep").write_text("x")
    result = proscanup("--config", h.conf)
    assert result.code == ExitStatus.STORE, result
    assert "no module was changed (the VDF step still runs)" in result.err
    assert (h.install / "bin" / "proscand").read_bytes() == old_module  # put back
    assert _leftovers(h) == []
    assert (h.databases / "test.cvd").exists() or (h.databases / "test.cld").exists()


def test_a_module_directory_that_cannot_be_made_stops_before_any_rename(site, host, proscanup):
    h = host()
    (h.install / "lib").write_text("a file where a directory goes\n")
    result = proscanup("--config", h.conf)
    assert result.code == ExitStatus.STORE, result
    assert "no module was changed" in result.err
    assert not (h.install / "bin" / "proscand").exists()
    assert _leftovers(h) == []
    assert (h.databases / "test.cvd").exists() or (h.databases / "test.cld").exists()


def test_after_a_failover_the_transcript_names_the_pum_that_answered(site, host, proscanup):
    from conftest import free_port

    dead = f"127.0.0.1:{free_port()}"
    h = host(UpdateServer=f"{dead}, {site.address}")
    result = proscanup("--config", h.conf, "-V")
    assert result.code == 0, result
    answered = f"Trying update from server http://{site.address}/ibm/power/PSHB06.lst"
    failed = f"Server http://{dead}/ibm/power/PSHB06.lst failed: cannot connect"
    assert failed in result.out
    before_success = result.out[: result.out.index("Success: Get Update list")]
    assert before_success.rstrip().splitlines()[-1] == answered


def test_a_post_update_script_that_cannot_be_written_still_lets_the_vdf_step_run(site, host, proscanup):
    h = host()
    (h.install / "bin" / "post_update.sh.part").mkdir()  # a directory where the download goes
    result = proscanup("--config", h.conf)
    assert result.code == ExitStatus.STORE, result
    assert "post_update step: " in result.err and "the steps after it still run" in result.err
    assert (h.databases / "test.cvd").exists() or (h.databases / "test.cld").exists()
    assert not h.post_update.exists()
