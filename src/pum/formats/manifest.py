"""The release manifest `.pum/manifest.json`: serial, creation time, and size/sha256/mtime per file."""

import json
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from json.encoder import encode_basestring
from types import MappingProxyType
from typing import Any

from . import FormatError
from .productlist import safe_relative_path
from .strict_json import load_strict_json

# The layout generation this code reads and writes. Keys it does not know are ignored (a newer PUM may
# add some); a change an older PUM must not misread bumps the generation instead.
GENERATION = 1
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# One spelling of UTC, so that the same instant always gives the same bytes (and the same ETag).
CREATED_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z")
# files per piece of `Manifest.json_chunks`: a 100,000-file manifest is written in ~1 MB pieces, never as
# one string (json.dumps with an indent builds a list of every token first: ~100 MB at 100,000 files)
_FILES_PER_CHUNK = 5000


def _check_int(value: object, what: str) -> int:
    # bool is an int to Python but not to JSON readers.
    if not isinstance(value, int) or isinstance(value, bool):
        raise FormatError(f"{what} must be an integer, got {value!r}")
    if value < 0:
        raise FormatError(f"{what} must not be negative, got {value}")
    return value


def _check_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise FormatError(f"{what} must be a string, got {value!r}")
    return value


def _check_canonical(path: object) -> None:
    # A manifest names each file one way only: "./a" and "a" would be two keys for one file.
    canonical = safe_relative_path(_check_str(path, "file path"))
    if canonical != path:
        raise FormatError(f"path {path!r} is not canonical, expected {canonical!r}")


def _check_no_file_is_a_directory(files: Mapping[str, Any]) -> None:
    # "a" and "a/b" cannot both be files on disk: a release built from such a manifest would fail halfway.
    for path in files:
        parts = path.split("/")
        for end in range(1, len(parts)):
            parent = "/".join(parts[:end])
            if parent in files:
                raise FormatError(f"path {parent!r} is a file and also the directory of {path!r}")


# hand-written, not dataclasses (a run creates none while it starts: ~0.7 ms each, and `dataclasses` imports
# `inspect`); immutable by convention. Slots: a 100,000-file manifest holds 100,000 FileRecords, and a run
# holds up to three manifests' worth
class FileRecord:
    """What the manifest says about one file: its size in bytes, sha256 (lowercase hex), mtime (epoch)."""

    __slots__ = ("size", "sha256", "mtime")

    def __init__(self, size: int, sha256: str, mtime: int) -> None:
        _check_int(size, "size")
        _check_int(mtime, "mtime")
        if not isinstance(sha256, str) or not SHA256_HEX.fullmatch(sha256):
            raise FormatError(f"sha256 must be 64 lowercase hex digits, got {sha256!r}")
        self.size = size
        self.sha256 = sha256
        self.mtime = mtime

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FileRecord):
            return NotImplemented
        return self.size == other.size and self.sha256 == other.sha256 and self.mtime == other.mtime

    def __hash__(self) -> int:
        return hash((self.size, self.sha256, self.mtime))

    def __repr__(self) -> str:
        return f"FileRecord(size={self.size!r}, sha256={self.sha256!r}, mtime={self.mtime!r})"


class Manifest:
    """A release's manifest; `files` maps canonical relative paths (see `safe_relative_path`) to records.

    Validated when built, so `to_json` never writes a manifest that `parse_manifest` would refuse.
    """

    __slots__ = ("serial", "created", "files", "generation", "source")

    def __init__(
        self,
        serial: int,
        created: str,
        files: Mapping[str, FileRecord],
        generation: int = GENERATION,
        source: str = "",
    ) -> None:
        _check_int(serial, "serial")
        if _check_int(generation, "generation") < 1:
            raise FormatError(f"generation must be at least 1, got {generation}")
        try:
            _check_str(source, "source").encode("utf-8")
        except UnicodeEncodeError:
            raise FormatError(f"source is not valid UTF-8 text: {source!r}") from None
        _check_str(created, "created")
        if not CREATED_UTC.fullmatch(created):
            raise FormatError(f"created must be ISO 8601 UTC like 2025-09-01T03:32:05Z, got {created!r}")
        try:
            datetime.fromisoformat(created)
        except ValueError:
            raise FormatError(f"created is not a real date and time: {created!r}") from None
        for path, record in files.items():
            _check_canonical(path)
            if not isinstance(record, FileRecord):
                raise FormatError(f"files[{path!r}] must be a FileRecord, got {type(record).__name__}")
        _check_no_file_is_a_directory(files)
        self.serial = serial
        self.created = created
        # the manifest does not change under its holder through the dict it was built from
        self.files: Mapping[str, FileRecord] = MappingProxyType({path: files[path] for path in sorted(files)})
        self.generation = generation
        self.source = source

    def _key(self) -> tuple[Any, ...]:
        return self.serial, self.created, self.files, self.generation, self.source

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Manifest):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Manifest(serial={self.serial!r}, created={self.created!r}, files=<{len(self.files)} files>, "
            f"generation={self.generation!r}, source={self.source!r})"
        )

    def to_json(self) -> bytes:
        """The manifest as stable JSON bytes: sorted keys, indent 1, UTF-8, a trailing newline (the bytes
        `json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False)` gives, plus the newline)."""
        return b"".join(self.json_chunks())

    def json_chunks(self) -> Iterator[bytes]:
        """`to_json()` in pieces of a few thousand files each, to be written one after the other."""
        text = encode_basestring  # as json.dumps(ensure_ascii=False) writes a string
        tail = (
            f'}},\n "generation": {self.generation},\n "serial": {self.serial},\n'
            f' "source": {text(self.source)}\n}}\n'
        )
        piece = [f'{{\n "created": {text(self.created)},\n "files": {{']
        for count, (path, record) in enumerate(self.files.items()):
            piece.append(",\n" if count else "\n")
            piece.append(
                f'  {text(path)}: {{\n   "mtime": {record.mtime},\n   "sha256": "{record.sha256}",\n'
                f'   "size": {record.size}\n  }}'
            )
            if count % _FILES_PER_CHUNK == _FILES_PER_CHUNK - 1:
                yield "".join(piece).encode("utf-8")
                piece = []
        piece.append(f"\n {tail}" if self.files else tail)
        yield "".join(piece).encode("utf-8")


