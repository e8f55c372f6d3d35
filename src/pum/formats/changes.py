"""The changelog of a release: `.pum/changes/<S>.json` in release R says what changed from release S to R.

One file per earlier serial S (the served release's ancestors, newest first, at most `KEEP_SERIALS` and
bounded in bytes), each the *net* change: the records set (path -> size, sha256, mtime, as the manifest
holds them) and the paths removed. A sub-PUM that copied the upper's release S asks for exactly
`changes/S.json`, applies it to the upper manifest it kept, and checks the result against `files`, the
digest of R's file set (`files_digest`), before it trusts a byte of it. `changes/R.json` in R is empty:
it is what an unchanged sub asks for next time (and gets 304).

Pure: bytes in, values or FormatError out. Every count and size is bounded.
"""

import hashlib
import json
from collections.abc import Iterator, Mapping
from json.encoder import encode_basestring_ascii
from types import MappingProxyType
from typing import Any, NamedTuple

from . import FormatError
from .manifest import CREATED_UTC, SHA256_HEX, FileRecord
from .paths import CHANGES_DIR as CHANGES_DIR
from .paths import changes_path as changes_path
from .paths import changes_serial as changes_serial
from .productlist import safe_relative_path
from .strict_json import load_strict_json

GENERATION = 1
# at most this many earlier serials are kept in a release's changelog (devpi keeps every serial; a sub
# further behind than this reads the whole manifest, which is then hardly larger)
KEEP_SERIALS = 100
# the largest changes file a sub reads, and the largest a PUM writes (older PUMs may read newer ones)
CHANGES_LIMIT = 8 << 20
WRITE_LIMIT = 4 << 20
# all the changes files of one release together
TOTAL_LIMIT = 16 << 20
# records set plus paths removed in one file (a manifest of 100,000 files gives at most that many)
MAX_ENTRIES = 200_000


def files_digest(files: Mapping[str, FileRecord]) -> str:
    """One sha256 over a manifest's file set: two releases with the same files give the same digest,
    whatever their serials, so a sub that failed over to a second upper carrying them stays in step."""
    digest = hashlib.sha256()
    for chunk in canonical_chunks(files):
        digest.update(chunk)
    return digest.hexdigest()


def canonical_files(files: Mapping[str, FileRecord]) -> bytes:
    """The bytes files_digest hashes: `{"<path>":[size,"<sha256>",mtime],...}`, sorted, compact."""
    return b"".join(canonical_chunks(files))


def canonical_chunks(files: Mapping[str, FileRecord]) -> Iterator[bytes]:
    """`canonical_files` in pieces of 1,000 records (the whole text is ~100 bytes a file): what
    `json.dumps(..., separators=(",", ":"))` gives, without building it at once."""
    yield b"{"
    piece: list[str] = []
    for count, path in enumerate(sorted(files)):
        record = files[path]
        name = encode_basestring_ascii(path)
        piece.append(f'{"," if count else ""}{name}:[{record.size},"{record.sha256}",{record.mtime}]')
        if len(piece) == 1000:
            yield "".join(piece).encode()
            piece = []
    yield "".join(piece).encode() + b"}"


def files_of_canonical(raw: bytes, digest: str) -> dict[str, FileRecord]:
    """The file set of `canonical_files` bytes whose sha256 is `digest` (a sub's own record of its upper's
    files: the digest proves them unchanged, so each path is not checked again here)."""
    if hashlib.sha256(raw).hexdigest() != digest:
        raise FormatError(f"files_digest {hashlib.sha256(raw).hexdigest()}, expected {digest}")
    document = load_strict_json(raw, "file set")
    if not isinstance(document, dict):
        raise FormatError("file set: expected a JSON object")
    files = {}
    for path, record in document.items():
        if not isinstance(record, list) or len(record) != 3:
            raise FormatError(f"file set: {path!r}: expected [size, sha256, mtime]")
        files[path] = FileRecord(size=record[0], sha256=record[1], mtime=record[2])
    return files


