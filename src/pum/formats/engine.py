"""ClamAV engine versions as the vendor's upgrade compares them: `clamd -V` output, `clamav_version.txt`.

`clamd -V` prints `ClamAV 0.101.5/25916/Mon Aug 31 09:26:49 2020` (engine/daily/date; clamd/clamd.c,
print_version in shared/misc.c), or `ClamAV 0.101.5` when it finds no database. The vendor's package
carries the engine it installs in `clamav_version.txt`, dotted (`0.101.5`) or in the 7-digit form its
script logged (`found new engine version (0010105 > 0010000)`): two digits major, three minor, two patch.
Python 3.6-clean: the host side imports it.
"""

import re
from typing import NamedTuple

from . import FormatError

LIMIT = 4096  # bytes of a command's output or a version file looked at
_DOTTED = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})(?:\.([0-9]{1,3}))?")
_SEVEN = re.compile(r"([0-9][0-9])([0-9][0-9][0-9])([0-9][0-9])")
_CLAMD = re.compile(r"ClamAV ([0-9]{1,3}\.[0-9]{1,3}(?:\.[0-9]{1,3})?)(?:[-~+][0-9A-Za-z.]*)?(?:/|\s|$)")


class EngineVersion(NamedTuple):
    major: int
    minor: int
    patch: int

    def dotted(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    def seven_digit(self) -> str:
        """The vendor's form: `0010105` for 0.101.5 (the dotted form when a part does not fit)."""
        if self.major > 99 or self.minor > 999 or self.patch > 99:
            return self.dotted()
        return f"{self.major:02d}{self.minor:03d}{self.patch:02d}"


def parse_engine_version(text: str) -> EngineVersion:
    """`0.101.5`, `0.101` or `0010105` -> EngineVersion."""
    value = text.strip()
    seven = _SEVEN.fullmatch(value)
    if seven:
        return EngineVersion(int(seven.group(1)), int(seven.group(2)), int(seven.group(3)))
    dotted = _DOTTED.fullmatch(value)
    if dotted:
        return EngineVersion(int(dotted.group(1)), int(dotted.group(2)), int(dotted.group(3) or 0))
    raise FormatError(f"not an engine version (0.101.5 or 0010105): {value[:40]!r}")


def parse_clamd_version(output: bytes) -> EngineVersion:
    """The engine version from `clamd -V` (or `clamscan -V`, `freshclam -V`): its first line."""
    lines = output[:LIMIT].decode("utf-8", "replace").strip().splitlines()
    first = lines[0].strip() if lines else ""
    match = _CLAMD.match(first)
    if not match:
        raise FormatError(f"expected 'ClamAV <version>/...', got {first[:80]!r}")
    return parse_engine_version(match.group(1))


def parse_version_file(data: bytes) -> EngineVersion:
    """`clamav_version.txt`: its first non-blank line, dotted or 7-digit (a `ClamAV ` prefix allowed)."""
    try:
        text = data[:LIMIT].decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("not ASCII text") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise FormatError("empty")
    first = lines[0]
    if first.startswith("ClamAV "):
        first = first[len("ClamAV ") :].split("/")[0]
    return parse_engine_version(first)
