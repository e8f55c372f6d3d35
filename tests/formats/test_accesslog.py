"""Access-log lines and what clients say in them: freshclam's User-Agent, proscanup's and a sub-PUM's
query strings."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pum.formats import FormatError
from pum.formats.accesslog import (
    MAX_LINE_BYTES,
    AccessRecord,
    FreshclamAgent,
    HostReport,
    SubReport,
    VdfRequest,
    parse_freshclam_agent,
    parse_host_report,
    parse_line,
    parse_log_time,
    parse_sub_report,
    parse_vdf_path,
    version_key,
)
from pum.serve.accesslog import combined_line, log_time

UUID = "5e159fd6-2785-4d37-9f80-196f19085e1d"
AGENT = f"ClamAV/1.4.6 (OS: Linux, ARCH: x86_64, CPU: x86_64, UUID: {UUID})"
# as pum serve wrote it (tests/serve), and as nginx/Apache write "combined"
PUM_LINE = f'127.0.0.1 - - [01/Dec/2026:22:39:12 +0000] "GET /test-2.cdiff HTTP/1.1" 200 765 "-" "{AGENT}"\n'
NGINX_LINE = (
    '10.1.2.3 - - [02/Dec/2026:01:00:00 +0900] "GET /ibm/power/PSHB06.lst?host=0b6f&name=scan01'
    '&engine=0.103.12&product=6.0.6.9&modules=1a2b3c4d&last=ok HTTP/1.1" 200 1187 "-" "proscanup/2.0"'
)


def test_a_pum_serve_line_parses_field_by_field() -> None:
    assert parse_line(PUM_LINE.encode()) == AccessRecord(
        address="127.0.0.1",
        time=1796164752,
        method="GET",
        path="/test-2.cdiff",
        query="",
        status=200,
        size=765,
        agent=AGENT,
        if_modified_since=None,
    )


def test_what_pum_serve_writes_is_what_the_parser_reads() -> None:
    line = combined_line("::1", log_time(1796222352), "GET /x.cvd?a=1 HTTP/1.1", 304, 0, "", 'odd" agent\x01')
    record = parse_line(line.encode())
    assert (record.address, record.time, record.path, record.query, record.status, record.size) == (
        "::1", 1796222352, "/x.cvd", "a=1", 304, 0,
    )  # fmt: skip
    assert record.agent == 'odd" agent\x01'


def test_the_time_zone_offset_is_applied() -> None:
    assert parse_log_time("02/Dec/2026:01:00:00 +0900") == parse_log_time("01/Dec/2026:16:00:00 +0000")


def test_an_extra_quoted_field_is_read_as_if_modified_since() -> None:
    line = PUM_LINE.rstrip("\n") + ' "Tue, 01 Dec 2026 20:00:00 GMT"\n'
    assert parse_line(line.encode()).if_modified_since == "Tue, 01 Dec 2026 20:00:00 GMT"
    assert parse_line((PUM_LINE.rstrip("\n") + ' "-"').encode()).if_modified_since is None


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"x" * (MAX_LINE_BYTES + 1), "bytes"),
        (PUM_LINE.replace("GET", "G\xe9T").encode("latin-1"), "UTF-8"),
        (b"garbage\n", "combined"),
        (PUM_LINE.replace("GET /test-2.cdiff HTTP/1.1", "\\x16\\x03\\x01").encode(), "request line"),
        (PUM_LINE.replace("Dec", "Dez").encode(), "log date"),
        (PUM_LINE.replace(":22:39:12", ":25:39:12").encode(), "log time"),
        (PUM_LINE.replace("/test-2.cdiff", "/a?" + "q" * 5000).encode(), "query string"),
    ],
)
def test_a_hostile_line_is_refused_with_a_reason(line: bytes, why: str) -> None:
    with pytest.raises(FormatError, match=why):
        parse_line(line)


@given(st.binary(max_size=400))
def test_any_bytes_give_a_record_or_format_error(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        parse_line(data)


@given(st.text(max_size=200), st.text(max_size=200))
def test_any_escaped_agent_and_target_read_back(agent: str, target: str) -> None:
    agent = agent.encode("latin-1", "replace").decode("latin-1")  # a header is bytes: latin-1 at most
    line = combined_line("1.2.3.4", log_time(0), f"GET /{target} HTTP/1.1", 200, 1, "", agent)
    try:
        record = parse_line(line.encode())
    except FormatError:
        return  # a target with a blank is not one request line
    assert record.agent == (agent or "-")


def test_freshclam_agent_gives_version_and_uuid() -> None:
    assert parse_freshclam_agent(AGENT) == FreshclamAgent("1.4.6", "Linux", "x86_64", "x86_64", UUID)


def test_freshclam_before_1_0_has_no_uuid() -> None:
    agent = "ClamAV/0.103.8 (OS: linux-gnu, ARCH: x86_64, CPU: x86_64)"
    assert parse_freshclam_agent(agent).uuid is None


@pytest.mark.parametrize(
    "agent",
    [
        "ClamAV/1.4.6",
        AGENT.replace(UUID, "not-a-uuid"),
        AGENT.replace("Linux", "L" * 200),
        AGENT.replace(UUID, UUID + "); DROP TABLE clients"),
        AGENT + " extra",
    ],
)
def test_a_forged_clamav_agent_is_refused(agent: str) -> None:
    with pytest.raises(FormatError):
        parse_freshclam_agent(agent)


def test_proscanup_report_gives_every_field() -> None:
    query = "host=0b6f&name=scan01&engine=0.103.12&product=6.0.6.9&modules=1a2b3c4d&last=failed%3Amodules"
    assert parse_host_report(query) == HostReport(
        "0b6f", "scan01", "0.103.12", "6.0.6.9", "1a2b3c4d", "failed:modules"
    )


@pytest.mark.parametrize(
    ("said", "kept"),
    [("md5", "md5"), ("signed", "signed"), ("sha3", None), ("MD5", None), ("x" * 64, None), ("", None)],
)
def test_check_is_md5_or_signed_and_anything_else_is_left_out(said: str, kept: str | None) -> None:
    report = parse_host_report(f"host=0b6f&last=ok&check={said}")
    assert report is not None and (report.check, report.last) == (kept, "ok")


def test_a_product_list_request_without_host_reports_nothing() -> None:
    assert parse_host_report("") is None
    assert parse_host_report("name=x") is None


@pytest.mark.parametrize(
    "query",
    [
        "host=a&host=b",
        "host=" + "a" * 65,
        "host=a&modules=XYZ",
        "host=a&last=maybe",
        "host=a&name=%ff%fe",
        "host=a&engine=%0a1.0",
    ],
)
def test_a_wrong_report_is_refused(query: str) -> None:
    with pytest.raises(FormatError):
        parse_host_report(query)


def test_sub_pum_report_gives_serial_and_name() -> None:
    assert parse_sub_report("serial=42&name=branch-7") == SubReport(42, "branch-7")
    assert parse_sub_report("") is None
    with pytest.raises(FormatError):
        parse_sub_report("serial=-1&name=x")


def test_vdf_paths_name_database_kind_and_cdiff_version() -> None:
    assert parse_vdf_path("/daily-27000.cdiff") == VdfRequest("daily", "cdiff", 27000)
    assert parse_vdf_path("/pum/main.cvd") == VdfRequest("main", "cvd", None)
    assert parse_vdf_path("/daily.cdiff") is None
    assert parse_vdf_path("/main-3.cvd") is None
    assert parse_vdf_path("/dns.txt") is None


def test_engine_versions_order_numerically() -> None:
    assert version_key("0.103.12") < version_key("1.0.0") == version_key("1.0") < version_key("1.4.6")
    assert version_key("1.0.0-rc") == (1,)


@given(st.text(max_size=300))
def test_any_query_gives_a_report_none_or_format_error(query: str) -> None:
    with contextlib.suppress(FormatError):
        parse_host_report(query)
    with contextlib.suppress(FormatError):
        parse_sub_report(query)


@given(st.text(max_size=200))
def test_any_agent_gives_freshclam_parts_or_format_error(agent: str) -> None:
    with contextlib.suppress(FormatError):
        assert parse_freshclam_agent(agent).version[0].isdigit()
