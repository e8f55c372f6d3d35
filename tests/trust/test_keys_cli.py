"""`pum keys init | show | rotate` and what `pum install` says to pin: the commands an operator types."""

from __future__ import annotations

import hashlib
import stat

from conftest import write_config

from pum.errors import ExitStatus


def test_keys_init_makes_private_keys_and_shows_the_root_to_pin(pum, tmp_path):
    conf = write_config(tmp_path / "main")
    result = pum("--config", conf, "keys", "init")
    assert result.code == 0, result
    keys = tmp_path / "main" / "data" / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    for name in ("root.pem", "online.pem"):
        assert stat.S_IMODE((keys / name).stat().st_mode) == 0o600, name
    root = keys / "root" / "1.root.json"
    shown = pum("--config", conf, "keys", "show")
    assert shown.code == 0
    assert f"root metadata to pin: {root} (version 1" in shown.out
    assert f"sha256 {hashlib.sha256(root.read_bytes()).hexdigest()}" in shown.out
    assert "TrustedRoot=" in shown.out and "trusted_root=" in shown.out


def test_keys_init_never_overwrites_keys(pum, tmp_path):
    conf = write_config(tmp_path / "main")
    assert pum("--config", conf, "keys", "init").code == 0
    online = (tmp_path / "main" / "data" / "keys" / "online.pem").read_bytes()
    result = pum("--config", conf, "keys", "init")
    assert result.code == ExitStatus.ERROR
    assert "keys exist already" in result.err
    assert (tmp_path / "main" / "data" / "keys" / "online.pem").read_bytes() == online


def test_keys_rotate_writes_the_next_root_version_with_a_new_online_key(pum, tmp_path):
    conf = write_config(tmp_path / "main")
    assert pum("--config", conf, "keys", "rotate").code == ExitStatus.ERROR
    assert pum("--config", conf, "keys", "init").code == 0
    keys = tmp_path / "main" / "data" / "keys"
    online = (keys / "online.pem").read_bytes()
    result = pum("--config", conf, "keys", "rotate")
    assert result.code == 0, result
    assert "(version 2," in result.out
    assert (keys / "online.pem").read_bytes() != online
    assert stat.S_IMODE((keys / "online.pem").stat().st_mode) == 0o600


def test_keys_with_an_offline_root_key_need_it_to_rotate(pum, tmp_path):
    conf = write_config(tmp_path / "main")
    offline = tmp_path / "usb"
    assert pum("--config", conf, "keys", "init", "--offline-root", offline).code == 0
    shown = pum("--config", conf, "keys", "show").out
    assert "kept offline" in shown
    result = pum("--config", conf, "keys", "rotate")
    assert result.code == ExitStatus.CONFIG
    assert "--offline-root DIR" in result.err
    assert pum("--config", conf, "keys", "rotate", "--offline-root", offline).code == 0


def test_install_says_what_to_pin_or_how_to_make_keys(pum, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    result = pum("install", "--root", root, "--web", "none", "--scheduler", "cron")
    assert result.code == 0, result
    assert "releases are not signed yet: run 'pum keys init'" in result.out
    # keys made where the installed pum.conf's data_dir (/var/lib/pum) is under this root
    assert (
        pum("--config", write_config(tmp_path / "k", data_dir=root / "var/lib/pum"), "keys", "init").code == 0
    )
    pinned = root / "var/lib/pum/keys/root/1.root.json"
    result = pum("install", "--root", root, "--web", "none", "--scheduler", "cron")
    assert result.code == 0, result
    digest = hashlib.sha256(pinned.read_bytes()).hexdigest()
    assert f"TrustedRoot=): /var/lib/pum/keys/root/1.root.json (sha256 {digest})" in result.out
