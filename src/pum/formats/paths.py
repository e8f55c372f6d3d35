"""Release-relative paths: the rules every side applies the same way.

Stdlib only and Python 3.6-clean: the host side uses it too.
"""

from urllib.parse import quote


def is_hidden(relpath: str) -> bool:
    """A dot-file or a file under a dot-directory (`.pum/products.json`): PUM's own records. `pum serve`
    answers 404 for them (but the few `/.pum/` files it serves on purpose) and no sub-PUM copies them."""
    return any(part.startswith(".") for part in relpath.split("/"))


def url_path(relpath: str) -> str:
    """A release path as it goes into a URL ('#', '?', blanks and non-ASCII percent-encoded)."""
    return quote(relpath, safe="/")
