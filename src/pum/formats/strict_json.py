"""JSON documents PUM reads from others (a release manifest, a bundle index): UTF-8, no key twice in one
object (json.loads keeps the last, so a second record for one path would pass unnoticed), bounded
nesting. Bytes in, a value or FormatError out."""

import json
from collections.abc import Callable
from typing import Any

from . import FormatError


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise FormatError(f"key {key!r} appears twice in one object")
        result[key] = value
    return result


# What a reader makes of one object's pairs as they are read; None: a dict is made of them. It answers
# only for objects with no key twice.
ObjectHook = Callable[[list[tuple[str, Any]]], Any]


def _made_by(objects: ObjectHook) -> Callable[[list[tuple[str, Any]]], Any]:
    def hook(pairs: list[tuple[str, Any]]) -> Any:
        value = objects(pairs)
        return _object_without_duplicates(pairs) if value is None else value

    return hook


def load_strict_json(raw: bytes, what: str, objects: ObjectHook | None = None) -> Any:
    """The JSON value of `raw`; FormatError messages start with `what` (e.g. "manifest").

    `objects` may turn an object into a value of its own as it is read (a manifest's 100,000 file records
    then never exist as dicts too); each object it answers None for becomes a dict."""
    hook = _object_without_duplicates if objects is None else _made_by(objects)
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=hook)
    except UnicodeDecodeError as error:
        raise FormatError(f"{what} is not UTF-8: {error}") from None
    except RecursionError:
        raise FormatError(f"{what}: JSON nested too deeply") from None
    except FormatError as error:
        raise FormatError(f"{what}: {error}") from None
    except ValueError as error:
        raise FormatError(f"{what} is not JSON: {error}") from None
