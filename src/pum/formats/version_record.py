"""The DNS TXT version records: the main one (`engine:main:daily:...:bytecode`) and `version:time`."""

from typing import NamedTuple

from . import FormatError
from ._decimal import parse_decimal

_LAYOUT = "engine:main:daily:time:warn:flevel:safebrowsing:bytecode"
_FIELD_COUNT = _LAYOUT.count(":") + 1


def _record_text(text: str, what: str) -> str:
    # dig, nslookup and some libraries hand a TXT string back with its quotes.
    record = text.strip()
    if len(record) >= 2 and record[0] == record[-1] == '"':
        record = record[1:-1].strip()
    if not record:
        raise FormatError(f"{what} is empty")
    if not (record.isascii() and record.isprintable()) or " " in record:
        raise FormatError(f"{what} must be printable ASCII without blanks, got {text[:80]!r}")
    return record


def _number_or_text(text: str) -> int | str:
    # Numbers upstream, but freshclam only looks at the first character of warn ('0' or not:
    # fc_dns_query_update_info in libfreshclam/libfreshclam.c) and PUM never reads safebrowsing, so
    # anything else is kept as it came.
    return int(text) if text.isdigit() and len(text) <= 20 else text


class VersionRecord(NamedTuple):
    """The version record freshclam reads from `current.cvd.clamav.net` (libfreshclam/libfreshclam.c).

    `extra` keeps any fields after bytecode, so that `format()` republishes upstream's text whole.
    """

    engine: str
    main: int
    daily: int
    time: int
    warn: int | str
    flevel: int
    safebrowsing: int | str
    bytecode: int
    extra: tuple[str, ...] = ()

    def database_versions(self) -> dict[str, int]:
        """The database versions the record advertises, by database name."""
        return {"main": self.main, "daily": self.daily, "bytecode": self.bytecode}

    def format(self) -> str:
        """The record as TXT text, fields in upstream's order."""
        fields = [self.engine, self.main, self.daily, self.time, self.warn, self.flevel, self.safebrowsing]
        return ":".join(str(field) for field in [*fields, self.bytecode, *self.extra])


def parse_version_record(text: str) -> VersionRecord:
    """Parse the version record; surrounding quotes and blanks are dropped, trailing extra fields kept."""
    record = _record_text(text, "version record")
    fields = record.split(":")
    if len(fields) < _FIELD_COUNT:
        raise FormatError(
            f"version record: expected {_FIELD_COUNT} fields ({_LAYOUT}), got {len(fields)}: {record!r}"
        )
    engine, main, daily, time, warn, flevel, safebrowsing, bytecode = fields[:_FIELD_COUNT]
    # cli_strtok (libclamav/str.c) finds no field where it is empty, and freshclam then gives up on DNS.
    if not engine:
        raise FormatError("version record: the engine field is empty")
    if not warn:
        raise FormatError("version record: the warn field is empty")
    # Field positions as libfreshclam reads them: textrecordfield() in libfreshclam_internal.c, and
    # DNS_UPDATEINFO_* in libfreshclam_internal.h (3 record time, 4 version warning, 5 flevel).
    return VersionRecord(
        engine=engine,
        main=parse_decimal(main, "version record: main"),
        daily=parse_decimal(daily, "version record: daily"),
        time=parse_decimal(time, "version record: time"),
        warn=_number_or_text(warn),
        flevel=parse_decimal(flevel, "version record: flevel"),
        safebrowsing=_number_or_text(safebrowsing),
        bytecode=parse_decimal(bytecode, "version record: bytecode"),
        extra=tuple(fields[_FIELD_COUNT:]),
    )


def parse_database_record(text: str) -> tuple[int, int]:
    """Parse a per-database record (`<db>.cvd.clamav.net`, e.g. `6:1624412045`) into (version, time).

    freshclam asks it for databases the main record does not carry, e.g. `test`, and reads field 0 as
    the version and field 1 (DNS_EXTRADBINFO_RECORDTIME) as the record's time; later fields are ignored.
    """
    record = _record_text(text, "database record")
    fields = record.split(":")
    if len(fields) < 2:
        raise FormatError(f"database record: expected 'version:time', got {record!r}")
    return (
        parse_decimal(fields[0], "database record: version"),
        parse_decimal(fields[1], "database record: time"),
    )