class Changes(NamedTuple):
    """From release `from_serial` (file set `from_files`) to release `serial` (file set `files`)."""

    from_serial: int
    from_files: str
    serial: int
    created: str
    files: str
    set: Mapping[str, FileRecord] = MappingProxyType({})
    removed: frozenset[str] = frozenset()

    def then(self, later: "Changes") -> "Changes":
        """These changes followed by `later` (which starts where these end), as one net change."""
        if later.from_serial != self.serial or later.from_files != self.files:
            raise FormatError(
                f"changes to release {self.serial} cannot be followed by changes from {later.from_serial}"
            )
        records = {path: record for path, record in self.set.items() if path not in later.removed}
        records.update(later.set)
        removed = (self.removed - later.set.keys()) | later.removed
        return Changes(
            self.from_serial, self.from_files, later.serial, later.created, later.files, records, removed
        )

    def applied_to(self, files: Mapping[str, FileRecord]) -> dict[str, FileRecord]:
        """`files` (release from_serial's) changed into release serial's. A removed path that `files` lacks
        is no error (added and removed again since from_serial): `files_digest` of the result decides."""
        result = {path: record for path, record in files.items() if path not in self.removed}
        result.update(self.set)
        return result

    def to_json(self) -> bytes:
        """Compact, sorted JSON: a sub reads it on the wire."""
        document = {
            "generation": GENERATION,
            "from": {"serial": self.from_serial, "files": self.from_files},
            "serial": self.serial,
            "created": self.created,
            "files": self.files,
            "set": {
                path: {"size": record.size, "sha256": record.sha256, "mtime": record.mtime}
                for path, record in sorted(self.set.items())
            },
            "removed": sorted(self.removed),
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def changes_between(
    from_serial: int,
    from_files: Mapping[str, FileRecord],
    serial: int,
    created: str,
    files: Mapping[str, FileRecord],
) -> Changes:
    """What changed from one file set to the next (the newest entry of a release's changelog)."""
    records = {path: record for path, record in files.items() if from_files.get(path) != record}
    removed = frozenset(path for path in from_files if path not in files)
    return Changes(
        from_serial, files_digest(from_files), serial, created, files_digest(files), records, removed
    )


def parse_changes(raw: bytes) -> Changes:
    """Parse and check a changes file, as `Changes.to_json` writes it."""
    if len(raw) > CHANGES_LIMIT:
        raise FormatError(f"changes: {len(raw)} bytes, at most {CHANGES_LIMIT}")
    document = load_strict_json(raw, "changes")
    if not isinstance(document, dict):
        raise FormatError(f"changes: expected a JSON object, got {type(document).__name__}")
    generation = _count(document.get("generation"), "generation")
    if generation != GENERATION:
        raise FormatError(f"changes: generation {generation}, this PUM reads {GENERATION}")
    origin = document.get("from")
    if not isinstance(origin, dict):
        raise FormatError("changes: from must be an object with serial and files")
    from_serial, from_files = (
        _count(origin.get("serial"), "from.serial"),
        _digest(origin.get("files"), "from.files"),
    )
    serial, files = _count(document.get("serial"), "serial"), _digest(document.get("files"), "files")
    created = document.get("created")
    if not isinstance(created, str) or not CREATED_UTC.fullmatch(created):
        raise FormatError(f"changes: created must be ISO 8601 UTC like 2025-09-01T03:32:05Z, got {created!r}")
    records, removed = document.get("set"), document.get("removed")
    if not isinstance(records, dict) or not isinstance(removed, list):
        raise FormatError("changes: set must be an object and removed a list")
    if len(records) + len(removed) > MAX_ENTRIES:
        raise FormatError(f"changes: {len(records) + len(removed)} entries, at most {MAX_ENTRIES}")
    changed = {_path(path): _record(path, value) for path, value in records.items()}
    gone = frozenset(_path(path) for path in removed)
    if len(gone) != len(removed):
        raise FormatError("changes: a path is removed twice")
    both = gone & changed.keys()
    if both:
        raise FormatError(f"changes: {sorted(both)[0]!r} is both set and removed")
    if from_serial > serial:
        raise FormatError(f"changes: from release {from_serial} back to release {serial}")
    if from_serial == serial and (changed or gone or files != from_files):
        raise FormatError(f"changes: release {serial} changed into itself")
    return Changes(from_serial, from_files, serial, created, files, changed, gone)


def _count(value: object, what: str) -> int:
    # bool is an int to Python but not to JSON readers; 18 digits are more releases than anyone publishes
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 10**18:
        raise FormatError(f"changes: {what} must be a whole number, got {value!r}")
    return value


def _digest(value: object, what: str) -> str:
    if not isinstance(value, str) or not SHA256_HEX.fullmatch(value):
        raise FormatError(f"changes: {what} must be 64 lowercase hex digits, got {value!r}")
    return value


def _path(path: object) -> str:
    # one spelling per file, as in the manifest: "./a" and "a" would be two entries for one file
    if not isinstance(path, str) or safe_relative_path(path) != path:
        raise FormatError(f"changes: path {path!r} is not a canonical relative path")
    return path


def _record(path: str, value: Any) -> FileRecord:
    if not isinstance(value, dict) or set(value) != {"size", "sha256", "mtime"}:
        raise FormatError(f"changes: set[{path!r}] must be an object of size, sha256 and mtime")
    where = f"set[{path!r}]"
    return FileRecord(
        size=_count(value["size"], f"{where}.size"),
        sha256=_digest(value["sha256"], f"{where}.sha256"),
        mtime=_count(value["mtime"], f"{where}.mtime"),
    )
