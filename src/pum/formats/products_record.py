"""`.pum/products.json`: what the products source put in a release, per product list: each file's md5 (as
the list says it) and sha256 (as stored). Bytes in, a record out; a record in, canonical bytes out."""

import json
import re
from typing import Any, NamedTuple

from . import FormatError
from .productlist import safe_relative_path

GENERATION = 1
_MD5_HEX = re.compile(r"[0-9a-f]{32}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class ListedFile(NamedTuple):
    md5: str
    sha256: str


# list path -> file path -> what it is
ProductsRecord = dict[str, dict[str, ListedFile]]


def parse_products_record(data: bytes) -> ProductsRecord:
    """The record as written by `products_record_bytes`; anything else is a FormatError saying what."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise FormatError(f"not JSON: {error}") from None
    lists = _object(_object(document, "the record").get("lists"), "lists")
    record: ProductsRecord = {}
    for list_path, entry in lists.items():
        files = _object(_object(entry, f"lists[{list_path!r}]").get("files"), f"{list_path}: files")
        record[_path(list_path)] = {
            _path(path): _listed(value, f"{list_path}: {path}") for path, value in files.items()
        }
    return record


def products_record_bytes(record: ProductsRecord) -> bytes:
    document = {
        "generation": GENERATION,
        "lists": {
            list_path: {
                "files": {path: {"md5": f.md5, "sha256": f.sha256} for path, f in sorted(files.items())}
            }
            for list_path, files in sorted(record.items())
        },
    }
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FormatError(f"{what} must be an object, got {type(value).__name__}")
    return value


def _path(path: str) -> str:
    if safe_relative_path(path) != path:
        raise FormatError(f"path {path!r} is not canonical")
    return path


def _listed(value: object, what: str) -> ListedFile:
    entry = _object(value, what)
    md5, sha256 = entry.get("md5"), entry.get("sha256")
    if not isinstance(md5, str) or not _MD5_HEX.fullmatch(md5):
        raise FormatError(f"{what}: md5 must be 32 hex digits, got {md5!r}")
    if not isinstance(sha256, str) or not _SHA256_HEX.fullmatch(sha256):
        raise FormatError(f"{what}: sha256 must be 64 hex digits, got {sha256!r}")
    return ListedFile(md5, sha256)
