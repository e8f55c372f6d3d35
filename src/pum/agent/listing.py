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

A module may not write what is not a module: the server's reserved-path rule holds here too (no VDF
names, no version record, no dot-directories such as `.ssh`), and neither the installed `VERSION`, the
virus database directory nor proscanup's own state directory are module territory. One such entry and the
whole list is refused: a list that aims at them is not one to take modules from.
"""

import os
import re
from pathlib import Path
from typing import Callable, List, NamedTuple, Optional, Tuple

from pum.agent.proscan_conf import AgentConfig
from pum.agent.pum_client import UpdateClient
from pum.errors import VerifyError
from pum.formats import FormatError
from pum.formats.productlist import ListEntry, parse_product_list, reserved_path_problem

Say = Callable[[str], None]
POST_UPDATE = "post_update.sh"
_PACKAGE = re.compile(
    r"^(?P<name>.+?)-(?P<version>\d+(?:\.\d+)+)(?:\.(?P<arch>[A-Za-z_][A-Za-z0-9_]*))?\.(?:tar\.gz|tgz)$"
)


class Module(NamedTuple):
    entry: ListEntry
    target: Path
    relative: str  # below the install directory


class Package(NamedTuple):
    entry: ListEntry
    version: Tuple[int, ...]
    version_text: str

    @property
    def name(self) -> str:
        return self.entry.path.rpartition("/")[2]


class Plan:
    def __init__(self) -> None:
        self.modules: List[Module] = []
        self.post_update: Optional[ListEntry] = None
        self.packages: List[Package] = []
        self.others: List[ListEntry] = []


def parse_version(text: str) -> Tuple[int, ...]:
    """`0.101.5` -> (0, 101, 5); trailing zero parts don't count, so 1.0 == 1.0.0."""
    if not re.match(r"^\d+(\.\d+)*$", text) or text.endswith("\n"):
        raise ValueError(f"not a dotted version: {text!r}")
    parts = [int(part) for part in text.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def fetch_plan(client: UpdateClient, config: AgentConfig, say: Say, report_query: str = "") -> Plan:
    name = config.product_list.rpartition("/")[2]
    say(f"Trying update from server {client.url(config.product_list)}")
    say(f"Downloading file {name}, Please wait...")

    def failover(url: str, why: str, next_url: str) -> None:
        say(f"Server {url} failed: {why}")
        say(f"Trying update from server {next_url}")

    data = client.get_bytes(config.product_list, query=report_query, on_failover=failover)
    shown = client.url(config.product_list)
    client.check_signed_data(config.product_list, data, shown)
    try:
        entries = parse_product_list(data.decode("utf-8"), shown)
    except (UnicodeDecodeError, FormatError) as error:
        raise VerifyError(f"product list refused: {error}") from None
    say(f"Success: Get Update list({name})")
    return classify(config, entries, shown)


def classify(config: AgentConfig, entries: List[ListEntry], list_name: str = "product list") -> Plan:
    plan = Plan()
    prefix = f"{config.list_dir}/" if config.list_dir else ""
    for entry in entries:
        basename = entry.path.rpartition("/")[2]
        package = _PACKAGE.match(basename)
        if package:
            plan.packages.append(
                Package(entry, parse_version(package.group("version")), package.group("version"))
            )
        elif entry.path == prefix + POST_UPDATE:
            plan.post_update = entry
        elif entry.path.startswith(prefix):
            relative = entry.path[len(prefix) :]
            target = config.install_dir / relative
            if target == config.post_update_path:
                plan.others.append(entry)  # only the post-update protocol writes that file
                continue
            problem = module_path_problem(config, relative, target)
            if problem:
                raise VerifyError(f"{list_name}:{entry.line}: entry {entry.path!r} refused: {problem}")
            plan.modules.append(Module(entry, target, relative))
        else:
            plan.others.append(entry)
    return plan


def module_path_problem(config: AgentConfig, relative: str, target: Path) -> Optional[str]:
    """Why a module may not be written at `target` (`relative` below the install directory), or None."""
    problem = reserved_path_problem(relative)
    if problem:
        return problem
    if target == config.version_file or relative == "VERSION":
        return f"it would overwrite the installed version file {config.version_file}; only upgrades write it"
    for territory, whose in ((config.database_dir, "virus databases"), (config.state_dir, "proscanup")):
        if target == territory or territory in target.parents:
            return f"it would write into {territory}, which belongs to the {whose}"
    inside = os.path.realpath(str(config.install_dir)).rstrip("/") + "/"
    if not (os.path.realpath(str(target.parent)) + "/").startswith(inside):
        return f"a symbolic link on its way leads out of {config.install_dir}"
    return None
