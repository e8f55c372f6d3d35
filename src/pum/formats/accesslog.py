"""Access-log lines (Apache/nginx "combined", as `pum serve` writes too) and what clients say in them.

Bytes of one line in, an `AccessRecord` or `FormatError` out. What a client says about itself comes from
three places, each parsed here and nowhere else: freshclam's User-Agent (its version and installation
UUID), the query string proscanup adds to its product-list request, and the one a sub-PUM adds to its
manifest request. Every field is bounded: a log is written by whoever sends requests, so a line too
long, not UTF-8, or with a forged agent is refused, never half-read.
"""

import calendar
import functools
import re
from typing import NamedTuple
from urllib.parse import unquote

from . import FormatError

MAX_LINE_BYTES = 8192  # Apache's LimitRequestLine is 8190: a longer request line is not a client's
MAX_QUERY_CHARS = 1024  # six values of at most 64 characters, URL-encoded, with their names
MAX_VALUE_CHARS = 64  # each value a client reports (the agreed fleet-report format)
MAX_AGENT_FIELD = 64

# %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i", and optionally one more quoted field:
# "%{If-Modified-Since}i" for logs that keep it (see the admin guide, "Is my fleet up to date?").
# A quoted field is escaped the Apache way (\" and \\ and \xHH), hence the unrolled-loop pattern.
_QUOTED = r'"([^"\\]*(?:\\.[^"\\]*)*)"'
_LINE = re.compile(
    r"(\S{1,64}) \S{1,256} \S{1,256} \[([^\]]{26})\] "
    + _QUOTED
    + r" (\d{3}) (\d{1,19}|-) "
    + _QUOTED
    + " "
    + _QUOTED
    + "(?: "
    + _QUOTED
    + ")?"
)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
    )
}
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|.)")
_CHECKED_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"))


class AccessRecord(NamedTuple):
    """One request as the server logged it: the target split into its path and raw query."""

    address: str
    time: int  # epoch seconds
    method: str
    path: str  # percent-decoded, without the query
    query: str  # raw, still URL-encoded; "" when there is none
    status: int
    size: int  # body bytes; 0 for "-"
    agent: str
    if_modified_since: str | None  # only in logs with the extra field; None when absent or "-"


_record = AccessRecord._make


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text

    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        return chr(int(code[1:], 16)) if len(code) == 3 and code[0] == "x" else code

    return _ESCAPE.sub(one, text)


@functools.lru_cache(maxsize=64)
def _day_start(day: str, month: str, year: str, zone: str) -> int:
    """Epoch seconds of 00:00:00 of that day in that zone (a log has few days and zones)."""
    number = _MONTHS.get(month, 0)
    if not (number and day.isdigit() and year.isdigit() and zone[1:].isdigit() and zone[0] in "+-"):
        raise FormatError(f"not a log date: {day}/{month}/{year} {zone}")
    if not 1 <= int(day) <= 31:
        raise FormatError(f"not a log date: {day}/{month}/{year} {zone}")
    offset = (int(zone[1:3]) * 60 + int(zone[3:5])) * 60
    return calendar.timegm((int(year), number, int(day), 0, 0, 0)) - (offset if zone[0] == "+" else -offset)


def parse_log_time(text: str) -> int:
    """`10/Oct/2000:13:55:36 -0700` (Apache's %t without brackets) -> epoch seconds."""
    known = _recent_times.get(text)
    if known is not None:  # a busy log has several lines a second
        return known
    if len(_recent_times) >= 4096:
        _recent_times.clear()
    value = _recent_times[text] = _parse_log_time(text)
    return value


_recent_times: dict[str, int] = {}


def _parse_log_time(text: str) -> int:
    # fixed columns: dd/Mon/yyyy:hh:mm:ss +zzzz
    if len(text) != 26 or text[2] != "/" or text[6] != "/" or text[11] != ":" or text[20] != " ":
        raise FormatError(f"not a log time: {text[:40]!r}")
    clock = text[12:20]
    hour, minute, second = clock[0:2], clock[3:5], clock[6:8]
    if not (clock[2] == clock[5] == ":" and (hour + minute + second).isdigit() and hour.isascii()):
        raise FormatError(f"not a log time: {text[:40]!r}")
    if int(hour) > 23 or int(minute) > 59 or int(second) > 60:
        raise FormatError(f"not a log time: {text[:40]!r}")
    return _day_start(text[0:2], text[3:6], text[7:11], text[21:26]) + (
        int(hour) * 3600 + int(minute) * 60 + int(second)
    )


