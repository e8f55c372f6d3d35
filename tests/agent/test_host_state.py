"""What proscanup says about its host: the fleet report on the product-list request, the host id, and
the progress line on a terminal."""

from __future__ import annotations

import io
import re
import socket
from urllib.parse import parse_qsl, urlsplit

from products.tree import POWER_LIST
from upstream import Upstream

from agent.conftest import MODULE
from pum.agent.host_state import modules_digest
from pum.agent.progress_line import ProgressLine, format_progress

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def _list_queries(server: Upstream) -> list[dict[str, str]]:
    return [dict(parse_qsl(urlsplit(r.target).query)) for r in server.requests if r.path == "/" + POWER_LIST]


def test_the_list_request_reports_the_host_state(static_pum, host, proscanup):
    tree, server = static_pum
    h = host(UpdateServer=server.address, VdfCommand="true")
    (h.install / "VERSION").write_text("6.0.6.8\n")
    assert proscanup("--config", h.conf).code == 0
    assert proscanup("--config", h.conf).code == 0
    host_id = (h.root / "var" / "proscanup" / "host_id").read_text().strip()
    assert UUID4.match(host_id)
    first, second = _list_queries(server)
    assert first["host"] == host_id and first["name"] == socket.gethostname()[:64]
    assert first["product"] == "6.0.6.8"
    assert re.match(r"^\d+\.\d+\.\d+", first["engine"])
    assert "last" not in first  # nothing to say before the first run
    assert first["check"] == "md5"  # no TrustedRoot: MD5 only (legacy)
    installed = f"bin/proscand {tree.put(MODULE, tree.read(MODULE))}"
    assert second["last"] == "ok" and second["modules"] == modules_digest([installed])
    assert all(len(value) <= 64 for query in (first, second) for value in query.values())


def test_a_failed_step_is_reported_by_the_next_run(static_pum, host, proscanup):
    _tree, server = static_pum
    h = host(UpdateServer=server.address, VdfCommand="false")
    assert proscanup("--config", h.conf).code != 0
    proscanup("--config", h.conf)
    assert _list_queries(server)[1]["last"] == "failed:vdf"


def test_report_state_no_sends_nothing(static_pum, host, proscanup):
    _tree, server = static_pum
    h = host(UpdateServer=server.address, VdfCommand="true", ReportState="no")
    assert proscanup("--config", h.conf).code == 0
    assert [r.target for r in server.requests if r.path == "/" + POWER_LIST] == ["/" + POWER_LIST]


def test_the_modules_digest_is_8_hex_of_the_sorted_lines():
    assert modules_digest(["b 2", "a 1"]) == modules_digest(["a 1", "b 2"])
    assert re.fullmatch(r"[0-9a-f]{8}", modules_digest([]))


def test_progress_says_size_percent_and_time_left():
    line = format_progress("proscan.tar.gz", 12 << 20, 48 << 20, 12.0)
    assert line == "proscan.tar.gz  12.0 of 48.0 MB  25%  ETA 0:36"
    assert format_progress("x", 3 << 20, None, 1.0) == "x  3.0 MB"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_line_is_drawn_on_a_terminal_and_cleared_after():
    terminal = _Terminal()
    progress = ProgressLine(terminal)
    progress("f.bin", 1 << 20, 2 << 20)
    progress("f.bin", 2 << 20, 2 << 20)
    progress.finish()
    assert "f.bin  2.0 of 2.0 MB  100%  ETA 0:00" in terminal.getvalue()
    assert terminal.getvalue().endswith("\r")


def test_no_progress_line_when_not_a_terminal():
    stream = io.StringIO()
    ProgressLine(stream)("f.bin", 1, 2)
    assert stream.getvalue() == ""


def test_the_report_says_how_the_host_checks_what_it_installs(tmp_path):
    from pum.agent.host_state import report_query
    from pum.agent.proscan_conf import parse_agent_config

    base = f"[update.options]\nUpdateServer = pum\nProductList = {POWER_LIST}\nStateDir = {tmp_path}\n"
    base += "Freshclam = /nonexistent/freshclam\n"
    legacy = dict(parse_qsl(report_query(parse_agent_config(base, tmp_path / "p.conf"))))
    signed = parse_agent_config(base + "TrustedRoot = /etc/opt/proscan/root.json\n", tmp_path / "p.conf")
    assert legacy["check"] == "md5" and dict(parse_qsl(report_query(signed)))["check"] == "signed"
