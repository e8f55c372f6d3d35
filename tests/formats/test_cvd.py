"""CVD headers and whole-CVD verification, on the real signed test-1..6.cvd and variants of them."""

import contextlib
import gzip
import hashlib
import io
import os
import tarfile
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pum.formats import FormatError
from pum.formats.cvd import CvdHeader, _info_for, parse_cvd_header, verify_cvd

from .clamav_testdata import CVD_VERSIONS, flipped, read

# The README's table of the test databases.
README_HEADERS = {
    1: ("22 Jun 2021 14-58 -0400", 0, "a4ab60ae1c1c4e8f787459102dcfd90b", "micasnyd", 1624388302),
    2: ("22 Jun 2021 16-55 -0400", 0, "57ce21d16edad79ec53a16f03c96b680", "micasnyd", 1624395301),
    3: ("22 Jun 2021 20-40 -0400", 11, "75c84c7f1a2d37d9c2a37b2bc9b3a670", "raynman", 1624408809),
    4: ("22 Jun 2021 21-29 -0400", 12, "2c645dd81c87e46091e0cc136ae0b217", "micasnyd", 1624411776),
    5: ("22 Jun 2021 21-31 -0400", 13, "4e5effe6a32ca5a4aa15a1384daae354", "micasnyd", 1624411902),
    6: ("22 Jun 2021 21-34 -0400", 14, "3e249e00076b0b15bb54ced37be880c7", "micasnyd", 1624412045),
}

TEST6 = read("test-6.cvd")
TEST6_HEADER = TEST6[:512]


def _header_line(**fields: object) -> bytes:
    values: dict[str, object] = {
        "time": "22 Jun 2021 21-34 -0400",
        "version": 6,
        "sigs": 14,
        "flevel": 81,
        "md5": "3e249e00076b0b15bb54ced37be880c7",
        "dsig": "a" * 171,
        "builder": "micasnyd",
        "stime": 1624412045,
    }
    values.update(fields)
    return ("ClamAV-VDB:" + ":".join(str(value) for value in values.values())).encode("ascii")


def _padded(line: bytes, pad: bytes = b" ") -> bytes:
    return line + pad * (512 - len(line))


def _relabelled(data: bytes, old: bytes, new: bytes) -> bytes:
    # Replace a field of the 512-byte header, keeping its MD5 and dsig, and keep it 512 bytes long.
    header = data[:512].rstrip(b" ")
    assert header.count(old) == 1, old
    return _padded(header.replace(old, new)) + data[512:]


def _verify(data: bytes, db_name: str = "test") -> CvdHeader:
    return verify_cvd(io.BytesIO(data), db_name)


# parse_cvd_header


@pytest.mark.parametrize("version", CVD_VERSIONS)
def test_real_headers_parse_to_the_values_in_the_readme(version: int) -> None:
    time_text, sigs, md5, builder, stime = README_HEADERS[version]
    header = parse_cvd_header(read(f"test-{version}.cvd")[:512])
    assert header == CvdHeader(
        build_time_text=time_text,
        version=version,
        signatures=sigs,
        flevel=81,
        md5=md5,
        dsig=header.dsig,
        builder=builder,
        build_time=stime,
    )
    assert len(header.dsig) == 171


@pytest.mark.parametrize("length", [0, 511, 513])
def test_header_that_is_not_512_bytes_is_refused(length: int) -> None:
    with pytest.raises(FormatError, match=f"CVD header must be 512 bytes, got {length}"):
        parse_cvd_header((TEST6 * 2)[:length])


@pytest.mark.parametrize("name", ["test-6.cdiff", "test-6.cvd.sign"])
def test_file_that_is_not_a_cvd_is_refused(name: str) -> None:
    with pytest.raises(FormatError, match="not a CVD: expected b'ClamAV-VDB:'"):
        parse_cvd_header(read(name)[:512].ljust(512, b" "))


