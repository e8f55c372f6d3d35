"""Reading access logs incrementally: where each log was left (inode + byte offset), rotation, gzip.

A log is read from where the last read stopped, so a read costs what is new. The position is kept per
log in `state/fleet_logs.json` as (device, inode, offset). When the file at the log's path is another
inode, the log was rotated: the rest of the old file is read first, found beside it by its inode
(`access.log.1`, logrotate's `delaycompress`), or in `access.log.1.gz` when it was compressed at once.
A file shorter than the offset was truncated in place (logrotate's `copytruncate`): read from 0. On the
first read of a log its rotated generations, gzip'd or not, are read first, oldest first, so a fleet
is known at once. Only whole lines are taken; a last line still being written waits for the next read.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pum.errors import ConfigError, PumError
from pum.formats.accesslog import MAX_LINE_BYTES

CHUNK = 4 << 20
HEAD = 256
MAX_GENERATIONS = 60  # rotated files read on a first read: two months of daily rotation
_GENERATION = re.compile(r"^(?:\.(\d{1,4})|-(\d{8,10}))(\.gz)?$")  # access.log.2.gz, access.log-20261201


@dataclass
class Position:
    device: int
    inode: int
    offset: int
    head: int = 0  # crc32 of the bytes up to min(offset, HEAD): an inode reused by a new log is told apart


@dataclass
class ReadCounts:
    lines: int = 0
    overlong: int = 0
    bytes: int = 0
    files: int = 0


def live_logs(patterns: tuple[str, ...]) -> list[Path]:
    """The live logs named by paths or globs; rotated generations a glob also matches are left out
    (they are read beside their live log)."""
    found: dict[str, Path] = {}
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        for match in matches:
            path = Path(match)
            if not glob.has_magic(pattern) or not _is_generation_of_any(path, matches):
                found.setdefault(str(path), path)
    return list(found.values())


def _is_generation_of_any(path: Path, matches: list[str]) -> bool:
    name = path.name
    return any(
        name != Path(other).name and name.startswith(Path(other).name) and _generation_key(path, Path(other))
        for other in matches
    )


def _generation_key(path: Path, live: Path) -> tuple[int, int] | None:
    """Sort key of a rotated generation of `live` (larger = older), or None if it is not one."""
    match = _GENERATION.match(path.name[len(live.name) :]) if path.name.startswith(live.name) else None
    if match is None:
        return None
    number, date, _gz = match.groups()
    return (0, int(number)) if number else (1, -int(date))


def generations(live: Path) -> list[Path]:
    """Rotated generations of `live` beside it, oldest first (at most MAX_GENERATIONS)."""
    try:
        names = os.listdir(live.parent)
    except OSError:
        return []
    found = []
    for name in names:
        path = live.parent / name
        key = _generation_key(path, live)
        if key is not None and path.is_file():
            found.append((key, path))
    found.sort(reverse=True)
    return [path for _key, path in found[-MAX_GENERATIONS:]]


class Positions:
    """`state/fleet_logs.json`: log path -> Position, written whole by rename after a read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.positions: dict[str, Position] = {}
        try:
            raw = json.loads(path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as error:
            raise ConfigError(
                f"{path}: unreadable ({error}); remove it to read the logs again from the start"
            ) from None
        if isinstance(raw, dict):
            for name, value in raw.items():
                if isinstance(value, list) and len(value) == 4 and all(isinstance(v, int) for v in value):
                    self.positions[name] = Position(*value)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".new")
        data = {name: [p.device, p.inode, p.offset, p.head] for name, p in self.positions.items()}
        temporary.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(temporary, self.path)


def read_new_lines(live: Path, positions: Positions, counts: ReadCounts) -> Iterator[list[bytes]]:
    """Batches of whole lines written to `live` (and its rotated predecessor) since the last read.

    The position is updated in `positions` as batches are taken; the caller saves it once the lines are
    recorded, so a crash reads them again rather than losing them."""
    key = str(live)
    try:
        stat = live.stat()
    except FileNotFoundError:
        return
    saved = positions.positions.get(key)
    if saved is None:
        for old in generations(live):
            yield from _read_from(old, 0, counts, whole=True)
        start = 0
    elif (saved.device, saved.inode) == (stat.st_dev, stat.st_ino) and _head(
        live, saved.offset
    ) == saved.head:
        start = saved.offset if stat.st_size >= saved.offset else 0
    else:
        previous = _rotated_away(live, saved)
        if previous is not None:
            yield from _read_from(previous, saved.offset, counts, whole=True)
        start = 0
    position = Position(stat.st_dev, stat.st_ino, start, _head(live, start))
    positions.positions[key] = position
    for batch, offset in _batches(live, start, counts):
        if position.offset < HEAD:
            position.head = _head(live, offset)
        position.offset = offset
        yield batch


def _head(path: Path, offset: int) -> int:
    try:
        with open(path, "rb") as stream:
            return zlib.crc32(stream.read(min(offset, HEAD)))
    except OSError:
        return 0


def _rotated_away(live: Path, saved: Position) -> Path | None:
    """Where the file we were reading went: the generation with its inode, else the newest gzip'd one."""
    rotated = generations(live)
    for path in reversed(rotated):
        try:
            stat = path.stat()
        except OSError:
            continue
        if (stat.st_dev, stat.st_ino) == (saved.device, saved.inode):
            return path
    newest_gz = [path for path in rotated if path.name.endswith(".gz")]
    return newest_gz[-1] if newest_gz else None


def _read_from(path: Path, offset: int, counts: ReadCounts, whole: bool) -> Iterator[list[bytes]]:
    for batch, _offset in _batches(path, offset, counts, whole=whole):
        yield batch


def _open(path: Path) -> BinaryIO:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _batches(
    path: Path, offset: int, counts: ReadCounts, whole: bool = False
) -> Iterator[tuple[list[bytes], int]]:
    """(lines, offset after them) from `offset`; an unterminated last line is left unless `whole`.

    A line longer than MAX_LINE_BYTES is counted and dropped without being held whole in memory."""
    try:
        stream = _open(path)
    except FileNotFoundError:
        return  # rotated away between listing and opening
    except OSError as error:
        raise PumError(f"{path}: cannot read the access log: {error.strerror or error}") from None
    counts.files += 1
    with stream:
        try:
            stream.seek(offset)
        except (OSError, EOFError, gzip.BadGzipFile):
            return
        carry = b""
        skipping = False  # inside an overlong line: drop bytes up to its newline
        while True:
            try:
                chunk = stream.read(CHUNK)
            except (OSError, EOFError, gzip.BadGzipFile):
                break  # a truncated .gz: keep what was read
            if not chunk:
                break
            counts.bytes += len(chunk)
            end = chunk.rfind(b"\n")
            if end < 0:
                carry += chunk
                if len(carry) > MAX_LINE_BYTES:
                    if not skipping:
                        counts.overlong += 1
                    skipping, carry = True, b""
                continue
            lines = (carry + chunk[: end + 1]).split(b"\n")
            lines.pop()  # after the last newline
            if skipping:
                lines.pop(0)
                skipping = False
            carry = chunk[end + 1 :]
            if len(carry) > MAX_LINE_BYTES:
                counts.overlong += 1
                skipping, carry = True, b""
            counts.lines += len(lines)
            # past the last whole line; inside an overlong one, past what was dropped of it
            yield lines, stream.tell() - len(carry)
        if whole and carry and not skipping:
            counts.lines += 1
            yield [carry], offset