def parse_line(line: bytes) -> AccessRecord:
    """One log line (with or without its newline) -> AccessRecord, or FormatError saying why not."""
    if len(line) > MAX_LINE_BYTES:
        raise FormatError(f"line of {len(line)} bytes, at most {MAX_LINE_BYTES}")
    try:
        text = line.decode("utf-8").rstrip("\r\n ")
    except UnicodeDecodeError:
        raise FormatError("line is not UTF-8") from None
    match = _LINE.fullmatch(text)
    if match is None:
        raise FormatError(f"not a combined-format line: {text[:80]!r}")
    address, when, request, status, size, _referer, agent, ims = match.groups()
    method, _, rest = request.partition(" ")
    target, _, protocol = rest.rpartition(" ")
    if method not in _CHECKED_METHODS or not target.startswith("/") or not protocol.startswith("HTTP/"):
        raise FormatError(f"not a request line: {request[:80]!r}")
    target = _unescape(target)
    path, _, query = target.partition("?")
    if len(query) > MAX_QUERY_CHARS:
        raise FormatError(f"query string of {len(query)} characters, at most {MAX_QUERY_CHARS}")
    if "%" in path:
        try:
            path = unquote(path, errors="strict")
        except UnicodeDecodeError:
            raise FormatError(f"path {path[:80]!r} is not UTF-8 once decoded") from None
    return _record(
        (
            address,
            parse_log_time(when),
            method,
            path,
            query,
            int(status),
            0 if size == "-" else int(size),
            _unescape(agent),
            None if ims is None or ims == "-" else _unescape(ims),
        )
    )


# -- what a client says about itself ----------------------------------------------------------------

# libfreshclam/libfreshclam.c: PACKAGE "/%s (OS: " TARGET_OS_TYPE ", ARCH: " TARGET_ARCH_TYPE
# ", CPU: " TARGET_CPU_TYPE ", UUID: %s)"; before 1.0 there was no UUID. `HTTPUserAgent` in
# freshclam.conf replaces the whole string, and then the client is known by its address only.
_FIELD = r"([^,()]{1,%d})" % MAX_AGENT_FIELD  # noqa: UP031 (braces of the pattern)
_FRESHCLAM_AGENT = re.compile(
    r"ClamAV/([0-9][0-9A-Za-z.+~_-]{0,31}) \(OS: "
    + _FIELD
    + ", ARCH: "
    + _FIELD
    + ", CPU: "
    + _FIELD
    + r"(?:, UUID: ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}))?\)"
)


class FreshclamAgent(NamedTuple):
    version: str
    os: str
    arch: str
    cpu: str
    uuid: str | None


CLAMAV_AGENT = "ClamAV/"


def is_clamav_agent(agent: str) -> bool:
    return agent.startswith(CLAMAV_AGENT)


def parse_freshclam_agent(agent: str) -> FreshclamAgent:
    """freshclam's User-Agent -> its parts; FormatError when it claims to be ClamAV but does not read so."""
    match = _FRESHCLAM_AGENT.fullmatch(agent)
    if match is None:
        raise FormatError(f"not a freshclam User-Agent: {agent[:80]!r}")
    version, os_name, arch, cpu, uuid = match.groups()
    return FreshclamAgent(version, os_name, arch, cpu, uuid)


