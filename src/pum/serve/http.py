"""HTTP/1.1 for a static release tree: request parsing and the response rules, as pure functions.

Nothing here touches a socket or the disk: bytes or values in, a `Request` or a `Reply` out, so every
rule freshclam depends on (see ../shared/DESIGN.md "What freshclam needs from a served tree") is tested
with plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from pum.formats.httpdate import http_date as http_date  # server.py takes it from here
from pum.formats.httpdate import parse_http_date
from pum.formats.paths import changes_serial
from pum.formats.paths import is_hidden as is_hidden

MAX_HEAD = 16 * 1024
SERVER_NAME = "PUM"
MANIFEST = ".pum/manifest.json"
# The release-internal files clients and sub-PUMs fetch: the manifest, the changelog (.pum/changes/<S>.json),
# TUF metadata, the proscanup build and the fleet document. Every other dot-path is 404 on all three servers.
RELEASE_INTERNAL = frozenset({MANIFEST, ".pum/fleet.json", ".pum/client/proscanup.pyz"})
TUF_DIR = ".pum/tuf/"

REASONS = {
    200: "OK",
    206: "Partial Content",
    302: "Found",
    304: "Not Modified",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    416: "Range Not Satisfiable",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}

CONTENT_TYPES = {
    "txt": "text/plain",
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "lst": "text/plain",
    "sh": "text/plain",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"


class BadRequest(Exception):
    """The request can't be answered normally; `status` is what to answer (then close the connection)."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


@dataclass(slots=True)
class Request:
    method: str
    target: str
    version: str
    headers: dict[str, str]
    line: str
    keep_alive: bool
    body_length: int


def parse_request_head(head: bytes) -> Request:
    """Parse a request line and header fields (without the blank line that ends them).

    Header names are lower-cased; a repeated field keeps its last value, except that `Connection`
    tokens are joined, since only their union matters.
    """
    text = head.decode("latin-1")
    lines = text.split("\r\n")
    line = lines[0]
    parts = line.split(" ")
    if len(parts) != 3:
        raise BadRequest(400, f"malformed request line {line[:100]!r}")
    method, target, version = parts
    if version != "HTTP/1.1" and version != "HTTP/1.0":
        if version.startswith("HTTP/") and version[5:6].isdigit():
            raise BadRequest(505, f"unsupported version {version[:20]!r}")
        raise BadRequest(400, f"malformed request line {line[:100]!r}")
    if not target or not method.isalpha():
        raise BadRequest(400, f"malformed request line {line[:100]!r}")
    headers: dict[str, str] = {}
    for field in lines[1:]:
        name, colon, value = field.partition(":")
        if not colon or not name or name[-1] in " \t" or field[0] in " \t":
            # obs-fold or whitespace before the colon: refused by RFC 9112 section 5.
            raise BadRequest(400, f"malformed header field {field[:100]!r}")
        name = name.lower()
        value = value.strip(" \t")
        if name in headers:
            if name in _SINGLE_FIELDS:
                # Two lengths or two hosts: a request smuggled past a proxy that read the other one
                # (RFC 9112 sections 3.2 and 6.3).
                raise BadRequest(400, f"{name} given twice")
            if name == "connection":
                value = headers[name] + "," + value
        headers[name] = value
    if "transfer-encoding" in headers:
        raise BadRequest(400, "a request body with Transfer-Encoding is not accepted")
    body_length = 0
    if "content-length" in headers:
        length = headers["content-length"]
        if not is_decimal(length) or len(length) > MAX_DIGITS:
            raise BadRequest(400, f"bad Content-Length {length[:40]!r}")
        body_length = int(length)
    if version == "HTTP/1.1" and "host" not in headers:
        raise BadRequest(400, "HTTP/1.1 request without Host")
    tokens = headers.get("connection", "").lower()
    keep_alive = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
    return Request(method, target, version, headers, line, keep_alive, body_length)


