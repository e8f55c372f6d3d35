"""The one resumable download writer: a response body into `<dest>.part`, resumed with Range.

Both HTTP clients feed it: the server's Transport (net/http1.py) and proscanup's (pum_client.py). The caller
sends `Range: bytes=<offset>-` when `part` already holds `offset` bytes, then hands over the status, the
Content-Range and Content-Length headers and an iterator of body chunks. `stream_to_part` decides what the
answer means for `part`, writes, fsyncs, and returns the digest of the whole file. The bounds both sides need
are here too: a size ceiling (announced or reached), a full disk dropping the part. The time bound is the
caller's `on_chunk`, which may raise (the part is kept, for the next attempt). Content-Encoding is the
caller's to refuse before calling (only it knows what it asked for).
"""

import errno
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple, Optional

CHUNK = 1 << 20
# a .part older than this is not resumed: what upstream offers under that name has likely changed
STALE_PART_SECONDS = 86400


class PartAnswer(NamedTuple):
    """What the caller's HTTP stack says about the answer to its GET."""

    status: int
    content_range: Optional[str] = None
    content_length: Optional[str] = None


class Streamed(NamedTuple):
    digest: str  # hex digest of the whole file in `part`
    size: int
    resumed: bool  # bytes from an earlier attempt were kept


class StartAgain(Exception):
    """`part` could not be continued and was removed (or the body was cut short): ask again."""


class UnexpectedAnswer(Exception):
    """A status that is not an answer to a download (neither 200, 206 nor 416)."""


class TooLarge(Exception):
    """The file is larger than the ceiling (announced, or reached while streaming): `part` was removed."""


def part_offset(part: Path) -> int:
    """How many bytes of `part` an earlier attempt left: the Range start of the next request."""
    try:
        return os.stat(str(part)).st_size
    except FileNotFoundError:
        return 0


def range_start(content_range: Optional[str]) -> Optional[int]:
    """`bytes 100-199/200` -> 100; None for anything else."""
    try:
        unit, spec = (content_range or "").split(None, 1)
        return int(spec.split("-", 1)[0]) if unit == "bytes" else None
    except ValueError:
        return None


def _complete_length(content_range: Optional[str]) -> Optional[int]:
    """`bytes */200` (the 416 answer) -> 200."""
    return _length((content_range or "").rpartition("/")[2])


_DIGITS = re.compile(r"^[0-9]{1,18}$")  # ASCII digits, bounded (int() takes '１２' and 10**4300 digits)


def _length(value: Optional[str]) -> Optional[int]:
    return int(value.strip()) if value and _DIGITS.match(value.strip()) else None


def _hash_part(part: Path, digest: Any) -> None:
    with open(str(part), "rb") as done:
        for chunk in iter(lambda: done.read(CHUNK), b""):
            digest.update(chunk)


def stream_to_part(
    part: Path,
    offset: int,
    answer: PartAnswer,
    chunks: Iterable[bytes],
    new_digest: Callable[[], Any],
    on_chunk: Optional[Callable[[int, int], None]] = None,
    ceiling: Optional[int] = None,
    durable: bool = True,
) -> Streamed:
    """Write the answer to a GET (with `Range: bytes=<offset>-` when `offset`) into `part`.

    - 200: the whole file, from the start;
    - 206 whose Content-Range starts at `offset`: appended (a 206 for another range removes `part`);
    - 416 with `offset`: when its `Content-Range: bytes */N` says N == `offset`, `part` is already the whole
      file and is used as it is; otherwise `part` is not a prefix of theirs and is removed.
    `on_chunk(len(chunk), bytes so far)` is called for each chunk. The iterator's own errors (a connection
    cut) pass through after what arrived is on disk, so the next attempt resumes from it. A body shorter
    than Content-Length raises StartAgain with `part` kept (resume). More than `ceiling` bytes, announced or
    received, raise TooLarge; a full disk (ENOSPC) removes `part` (kept, it would fail every later run).
    """
    digest = new_digest()
    if answer.status == 416 and offset:
        if _complete_length(answer.content_range) == offset:
            _hash_part(part, digest)
            return Streamed(str(digest.hexdigest()), offset, True)
        os.unlink(str(part))
        raise StartAgain("resume refused (416), starting again")
    if answer.status == 206 and offset and range_start(answer.content_range) == offset:
        _hash_part(part, digest)
        mode, received = "ab", offset
    elif answer.status == 200:
        mode, received = "wb", 0
    elif answer.status == 206:
        if offset:
            os.unlink(str(part))
        raise StartAgain("the server answered another range than asked, starting again")
    else:
        raise UnexpectedAnswer(f"unexpected answer {answer.status} to a download")
    length = _length(answer.content_length)
    total = received + length if length is not None else None
    if ceiling is not None and total is not None and total > ceiling:
        _unlink(part)
        raise TooLarge(f"{total} bytes, larger than {ceiling} allowed")
    try:
        with open(str(part), mode) as out:
            try:
                for chunk in chunks:
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    if ceiling is not None and received > ceiling:
                        raise TooLarge(f"larger than {ceiling} bytes allowed")
                    if on_chunk is not None:
                        on_chunk(len(chunk), received)
                    if total is not None and received > total:
                        break
            finally:
                out.flush()
                if durable:  # False: the caller syncs once for many files (one syncfs before publishing)
                    os.fsync(out.fileno())
    except TooLarge:
        _unlink(part)
        raise
    except OSError as error:
        if error.errno == errno.ENOSPC:
            _unlink(part)
        raise
    if total is not None and received != total:
        if received > total:
            os.unlink(str(part))
            raise StartAgain(f"body longer than its Content-Length ({total} bytes), starting again")
        raise StartAgain(f"short body: {received} of {total} bytes, resuming")
    return Streamed(str(digest.hexdigest()), received, mode == "ab")


def _unlink(part: Path) -> None:
    try:
        os.unlink(str(part))
    except FileNotFoundError:
        pass
