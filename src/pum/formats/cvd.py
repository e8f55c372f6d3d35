"""The CVD container: its 512-byte header, and a one-pass verification of a whole CVD file."""

import hashlib
import re
import zlib
from typing import BinaryIO, NamedTuple

from . import FormatError
from ._decimal import parse_decimal
from .sign import dsig_alphabet_ok, legacy_md5_signature_ok

CVD_HEADER_SIZE = 512
_MAGIC = b"ClamAV-VDB:"
_FIELDS = "ClamAV-VDB:time:version:sigs:flevel:md5:dsig:builder:stime"
_FIELD_COUNT = _FIELDS.count(":") + 1
_MD5_HEX = re.compile(r"[0-9a-f]{32}")

# Every read of the stream and every hand-over to tarfile is at most this big: memory stays flat
# however large the CVD (main.cvd is ~160 MB).
_CHUNK = 1 << 20
# The header line of a .info member is short; never hold more of the member than this.
_INFO_READ_LIMIT = 64 * 1024
# The body is gunzipped before its signature can be checked (one pass), so an unsigned gzip bomb must
# not cost unbounded CPU or memory. The test CVDs expand 3 to 4.5 times (mostly tar padding), signature
# text and hashes about 2 to 3 times, and a CVD holds a few dozen files: these limits are far above both.
_MAX_EXPANSION = 32
_EXPANSION_SLACK = 64 << 20
_MAX_MEMBERS = 10_000


class CvdHeader(NamedTuple):
    """The fields of a CVD header line, `ClamAV-VDB:time:version:sigs:flevel:md5:dsig:builder:stime`."""

    build_time_text: str
    version: int
    signatures: int
    flevel: int
    md5: str
    dsig: str
    builder: str
    build_time: int


def _parse_vdb_line(line: str, where: str) -> CvdHeader:
    # Shared by the 512-byte header and the copy of it that starts the .info member, where md5 and
    # dsig are "X"; the caller judges those two fields.
    fields = line.split(":")
    if len(fields) != _FIELD_COUNT:
        raise FormatError(
            f"{where}: expected {_FIELD_COUNT} ':'-separated fields ({_FIELDS}), got {len(fields)}"
        )
    magic, time_text, version, signatures, flevel, md5, dsig, builder, build_time = fields
    if magic + ":" != _MAGIC.decode():
        raise FormatError(f"{where}: expected {_MAGIC.decode()!r} at the start, got {magic!r}")
    # cli_strtok (libclamav/str.c) yields nothing for an empty field, and cl_cvdparse then fails.
    if not time_text:
        raise FormatError(f"{where}: the time field is empty")
    if not builder:
        raise FormatError(f"{where}: the builder field is empty")
    return CvdHeader(
        build_time_text=time_text,
        version=parse_decimal(version, f"{where}: version"),
        signatures=parse_decimal(signatures, f"{where}: sigs"),
        flevel=parse_decimal(flevel, f"{where}: flevel"),
        md5=md5,
        dsig=dsig,
        builder=builder,
        build_time=parse_decimal(build_time, f"{where}: stime"),
    )


def parse_cvd_header(raw: bytes) -> CvdHeader:
    """Parse the 512-byte header at the start of a CVD (printable ASCII, padded with spaces or NULs)."""
    if len(raw) != CVD_HEADER_SIZE:
        raise FormatError(f"CVD header must be {CVD_HEADER_SIZE} bytes, got {len(raw)}")
    if not raw.startswith(_MAGIC):
        raise FormatError(f"not a CVD: expected {_MAGIC!r} at byte 0, got {raw[: len(_MAGIC)]!r}")
    # sigtool (sigtool/sigtool.c, build) pads with spaces; a NUL ends the C string in cl_cvdhead, so NUL
    # padding reads the same to ClamAV. Anything else before the padding is part of the fields.
    line = raw.rstrip(b" \0")
    for offset, byte in enumerate(line):
        if not 0x20 <= byte <= 0x7E:
            raise FormatError(
                f"CVD header: expected printable ASCII, got byte 0x{byte:02x} at offset {offset}"
            )
    header = _parse_vdb_line(line.decode("ascii"), "CVD header")
    if not _MD5_HEX.fullmatch(header.md5):
        raise FormatError(f"CVD header: md5 must be 32 lowercase hex digits, got {header.md5!r}")
    if not header.dsig or not dsig_alphabet_ok(header.dsig):
        raise FormatError(
            f"CVD header: dsig must be ClamAV base-64 (a-z A-Z 0-9 + /), got {header.dsig[:40]!r}"
        )
    return header