_SINGLE_FIELDS = frozenset({"content-length", "host"})
MAX_DIGITS = 18  # a byte count or offset above 10**18 is larger than any file


def is_decimal(text: str) -> bool:
    """ASCII digits only: str.isdigit() also takes '²' or Devanagari digits, which int() then refuses."""
    return text.isascii() and text.isdigit()


def request_path(target: str, visible: frozenset[str] = RELEASE_INTERNAL) -> str | None:
    """The release-relative path a request target names, or None when it names nothing servable.

    The query string is ignored (freshclam and curl may add one). The target is percent-decoded exactly
    once, so a double-encoded `%252e%252e` stays the literal name `%2e%2e`. Any `..` segment, a NUL,
    an undecodable name or a dot-file not in `visible` gives None, which the server answers with 404:
    never 403, since freshclam puts a mirror answering 403 on a 24-hour cool-down.
    """
    if target[0] != "/":
        # absolute-form, as a client talking to a proxy sends it (RFC 9112 section 3.2.2)
        scheme, sep, rest = target.partition("://")
        if not sep or scheme.lower() not in ("http", "https"):
            return None
        slash = rest.find("/")
        target = rest[slash:] if slash >= 0 else "/"
    cut = target.find("?")
    if cut >= 0:
        target = target[:cut]
    cut = target.find("#")
    if cut >= 0:
        target = target[:cut]
    if "%" in target:
        try:
            target = unquote_to_bytes(target).decode("utf-8")
        except UnicodeDecodeError:
            return None
    if "\x00" in target or "\\" in target:
        return None
    if target[-1] == "/" and target != "/":
        return None  # names a directory, as for nginx and Apache: `/test.cvd/` is not the file
    if "/." not in target:
        return "/".join(segment for segment in target.split("/") if segment)
    segments = [segment for segment in target.split("/") if segment and segment != "."]
    path = "/".join(segments)
    if ".." in segments or (is_hidden(path) and path not in visible and not is_release_internal(path)):
        return None
    return path


def is_release_internal(path: str) -> bool:
    """True for the dot-paths served to clients: `RELEASE_INTERNAL`, the changelog's files and the files
    under `.pum/tuf/` (none of them hidden in turn)."""
    if path in RELEASE_INTERNAL or changes_serial(path) is not None:
        return True
    return path.startswith(TUF_DIR) and len(path) > len(TUF_DIR) and not is_hidden(path[len(TUF_DIR) :])


def content_type(path: str) -> str:
    dot = path.rfind(".")
    if dot < 0 or "/" in path[dot:]:
        return DEFAULT_CONTENT_TYPE
    return CONTENT_TYPES.get(path[dot + 1 :].lower(), DEFAULT_CONTENT_TYPE)


def make_etag(size: int, mtime: int) -> str:
    """The entity tag nginx uses (`"<mtime hex>-<size hex>"`), so any backend gives the same tag."""
    return f'"{mtime:x}-{size:x}"'


def etag_in_list(field_value: str, etag: str) -> bool:
    """Weak comparison against an If-None-Match list (RFC 9110 section 13.1.2)."""
    if field_value.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(candidate.strip().removeprefix("W/") == opaque for candidate in field_value.split(","))


UNSATISFIABLE = (-1, -1)


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """The single byte range `(first, last)` a Range field asks of a `size`-byte file.

    None means "ignore the field and send the whole file": a unit other than bytes, a syntax error
    or several ranges (allowed by RFC 9110 section 14.2). `UNSATISFIABLE` means answer 416.
    """
    unit, eq, spec = value.partition("=")
    if not eq or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash:
        return None
    first_text = first_text.strip()
    last_text = last_text.strip()
    if not first_text:
        if not is_decimal(last_text):
            return None
        suffix = _position(last_text)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return (max(0, size - suffix), size - 1)
    if not is_decimal(first_text) or (last_text and not is_decimal(last_text)):
        return None
    first = _position(first_text)
    if last_text and _position(last_text) < first:
        return None
    last = _position(last_text) if last_text else size - 1
    if first >= size:
        return UNSATISFIABLE
    return (first, min(last, size - 1))


