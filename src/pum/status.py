"""Status as data (devpi's /+status): one document that `pum status`, the HTML page and /metrics render."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from pum.config import Config
from pum.formats import FormatError
from pum.formats.cvd import CVD_HEADER_SIZE, parse_cvd_header
from pum.formats.manifest import parse_manifest
from pum.net.cooldown import CoolDowns
from pum.store import MANIFEST_PATH, Store


def collect_status(config: Config) -> dict[str, Any]:
    """The served release, its versions and version record, the last run, upstream, hold and cool-downs.

    Read from the served tree and `state/` only, so `pum serve` shows it for a tree it did not build.
    """
    store = Store(config)
    last_run = store.read_state("last_run.json")
    document: dict[str, Any] = {
        "mode": config.mode,
        "docroot": str(config.docroot),
        "held": store.held(),
        "release": None,
        "versions": {},
        "version_record": None,
        "last_run": last_run,
        "upstream_servers": [str(s) for s in config.update_servers],
        "cool_downs": {},
    }
    release = Path(os.path.realpath(config.docroot))
    try:
        manifest = parse_manifest((release / MANIFEST_PATH).read_bytes())
    except FileNotFoundError:
        manifest = None
        if not release.is_dir():
            document["release_error"] = f"nothing is served: {config.docroot} does not lead to a directory"
    except (OSError, FormatError) as error:
        manifest = None
        document["release_error"] = f"{release / MANIFEST_PATH}: {error}; run 'pum verify'"
    if manifest is not None:
        document["release"] = {
            "serial": manifest.serial,
            "created": manifest.created,
            "source": manifest.source,
            "files": len(manifest.files),
            "path": str(release),
        }
    document["versions"] = served_versions(release)
    version_file = release / "dns.txt"
    if version_file.is_file():
        document["version_record"] = version_file.read_text("ascii", "replace").strip() or None
    document["upstream"] = (last_run or {}).get("upstream") or (manifest.source if manifest else None)
    cool_downs = CoolDowns(config.state_dir / "cooldown.json")
    for server in config.update_servers:
        active = cool_downs.active(server)
        if active:
            document["cool_downs"][str(server)] = active
    mirror = store.read_state("mirror.json")
    if mirror:
        document["mirror"] = mirror
    document["generated"] = int(time.time())
    return document


_PATH_KEYS = frozenset({"docroot", "path", "data_dir", "logfile"})
# an absolute path: after a start, a blank, a quote, '(' or '=' (not inside a URL's "//host/x")
_ABSOLUTE_PATH = re.compile(r"(?:(?<=^)|(?<=[\s'\"(=]))/[^\s'\"),;]*")


def without_paths(document: Any) -> Any:
    """The status document as others than this host see it: no filesystem path of the server."""
    if isinstance(document, dict):
        return {key: without_paths(value) for key, value in document.items() if key not in _PATH_KEYS}
    if isinstance(document, list):
        return [without_paths(value) for value in document]
    if isinstance(document, str):
        return _ABSOLUTE_PATH.sub("<path>", document)
    return document


def served_versions(release: Path) -> dict[str, dict[str, Any]]:
    """Every `<db>.cvd` at the root of a release, by its 512-byte header (whatever `databases` says:
    a sub-PUM serves what its upper carries)."""
    versions: dict[str, dict[str, Any]] = {}
    try:
        names = sorted(name for name in os.listdir(release) if name.endswith(".cvd"))
    except OSError:
        return versions
    for name in names:
        try:
            with open(release / name, "rb") as stream:
                header = parse_cvd_header(stream.read(CVD_HEADER_SIZE))
        except (OSError, FormatError):
            continue
        versions[name[: -len(".cvd")]] = {
            "version": header.version,
            "signatures": header.signatures,
            "flevel": header.flevel,
            "builder": header.builder,
            "build_time": header.build_time,
        }
    return versions


def render_text(document: dict[str, Any]) -> str:
    lines = [f"mode: {document['mode']}", f"docroot: {document['docroot']}"]
    release = document.get("release")
    if release:
        lines.append(f"release: {release['serial']} created {release['created']} ({release['files']} files)")
    else:
        lines.append(f"release: {document.get('release_error') or 'none yet'}")
    for db, info in document["versions"].items():
        built = time.strftime("%Y-%m-%d %H:%M", time.localtime(info["build_time"]))
        lines.append(f"  {db}: version {info['version']} built {built}")
    last = document.get("last_run")
    if last:
        detail = f" ({last['error']})" if last.get("error") else ""
        lines.append(f"last run: {last['result']} at {last['finished']}{detail}")
    else:
        lines.append("last run: never")
    if document.get("upstream"):
        lines.append(f"upstream: {document['upstream']}")
    if document.get("held"):
        lines.append(f"HELD: {document['held']}")
    for server, info in document.get("cool_downs", {}).items():
        until = time.strftime("%Y-%m-%d %H:%M", time.localtime(info["until"]))
        lines.append(f"cooling down: {server} until {until} ({info['reason']})")
    mirror = document.get("mirror")
    if mirror:
        lines.append(
            f"upper server: {mirror.get('upper')} serial {mirror.get('upper_serial')} "
            f"(behind by {mirror.get('behind', '?')})"
        )
    return "\n".join(lines)