def test_header_padded_with_nuls_parses_like_one_padded_with_spaces() -> None:
    line = TEST6_HEADER.rstrip(b" ")
    assert parse_cvd_header(_padded(line, b"\0")) == parse_cvd_header(TEST6_HEADER)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"version": "six"}, "version must be a decimal number, got 'six'"),
        ({"version": "-6"}, "version must be a decimal number"),
        ({"sigs": ""}, "sigs must be a decimal number, got ''"),
        ({"flevel": "8 1"}, "flevel must be a decimal number"),
        ({"stime": "1624412045x"}, "stime must be a decimal number"),
        ({"stime": "9" * 21}, "stime must have at most 20 digits, got 21"),
        ({"md5": "X"}, "md5 must be 32 lowercase hex digits, got 'X'"),
        ({"md5": "3E249E00076B0B15BB54CED37BE880C7"}, "md5 must be 32 lowercase hex"),
        ({"dsig": ""}, "dsig must be ClamAV base-64"),
        ({"dsig": "abc="}, "dsig must be ClamAV base-64"),
        ({"builder": ""}, "the builder field is empty"),
        ({"time": ""}, "the time field is empty"),
        ({"builder": "mica:snyd"}, "expected 9 ':'-separated fields"),
    ],
)
def test_header_with_a_malformed_field_is_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(FormatError, match=message):
        parse_cvd_header(_padded(_header_line(**fields)))


def test_header_missing_its_stime_is_refused() -> None:
    line = TEST6_HEADER.rstrip(b" ").rsplit(b":", 1)[0]
    with pytest.raises(FormatError, match="expected 9 ':'-separated fields .*, got 8"):
        parse_cvd_header(_padded(line))


def test_header_with_a_stray_byte_in_its_padding_is_refused() -> None:
    with pytest.raises(FormatError, match="stime must be a decimal number"):
        parse_cvd_header(flipped(TEST6_HEADER, 500))
    with pytest.raises(FormatError, match="expected printable ASCII, got byte 0xdf at offset 500"):
        parse_cvd_header(flipped(TEST6_HEADER, 500, 0xFF))


@given(st.binary(min_size=0, max_size=600))
def test_parse_cvd_header_raises_only_format_error_on_random_bytes(raw: bytes) -> None:
    with contextlib.suppress(FormatError):
        parse_cvd_header(raw)


@given(st.binary(min_size=501, max_size=501))
def test_parse_cvd_header_raises_only_format_error_on_random_bytes_after_the_magic(tail: bytes) -> None:
    with contextlib.suppress(FormatError):
        parse_cvd_header(b"ClamAV-VDB:" + tail)


_FIELD_TEXT = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=":"))


@given(
    time_text=_FIELD_TEXT.filter(bool),
    numbers=st.tuples(*[st.integers(min_value=0, max_value=2**63)] * 4),
    md5=st.binary(min_size=16, max_size=16),
    dsig=st.text(
        alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/", min_size=1, max_size=171
    ),
    builder=_FIELD_TEXT.filter(bool),
)
def test_any_well_formed_header_parses_back_to_its_fields(
    time_text: str, numbers: tuple[int, int, int, int], md5: bytes, dsig: str, builder: str
) -> None:
    version, sigs, flevel, stime = numbers
    line = _header_line(
        time=time_text,
        version=version,
        sigs=sigs,
        flevel=flevel,
        md5=md5.hex(),
        dsig=dsig,
        builder=builder,
        stime=stime,
    )
    if len(line) > 512:
        return
    assert parse_cvd_header(_padded(line)) == CvdHeader(
        time_text, version, sigs, flevel, md5.hex(), dsig, builder, stime
    )


# verify_cvd on the real files and their variants


@pytest.mark.parametrize("version", CVD_VERSIONS)
def test_real_cvd_verifies(version: int) -> None:
    data = read(f"test-{version}.cvd")
    assert _verify(data) == parse_cvd_header(data[:512])


