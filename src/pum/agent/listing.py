"""The product list as proscanup reads it: fetch it from the PUM and sort its entries into modules, the
post-update script and upgrade packages.

Entries are paths from the root of the served tree (see docs/architecture.md, "Product lists"). For the
list `ibm/power/PSHB06.lst`:
- `ibm/power/post_update.sh` is the post-update script (kept locally as `<install>/bin/post_update.sh`);
- `<name>-<dotted version>[.<arch>].tar.gz` (or `.tgz`) anywhere, e.g. `ibm/packages/...`, is an upgrade
  package, used only by `proscanup upgrade`;
- every other entry below `ibm/power/` is a module, installed at the same path below the install directory
  (`ibm/power/bin/proscand` -> `/opt/proscan/bin/proscand`);
- anything else is another product's file and is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pum.agent.config import AgentConfig
from pum.agent.http import UpdateClient
from pum.errors import VerifyError
from pum.formats import FormatError
from pum.formats.productlist import ListEntry, parse_product_list

Say = Callable[[str], None]
POST_UPDATE = "post_update.sh"
_PACKAGE = re.compile(
    r"^(?P<name>.+?)-(?P<version>\d+(?:\.\d+)+)(?:\.(?P<arch>[A-Za-z_][A-Za-z0-9_]*))?\.(?:tar\.gz|tgz)$"
)


@dataclass(frozen=True)
class Module:
    entry: ListEntry
    target: Path
    relative: str  # below the install directory


@dataclass(frozen=True)
class Package:
    entry: ListEntry
    version: tuple[int, ...]
    version_text: str

    @property
    def name(self) -> str:
        return self.entry.path.rpartition("/")[2]


@dataclass
class Plan:
    modules: list[Module] = field(default_factory=list)
    post_update: ListEntry | None = None
    packages: list[Package] = field(default_factory=list)
    others: list[ListEntry] = field(default_factory=list)


def parse_version(text: str) -> tuple[int, ...]:
    """`0.101.5` -> (0, 101, 5); trailing zero parts don't count, so 1.0 == 1.0.0."""
    if not re.fullmatch(r"\d+(\.\d+)*", text):
        raise ValueError(f"not a dotted version: {text!r}")
    parts = [int(part) for part in text.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def fetch_plan(client: UpdateClient, config: AgentConfig, say: Say) -> Plan:
    name = config.product_list.rpartition("/")[2]
    say(f"Trying update from server {client.url(config.product_list)}")
    say(f"Downloading file {name}, Please wait...")
    data = client.get_bytes(config.product_list)
    try:
        entries = parse_product_list(data.decode("utf-8"), client.url(config.product_list))
    except (UnicodeDecodeError, FormatError) as error:
        raise VerifyError(f"product list refused: {error}") from None
    say(f"Success: Get Update list({name})")
    return classify(config, entries)


def classify(config: AgentConfig, entries: list[ListEntry]) -> Plan:
    plan = Plan()
    prefix = f"{config.list_dir}/" if config.list_dir else ""
    for entry in entries:
        basename = entry.path.rpartition("/")[2]
        package = _PACKAGE.match(basename)
        if package:
            plan.packages.append(Package(entry, parse_version(package["version"]), package["version"]))
        elif entry.path == prefix + POST_UPDATE:
            plan.post_update = entry
        elif entry.path.startswith(prefix):
            relative = entry.path[len(prefix) :]
            target = config.install_dir / relative
            if target == config.post_update_path:
                plan.others.append(entry)  # only the post-update protocol writes that file
            else:
                plan.modules.append(Module(entry, target, relative))
        else:
            plan.others.append(entry)
    return plan
