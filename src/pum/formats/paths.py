"""Release-relative paths: the rules every side applies the same way.

Stdlib only and Python 3.6-clean: the host side uses it too.
"""

import re
from typing import Optional
from urllib.parse import quote

# a release's changelog: `.pum/changes/<S>.json` says what changed since release S (formats/changes.py)
CHANGES_DIR = ".pum/changes"
_CHANGES_NAME = re.compile(r"\.pum/changes/(0|[1-9][0-9]{0,17})\.json")


def is_hidden(relpath: str) -> bool:
    """A dot-file or a file under a dot-directory (`.pum/products.json`): PUM's own records. `pum serve`
    answers 404 for them (but the few `/.pum/` files it serves on purpose) and no sub-PUM copies them."""
    return any(part.startswith(".") for part in relpath.split("/"))


def url_path(relpath: str) -> str:
    """A release path as it goes into a URL ('#', '?', blanks and non-ASCII percent-encoded)."""
    return quote(relpath, safe="/")


def changes_path(serial: int) -> str:
    """The release path of the changes since release `serial`."""
    return f"{CHANGES_DIR}/{serial}.json"


def changes_serial(relpath: str) -> Optional[int]:
    """The serial a release path `.pum/changes/<S>.json` names, else None (nothing else is a changes file)."""
    match = _CHANGES_NAME.fullmatch(relpath)
    return int(match.group(1)) if match else None
