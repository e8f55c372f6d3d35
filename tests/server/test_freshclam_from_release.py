"""Real freshclam (Debian clamav-freshclam) updates from the tree `pum run` released."""

from __future__ import annotations

import shutil

from conftest import run_freshclam, serve_directory
from upstream import TESTDATA


def test_freshclam_updates_incrementally_from_a_released_tree(
    upstream_tree, upstream, pum_conf, pum, tmp_path
):
    conf = pum_conf()
    upstream_tree.publish(1)
    assert pum("--config", conf, "run").code == 0
    upstream_tree.publish(6)
    assert pum("--config", conf, "run").code == 0
    static = serve_directory(conf.parent / "www" / "pum")
    try:
        client = tmp_path / "client"
        client.mkdir()
        shutil.copyfile(TESTDATA / "test-1.cvd", client / "test.cvd")
        result = run_freshclam(tmp_path, f"http://{static.address}", client)
        assert "test.cld updated (version: 6" in result.stdout, result.stdout + result.stderr
        assert "/test.cvd" not in [r.path for r in static.requests if r.status == 200 and r.body_bytes > 512]

        empty = tmp_path / "empty-client"
        result = run_freshclam(tmp_path, f"http://{static.address}", empty)
        assert "test.cvd updated (version: 6" in result.stdout, result.stdout + result.stderr
    finally:
        static.stop()
