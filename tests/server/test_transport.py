"""Failover, DNS and its fallbacks, proxy with basic auth, https, cool-downs, resume."""

from __future__ import annotations

import json
import ssl
import time

import pytest
import trustme
from conftest import dataclasses_of_a_run, modules_of_a_run
from upstream import Upstream, header_stime, record_text

from pum.errors import ExitStatus


def served_version(conf) -> int:
    return int((conf.parent / "www" / "pum" / "test.cvd").read_bytes()[:512].decode().split(":")[2])


def log_of(conf) -> str:
    return (conf.parent / "log" / "pum.log").read_text()


def test_first_server_down_second_is_used(make_upstream, pum_conf, pum):
    tree, second = make_upstream("second")
    tree.publish(4)
    conf = pum_conf(update_servers=f"127.0.0.1:9,{second.address}")
    assert pum("--config", conf, "run").code == 0
    assert served_version(conf) == 4
    log = log_of(conf)
    assert "check update host(127.0.0.1:9)" in log
    assert f"update server is {second.address}" in log


def test_server_error_fails_over(upstream_tree, upstream, make_upstream, pum_conf, pum):
    upstream_tree.publish(4)
    tree, second = make_upstream("second")
    tree.publish(4)
    upstream.fault("test.cvd", status=503)
    conf = pum_conf(update_servers=f"{upstream.address},{second.address}")
    assert pum("--config", conf, "run").code == 0
    assert "/test.cvd" in second.paths()


def test_all_servers_down_is_an_upstream_error(tmp_path, pum):
    from conftest import write_config

    conf = write_config(tmp_path / "p", update_servers="127.0.0.1:9,127.0.0.1:19")
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.UPSTREAM
    assert "127.0.0.1:9" in result.err and "127.0.0.1:19" in result.err


def daily_answered_by_dns(make_upstream, pum_conf, dnsmasq):
    """An upstream of daily 3 and dnsmasq saying so: pum.conf, the upstream and the record's text."""
    tree, server = make_upstream("daily-upstream", db="daily")
    tree.publish(3, record=False)
    record = record_text(3, header_stime(tree.root / "daily.cvd"), "daily")
    address, port = dnsmasq({"current.cvd.clamav.test": record})
    conf = pum_conf(
        update_servers=server.address,
        databases="daily",
        dns_resolve="yes",
        dns_record="current.cvd.clamav.test",
        nameservers=f"{address}:{port}",
    )
    return conf, server, record


def test_versions_come_from_the_dns_txt_record(make_upstream, pum_conf, pum, dnsmasq):
    conf, server, record = daily_answered_by_dns(make_upstream, pum_conf, dnsmasq)
    assert pum("--config", conf, "run").code == 0
    log = log_of(conf)
    assert f"Version: {record}" in log
    assert "FIELDS main=62 daily=3 bytecode=336" in log
    assert "daily old: - current: 3" in log
    assert "/dns.txt" not in server.paths()  # DNS answered: no version file, no header probe
    assert not any(r.headers.get("Range") for r in server.requests)


def test_a_run_dns_says_nothing_new_to_imports_no_http_client(make_upstream, pum_conf, pum, dnsmasq):
    conf, server, _record = daily_answered_by_dns(make_upstream, pum_conf, dnsmasq)
    assert pum("--config", conf, "run").code == 0
    asked = len(server.requests)
    modules = modules_of_a_run("--config", conf, "run")
    assert len(server.requests) == asked
    assert "pum.net.dns" in modules  # the question was asked
    assert sorted(modules & {"httpx", "httpcore", "pum.net.transport", "tarfile", "concurrent.futures"}) == []


def test_an_update_run_checks_every_signature_without_cryptography_or_dnspython(
    make_upstream, pum_conf, pum, dnsmasq
):
    # issue 15 item 5: the update run's DNS question and .sign checks are the standard library's (those
    # two imports were ~70 ms of a run that fetches one patch)
    conf, _server, _record = daily_answered_by_dns(make_upstream, pum_conf, dnsmasq)
    modules = modules_of_a_run("--config", conf, "run")
    assert {"pum.net.dns", "pum.formats.pkcs7", "pum.formats.cdiff"} <= modules  # asked, checked
    assert sorted(m for m in modules if m.split(".")[0] in {"cryptography", "asn1crypto", "dns"}) == []
    assert (conf.parent / "www" / "pum" / "daily-3.cdiff.sign").is_file()  # checked, then served


