"""The rollout document: which share of the fleet installs an upgrade package now.

`pum rollout PACKAGE-PATH --percent N [--hosts FILE]` publishes `<package path>.rollout` beside the
package; `proscanup upgrade` reads it and takes part when its host id (or host name) is listed, or when the
stable hash of the package path and its host id falls inside the share. The hash puts each host at one fixed
place in [0, 100) per package, so raising the percentage only ever adds hosts. Python 3.6-clean.

    {"generation": 1, "package": "ibm/packages/proscan-6.0.6.9.tar.gz", "percent": 25.0,
     "hosts": ["8d0b5a3e-...", "scanner07"]}
"""

import hashlib
import json
import math
import re
from typing import FrozenSet, Iterable, NamedTuple

from . import FormatError

GENERATION = 1
SUFFIX = ".rollout"
MAX_HOSTS = 100_000
_HOST = re.compile(r"[!-~]{1,255}")  # str.isascii is Python 3.7


class Rollout(NamedTuple):
    package: str
    percent: float
    hosts: FrozenSet[str]


def host_share(package: str, host_id: str) -> float:
    """Where this host falls for this package, in [0, 100)."""
    digest = hashlib.sha256(f"{package}\n{host_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") * 100.0 / (1 << 64)


def takes_part(rollout: Rollout, host_id: str, host_name: str) -> bool:
    if host_id in rollout.hosts or host_name in rollout.hosts:
        return True
    return host_share(rollout.package, host_id) < rollout.percent


def make_rollout(package: str, percent: float, hosts: Iterable[str]) -> Rollout:
    if not (isinstance(percent, (int, float)) and math.isfinite(percent) and 0 <= percent <= 100):
        raise FormatError(f"percent must be between 0 and 100, got {percent!r}")
    names = frozenset(hosts)
    if len(names) > MAX_HOSTS:
        raise FormatError(f"at most {MAX_HOSTS} hosts, got {len(names)}")
    for name in names:
        if not _HOST.fullmatch(name):
            raise FormatError(f"a host is an id or a name, printable ASCII without blanks: {name[:80]!r}")
    return Rollout(package, float(percent), names)


def render_rollout(rollout: Rollout) -> bytes:
    document = {
        "generation": GENERATION,
        "package": rollout.package,
        "percent": rollout.percent,
        "hosts": sorted(rollout.hosts),
    }
    return (json.dumps(document, indent=1) + "\n").encode()


def parse_rollout(data: bytes, package: str) -> Rollout:
    """The document published for `package`; one naming another package is refused."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise FormatError(f"not a JSON document ({error})") from None
    if not isinstance(document, dict) or document.get("generation") != GENERATION:
        raise FormatError(f"expected a rollout document of generation {GENERATION}")
    if document.get("package") != package:
        raise FormatError(f"names the package {str(document.get('package'))[:200]!r}, expected {package!r}")
    percent = document.get("percent")
    hosts = document.get("hosts", [])
    if isinstance(percent, bool) or not isinstance(percent, (int, float)):
        raise FormatError(f"percent must be a number, got {percent!r}")
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise FormatError("hosts must be a list of strings")
    return make_rollout(package, percent, hosts)