def _query_values(query: str, names: tuple[str, ...]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in query.split("&"):
        if not pair:
            continue
        name, equals, raw = pair.partition("=")
        if not equals or name not in names:
            continue  # other parameters are not ours to read
        if name in values:
            raise FormatError(f"{name} given twice in the query string")
        try:
            value = unquote(raw.replace("+", " "), errors="strict")
        except UnicodeDecodeError:
            raise FormatError(f"{name} is not UTF-8 once decoded") from None
        if len(value) > MAX_VALUE_CHARS or not value.isprintable():
            raise FormatError(f"{name} must be at most {MAX_VALUE_CHARS} printable characters")
        values[name] = value
    return values


_HOST_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z._:-]{0,63}")
_VERSION_TEXT = re.compile(r"[0-9][0-9A-Za-z.+~_-]{0,63}")
_MODULES = re.compile(r"[0-9a-f]{8}")
_LAST = re.compile(r"ok|failed:[0-9A-Za-z._-]{1,57}")
_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,63}")
CHECKS = ("md5", "signed")  # how a host checks what it installs: MD5 only (legacy), or signed metadata


class HostReport(NamedTuple):
    """What proscanup says on its product-list request (each field None when it did not say)."""

    host: str
    name: str | None
    engine: str | None
    product: str | None
    modules: str | None
    last: str | None
    check: str | None = None  # "md5" | "signed"; None when not said, or said in a way we do not know


def _checked(values: dict[str, str], name: str, pattern: re.Pattern[str]) -> str | None:
    value = values.get(name)
    if value is not None and not pattern.fullmatch(value):
        raise FormatError(f"{name}={value[:64]!r} is not what proscanup reports")
    return value


def parse_host_report(query: str) -> HostReport | None:
    """`host=<uuid>&name=..&engine=..&product=..&modules=<8 hex>&last=ok|failed:<step>&check=md5|signed`
    -> HostReport, None without `host` (an older proscanup, or `ReportState=no`), FormatError when a value
    is wrong; a `check` other than md5 or signed (a later proscanup's) is left out, the rest still read."""
    values = _query_values(query, ("host", "name", "engine", "product", "modules", "last", "check"))
    check = values.get("check")
    if "host" not in values:
        return None
    return HostReport(
        host=_checked(values, "host", _HOST_ID) or "",
        name=_checked(values, "name", _NAME),
        engine=_checked(values, "engine", _VERSION_TEXT),
        product=_checked(values, "product", _VERSION_TEXT),
        modules=_checked(values, "modules", _MODULES),
        last=_checked(values, "last", _LAST),
        check=check if check in CHECKS else None,
    )


class SubReport(NamedTuple):
    """What a sub-PUM says on its manifest request: the serial it serves and its host name."""

    serial: int
    name: str


def parse_sub_report(query: str) -> SubReport | None:
    """`serial=<N>&name=<host>` -> SubReport, None when absent, FormatError when wrong."""
    values = _query_values(query, ("serial", "name"))
    if "serial" not in values or "name" not in values:
        return None
    serial = values["serial"]
    if not serial.isdigit() or len(serial) > 18 or not serial.isascii():
        raise FormatError(f"serial={serial[:64]!r} is not a release serial")
    name = _checked(values, "name", _NAME) or ""
    return SubReport(int(serial), name)


def version_key(text: str) -> tuple[int, ...]:
    """`1.4.6` -> (1, 4, 6) for ordering engine versions; the numeric head of each part counts
    (`1.0.0-rc` -> (1, 0, 0)), trailing zero parts don't (1.0 == 1.0.0)."""
    parts = []
    for part in text.split(".")[:8]:
        digits = re.match(r"\d{1,9}", part)
        if digits is None:
            break
        parts.append(int(digits.group()))
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


_VDF_NAME = re.compile(r"([a-z0-9_]{1,64})(?:-(\d{1,12}))?\.(cvd|cld|cdiff)")


class VdfRequest(NamedTuple):
    database: str
    kind: str  # cvd | cld | cdiff
    version: int | None  # of a cdiff


def parse_vdf_path(path: str) -> VdfRequest | None:
    """`/daily-27000.cdiff` -> VdfRequest("daily", "cdiff", 27000); None for any other file."""
    match = _VDF_NAME.fullmatch(path.rpartition("/")[2])
    if match is None:
        return None
    database, number, kind = match.groups()
    if (kind == "cdiff") != (number is not None):
        return None
    return VdfRequest(database, kind, int(number) if number is not None else None)
