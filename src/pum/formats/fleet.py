"""`/.pum/fleet.json`: the fleet a PUM sees, as a sub-PUM publishes it for its main to roll up.

Bytes from another server in, a checked `FleetDocument` out: every client row must have the fields and
types below, texts are bounded, and the number of rows is capped, so a sub (or something in its place)
cannot make the main keep more than it would from its own log.
"""

import json
from typing import Any, NamedTuple

from . import FormatError
from .accesslog import CHECKS

MAX_DOCUMENT_BYTES = 64 << 20
MAX_ROWS = 200_000
MAX_TEXT = 256
FLEET_GENERATION = 1

_TEXT_FIELDS = ("id", "kind", "address", "state")
_OPTIONAL_TEXT = ("name", "engine", "engine_state", "product", "modules", "last_result", "tier")
_INT_FIELDS = ("behind_versions", "first_seen", "last_seen")
_OPTIONAL_INT = ("behind_releases", "serial")
_KINDS = frozenset(("freshclam", "proscanup", "pum"))
_STATES = frozenset(("failing", "stale", "behind", "unknown", "current"))


class FleetDocument(NamedTuple):
    name: str
    generated: int
    serial: int | None
    clients: list[dict[str, Any]]


def _text(value: Any, where: str, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT or not value.isprintable():
        raise FormatError(f"{where}: expected a printable text of at most {MAX_TEXT} characters")
    return value


def _int(value: Any, where: str, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 62:
        raise FormatError(f"{where}: expected a whole number >= 0")
    return value


def _row(raw: Any, index: int) -> dict[str, Any]:
    where = f"clients[{index}]"
    if not isinstance(raw, dict):
        raise FormatError(f"{where}: expected an object")
    row: dict[str, Any] = {}
    for name in _TEXT_FIELDS:
        row[name] = _text(raw.get(name), f"{where}.{name}")
    for name in _OPTIONAL_TEXT:
        row[name] = _text(raw.get(name), f"{where}.{name}", optional=True)
    for name in _INT_FIELDS:
        row[name] = _int(raw.get(name), f"{where}.{name}")
    for name in _OPTIONAL_INT:
        row[name] = _int(raw.get(name), f"{where}.{name}", optional=True)
    if row["kind"] not in _KINDS or row["state"] not in _STATES:
        raise FormatError(f"{where}: unknown kind {row['kind']!r} or state {row['state']!r}")
    check = raw.get("check")  # absent in an older sub's document
    row["check"] = check if check in CHECKS else None
    has = raw.get("has", {})
    if not isinstance(has, dict) or len(has) > 16:
        raise FormatError(f"{where}.has: expected an object of at most 16 databases")
    row["has"] = {_text(db, f"{where}.has"): _int(v, f"{where}.has.{db}") for db, v in has.items()}
    errors = raw.get("errors", [])
    if not isinstance(errors, list) or len(errors) > 5:
        raise FormatError(f"{where}.errors: expected a list of at most 5 errors")
    row["errors"] = [
        [_int(e[0], f"{where}.errors"), _text(e[1], f"{where}.errors")]
        if isinstance(e, list) and len(e) == 2
        else _bad(f"{where}.errors")
        for e in errors
    ]
    return row


def _bad(where: str) -> Any:
    raise FormatError(f"{where}: expected [time, text]")


def parse_fleet_document(data: bytes) -> FleetDocument:
    """Parse and check a fleet.json; FormatError names the first field that is wrong."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise FormatError(f"fleet document of {len(data)} bytes, at most {MAX_DOCUMENT_BYTES}")
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, ValueError) as error:
        raise FormatError(f"not JSON: {error}") from None
    if not isinstance(raw, dict) or raw.get("generation") != FLEET_GENERATION:
        raise FormatError(f"not a fleet document of generation {FLEET_GENERATION}")
    clients = raw.get("clients")
    if not isinstance(clients, list) or len(clients) > MAX_ROWS:
        raise FormatError(f"clients: expected a list of at most {MAX_ROWS} rows")
    served = raw.get("served")
    serial = _int(served.get("serial"), "served.serial", optional=True) if isinstance(served, dict) else None
    return FleetDocument(
        name=_text(raw.get("name"), "name") or "",
        generated=_int(raw.get("generated"), "generated") or 0,
        serial=serial,
        clients=[_row(row, index) for index, row in enumerate(clients)],
    )
