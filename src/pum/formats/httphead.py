"""The head of an HTTP/1.1 response (RFC 9112 sections 4 and 5): its status line and header fields, read
strictly and within bounds. Bytes in, the status and the fields out, or FormatError.

For pipelined answers (net/pipeline.py), where whatever is not plainly well-formed sends the request the
ordinary way instead (http.client), so this parser refuses rather than guesses: no obsolete line folding,
no field without a colon, no name outside the token characters, no control character in a value.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from pum.formats import FormatError

MAX_HEAD = 16 << 10  # bytes of status line and fields, the blank line included (nginx sends ~250)
MAX_FIELDS = 64
END = b"\r\n\r\n"

_STATUS = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9])(?: [\t -~\x80-\xff]*)?")
_FIELD = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([\t -~\x80-\xff]*?)[ \t]*")


class ResponseHead(NamedTuple):
    status: int
    # names in lower case; a repeated field's values joined with ", " (RFC 9110 5.3), so that a doubled
    # Content-Length reads "2, 2" and is no length at all
    fields: dict[str, str]
    size: int  # bytes of the head, the blank line included: where the body begins


def head_end(buffer: bytes | bytearray, start: int) -> int | None:
    """Where the head beginning at `start` ends (past its blank line), None while it is incomplete;
    FormatError when it is longer than MAX_HEAD."""
    end = buffer.find(END, start, start + MAX_HEAD)
    if end >= 0:
        return end + len(END)
    if len(buffer) - start >= MAX_HEAD:
        raise FormatError(f"a response head longer than {MAX_HEAD} bytes")
    return None


def parse_head(head: bytes) -> ResponseHead:
    """`head` is the status line, the fields and the blank line ending them (CRLF line ends)."""
    if len(head) > MAX_HEAD or not head.endswith(END):
        raise FormatError("not one whole response head")
    lines = head[: -len(END)].split(b"\r\n")
    status = _STATUS.fullmatch(lines[0])
    if status is None:
        raise FormatError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    if len(lines) - 1 > MAX_FIELDS:
        raise FormatError(f"more than {MAX_FIELDS} header fields")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        field = _FIELD.fullmatch(line)
        if field is None:
            raise FormatError(f"a malformed header field: {line[:80]!r}")
        name, value = field[1].decode("ascii").lower(), field[2].decode("latin-1")
        fields[name] = f"{fields[name]}, {value}" if name in fields else value
    return ResponseHead(int(status[1]), fields, len(head))