def test_real_cvd_served_as_daily_verifies_through_its_only_info() -> None:
    # tests rename test-N.cvd to daily.cvd; its body still holds test.info.
    assert _verify(TEST6, "daily").version == 6


def test_real_cvd_verifies_from_a_stream_that_hands_over_few_bytes_at_a_time() -> None:
    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            chunk = self._data.read(min(len(buffer), 7))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    assert verify_cvd(Trickle(TEST6), "test").version == 6  # type: ignore[arg-type]


def test_every_flipped_byte_of_a_real_cvd_is_refused() -> None:
    for offset in range(len(TEST6)):
        with pytest.raises(FormatError):
            _verify(flipped(TEST6, offset))


@settings(max_examples=200)
@given(
    changes=st.lists(st.tuples(st.integers(0, len(TEST6) - 1), st.integers(1, 255)), min_size=1, max_size=8),
    length=st.integers(0, len(TEST6)),
)
def test_randomly_damaged_real_cvd_is_refused_with_format_error(
    changes: list[tuple[int, int]], length: int
) -> None:
    damaged = bytearray(TEST6)
    for offset, mask in changes:
        damaged[offset] ^= mask
    if bytes(damaged[:length]) == TEST6:
        return
    with pytest.raises(FormatError):
        _verify(bytes(damaged[:length]))


@pytest.mark.parametrize("offset", [0, 11, 40, 60, 100, 200, 300, 340, 350, 511])
def test_a_byte_of_the_header_set_to_ff_is_refused(offset: int) -> None:
    with pytest.raises(FormatError):
        _verify(flipped(TEST6, offset, 0xFF))


def test_flipped_body_byte_is_refused_as_an_md5_mismatch() -> None:
    with pytest.raises(FormatError, match="MD5 mismatch: header says 3e249e00076b0b15bb54ced37be880c7"):
        _verify(flipped(TEST6, 5000))


def test_flipped_dsig_character_is_refused_as_a_bad_signature() -> None:
    dsig_offset = TEST6_HEADER.index(b":Dou6") + 1
    with pytest.raises(FormatError, match="bad CVD signature"):
        _verify(TEST6[:dsig_offset] + b"E" + TEST6[dsig_offset + 1 :])


@pytest.mark.parametrize("length", [0, 1, 100, 511, 512, 513, 600, 2000, 8000, len(TEST6) - 1])
def test_truncated_cvd_is_refused(length: int) -> None:
    with pytest.raises(FormatError, match="truncated|MD5 mismatch"):
        _verify(TEST6[:length])


def test_cvd_with_bytes_appended_is_refused() -> None:
    with pytest.raises(FormatError, match="MD5 mismatch"):
        _verify(TEST6 + b"\0" * 512)


def test_header_of_one_version_on_the_body_of_another_is_refused() -> None:
    with pytest.raises(FormatError, match="MD5 mismatch"):
        _verify(read("test-5.cvd")[:512] + TEST6[512:])


