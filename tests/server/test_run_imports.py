"""What a run that finds nothing new loads: its time is Python's start-up and imports."""

from __future__ import annotations

from conftest import modules_of_a_run
from upstream import header_stime, record_text


def test_a_run_dns_says_nothing_new_to_imports_no_http_client(make_upstream, pum_conf, pum, dnsmasq):
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
    assert pum("--config", conf, "run").code == 0
    asked = len(server.requests)
    modules = modules_of_a_run("--config", conf, "run")
    assert len(server.requests) == asked
    assert "dns.resolver" in modules  # the question was asked
    assert sorted(modules & {"httpx", "httpcore", "pum.net.transport", "tarfile", "concurrent.futures"}) == []