def _read_up_to(stream: BinaryIO, size: int) -> bytes:
    # A pipe or socket may hand over less than asked; only b"" means the end.
    parts: list[bytes] = []
    missing = size
    while missing:
        part = stream.read(missing)
        if not part:
            break
        parts.append(part)
        missing -= len(part)
    return b"".join(parts)


class _GzipBody:
    """The CVD body as it streams past: MD5 of its raw bytes, its gunzipped bytes read by tarfile."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self.raw_size = 0
        self._inflated = 0

    def _next_raw(self) -> bytes:
        chunk = self._raw.read(_CHUNK)
        if chunk:
            self._md5.update(chunk)
            self.raw_size += len(chunk)
        return chunk

    def read(self, size: int = -1) -> bytes:
        # tarfile's stream mode calls read(bufsize) and takes b"" as the end of the data.
        limit = size if 0 < size <= _CHUNK else _CHUNK
        while not self._inflate.eof:
            compressed = self._inflate.unconsumed_tail or self._next_raw()
            # Even with no input left, zlib may still hold output from input it already took.
            out = self._inflate.decompress(compressed, limit)
            self._inflated += len(out)
            if self._inflated > _MAX_EXPANSION * self.raw_size + _EXPANSION_SLACK:
                raise FormatError(
                    f"gzip expands {self.raw_size} bytes to over {self._inflated} bytes "
                    f"(more than {_MAX_EXPANSION} times): refused as a decompression bomb"
                )
            if out:
                return out
            if not compressed:
                raise FormatError("truncated: the gzip stream ends early")
        return b""

    def finish_gzip(self) -> None:
        """Inflate what tarfile left (end-of-archive padding and the gzip trailer, whose CRC zlib checks)."""
        while self.read(_CHUNK):
            pass

    def drain(self) -> None:
        """Hash the rest of the raw stream without inflating it."""
        while self._next_raw():
            pass

    def md5_hex(self) -> str:
        return self._md5.hexdigest()


def _info_first_lines(body: _GzipBody) -> dict[str, bytes]:
    """First line of every `*.info` member of the tar stream, read through to the end of the archive."""
    import tarfile

    first_lines: dict[str, bytes] = {}
    # bufsize: tarfile otherwise reads 10 KiB at a time; a larger hand-over is faster and still bounded.
    # In stream mode tarfile only ever calls read(); typeshed asks for a whole file object.
    with tarfile.open(  # type: ignore[call-overload]
        fileobj=body, mode="r|", bufsize=_CHUNK
    ) as archive:
        members = 0
        while (member := archive.next()) is not None:
            members += 1
            if members > _MAX_MEMBERS:
                raise FormatError(f"more than {_MAX_MEMBERS} members in the tar archive")
            if member.isfile() and member.name.endswith(".info"):
                extracted = archive.extractfile(member)
                if extracted is None:
                    continue
                first_lines[member.name] = extracted.read(_INFO_READ_LIMIT).split(b"\n", 1)[0]
    return first_lines


def _info_for(first_lines: dict[str, bytes], db_name: str) -> tuple[str, bytes]:
    wanted = f"{db_name}.info"
    if wanted in first_lines:
        return wanted, first_lines[wanted]
    # A CVD served under another name (test-6.cvd as daily.cvd in tests, a renamed custom database)
    # still carries the .info of the name it was built as; one .info is unambiguous.
    if len(first_lines) == 1:
        return next(iter(first_lines.items()))
    raise FormatError(f"no {wanted} in the CVD body (.info members: {sorted(first_lines) or 'none'})")


def _check_info_agrees(header: CvdHeader, info_name: str, info_line: bytes) -> None:
    try:
        text = info_line.decode("ascii").removesuffix("\r")
    except UnicodeDecodeError:
        raise FormatError(f"{info_name}: the first line is not ASCII") from None
    if not text.startswith(_MAGIC.decode()):
        raise FormatError(f"{info_name}: expected a ClamAV-VDB header as the first line, got {text[:40]!r}")
    info = _parse_vdb_line(text, f"{info_name} header")
    # The dsig covers only the MD5 of the body, so the header's other fields are protected only by this
    # comparison with the copy inside the signed body. sigtool (sigtool/sigtool.c, build and writeinfo)
    # writes that copy from the same header string before the MD5 and dsig exist, so the .info carries
    # time, version, sigs, flevel, builder and stime, with "X" for md5 and dsig. ClamAV itself
    # (libclamav/cvd.c, cli_cvdload) compares version, sigs, flevel and stime; we also compare the time
    # text and the builder, so no byte of the header outside md5 and dsig can change unnoticed.
    pairs = [
        ("time", header.build_time_text, info.build_time_text),
        ("version", header.version, info.version),
        ("sigs", header.signatures, info.signatures),
        ("flevel", header.flevel, info.flevel),
        ("builder", header.builder, info.builder),
        ("stime", header.build_time, info.build_time),
    ]
    differences = [
        f"{name} {ours!r} in the header, {theirs!r} in {info_name}"
        for name, ours, theirs in pairs
        if ours != theirs
    ]
    if differences:
        raise FormatError(
            f"CVD header disagrees with its signed {info_name} (relabelled?): " + "; ".join(differences)
        )


def verify_cvd(stream: BinaryIO, db_name: str) -> CvdHeader:
    """Verify a whole CVD read from `stream` in one pass of 1 MiB chunks; return its header.

    Checks, in this order of report: the header parses; the MD5 of bytes 512..EOF equals the header's;
    the header's dsig signs that MD5 (ClamAV's CVD key); the body is a complete tar.gz; and its
    `<db_name>.info` (or its only `*.info`) starts with a header agreeing with the 512-byte one.
    """
    raw_header = _read_up_to(stream, CVD_HEADER_SIZE)
    if len(raw_header) < CVD_HEADER_SIZE:
        raise FormatError(
            f"truncated: {len(raw_header)} bytes, shorter than the {CVD_HEADER_SIZE}-byte CVD header"
        )
    header = parse_cvd_header(raw_header)
    import tarfile  # here: reading a header (every `pum run`, `pum status`) needs none of it

    body = _GzipBody(stream)
    first_lines: dict[str, bytes] = {}
    body_problem = ""
    try:
        first_lines = _info_first_lines(body)
        body.finish_gzip()
    # ValueError includes our FormatError and whatever tarfile's header parsing raises on nonsense.
    except (tarfile.TarError, zlib.error, EOFError, ValueError) as error:
        body_problem = str(error) or type(error).__name__
    # The MD5 covers every byte after the header, whatever tarfile and zlib did not need to read.
    body.drain()

    body_md5 = body.md5_hex()
    if body_md5 != header.md5:
        also = f"; the body is also unreadable as tar.gz: {body_problem}" if body_problem else ""
        raise FormatError(
            f"MD5 mismatch: header says {header.md5}, "
            f"the {body.raw_size}-byte body hashes to {body_md5}{also}"
        )
    if not legacy_md5_signature_ok(header.md5, header.dsig):
        raise FormatError(f"bad CVD signature: the header's dsig does not sign MD5 {header.md5}")
    if body_problem:
        raise FormatError(f"CVD body is not a readable tar.gz: {body_problem}")
    info_name, info_line = _info_for(first_lines, db_name)
    _check_info_agrees(header, info_name, info_line)
    return header
