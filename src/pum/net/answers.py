"""What a Transport request can answer, as distinct types: no status codes to compare, no Optional path.

Without the HTTP stack, so that code deciding on an answer imports nothing of it (a DNS-answered run
imports no HTTP client at all).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pum.common.servers import Server


@dataclass(frozen=True, kw_only=True)
class Answer:
    """What every answer tells: the URL and server that gave it, and its validators."""

    url: str
    server: Server
    last_modified: int | None = None
    etag: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Body(Answer):
    """200 or 206: the body, held in memory (a version file, a CVD header, a list, a manifest)."""

    data: bytes


@dataclass(frozen=True, kw_only=True)
class Downloaded(Answer):
    """200 or a resumed 206: the whole file at `path`, its size and sha256 computed while streaming."""

    path: Path
    size: int
    sha256: str


@dataclass(frozen=True, kw_only=True)
class NotModified(Answer):
    """304: the copy the validators describe is still the server's."""


@dataclass(frozen=True, kw_only=True)
class Missing(Answer):
    """404."""
