"""The DNS TXT version records freshclam reads."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pum.formats import FormatError
from pum.formats.version_record import VersionRecord, parse_database_record, parse_version_record

UPSTREAM = "1.0.7:62:27748:1756596540:1:90:49192:336"


def test_upstream_record_parses_field_by_field() -> None:
    assert parse_version_record(UPSTREAM) == VersionRecord(
        engine="1.0.7",
        main=62,
        daily=27748,
        time=1756596540,
        warn=1,
        flevel=90,
        safebrowsing=49192,
        bytecode=336,
    )


def test_record_gives_the_versions_of_main_daily_and_bytecode() -> None:
    assert parse_version_record(UPSTREAM).database_versions() == {"main": 62, "daily": 27748, "bytecode": 336}


def test_record_formats_back_to_the_same_text() -> None:
    assert parse_version_record(UPSTREAM).format() == UPSTREAM


@pytest.mark.parametrize(
    "text", [f'"{UPSTREAM}"', f"  {UPSTREAM}\n", f' " {UPSTREAM} " ', f'\t"{UPSTREAM}"\r\n']
)
def test_record_with_quotes_or_blanks_around_it_parses(text: str) -> None:
    assert parse_version_record(text).format() == UPSTREAM


def test_record_with_extra_trailing_fields_parses_and_keeps_them() -> None:
    record = parse_version_record(UPSTREAM + ":future:7")
    assert record.bytecode == 336
    assert record.extra == ("future", "7")
    assert record.format() == UPSTREAM + ":future:7"


def test_record_with_text_in_warn_and_safebrowsing_keeps_it_as_text() -> None:
    record = parse_version_record("1.4.3:62:27748:1756596540:1:90:-:336")
    assert record.safebrowsing == "-"
    assert record.format() == "1.4.3:62:27748:1756596540:1:90:-:336"


@pytest.mark.parametrize("text", ["", '""', "1.0.7:62:27748:1756596540:1:90:49192", "1.0.7"])
def test_record_with_too_few_fields_is_refused(text: str) -> None:
    with pytest.raises(FormatError, match="version record"):
        parse_version_record(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1.0.7:62:x:1756596540:1:90:49192:336", "daily must be a decimal number, got 'x'"),
        ("1.0.7::27748:1756596540:1:90:49192:336", "main must be a decimal number, got ''"),
        ("1.0.7:62:27748:1756596540:1:90:49192:-1", "bytecode must be a decimal number, got '-1'"),
        ("1.0.7:62:27748:soon:1:90:49192:336", "time must be a decimal number"),
        ("1.0.7:62:27748:1756596540:1:ninety:49192:336", "flevel must be a decimal number"),
        (":62:27748:1756596540:1:90:49192:336", "the engine field is empty"),
        ("1.0.7:62:27748:1756596540::90:49192:336", "the warn field is empty"),
        ("1.0.7:62:27 748:1756596540:1:90:49192:336", "printable ASCII without blanks"),
        ("1.0.7:62:２７７４８:1756596540:1:90:49192:336", "printable ASCII without blanks"),
    ],
)
def test_record_with_a_bad_field_is_refused(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        parse_version_record(text)


def test_database_record_gives_version_and_time() -> None:
    assert parse_database_record("6:1624412045") == (6, 1624412045)


def test_quoted_database_record_with_extra_fields_parses() -> None:
    assert parse_database_record(' "6:1624412045:x" ') == (6, 1624412045)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("6", "expected 'version:time'"),
        ("", "database record is empty"),
        ("six:1624412045", "version must be a decimal number"),
        ("6:", "time must be a decimal number, got ''"),
    ],
)
def test_malformed_database_record_is_refused(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        parse_database_record(text)


@given(st.text(max_size=120))
def test_parse_version_record_raises_only_format_error_on_arbitrary_text(text: str) -> None:
    try:
        record = parse_version_record(text)
    except FormatError:
        return
    assert parse_version_record(record.format()) == record


@given(st.lists(st.text(alphabet="0123456789:.-x", max_size=12), min_size=7, max_size=10).map(":".join))
def test_parse_version_record_raises_only_format_error_on_near_records(text: str) -> None:
    with contextlib.suppress(FormatError):
        parse_version_record(text)


_NUMBER = st.integers(min_value=0, max_value=2**63)
_WORD = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=':"'), min_size=1
)


@given(
    engine=_WORD,
    numbers=st.tuples(*[_NUMBER] * 5),
    warn=_NUMBER | _WORD.filter(lambda word: not word.isdigit()),
    safebrowsing=_NUMBER | _WORD.filter(lambda word: not word.isdigit()),
)
def test_any_record_formats_and_parses_back_to_itself(
    engine: str, numbers: tuple[int, int, int, int, int], warn: int | str, safebrowsing: int | str
) -> None:
    main, daily, record_time, flevel, bytecode = numbers
    record = VersionRecord(engine, main, daily, record_time, warn, flevel, safebrowsing, bytecode)
    assert parse_version_record(record.format()) == record


@given(st.text(max_size=60))
def test_parse_database_record_raises_only_format_error_on_arbitrary_text(text: str) -> None:
    try:
        version, record_time = parse_database_record(text)
    except FormatError:
        return
    assert version >= 0 and record_time >= 0