def _position(digits: str) -> int:
    """A byte position; one of thousands of digits is taken as 10**18 (past the end of any file)
    rather than converted: int() of 5,000 digits is slow, and refused above 4,300."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= MAX_DIGITS else 10**MAX_DIGITS


@dataclass(slots=True, frozen=True)
class Resource:
    """What the rules need to know of a regular file in the release."""

    size: int
    mtime: int
    etag: str
    last_modified: str
    content_type: str


def resource(size: int, mtime: float, path: str) -> Resource:
    seconds = int(mtime)
    return Resource(size, seconds, make_etag(size, seconds), http_date(seconds), content_type(path))


@dataclass(slots=True)
class Reply:
    """Status, the resource's header fields and the slice of the file (offset, length) to send."""

    status: int
    fields: str
    offset: int
    length: int


def select_reply(headers: dict[str, str], res: Resource) -> Reply:
    """Apply the conditional and range rules of RFC 9110 sections 13 and 14 to one file.

    If-None-Match wins over If-Modified-Since. A file modified at or before the If-Modified-Since date
    is not modified: freshclam sends the build time of its own copy, and a served CVD carries its
    build time as mtime (Apache behaves the same; nginx needs `if_modified_since before`).
    """
    validators = f"Last-Modified: {res.last_modified}\r\nETag: {res.etag}\r\n"
    inm = headers.get("if-none-match")
    if inm is not None:
        if etag_in_list(inm, res.etag):
            return Reply(304, validators, 0, 0)
    else:
        ims = headers.get("if-modified-since")
        if ims is not None:
            since = parse_http_date(ims)
            if since is not None and res.mtime <= since:
                return Reply(304, validators, 0, 0)
    fields = f"Content-Type: {res.content_type}\r\n{validators}Accept-Ranges: bytes\r\n"
    wanted = headers.get("range")
    if wanted is not None and _if_range_holds(headers.get("if-range"), res):
        span = parse_range(wanted, res.size)
        if span is UNSATISFIABLE:
            return Reply(416, f"Content-Range: bytes */{res.size}\r\n{validators}Content-Length: 0\r\n", 0, 0)
        if span is not None:
            first, last = span
            length = last - first + 1
            fields += f"Content-Range: bytes {first}-{last}/{res.size}\r\nContent-Length: {length}\r\n"
            return Reply(206, fields, first, length)
    return Reply(200, fields + f"Content-Length: {res.size}\r\n", 0, res.size)


def _if_range_holds(value: str | None, res: Resource) -> bool:
    if value is None:
        return True
    value = value.strip()
    if value.startswith('"'):
        return value == res.etag
    if value.startswith("W/"):
        return False
    return parse_http_date(value) == res.mtime


def head_parts(status: int, fields: str) -> tuple[bytes, bytes, bytes]:
    """A response head cut around its Date value: (start, end with keep-alive, end with close).

    Kept per file and per kind of request by the server, so answering is joining three byte strings.
    """
    start = f"HTTP/1.1 {status} {REASONS[status]}\r\nServer: {SERVER_NAME}\r\nDate: ".encode("latin-1")
    end = f"\r\n{fields}Connection: ".encode("latin-1")
    return start, end + b"keep-alive\r\n\r\n", end + b"close\r\n\r\n"


def response_head(status: int, fields: str, date: str, keep_alive: bool) -> bytes:
    """The status line and header block, ready to write; `fields` ends with CRLF or is empty."""
    start, keep, close = head_parts(status, fields)
    return start + date.encode("latin-1") + (keep if keep_alive else close)


def error_fields(status: int) -> tuple[str, bytes]:
    """Header fields and body of a short plain-text error answer."""
    body = f"{status} {REASONS[status]}\n".encode()
    fields = f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
    if status == 405:
        fields += "Allow: GET, HEAD\r\n"
    return fields, body
