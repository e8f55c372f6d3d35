"""What proscanup keeps about this host in `<StateDir>`: its id and the last run's result, and the fleet
report built from them (the query string of the product-list request, which every web server logs).

`host_id` holds one UUID4, made on the first run: the PUM's fleet view tells hosts apart by it.
"""

import hashlib
import json
import os
import re
import socket
import subprocess
import uuid
from pathlib import Path
from typing import List, NamedTuple, Optional, Tuple
from urllib.parse import quote, urlencode

from pum.agent.listing import Module
from pum.agent.proscan_conf import AgentConfig
from pum.common.hashing import md5_file

HOST_ID = "host_id"
LAST_RUN = "last_run.json"
MAX_VALUE = 64  # characters of each reported value
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
_ENGINE = re.compile(r"ClamAV (\d+(?:\.\d+)+)")


class LastRun(NamedTuple):
    modules: str = ""  # 8 hex of the sha256 over sorted "path md5" lines of the installed modules
    last: str = ""  # "ok" or "failed:<step>"


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(str(tmp), "w") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(str(tmp), str(path))


def host_id(state_dir: Path) -> str:
    """This host's UUID4, made and kept in `<StateDir>/host_id` on first use (a damaged one is replaced)."""
    path = state_dir / HOST_ID
    try:
        with open(str(path)) as stream:
            text = stream.read(100).strip()
        if _UUID.match(text):
            return text
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    made = str(uuid.uuid4())
    _write_atomically(path, made + "\n")
    return made


def modules_digest(lines: List[str]) -> str:
    """8 hex of the sha256 over the sorted `path md5` lines of the installed modules."""
    return hashlib.sha256("".join(line + "\n" for line in sorted(lines)).encode("utf-8")).hexdigest()[:8]


def installed_modules_digest(modules: List[Module]) -> str:
    lines = [f"{m.relative} {md5_file(m.target)}" for m in modules if m.target.is_file()]
    return modules_digest(lines)


def read_last_run(state_dir: Path) -> LastRun:
    try:
        with open(str(state_dir / LAST_RUN)) as stream:
            document = json.loads(stream.read(4096))
        return LastRun(
            str(document.get("modules", ""))[:MAX_VALUE], str(document.get("last", ""))[:MAX_VALUE]
        )
    except (OSError, ValueError, AttributeError):
        return LastRun()


def write_last_run(state_dir: Path, last_run: LastRun) -> None:
    _write_atomically(state_dir / LAST_RUN, json.dumps(dict(last_run._asdict()), sort_keys=True) + "\n")


def engine_version(freshclam: str) -> Optional[str]:
    """The ClamAV engine version `freshclam --version` names (ClamAV 1.4.2/27...), or None."""
    try:
        process = subprocess.Popen(
            [freshclam, "--version"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
    except OSError:
        return None
    try:
        output, _ = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return None
    match = _ENGINE.search(output[:4096].decode("ascii", "replace"))
    return match.group(1) if match else None


def product_version(config: AgentConfig) -> Optional[str]:
    try:
        with open(str(config.version_file), "rb") as stream:
            text = stream.read(100).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if re.match(r"^\d+(\.\d+)*$", text) else None


def _host_id_or_nothing(state_dir: Path) -> str:
    try:
        return host_id(state_dir)
    except OSError:  # a read-only StateDir: the report goes without an id, the update goes on
        return ""


def report_query(config: AgentConfig) -> str:
    """The fleet report: `host=…&name=…&engine=…&product=…&modules=…&last=…&check=signed|md5`, each value
    at most 64 characters; empty with ReportState=no."""
    if not config.report_state:
        return ""
    last_run = read_last_run(config.state_dir)
    fields = [
        ("host", _host_id_or_nothing(config.state_dir)),
        ("name", socket.gethostname()),
        ("engine", engine_version(config.freshclam) or ""),
        ("product", product_version(config) or ""),
        ("modules", last_run.modules),
        ("last", last_run.last),
        # how this host checks what it installs: the signed metadata (TrustedRoot) or MD5 only (legacy)
        ("check", "signed" if config.trusted_root is not None else "md5"),
    ]
    values: List[Tuple[str, str]] = [(key, value[:MAX_VALUE]) for key, value in fields if value]
    return urlencode(values, quote_via=quote)
