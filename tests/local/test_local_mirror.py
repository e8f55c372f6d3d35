"""Mirror mode: a sub-PUM receives the main's local content like any file, and may have its own on top."""

from __future__ import annotations

from conftest import serve_directory, write_config

from .archives import POST_UPDATE, md5, vendor_files, write_zip
from .conftest import docroot, manifest, serial

SUB_POST_UPDATE = b"#!/bin/sh\necho this site's own post_update\n"


def test_a_sub_receives_the_main_local_content_and_keeps_its_own(served, pum, tmp_path, upstream_tree):
    main = served("main")
    files = vendor_files()
    assert pum("--config", main, "import", write_zip(tmp_path / "v.zip", files)).code == 0
    upper = serve_directory(docroot(main))
    try:
        sub = write_config(tmp_path / "sub", mode="mirror", update_servers=upper.address)
        result = pum("--config", sub, "run")
        assert result.code == 0, result
        for path, data in files.items():
            assert (docroot(sub) / path).read_bytes() == data

        copied_from = manifest(sub)["source"]
        own = {"site/notes.txt": b"only on this sub\n", "ibm/power/post_update.sh": SUB_POST_UPDATE}
        result = pum("--config", sub, "import", write_zip(tmp_path / "own.zip", own))
        # the main's list names the main's post_update.sh: the sub is warned that clients will refuse its own
        assert result.code == 0, result
        assert (
            f"replaced  ibm/power/post_update.sh (md5 {md5(POST_UPDATE)} -> {md5(SUB_POST_UPDATE)})"
            in result.out
        )
        assert "warning: ibm/power/PSHB06.lst:" in result.out
        # still a copy of the same upper release, so the next run may ask the upper "changed since?"
        assert manifest(sub)["source"] == copied_from
        published = serial(sub)
        assert pum("--config", sub, "run").code == 0
        assert serial(sub) == published

        upstream_tree.publish(4)
        assert pum("--config", main, "run").code == 0
        assert pum("--config", sub, "run").code == 0
        assert manifest(sub)["files"]["test.cvd"] == manifest(main)["files"]["test.cvd"]
        assert (docroot(sub) / "site" / "notes.txt").read_bytes() == own["site/notes.txt"]
        assert (docroot(sub) / "ibm" / "power" / "post_update.sh").read_bytes() == SUB_POST_UPDATE
        assert (docroot(sub) / "ibm" / "power" / "PSHB06.lst").read_bytes() == files["ibm/power/PSHB06.lst"]
        log = (sub.parent / "log" / "pum.log").read_text()
        assert f"local content replaces ibm/power/post_update.sh (md5 {md5(POST_UPDATE)}" in log
    finally:
        upper.stop()