def test_an_update_run_creates_no_record_type_as_a_dataclass(make_upstream, pum_conf, dnsmasq):
    # each dataclass is ~0.7 ms of start-up: the records on a run's path are NamedTuples or slots classes;
    # Config (pum.conf's key table is read from its fields) is the one left
    conf, _server, _record = daily_answered_by_dns(make_upstream, pum_conf, dnsmasq)
    assert dataclasses_of_a_run("--config", conf, "run") == {"pum.config.Config"}
    assert (conf.parent / "www" / "pum" / "daily-3.cdiff.sign").is_file()  # a run that fetched and checked


def test_dns_down_falls_back_to_the_version_file(upstream_tree, upstream, pum_conf, pum):
    upstream_tree.publish(3)
    # nothing answers on port 9: the lookup waits out connect_timeout (loopback HTTP connects need far less)
    conf = pum_conf(
        dns_resolve="yes",
        nameservers="127.0.0.1:9",
        dns_record="current.cvd.clamav.test",
        connect_timeout=0.3,
    )
    assert pum("--config", conf, "run").code == 0
    log = log_of(conf)
    assert "trying the version file dns.txt" in log
    assert "/dns.txt" in upstream.paths()


def test_no_dns_and_no_version_file_falls_back_to_cvd_headers(upstream_tree, upstream, pum_conf, pum):
    upstream_tree.publish(5, record=False)
    conf = pum_conf(dns_resolve="yes", nameservers="127.0.0.1:9", connect_timeout=0.3)
    assert pum("--config", conf, "run").code == 0
    log = log_of(conf)
    assert "no version file dns.txt on update server (404): reading CVD headers" in log
    assert "test: version 5 read from the test.cvd header" in log
    assert served_version(conf) == 5


def test_database_not_in_the_record_gets_its_version_from_the_header(upstream_tree, upstream, pum_conf, pum):
    upstream_tree.publish(4)
    conf = pum_conf()
    assert pum("--config", conf, "run").code == 0
    probe = [
        r for r in upstream.requests if r.path == "/test.cvd" and r.headers.get("Range") == "bytes=0-511"
    ]
    assert probe and probe[0].status == 206


def test_proxy_with_basic_auth(upstream_tree, upstream, pum_conf, pum, squid):
    port = squid(user="pumuser", password="s3cret#pass")
    upstream_tree.publish(3)
    conf = pum_conf(proxy_host="127.0.0.1", proxy_port=port, proxy_user="pumuser", proxy_passwd="s3cret#pass")
    assert pum("--config", conf, "run").code == 0, log_of(conf)
    assert served_version(conf) == 3
    assert upstream.requests and all("Via" in r.headers or "via" in r.headers for r in upstream.requests)


def test_proxy_with_a_wrong_password_is_a_clear_error(upstream_tree, upstream, pum_conf, pum, squid):
    port = squid(password="right")
    upstream_tree.publish(3)
    conf = pum_conf(proxy_host="127.0.0.1", proxy_port=port, proxy_user="pumuser", proxy_passwd="wrong")
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.UPSTREAM
    assert "407 Proxy Authentication Required" in result.err
    assert "proxy_passwd" in result.err
    assert not upstream.requests


@pytest.fixture
def tls_upstream(upstream_tree, tmp_path):
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    server = Upstream(upstream_tree.root, tls=context).start()
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    yield server, ca_file
    server.stop()


def test_https_upstream_with_a_configured_ca_bundle(upstream_tree, tls_upstream, pum_conf, pum):
    server, ca_file = tls_upstream
    upstream_tree.publish(3)
    conf = pum_conf(update_servers=server.address, update_protocol="https", ca_bundle=ca_file)
    assert pum("--config", conf, "run").code == 0, log_of(conf)
    assert served_version(conf) == 3


