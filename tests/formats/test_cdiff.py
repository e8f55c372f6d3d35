"""CDIFF verification, on the real signed test-2..6.cdiff and variants of them."""

import gzip

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pum.formats import FormatError
from pum.formats.cdiff import CdiffHeader, _check_script, verify_cdiff

from .clamav_testdata import CDIFF_VERSIONS, flipped, read

# Unzipped script lengths, as the real files declare them (and as they inflate).
SCRIPT_LENGTHS = {2: 479, 3: 3423, 4: 741, 5: 830, 6: 817}

TEST6 = read("test-6.cdiff")


@pytest.mark.parametrize("version", CDIFF_VERSIONS)
def test_real_cdiff_verifies(version: int) -> None:
    header = verify_cdiff(read(f"test-{version}.cdiff"))
    assert header == CdiffHeader(version=version, script_length=SCRIPT_LENGTHS[version])


@pytest.mark.parametrize("version", CDIFF_VERSIONS)
def test_real_cdiff_verifies_as_the_version_its_name_promises(version: int) -> None:
    assert verify_cdiff(read(f"test-{version}.cdiff"), expected_version=version).version == version


def test_cdiff_of_wrong_expected_version_is_refused() -> None:
    with pytest.raises(FormatError, match="CDIFF is for version 5, expected 6"):
        verify_cdiff(read("test-5.cdiff"), expected_version=6)


def test_every_flipped_byte_of_a_real_cdiff_is_refused() -> None:
    for offset in range(len(TEST6)):
        with pytest.raises(FormatError):
            verify_cdiff(flipped(TEST6, offset))


def test_flipped_script_byte_is_refused_as_a_bad_signature() -> None:
    with pytest.raises(FormatError, match="bad CDIFF signature over the first 631 bytes"):
        verify_cdiff(flipped(TEST6, 100))


def test_every_truncation_of_a_real_cdiff_is_refused() -> None:
    for length in range(len(TEST6)):
        with pytest.raises(FormatError):
            verify_cdiff(TEST6[:length])


def test_cdiff_cut_inside_its_script_is_refused_as_truncated() -> None:
    with pytest.raises(FormatError, match="truncated"):
        verify_cdiff(TEST6[:400])


def test_cdiff_with_a_newline_appended_is_refused() -> None:
    with pytest.raises(FormatError, match="not a ClamAV dsig"):
        verify_cdiff(TEST6 + b"\n")


def test_cdiff_signature_of_another_cdiff_is_refused() -> None:
    other = read("test-5.cdiff")
    with pytest.raises(FormatError, match="bad CDIFF signature"):
        verify_cdiff(TEST6[: TEST6.rindex(b":")] + other[other.rindex(b":") :])


def test_cdiff_with_a_dsig_longer_than_350_characters_is_refused() -> None:
    dsig_length = len(TEST6) - TEST6.rindex(b":") - 1
    with pytest.raises(FormatError, match="at most 350 characters, got 351"):
        verify_cdiff(TEST6 + b"a" * (351 - dsig_length))


@pytest.mark.parametrize("name", ["test-6.cvd", "test-6.cdiff.sign"])
def test_file_that_is_not_a_cdiff_is_refused(name: str) -> None:
    with pytest.raises(FormatError, match="not a CDIFF: expected b'ClamAV-Diff:'"):
        verify_cdiff(read(name))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (b":6:817:", b":six:817:", "version must be a decimal number, got 'six'"),
        (b":6:817:", b":6:8x7:", "script length must be a decimal number, got '8x7'"),
        (b":6:817:", b":6:99999999999:", "script length must fit 32 bits"),
    ],
)
def test_cdiff_header_with_a_malformed_number_is_refused(old: bytes, new: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        verify_cdiff(TEST6.replace(old, new, 1))


def test_cdiff_header_without_its_length_is_refused() -> None:
    with pytest.raises(FormatError, match="truncated: expected 'ClamAV-Diff:<version>:<length>:'"):
        verify_cdiff(b"ClamAV-Diff:6")


@given(st.binary(max_size=1200))
def test_verify_cdiff_raises_only_format_error_on_random_bytes(data: bytes) -> None:
    with pytest.raises(FormatError):
        verify_cdiff(data)


@given(st.binary(max_size=1200))
def test_verify_cdiff_raises_only_format_error_on_random_bytes_after_a_header(data: bytes) -> None:
    with pytest.raises(FormatError):
        verify_cdiff(b"ClamAV-Diff:6:817:" + data)


# The script checks run only after a good signature, and no real CDIFF has a bad script, so they are
# tested on their own with plain gzip data.

SCRIPT = b"OPEN test.info\nADD line\nCLOSE\n"


def test_gzip_script_of_the_declared_length_passes() -> None:
    _check_script(gzip.compress(SCRIPT), len(SCRIPT))


def test_gzip_script_longer_than_declared_is_refused() -> None:
    with pytest.raises(FormatError, match=f"longer than the {len(SCRIPT) - 1} bytes the header declares"):
        _check_script(gzip.compress(SCRIPT), len(SCRIPT) - 1)


def test_gzip_script_shorter_than_declared_is_refused() -> None:
    with pytest.raises(FormatError, match=f"gzip script is {len(SCRIPT)} bytes, the header declares 1000"):
        _check_script(gzip.compress(SCRIPT), 1000)


def test_truncated_gzip_script_is_refused() -> None:
    with pytest.raises(FormatError, match="truncated: gzip script ends early"):
        _check_script(gzip.compress(SCRIPT)[:-4], len(SCRIPT))


def test_bytes_after_the_gzip_script_are_refused() -> None:
    with pytest.raises(FormatError, match="3 bytes follow the gzip script"):
        _check_script(gzip.compress(SCRIPT) + b"abc", len(SCRIPT))


def test_corrupt_gzip_script_is_refused() -> None:
    with pytest.raises(FormatError, match="gzip script is corrupt"):
        _check_script(b"\x1f\x8b\x08\x00garbage-garbage", len(SCRIPT))


def test_gzip_script_inflating_far_beyond_its_declared_length_stops_early() -> None:
    with pytest.raises(FormatError, match="longer than the 10 bytes"):
        _check_script(gzip.compress(bytes(64 << 20)), 10)
