"""Engine versions as the vendor compares them: `clamd -V` output and `clamav_version.txt`."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pum.formats import FormatError
from pum.formats.engine import EngineVersion, parse_clamd_version, parse_engine_version, parse_version_file


def test_clamd_version_line_as_clamav_prints_it():
    assert parse_clamd_version(b"ClamAV 0.101.5/25916/Mon Aug 31 09:26:49 2020\n") == EngineVersion(0, 101, 5)


def test_clamd_without_databases_prints_the_engine_alone():
    assert parse_clamd_version(b"ClamAV 1.4.2\n") == EngineVersion(1, 4, 2)


def test_the_vendors_seven_digit_form_is_read_and_written():
    assert parse_version_file(b"0010105\n") == EngineVersion(0, 101, 5)
    assert EngineVersion(0, 100, 0).seven_digit() == "0010000"


def test_dotted_version_file():
    assert parse_version_file(b"\n0.101.5\n") == EngineVersion(0, 101, 5)


def test_versions_order_as_numbers():
    assert parse_engine_version("0.101.5") > parse_engine_version("0.100.10")
    assert parse_engine_version("1.0") == EngineVersion(1, 0, 0)


@pytest.mark.parametrize("output", [b"", b"clamd: not found\n", b"ClamAV x.y\n", "ClamAV ٠.1.2".encode()])
def test_other_output_is_refused(output):
    with pytest.raises(FormatError):
        parse_clamd_version(output)


@given(st.integers(0, 99), st.integers(0, 999), st.integers(0, 99))
def test_seven_digit_form_round_trips(major, minor, patch):
    version = EngineVersion(major, minor, patch)
    assert parse_engine_version(version.seven_digit()) == version
    assert parse_engine_version(version.dotted()) == version


@given(st.binary(max_size=200))
def test_any_bytes_give_a_version_or_format_error(data):
    for parse in (parse_clamd_version, parse_version_file):
        with contextlib.suppress(FormatError):
            parse(data)
