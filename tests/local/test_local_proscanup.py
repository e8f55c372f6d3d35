"""The vendor's upgrade workflow end to end: ClamAV_ProScan.zip imported on the PUM, served by `pum serve`,
and a scanner host's `proscanup` picks up post_update.sh (and runs it) with the VDF by real freshclam."""

from __future__ import annotations

from conftest import free_port, in_process, require_program, running_pum_serve

from .archives import LIST_PATH, vendor_files, write_zip
from .conftest import docroot


def test_proscanup_picks_up_the_imported_post_update_and_runs_it(served, pum, tmp_path, capsys):
    freshclam = require_program("freshclam")
    port = free_port()
    conf = served(listen=f"127.0.0.1:{port}")
    marker = tmp_path / "post_update.ran"
    script = f"#!/bin/sh\necho vendor post_update\necho ran >> {marker}\n".encode()
    files = vendor_files(post_update=script)
    assert pum("--config", conf, "import", write_zip(tmp_path / "ClamAV_ProScan.zip", files)).code == 0
    assert (docroot(conf) / "ibm" / "power" / "post_update.sh").read_bytes() == script

    with running_pum_serve(conf, port):
        host = tmp_path / "host"
        (host / "opt" / "proscan" / "bin").mkdir(parents=True)
        host_conf = host / "proscan.conf"
        options = {
            "UpdateServer": f"127.0.0.1:{port}",
            "ProductList": LIST_PATH,
            "InstallDir": host / "opt" / "proscan",
            "StateDir": host / "state",
            "DatabaseDir": host / "db",
            "Databases": "test",
            "Freshclam": freshclam,
            "CommandTimeout": 60,
            "ReloadApplication": "yes",
        }
        host_conf.write_text("[update.options]\n" + "".join(f"{k} = {v}\n" for k, v in options.items()))
        from pum.agent.main import main

        result = in_process(main, capsys)("--config", host_conf, "-V")
        assert result.code == 0, result
        assert "post_update.sh execute successfully" in result.out, result
        assert marker.read_text() == "ran\n"
        assert (host / "opt" / "proscan" / "bin" / "post_update.sh").read_bytes() == script
        assert (host / "db" / "test.cvd").exists() or (host / "db" / "test.cld").exists()
