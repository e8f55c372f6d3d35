"""The suite's own rules: no test fails on time, none skips silently under CI, and the test upstream lets
a test wait on a download it holds instead of sleeping into it."""

from __future__ import annotations

import os
import socket
import threading

import conftest
import httpx
import pytest
from conftest import free_udp_and_tcp_port, require_program
from hypothesis import HealthCheck, settings
from upstream import ClamavTree, Upstream


def test_property_tests_have_no_deadline_and_no_too_slow_check():
    assert settings.default.deadline is None
    assert HealthCheck.too_slow in settings.default.suppress_health_check


def test_ci_draws_the_same_examples_every_run():
    ci = settings.get_profile("ci")
    assert ci.derandomize and ci.database is None and ci.deadline is None
    if os.environ.get("CI"):
        assert settings.default.derandomize


def test_a_missing_program_fails_under_ci(monkeypatch):
    monkeypatch.setattr(conftest, "ON_CI", True)
    with pytest.raises(pytest.fail.Exception, match="not installed"):
        require_program("pum-no-such-program")


def test_the_dns_port_is_free_for_both_udp_and_tcp():
    port = free_udp_and_tcp_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
        udp.bind(("127.0.0.1", port))
        tcp.bind(("127.0.0.1", port))


def test_a_test_waits_on_the_held_download_and_stop_releases_it(tmp_path):
    tree = ClamavTree(tmp_path)
    tree.publish(2)
    upstream = Upstream(tree.root).start()
    held = upstream.fault("test.cvd", slow=60)
    answers: list[httpx.Response] = []
    client = threading.Thread(target=lambda: answers.append(httpx.get(upstream.url("test.cvd"), timeout=60)))
    client.start()
    try:
        started = upstream.wait_for_start("test.cvd", faulted=True)
        assert started.method == "GET" and started.fault is held
        assert not answers  # still held
    finally:
        upstream.stop()
    client.join(timeout=30)
    assert not client.is_alive() and held.released.is_set()