def test_forged_header_version_is_refused() -> None:
    with pytest.raises(FormatError, match="version 7 in the header, 6 in test.info"):
        _verify(_relabelled(TEST6, b":6:14:81:", b":7:14:81:"))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (b":6:14:81:", b":6:15:81:", "sigs 15 in the header, 14 in test.info"),
        (b":6:14:81:", b":6:14:90:", "flevel 90 in the header, 81 in test.info"),
        (b":1624412045", b":1756596540", "stime 1756596540 in the header, 1624412045 in test.info"),
        (b":micasnyd:", b":talos:", "builder 'talos' in the header, 'micasnyd' in test.info"),
        (b"21-34 -0400", b"21-35 -0400", "time '22 Jun 2021 21-35 -0400' in the header"),
    ],
)
def test_forged_header_field_is_refused(old: bytes, new: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        _verify(_relabelled(TEST6, old, new))


def test_info_is_chosen_by_database_name_among_several() -> None:
    first_lines = {"daily.info": b"daily", "test.info": b"test"}
    assert _info_for(first_lines, "test") == ("test.info", b"test")


def test_body_with_several_info_and_none_for_the_database_is_refused() -> None:
    with pytest.raises(
        FormatError, match=r"no main.info in the CVD body \(.info members: \['daily.info', 'test.info'\]\)"
    ):
        _info_for({"daily.info": b"", "test.info": b""}, "main")


def test_body_without_an_info_is_refused() -> None:
    with pytest.raises(FormatError, match="no main.info in the CVD body"):
        _info_for({}, "main")


# Streaming: big synthetic CVDs. Their dsig is not a signature, so they always fail; what is measured
# is that the failure comes after one bounded pass over the whole stream.


class _RandomReader(io.RawIOBase):
    """`size` pseudo-random bytes, made on demand."""

    def __init__(self, size: int) -> None:
        self._left = size
        self._block = os.urandom(1 << 20)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = min(len(buffer), self._left, len(self._block))
        buffer[:count] = self._block[:count]
        self._left -= count
        return count


def _synthetic_cvd(path: Path, payload_size: int) -> str:
    """Write a CVD with one random `payload_size`-byte member and a correct MD5 but no signature."""
    with path.open("w+b") as cvd:
        cvd.write(bytes(512))
        with (
            gzip.GzipFile(fileobj=cvd, mode="wb", compresslevel=1) as gzipped,
            tarfile.open(fileobj=gzipped, mode="w|") as archive,
        ):
            info = _header_line(md5="X", dsig="X") + b"\n"
            member = tarfile.TarInfo("test.info")
            member.size = len(info)
            archive.addfile(member, io.BytesIO(info))
            member = tarfile.TarInfo("test.hsb")
            member.size = payload_size
            archive.addfile(member, io.BufferedReader(_RandomReader(payload_size), 1 << 20))
        md5 = hashlib.md5()
        cvd.seek(512)
        while chunk := cvd.read(1 << 20):
            md5.update(chunk)
        cvd.seek(0)
        cvd.write(_padded(_header_line(md5=md5.hexdigest(), dsig="b" * 171)))
    return md5.hexdigest()


class _RecordingReader(io.RawIOBase):
    def __init__(self, stream: io.BufferedReader) -> None:
        self._stream = stream
        self.sizes: list[int] = []

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.sizes.append(size)
        return self._stream.read(size)


def test_large_cvd_is_streamed_in_bounded_reads_before_its_signature_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.cvd"
    _synthetic_cvd(path, 24 << 20)
    with path.open("rb") as raw:
        recorder = _RecordingReader(raw)
        tracemalloc.start()
        try:
            with pytest.raises(FormatError, match="bad CVD signature"):
                verify_cvd(recorder, "test")  # type: ignore[arg-type]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert raw.tell() == path.stat().st_size
    assert 0 < max(recorder.sizes) <= 1 << 20
    assert -1 not in recorder.sizes
    assert peak < 8 << 20, f"peak traced memory {peak} bytes"


def test_md5_mismatch_is_reported_after_reading_the_whole_stream(tmp_path: Path) -> None:
    path = tmp_path / "big.cvd"
    md5 = _synthetic_cvd(path, 4 << 20)
    data = path.read_bytes()
    stream = io.BytesIO(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(FormatError, match=f"MD5 mismatch: header says {md5}"):
        verify_cvd(stream, "test")
    assert stream.tell() == len(data)


def _gzip_bomb_body(inflated_size: int) -> Iterator[bytes]:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    member = tarfile.TarInfo("test.hsb")
    member.size = inflated_size
    yield compressor.compress(member.tobuf())
    zeros = bytes(1 << 20)
    for _ in range(inflated_size >> 20):
        yield compressor.compress(zeros)
    yield compressor.flush()


def test_gzip_bomb_is_refused_without_inflating_it_all() -> None:
    body = b"".join(_gzip_bomb_body(256 << 20))
    with pytest.raises(FormatError, match="decompression bomb"):
        _verify(_padded(_header_line()) + body)
