"""JSON documents PUM reads from others (a release manifest, a bundle index): UTF-8, no key twice in one
object (json.loads keeps the last, so a second record for one path would pass unnoticed), bounded
nesting. Bytes in, a value or FormatError out."""

import json
from typing import Any

from . import FormatError


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise FormatError(f"key {key!r} appears twice in one object")
        result[key] = value
    return result


def load_strict_json(raw: bytes, what: str) -> Any:
    """The JSON value of `raw`; FormatError messages start with `what` (e.g. "manifest")."""
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_object_without_duplicates)
    except UnicodeDecodeError as error:
        raise FormatError(f"{what} is not UTF-8: {error}") from None
    except RecursionError:
        raise FormatError(f"{what}: JSON nested too deeply") from None
    except FormatError as error:
        raise FormatError(f"{what}: {error}") from None
    except ValueError as error:
        raise FormatError(f"{what} is not JSON: {error}") from None
