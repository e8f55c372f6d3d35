"""The pum.conf `pum install` writes: PUM's own defaults, every key, and older configs still load."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from pum.config import KEYS, Config, Server, default_listen, parse_config
from pum.deploy.install import default_config_text

# A pum.conf of the original product: only its own keys, as its guide showed them.
ORIGINAL_CONF = """\
# pum.conf
mode=server
logfile=/opt/proscan/pum/log/pum.log
log_rotate=yes
log_generation=7
update_servers=clamav-latest.example.com,clamav-old.example.com:8080
update_protocol=http
proxy_host=proxy.example.com
proxy_port=8080
proxy_user=scanner
proxy_passwd=pa=ss#word
dns_resolve=no
retention_period=14
"""


def test_the_shipped_pum_conf_loads_to_the_built_in_defaults():
    loaded = parse_config(default_config_text(), Path("/etc/pum/pum.conf"))
    built_in = Config(path=Path("/etc/pum/pum.conf"), listen=default_listen())
    for field in dataclasses.fields(Config):
        assert getattr(loaded, field.name) == getattr(built_in, field.name), field.name


def test_the_shipped_pum_conf_names_every_key_in_the_documented_order():
    named = re.findall(r"^([a-z_]+)=", default_config_text(), re.MULTILINE)
    assert named == list(KEYS)


def test_the_shipped_default_targets_the_official_clamav_cdn_over_https_with_dns():
    config = parse_config(default_config_text())
    assert config.update_servers == (Server("database.clamav.net"),)
    assert config.update_protocol == "https"
    assert config.dns_resolve is True


def test_the_shipped_pum_conf_shows_the_original_vendor_servers_in_comments():
    text = default_config_text()
    commented = [line for line in text.splitlines() if line.lstrip("# ").startswith("update_servers=")]
    assert any(line.startswith("#") and "database.clamav.net" not in line for line in commented)


def test_a_config_with_only_the_original_keys_still_loads():
    config = parse_config(ORIGINAL_CONF, Path("/opt/proscan/pum/pum.conf"))
    assert config.update_servers == (
        Server("clamav-latest.example.com"),
        Server("clamav-old.example.com", 8080),
    )
    assert (config.update_protocol, config.dns_resolve, config.retention_period) == ("http", False, 14)
    assert (config.proxy_host, config.proxy_port, config.proxy_user) == ("proxy.example.com", 8080, "scanner")
    assert config.proxy_passwd == "pa=ss#word"
    assert (config.logfile, config.log_generation) == (Path("/opt/proscan/pum/log/pum.log"), 7)
    # every newer key takes its default
    assert (config.docroot, config.data_dir) == (Config().docroot, Config().data_dir)
    assert config.databases == ("main", "daily", "bytecode")


def test_pum_config_check_accepts_a_config_with_only_the_original_keys(tmp_path, pum):
    conf = tmp_path / "pum.conf"
    conf.write_text(ORIGINAL_CONF)
    result = pum("--config", conf, "config", "check")
    assert result.code == 0, result
    assert "OK" in result.out
