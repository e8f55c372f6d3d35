"""Status as data (devpi's /+status): one document that `pum status`, the HTML page and /metrics render."""

from __future__ import annotations

import time

from pum.config import Config
from pum.errors import PumError
from pum.net.cooldown import CoolDowns
from pum.store import Store
from pum.sync.vdf import served_header


def collect_status(config: Config) -> dict:
    store = Store(config)
    document: dict = {
        "mode": config.mode,
        "docroot": str(config.docroot),
        "held": store.held(),
        "release": None,
        "versions": {},
        "last_run": store.read_state("last_run.json"),
        "upstream_servers": [str(s) for s in config.update_servers],
        "cool_downs": {},
    }
    try:
        manifest = store.current_manifest()
    except PumError as error:
        document["release_error"] = str(error)
        manifest = None
    current = store.current_dir()
    if manifest is not None:
        document["release"] = {
            "serial": manifest.serial,
            "created": manifest.created,
            "files": len(manifest.files),
            "path": str(current),
        }
    for db in config.databases:
        header = served_header(current, db)
        if header is not None:
            document["versions"][db] = {
                "version": header.version,
                "build_time": header.build_time,
                "signatures": header.signatures,
            }
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


def render_text(document: dict) -> str:
    lines = [f"mode: {document['mode']}", f"docroot: {document['docroot']}"]
    release = document.get("release")
    lines.append(
        f"release: {release['serial']} created {release['created']} ({release['files']} files)"
        if release
        else "release: none yet"
    )
    for db, info in document["versions"].items():
        built = time.strftime("%Y-%m-%d %H:%M", time.localtime(info["build_time"]))
        lines.append(f"  {db}: version {info['version']} built {built}")
    last = document.get("last_run")
    if last:
        detail = f" ({last['error']})" if last.get("error") else ""
        lines.append(f"last run: {last['result']} at {last['finished']}{detail}")
        if last.get("upstream"):
            lines.append(f"upstream: {last['upstream']}")
    else:
        lines.append("last run: never")
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