def _file_record(path: str, value: object) -> FileRecord:
    if not isinstance(value, dict):
        raise FormatError(f"manifest: files[{path!r}] must be an object, got {value!r}")
    missing = [key for key in ("size", "sha256", "mtime") if key not in value]
    if missing:
        raise FormatError(f"manifest: files[{path!r}] lacks {', '.join(missing)}")
    try:
        return FileRecord(
            size=_check_int(value["size"], "size"),
            sha256=_check_str(value["sha256"], "sha256"),
            mtime=_check_int(value["mtime"], "mtime"),
        )
    except FormatError as error:
        raise FormatError(f"manifest: files[{path!r}]: {error}") from None


def _record_as_written(pairs: list[tuple[str, Any]]) -> FileRecord | None:
    """A file's object in the order `to_json` writes it, valid, as a FileRecord at once (a manifest's
    records then never exist as dicts too); any other object is left to `_file_record`, which says what
    is wrong with it and where."""
    if len(pairs) != 3:
        return None
    (mtime_key, mtime), (sha256_key, sha256), (size_key, size) = pairs
    if mtime_key != "mtime" or sha256_key != "sha256" or size_key != "size":
        return None
    try:
        return FileRecord(size=size, sha256=sha256, mtime=mtime)
    except FormatError:
        return None


# The layout `Manifest.json_chunks` writes, read without building the JSON document: the opening up to
# the files object, then each file's entry. A manifest laid out otherwise is read as JSON (`_parse_json`).
_OPENING = re.compile(rb'\{\n "created": "[^"\\\x00-\x1f]*",\n "files": \{\n')
_ENTRY = re.compile(
    rb'  ("(?:[^"\\\x00-\x1f]|\\.)*"): \{\n   "mtime": (0|[1-9][0-9]{0,18}),\n'
    rb'   "sha256": "([0-9a-f]{64})",\n   "size": (0|[1-9][0-9]{0,18})\n  \}(,\n|\n \})'
)


def parse_manifest(raw: bytes, known: Mapping[str, FileRecord] | None = None) -> Manifest:
    """Parse and validate `.pum/manifest.json` (UTF-8 JSON, as `Manifest.to_json` writes it).

    A record equal to `known`'s for its path is `known`'s object: a sub-PUM holding the manifest it
    serves and its upper's holds one set of records for the files both list.

    A manifest as PUM writes it is read entry by entry, never as one JSON document (~500 bytes a file of
    dicts and strings at once); it gives what the JSON reading gives, and anything it does not take as
    it is (another layout, a bad value, a path twice) is read as JSON, which says what is wrong."""
    return _parse_as_written(raw, known or {}) or _parse_json(raw)


def _parse_as_written(raw: bytes, known: Mapping[str, FileRecord]) -> Manifest | None:
    opening = _OPENING.match(raw)
    if opening is None:
        return None
    records: dict[str, FileRecord] = {}
    entry, end = _ENTRY.match, opening.end()
    while (found := entry(raw, end)) is not None:
        end, quoted = found.end(), found[1]
        try:
            # without a backslash, the bytes between the quotes are the path (JSON escapes nothing else)
            path = quoted[1:-1].decode("utf-8") if b"\\" not in quoted else json.loads(quoted.decode("utf-8"))
            record = FileRecord(size=int(found[4]), sha256=found[3].decode("ascii"), mtime=int(found[2]))
        except (ValueError, FormatError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            return None
        held = known.get(path)
        if held == record:
            record = held
        if path in records:
            return None
        records[path] = record
        if found[5] != b",\n":
            break
    else:
        return None
    try:
        # the rest of the document read as JSON with its files object emptied, the paths checked by Manifest:
        # the checks of a whole reading
        rest = _parse_json(raw[: opening.end() - 2] + b"{}" + raw[end:])
        return Manifest(rest.serial, rest.created, records, rest.generation, rest.source)
    except FormatError:
        return None


def _parse_json(raw: bytes) -> Manifest:
    document = load_strict_json(raw, "manifest", _record_as_written)
    if not isinstance(document, dict):
        raise FormatError(f"manifest: expected a JSON object, got {type(document).__name__}")
    generation = _check_int(document.get("generation", GENERATION), "manifest: generation")
    if generation > GENERATION:
        raise FormatError(f"manifest generation {generation} is newer than this PUM reads ({GENERATION})")
    missing = [key for key in ("serial", "created", "files") if key not in document]
    if missing:
        raise FormatError(f"manifest lacks {', '.join(missing)}")
    files = document["files"]
    if not isinstance(files, dict):
        raise FormatError(f"manifest: files must be an object, got {type(files).__name__}")
    records: dict[str, FileRecord] = {}
    for path, value in files.items():
        try:
            _check_canonical(path)
        except FormatError as error:
            raise FormatError(f"manifest: files: {error}") from None
        records[path] = value if isinstance(value, FileRecord) else _file_record(path, value)
    try:
        return Manifest(
            serial=_check_int(document["serial"], "serial"),
            created=_check_str(document["created"], "created"),
            files=records,
            generation=generation,
            source=_check_str(document.get("source", ""), "source"),
        )
    except FormatError as error:
        raise FormatError(f"manifest: {error}") from None
