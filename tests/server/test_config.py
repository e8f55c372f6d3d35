"""pum.conf: every original key, the new keys, and one clear line for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from pum.common.servers import Server
from pum.config import parse_config
from pum.errors import ConfigError, ExitStatus

ORIGINAL = """# PUM configuration as the original product shipped it
mode=server
logfile=/opt/proscan/pum/log/pum.log
log_rotate=yes
log_generation=7
update_servers=clamav-latest.example.com,clamav-old.example.com:8080
update_protocol=http
proxy_host=proxy.example.com
proxy_port=8080
proxy_user=scanner
proxy_passwd=p@ss#word
dns_resolve=no
retention_period=14
"""


def test_every_original_key_loads_with_its_original_meaning():
    config = parse_config(ORIGINAL)
    assert config.mode == "server"
    assert config.logfile == Path("/opt/proscan/pum/log/pum.log")
    assert config.log_rotate is True and config.log_generation == 7
    assert config.update_servers == (
        Server("clamav-latest.example.com"),
        Server("clamav-old.example.com", 8080),
    )
    assert config.update_protocol == "http"
    assert (config.proxy_host, config.proxy_port, config.proxy_user) == ("proxy.example.com", 8080, "scanner")
    assert config.proxy_passwd == "p@ss#word"
    assert config.dns_resolve is False and config.retention_period == 14


def test_defaults_follow_the_design():
    config = parse_config("")
    assert config.log_generation == 5 and config.proxy_port == 3128 and config.retention_period == 30
    assert config.databases == ("main", "daily", "bytecode")
    assert config.dns_record == "current.cvd.clamav.net"
    assert config.keep_releases == 3
    assert (config.connect_timeout, config.read_timeout) == (30, 60)
    assert config.user_agent.startswith("PUM/")


def test_new_keys_load():
    config = parse_config(
        "databases=test,daily\nnameservers=127.0.0.2:5353,[::1]\nkeep_releases=5\n"
        "products=ibm/power/PSHB06.lst,ibm/x86/PSHB03.lst\nproduct_servers=pum.example:8000\n"
        "listen=127.0.0.1:9000\nworkers=2\nvalidate_command=clamscan -d {dir} /dev/null\n"
    )
    assert config.databases == ("test", "daily")
    assert [(n.address, n.port) for n in config.nameservers] == [("127.0.0.2", 5353), ("::1", 53)]
    assert config.products == ("ibm/power/PSHB06.lst", "ibm/x86/PSHB03.lst")
    assert config.product_servers == (Server("pum.example", 8000),)
    assert config.listen == "127.0.0.1:9000" and config.workers == 2


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    config = parse_config("docroot=www\ndata_dir=data\n", tmp_path / "pum.conf")
    assert config.docroot == tmp_path / "www" and config.data_dir == tmp_path / "data"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mode = server\n", "pum.conf:1: no blanks allowed around '='"),
        ("mode= server\n", "pum.conf:1: no blanks allowed around '='"),
        ("# comment\nlogfle=/tmp/x\n", "pum.conf:2: unknown key 'logfle' (did you mean 'logfile'?)"),
        ("dns_resolve=maybe\n", "pum.conf:1: bad value for dns_resolve ('maybe'): expected yes or no"),
        (
            "log_generation=zero\n",
            "pum.conf:1: bad value for log_generation ('zero'): expected a whole number",
        ),
        ("proxy_port=70000\n", "pum.conf:1: bad value for proxy_port"),
        (
            "update_protocol=ftp\n",
            "pum.conf:1: bad value for update_protocol ('ftp'): expected one of http, https",
        ),
        ("mode=server\nmode=mirror\n", "pum.conf:2: 'mode' is set again (first set on line 1)"),
        ("just some words\n", "pum.conf:1: expected name=value"),
        ("update_servers=bad host!\n", "pum.conf:1: bad value for update_servers"),
        ("databases=Daily\n", "pum.conf:1: bad value for databases"),
        ("products=/etc/passwd.lst\n", "pum.conf:1: bad value for products"),
    ],
)
def test_config_errors_name_the_line(text, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert str(caught.value).startswith(message)


def test_a_bad_proxy_password_line_never_shows_the_password():
    with pytest.raises(ConfigError) as caught:
        parse_config("proxy_passwd =hunter2\n")
    assert "hunter2" not in str(caught.value)


def test_config_check_exits_2_with_one_line(tmp_path, pum):
    conf = tmp_path / "pum.conf"
    conf.write_text("mode=server\nretention_perod=3\n")
    result = pum("--config", conf, "config", "check")
    assert result.code == ExitStatus.CONFIG == 2
    assert result.err.strip() == (
        f"pum: {conf}:2: unknown key 'retention_perod' (did you mean 'retention_period'?)"
    )


def test_run_with_a_config_error_does_nothing(tmp_path, pum):
    conf = tmp_path / "pum.conf"
    conf.write_text(f"data_dir={tmp_path}/data\nlog_rotate=sometimes\n")
    assert pum("--config", conf, "run").code == ExitStatus.CONFIG
    assert not (tmp_path / "data").exists()


def test_missing_config_file_is_a_config_error(tmp_path, pum):
    result = pum("--config", tmp_path / "nope.conf", "run")
    assert result.code == ExitStatus.CONFIG
    assert "nope.conf: no such configuration file" in result.err


def test_config_path_comes_from_the_environment(tmp_path, pum, monkeypatch):
    conf = tmp_path / "env.conf"
    conf.write_text("mode=mirror\n")
    monkeypatch.setenv("PUM_CONFIG", str(conf))
    result = pum("config", "check")
    assert result.code == 0 and "mode=mirror" in result.out


def test_proxy_password_is_never_logged(upstream_tree, upstream, pum_conf, pum, squid):
    port = squid(password="right-one")
    conf = pum_conf(
        proxy_host="127.0.0.1", proxy_port=port, proxy_user="pumuser", proxy_passwd="WrongSecret99"
    )
    upstream_tree.publish(2)
    result = pum("-v", "--config", conf, "run")
    assert result.code != 0
    log = (conf.parent / "log" / "pum.log").read_text()
    for text in (result.out, result.err, log):
        assert "WrongSecret99" not in text


def test_an_explicit_scheme_in_update_servers_wins_over_update_protocol():
    config = parse_config("update_servers=https://secure.example,plain.example:8080\nupdate_protocol=http\n")
    assert [s.base_url(config.update_protocol) for s in config.update_servers] == [
        "https://secure.example/",
        "http://plain.example:8080/",
    ]


def test_an_unknown_scheme_in_update_servers_is_refused():
    with pytest.raises(ConfigError, match="only http://, https:// or file:// servers"):
        parse_config("update_servers=ftp://old.example\n")


@pytest.mark.parametrize(
    "line, message",
    [
        ("data_dir=/var/lib/pum\x00x", "control character"),
        ("logfile=/var/log/pum\x1b[31m.log", "control character"),
        ("connect_timeout=nan", "seconds above 0"),
        ("read_timeout=inf", "seconds above 0"),
        ("read_timeout=1e400", "seconds above 0"),
        ("read_timeout=86400", "at most 3600"),
        ("user_agent=PUM/2.0 \u30c6\u30b9\u30c8", "printable ASCII"),
        ("log_generation=1e20", "whole number"),
        ("log_generation=100000000000000000000", "whole number"),
        ("log_generation=\uff15", "whole number"),
        ("retries=1_000", "whole number"),
        ("keep_releases=0", "1-1000"),
        ("proxy_port=\u0661\u0662", "1-65535"),
    ],
)
def test_values_that_would_crash_or_hang_a_run_are_refused_with_file_and_line(line, message):
    with pytest.raises(ConfigError, match=message) as refused:
        parse_config(f"mode=server\n{line}\n", shown_as="pum.conf")
    assert str(refused.value).startswith("pum.conf:2: bad value for ")
    assert "\n" not in str(refused.value)


def test_a_missing_ca_bundle_is_named_at_its_line(tmp_path):
    with pytest.raises(ConfigError, match=r"^pum.conf:3: ca_bundle .*/missing.pem: no such file$"):
        parse_config(f"mode=server\n\nca_bundle={tmp_path}/missing.pem\n", shown_as="pum.conf")