def test_https_upstream_with_an_unknown_certificate_is_refused(upstream_tree, tls_upstream, pum_conf, pum):
    server, _ca_file = tls_upstream
    upstream_tree.publish(3)
    conf = pum_conf(update_servers=server.address, update_protocol="https")
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.UPSTREAM
    assert "CERTIFICATE_VERIFY_FAILED" in result.err or "certificate" in result.err.lower()


def https_through_proxy(pum_conf, tls_upstream, proxy_port: int, password: str):
    """A config asking the https upstream through the proxy as `pumuser` with `password`."""
    server, ca_file = tls_upstream
    return pum_conf(
        update_servers=server.address,
        update_protocol="https",
        ca_bundle=ca_file,
        proxy_host="127.0.0.1",
        proxy_port=proxy_port,
        proxy_user="pumuser",
        proxy_passwd=password,
    )


def test_https_upstream_through_the_proxy_is_tunnelled_with_basic_auth(
    upstream_tree, tls_upstream, pum_conf, pum, squid
):
    server, _ = tls_upstream
    port = squid(user="pumuser", password="s3cret#pass")
    upstream_tree.publish(3)
    conf = https_through_proxy(pum_conf, tls_upstream, port, "s3cret#pass")
    assert pum("--config", conf, "run").code == 0, log_of(conf)
    assert served_version(conf) == 3
    assert server.requests  # through the CONNECT tunnel: Squid sees no request inside it, adds no Via


def test_a_tunnel_refused_by_the_proxy_is_a_clear_error(upstream_tree, tls_upstream, pum_conf, pum, squid):
    server, _ = tls_upstream
    port = squid(password="right")
    upstream_tree.publish(3)
    conf = https_through_proxy(pum_conf, tls_upstream, port, "wrong")
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.UPSTREAM
    assert "refused" in result.err and "407" in result.err and "proxy_passwd" in result.err
    assert not server.requests


@pytest.mark.parametrize("retry_after", ["120", "HTTP-DATE"])
def test_429_puts_the_server_on_a_cool_down_the_next_run_obeys(
    upstream_tree, upstream, pum_conf, pum, retry_after
):
    import email.utils

    if retry_after == "HTTP-DATE":
        retry_after = email.utils.formatdate(time.time() + 120, usegmt=True)
    upstream_tree.publish(3)
    upstream.fault("dns.txt", status=429, headers={"Retry-After": retry_after})
    conf = pum_conf()
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.UPSTREAM
    cool_downs = json.loads((conf.parent / "data" / "state" / "cooldown.json").read_text())
    until = cool_downs[upstream.address]["until"]
    assert 60 < until - time.time() <= 121
    upstream.faults.clear()
    upstream.clear()
    result = pum("--config", conf, "run")
    assert result.code == ExitStatus.UPSTREAM
    assert "cooling down" in result.err
    assert not upstream.requests


def test_403_cool_down_sends_the_run_to_the_next_server(
    upstream_tree, upstream, make_upstream, pum_conf, pum
):
    upstream_tree.publish(3)
    tree, second = make_upstream("second")
    tree.publish(3)
    upstream.fault("dns.txt", status=403)
    conf = pum_conf(update_servers=f"{upstream.address},{second.address}")
    assert pum("--config", conf, "run").code == 0
    tree.publish(4)
    upstream.clear()
    assert pum("--config", conf, "run").code == 0
    assert not upstream.requests
    assert served_version(conf) == 4


def test_interrupted_download_resumes_with_range(upstream_tree, upstream, pum_conf, pum):
    upstream_tree.publish(6)
    upstream.fault("test.cvd", truncate=3000, times=2)  # the header probe, then the first download
    conf = pum_conf()
    assert pum("--config", conf, "run").code == 0, log_of(conf)
    ranges = [r.headers.get("Range") for r in upstream.requests if r.path == "/test.cvd"]
    assert "bytes=3000-" in ranges, log_of(conf)
    assert served_version(conf) == 6


def test_user_agent_is_sent(upstream_tree, upstream, pum_conf, pum):
    upstream_tree.publish(2)
    conf = pum_conf(user_agent="PUM-test/1")
    assert pum("--config", conf, "run").code == 0
    assert {r.headers.get("User-Agent") for r in upstream.requests} == {"PUM-test/1"}
