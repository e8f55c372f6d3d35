"""ClamAV's RSA checks against the real Talos signatures of the test databases."""

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pum.formats import sign
from pum.formats.sign import cdiff_signature_ok, legacy_md5_signature_ok

from .clamav_testdata import CDIFF_VERSIONS, CVD_VERSIONS, read

_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"


def _cvd_md5_and_dsig(version: int) -> tuple[str, str]:
    fields = read(f"test-{version}.cvd")[:512].decode("ascii").rstrip().split(":")
    return fields[5], fields[6]


def _cdiff_digest_and_dsig(version: int) -> tuple[bytes, str]:
    data = read(f"test-{version}.cdiff")
    separator = data.rindex(b":")
    return hashlib.sha256(data[:separator]).digest(), data[separator + 1 :].decode("ascii")


def _next_digit(char: str) -> str:
    return _ALPHABET[(_ALPHABET.index(char) + 1) % 64]


@pytest.mark.parametrize("version", CVD_VERSIONS)
def test_real_cvd_dsig_signs_the_md5_of_its_body(version: int) -> None:
    md5, dsig = _cvd_md5_and_dsig(version)
    assert md5 == hashlib.md5(read(f"test-{version}.cvd")[512:]).hexdigest()
    assert legacy_md5_signature_ok(md5, dsig)


def test_real_cvd_dsigs_are_171_characters_not_350() -> None:
    # The CVD key is 1024 bits: 171 base-64 digits. 350 is the CDIFF (2048-bit) maximum.
    assert {len(_cvd_md5_and_dsig(version)[1]) for version in CVD_VERSIONS} == {171}


def test_legacy_md5_comparison_ignores_case() -> None:
    md5, dsig = _cvd_md5_and_dsig(6)
    assert legacy_md5_signature_ok(md5.upper(), dsig)


def test_legacy_dsig_of_another_md5_is_refused() -> None:
    md5, _ = _cvd_md5_and_dsig(5)
    _, dsig = _cvd_md5_and_dsig(6)
    assert not legacy_md5_signature_ok(md5, dsig)


def test_legacy_dsig_with_any_changed_character_is_refused() -> None:
    md5, dsig = _cvd_md5_and_dsig(6)
    for position in range(len(dsig)):
        changed = dsig[:position] + _next_digit(dsig[position]) + dsig[position + 1 :]
        assert not legacy_md5_signature_ok(md5, changed), position


@pytest.mark.parametrize(
    "md5", ["", "3e249e00076b0b15bb54ced37be880c", "3e249e00076b0b15bb54ced37be880c7a", "X" * 32]
)
def test_legacy_check_refuses_a_malformed_md5(md5: str) -> None:
    _, dsig = _cvd_md5_and_dsig(6)
    assert not legacy_md5_signature_ok(md5, dsig)


@pytest.mark.parametrize("suffix", ["=", "-", " ", "\n", "é"])
def test_legacy_dsig_with_a_character_outside_clamav_base64_is_refused(suffix: str) -> None:
    md5, dsig = _cvd_md5_and_dsig(6)
    assert not legacy_md5_signature_ok(md5, dsig + suffix)


def test_empty_legacy_dsig_is_refused() -> None:
    md5, _ = _cvd_md5_and_dsig(6)
    assert not legacy_md5_signature_ok(md5, "")


def test_cdiff_dsig_used_as_a_cvd_dsig_is_refused() -> None:
    md5, _ = _cvd_md5_and_dsig(6)
    _, dsig = _cdiff_digest_and_dsig(6)
    assert not legacy_md5_signature_ok(md5, dsig)


@pytest.mark.parametrize("version", CDIFF_VERSIONS)
def test_real_cdiff_dsig_signs_the_sha256_of_everything_before_it(version: int) -> None:
    digest, dsig = _cdiff_digest_and_dsig(version)
    assert cdiff_signature_ok(digest, dsig)


def test_cdiff_dsig_over_another_digest_is_refused() -> None:
    digest, _ = _cdiff_digest_and_dsig(5)
    _, dsig = _cdiff_digest_and_dsig(6)
    assert not cdiff_signature_ok(digest, dsig)


def test_cdiff_dsig_with_any_changed_character_is_refused() -> None:
    digest, dsig = _cdiff_digest_and_dsig(6)
    for position in range(len(dsig)):
        changed = dsig[:position] + _next_digit(dsig[position]) + dsig[position + 1 :]
        assert not cdiff_signature_ok(digest, changed), position


def test_cdiff_dsig_padded_with_zero_digits_to_350_characters_still_verifies() -> None:
    # 'a' is digit 0 and the encoding is little-endian: trailing 'a's add nothing, as in ClamAV.
    digest, dsig = _cdiff_digest_and_dsig(6)
    assert cdiff_signature_ok(digest, dsig.ljust(350, "a"))


def test_cdiff_dsig_longer_than_350_characters_is_refused() -> None:
    digest, dsig = _cdiff_digest_and_dsig(6)
    assert not cdiff_signature_ok(digest, dsig.ljust(351, "a"))


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_cdiff_check_refuses_a_digest_that_is_not_32_bytes(length: int) -> None:
    _, dsig = _cdiff_digest_and_dsig(6)
    assert not cdiff_signature_ok(bytes(length), dsig)


@given(md5=st.text(max_size=40), dsig=st.text(max_size=400))
def test_legacy_check_answers_false_on_arbitrary_text(md5: str, dsig: str) -> None:
    assert legacy_md5_signature_ok(md5, dsig) is False


@given(digest=st.binary(max_size=40), dsig=st.text(alphabet=_ALPHABET, max_size=360))
def test_cdiff_check_answers_false_on_arbitrary_signatures(digest: bytes, dsig: str) -> None:
    assert cdiff_signature_ok(digest, dsig) is False


def _dsig_number_digit_by_digit(dsig: str) -> int:
    # cli_decodesig (libclamav/dsig.c) as written: digit i adds its value << (6 * i)
    return sum(_ALPHABET.index(char) << (6 * position) for position, char in enumerate(dsig))


@given(st.text(alphabet=_ALPHABET, max_size=360))
def test_a_dsig_reads_as_the_number_cli_decodesig_makes(dsig):
    assert sign._dsig_number(dsig) == _dsig_number_digit_by_digit(dsig)


@given(st.text(max_size=40))
def test_a_dsig_with_any_other_character_is_no_number(text):
    dsig = "ab" + text
    expected_ok = all(char in _ALPHABET for char in dsig)
    assert sign.dsig_alphabet_ok(dsig) == expected_ok
    assert (sign._dsig_number(dsig) is None) == (not expected_ok)
