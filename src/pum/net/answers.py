"""What a Transport request can answer, as distinct types: no status codes to compare, no Optional path.

Without the HTTP stack, so that code deciding on an answer imports nothing of it (a DNS-answered run
imports no HTTP client at all).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pum.common.servers import Server

# hand-written records, not dataclasses: a run creates no dataclass on its import path (each one is ~0.7 ms
# of start-up, and `dataclasses` imports `inspect`); the answers are never changed once made


class Answer:
    """What every answer tells: the URL and server that gave it, and its validators."""

    __slots__ = ("url", "server", "last_modified", "etag", "headers")

    def __init__(
        self,
        *,
        url: str,
        server: Server,
        last_modified: int | None = None,
        etag: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url
        self.server = server
        self.last_modified = last_modified
        self.etag = etag
        self.headers: Mapping[str, str] = {} if headers is None else headers

    def _fields(self) -> dict[str, Any]:
        mro = type(self).__mro__
        return {name: getattr(self, name) for cls in mro for name in getattr(cls, "__slots__", ())}


class Body(Answer):
    """200 or 206: the body, held in memory (a version file, a CVD header, a list, a manifest)."""

    __slots__ = ("data",)

    def __init__(self, *, data: bytes, **answer: Any) -> None:
        super().__init__(**answer)
        self.data = data

    def without_data(self) -> Body:
        """The same answer without its body (once applied, the bytes need not be kept)."""
        fields = self._fields()
        fields["data"] = b""
        return type(self)(**fields)


class Downloaded(Answer):
    """200 or a resumed 206: the whole file at `path`, its size and sha256 computed while streaming."""

    __slots__ = ("path", "size", "sha256")

    def __init__(self, *, path: Path, size: int, sha256: str, **answer: Any) -> None:
        super().__init__(**answer)
        self.path = path
        self.size = size
        self.sha256 = sha256


class NotModified(Answer):
    """304: the copy the validators describe is still the server's."""

    __slots__ = ()


class Missing(Answer):
    """404."""

    __slots__ = ()
