"""The host side stands alone: standard library only, Python 3.6+, one file under 500 KB."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pum.client_bundle import SIZE_LIMIT, build_client_bytes, host_side_files, host_side_sources

SERVER_SIDE = ("pum.store", "pum.sync", "pum.serve", "pum.net", "pum.runlog", "pum.config", "pum.cli")
SERVER_SIDE += ("pum.commands", "pum.trust.keys", "pum.trust.repository", "pum.trust.upper")


def _modules_loaded_by(statement: str) -> list[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.split()


@pytest.mark.parametrize(
    "statement",
    [
        "import pum.agent.main",
        "import pum.agent.update, pum.agent.upgrade, pum.agent.cron_install",
        "from pum.agent.main import build_parser; build_parser()",
        "import pum.trust.host",  # TrustedRoot: the pure verifier, without python-tuf
    ],
)
def test_the_host_side_loads_nothing_of_the_server_and_no_third_party_module(statement):
    loaded = set(_modules_loaded_by(statement)) - set(_modules_loaded_by("pass"))  # minus what site loads
    server = [m for m in loaded if m.startswith(SERVER_SIDE)]
    assert server == []
    stdlib = set(sys.stdlib_module_names)
    third_party = [m for m in loaded if m.split(".")[0] not in stdlib and m.split(".")[0] != "pum"]
    assert third_party == []


def test_the_pyz_holds_only_the_host_side_and_is_small():
    data = build_client_bytes()
    assert len(data) < SIZE_LIMIT
    assert data.startswith(b"#!/usr/bin/env python3\n")
    package = Path(__import__("pum").__file__).parent
    with zipfile.ZipFile(__import__("io").BytesIO(data)) as archive:
        names = sorted(name for name in archive.namelist() if not name.endswith("/"))
    expected = sorted(["__main__.py"] + [f"pum/{p.as_posix()}" for p in host_side_files(package)])
    assert names == expected
    assert "pum/agent/main.py" in names and "pum/formats/productlist.py" in names
    assert {"pum/trust/__init__.py", "pum/trust/host.py", "pum/formats/tuf_metadata.py"} <= set(names)
    assert not any(name.startswith(("pum/sync", "pum/serve", "pum/net", "pum/store")) for name in names)


def test_the_pyz_is_the_same_bytes_every_build():
    assert hashlib.sha256(build_client_bytes()).digest() == hashlib.sha256(build_client_bytes()).digest()


def test_the_host_side_sources_need_at_most_python_3_6():
    vermin = shutil.which("vermin") or str(Path(sys.executable).with_name("vermin"))
    done = subprocess.run(
        [vermin, "-t=3.6-", "--no-tips", "--violations", *host_side_sources()], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_host_bootstraps_from_its_pum_with_the_pyz_of_the_release(site, host, tmp_path):
    """Every release carries proscanup.pyz with its sha256 in the manifest; a bare host fetches it (here
    from a plain web server over the docroot, as Apache or nginx serve it), checks it, and updates."""
    import json
    import urllib.request

    from conftest import serve_directory

    docroot = site.conf.parent / "www" / "pum"
    web = serve_directory(docroot)
    try:
        with urllib.request.urlopen(web.url(".pum/manifest.json"), timeout=30) as answer:
            record = json.loads(answer.read())["files"][".pum/client/proscanup.pyz"]
        pyz = tmp_path / "proscanup.pyz"
        with urllib.request.urlopen(web.url(".pum/client/proscanup.pyz"), timeout=30) as answer:
            pyz.write_bytes(answer.read())
    finally:
        web.stop()
    assert hashlib.sha256(pyz.read_bytes()).hexdigest() == record["sha256"]
    h = host("bare")
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(pyz), "--config", str(h.conf)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (h.install / "bin" / "proscand").exists()
