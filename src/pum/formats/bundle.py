"""The index of a bundle (`pum-bundle.json`): which releases it goes between, and the size and sha256 of
everything in it. A bundle carries a PUM release across an air gap: the index, the upper's release
manifest (`manifest.json.gz`) and the files the closed side lacks (`files/<release path>`)."""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from . import FormatError
from .manifest import SHA256_HEX
from .productlist import safe_relative_path
from .strict_json import load_strict_json

GENERATION = 1
INDEX_NAME = "pum-bundle.json"
# gzip'd: at ~130 bytes a file, the manifest would outweigh a day of changes on a large tree
MANIFEST_NAME = "manifest.json.gz"
FILES_DIR = "files"
KIND = "pum-bundle"
_CREATED = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_ORIGIN = re.compile(r"[A-Za-z0-9_.:\[\]-]{1,255}")


@dataclass(frozen=True)
class Carried:
    """One file in the bundle: its size in bytes and sha256 (lowercase hex)."""

    size: int
    sha256: str

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise FormatError(f"size must be a non-negative integer, got {self.size!r}")
        if not isinstance(self.sha256, str) or not SHA256_HEX.fullmatch(self.sha256):
            raise FormatError(f"sha256 must be 64 lowercase hex digits, got {self.sha256!r}")


@dataclass(frozen=True)
class BundleIndex:
    """`from_serial` is the release the closed side must already hold (None: a full bundle that brings
    everything); `to_serial` the release the bundle brings; `files` maps release paths to what is carried."""

    origin: str
    from_serial: int | None
    to_serial: int
    created: str
    manifest: Carried
    files: Mapping[str, Carried]
    generation: int = GENERATION

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not _ORIGIN.fullmatch(self.origin):
            raise FormatError(f"origin must be a host name, got {self.origin!r}")
        _serial(self.to_serial, "to_serial")
        if self.from_serial is not None and _serial(self.from_serial, "from_serial") > self.to_serial:
            raise FormatError(f"from_serial {self.from_serial} is after to_serial {self.to_serial}")
        if not isinstance(self.created, str) or not _CREATED.fullmatch(self.created):
            raise FormatError(f"created must be ISO 8601 UTC like 2025-09-01T03:32:05Z, got {self.created!r}")
        if not isinstance(self.manifest, Carried):
            raise FormatError("manifest must be a Carried record")
        for path, carried in self.files.items():
            if safe_relative_path(path) != path:
                raise FormatError(f"file path {path!r} is not canonical")
            if not isinstance(carried, Carried):
                raise FormatError(f"files[{path!r}] must be a Carried record")
        object.__setattr__(self, "files", MappingProxyType(dict(sorted(self.files.items()))))

    @property
    def full(self) -> bool:
        return self.from_serial is None

    @property
    def payload_bytes(self) -> int:
        return self.manifest.size + sum(carried.size for carried in self.files.values())

    def to_json(self) -> bytes:
        document = {
            "kind": KIND,
            "generation": self.generation,
            "origin": self.origin,
            "from_serial": self.from_serial,
            "to_serial": self.to_serial,
            "created": self.created,
            "manifest": _carried_json(self.manifest),
            "files": {path: _carried_json(carried) for path, carried in self.files.items()},
        }
        return (json.dumps(document, sort_keys=True, indent=1) + "\n").encode("utf-8")


def member_name(relpath: str) -> str:
    """Where a release file sits inside the bundle."""
    return f"{FILES_DIR}/{relpath}"


def _carried_json(carried: Carried) -> dict[str, Any]:
    return {"size": carried.size, "sha256": carried.sha256}


def _serial(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise FormatError(f"{what} must be a positive integer, got {value!r}")
    return value


def _carried(value: object, what: str) -> Carried:
    if not isinstance(value, dict) or set(value) != {"size", "sha256"}:
        raise FormatError(f"{what} must be {{size, sha256}}, got {value!r}")
    try:
        return Carried(value["size"], value["sha256"])
    except FormatError as error:
        raise FormatError(f"{what}: {error}") from None


def parse_bundle_index(raw: bytes) -> BundleIndex:
    """Parse and validate `pum-bundle.json`; a FormatError says what is wrong."""
    document = load_strict_json(raw, "bundle index")
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise FormatError(f"not a PUM bundle index (kind {KIND!r} expected)")
    generation = document.get("generation")
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 1:
        raise FormatError(f"bundle index: generation must be a positive integer, got {generation!r}")
    if generation > GENERATION:
        raise FormatError(f"bundle generation {generation} is newer than this PUM reads ({GENERATION})")
    missing = [
        key
        for key in ("origin", "from_serial", "to_serial", "created", "manifest", "files")
        if key not in document
    ]
    if missing:
        raise FormatError(f"bundle index lacks {', '.join(missing)}")
    files = document["files"]
    if not isinstance(files, dict):
        raise FormatError("bundle index: files must be an object")
    try:
        return BundleIndex(
            origin=document["origin"],
            from_serial=document["from_serial"],
            to_serial=document["to_serial"],
            created=document["created"],
            manifest=_carried(document["manifest"], "manifest"),
            files={_path(path): _carried(value, f"files[{path!r}]") for path, value in files.items()},
            generation=generation,
        )
    except FormatError as error:
        raise FormatError(f"bundle index: {error}") from None


def _path(path: object) -> str:
    if not isinstance(path, str) or safe_relative_path(path) != path:
        raise FormatError(f"file path {path!r} is not a canonical relative path")
    return path
