"""Product lists (`*.lst`): md5sum-format lines naming product files by relative path and MD5.

Read by proscanup on the hosts too: standard library only, Python 3.6-clean.
"""

import re
import unicodedata
from typing import Dict, List, NamedTuple, Optional

from . import FormatError

# GNU md5sum writes "<md5>  <path>" (text mode) or "<md5> *<path>" (binary mode).
_LINE = re.compile(r"(?P<md5>[0-9a-fA-F]{32})(?:  | \*)(?P<path>.*)", re.DOTALL)
# NAME_MAX and PATH_MAX of Linux, in bytes.
_MAX_COMPONENT_BYTES = 255
_MAX_PATH_BYTES = 4096
# Printable ASCII holds no control or invisible character: such a path (nearly every one) skips the
# check of each character's Unicode category, which costs more than everything else here.
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")


class ListEntry(NamedTuple):
    """One product file named by a list: its MD5 (lowercase hex), its path, the line it is on."""

    md5: str
    path: str
    line: int


def _unreadable(char: str) -> bool:
    # Controls, format characters (bidi overrides can make a name read as another), surrogates,
    # private-use and unassigned code points, and line/paragraph separators.
    return unicodedata.category(char)[0] == "C" or unicodedata.category(char) in ("Zl", "Zp")


def safe_relative_path(path: str) -> str:
    """Return `path` as a canonical relative POSIX path that stays inside its tree, or raise FormatError.

    Refused: empty, absolute, `..` or `.` components (one or more leading `./` are dropped, as
    `find . | xargs md5sum` writes them), empty components (`a//b`, a trailing `/`), backslashes,
    control and other invisible characters, blanks at either end, and names too long for Linux.
    """
    canonical = path
    while canonical.startswith("./"):
        canonical = canonical[2:]
    if not canonical:
        raise FormatError(f"empty path: {path!r}")
    if canonical.startswith("/"):
        raise FormatError(f"absolute path {path!r}: expected a path relative to the tree")
    if "\\" in canonical:
        raise FormatError(f"backslash in path {path!r}: expected '/' as the only separator")
    printable_ascii = _PRINTABLE_ASCII.fullmatch(canonical) is not None
    for char in "" if printable_ascii else canonical:
        if _unreadable(char):
            raise FormatError(f"control or invisible character U+{ord(char):04X} in path {path!r}")
    if canonical != canonical.strip():
        raise FormatError(f"blank at the start or end of path {path!r}")
    try:
        encoded = canonical.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError(f"path {path!r} is not valid UTF-8") from None
    if len(encoded) > _MAX_PATH_BYTES:
        raise FormatError(f"path is {len(encoded)} bytes long, at most {_MAX_PATH_BYTES}")
    for component in canonical.split("/"):
        if component == "":
            raise FormatError(f"empty component in path {path!r} ('//' or a trailing '/')")
        if component in (".", ".."):
            raise FormatError(f"{component!r} component in path {path!r}: expected a path inside the tree")
        if len(component.encode("utf-8")) > _MAX_COMPONENT_BYTES:
            raise FormatError(f"component of path {path!r} is longer than {_MAX_COMPONENT_BYTES} bytes")
    return canonical


def parse_product_list(text: str, list_name: str) -> List[ListEntry]:
    """Parse a product list; errors read `<list_name>:<line>: what is wrong`.

    Blank lines and lines starting with `#` are skipped; a CR before the LF is dropped. Paths go
    through `safe_relative_path`, so `./a` and `a` are the same file, and naming it twice is an error.
    """
    entries: List[ListEntry] = []
    first_seen: Dict[str, int] = {}
    for number, raw_line in enumerate(text.split("\n"), start=1):
        line = raw_line[:-1] if raw_line.endswith("\r") else raw_line
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise FormatError(f"{list_name}:{number}: expected '<32 hex md5>  <path>', got {line[:80]!r}")
        try:
            path = safe_relative_path(match.group("path"))
        except FormatError as error:
            raise FormatError(f"{list_name}:{number}: {error}") from None
        if path in first_seen:
            raise FormatError(
                f"{list_name}:{number}: duplicate path {path!r} (first on line {first_seen[path]})"
            )
        first_seen[path] = number
        entries.append(ListEntry(md5=match.group("md5").lower(), path=path, line=number))
    return entries


# Virus databases and the version record come only from upstream, verified; refused at any depth for
# vendor lists and operator content, because a freshclam DatabaseMirror URL may name a subdirectory.
VDF_SUFFIXES = (".cvd", ".cld", ".cdiff", ".sign")
VERSION_FILE = "dns.txt"
# a database container: never served (sync/vdfcheck.py says why), so never taken as a plain file either
CONTAINER_SUFFIX = ".cud"


def is_vdf_name(relpath: str) -> bool:
    """A name server mode's rules check (sync/vdfcheck.py), at any depth: a VDF, a container, the version
    record. Here, not there: a copy of plain files asks it of each and needs no signature verifier."""
    name = relpath.rsplit("/", 1)[-1]
    return name == VERSION_FILE or name.endswith(VDF_SUFFIXES + (CONTAINER_SUFFIX,))


def reserved_path_problem(path: str) -> Optional[str]:
    """Why product or operator content may not take this (safe, relative) path of a release, or None."""
    parts = path.split("/")
    name = parts[-1]
    for suffix in VDF_SUFFIXES:
        if name.endswith(suffix):
            return f"it would shadow a VDF file (*{suffix}); virus databases come only from upstream"
    if name == VERSION_FILE:
        return f"it would shadow the version record {VERSION_FILE}; it comes only from upstream"
    if any(part.startswith(".") for part in parts):
        return "a dot-file: those are PUM's own (.pum/) and never served"
    return None
