"""The status document of the served release, and its HTML page.

The document has the shape of `pum.status.collect_status` (release, versions, last_run, generated), so
either can feed the page and /metrics. The default provider here needs only the served tree and
`<data_dir>/state/last_run.json`, so `pum serve` shows something useful even on a tree it didn't build.
"""

from __future__ import annotations

import html
import json
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pum.serve.http import MANIFEST

StatusProvider = Callable[[], dict[str, Any]]


def cvd_header_fields(header: bytes) -> dict[str, Any] | None:
    """The fields of a 512-byte CVD header (`ClamAV-VDB:time:version:sigs:flevel:md5:dsig:builder:stime`)."""
    text = header[:512].decode("latin-1").rstrip(" \x00")
    parts = text.split(":")
    if len(parts) < 9 or parts[0] != "ClamAV-VDB":
        return None
    try:
        return {
            "version": int(parts[2]),
            "signatures": int(parts[3]),
            "flevel": int(parts[4]),
            "builder": parts[7],
            "build_time": int(parts[8]),
        }
    except ValueError:
        return None


def served_versions(release: Path) -> dict[str, dict[str, Any]]:
    """Version of every `<db>.cvd` at the root of a release, read from its header."""
    versions: dict[str, dict[str, Any]] = {}
    try:
        names = sorted(os.listdir(release))
    except OSError:
        return versions
    for name in names:
        if not name.endswith(".cvd") or name.startswith("."):
            continue
        try:
            with open(release / name, "rb") as stream:
                fields = cvd_header_fields(stream.read(512))
        except OSError:
            continue
        if fields is not None:
            versions[name[: -len(".cvd")]] = fields
    return versions


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def read_status(docroot: Path, data_dir: Path) -> dict[str, Any]:
    """Build the status document from the served tree (manifest, CVD headers, dns.txt) and the last run."""
    document: dict[str, Any] = {"docroot": str(docroot), "release": None, "versions": {}}
    try:
        release = Path(os.path.realpath(docroot))
    except OSError:
        release = docroot
    manifest = _read_json(release / MANIFEST)
    if manifest is not None:
        document["release"] = {
            "serial": manifest.get("serial"),
            "created": manifest.get("created"),
            "source": manifest.get("source"),
            "files": len(manifest.get("files") or {}),
            "path": str(release),
        }
    elif not release.is_dir():
        document["release_error"] = f"nothing is served: {docroot} does not lead to a directory"
    document["versions"] = served_versions(release)
    try:
        document["version_record"] = (release / "dns.txt").read_text("ascii", "replace").strip() or None
    except OSError:
        document["version_record"] = None
    last_run = _read_json(data_dir / "state" / "last_run.json")
    document["last_run"] = last_run
    document["upstream"] = (last_run or {}).get("upstream") or (manifest or {}).get("source")
    document["generated"] = int(time.time())
    return document


def default_status_provider(config: Any) -> StatusProvider:
    docroot = Path(config.docroot)
    data_dir = Path(config.data_dir)
    return lambda: read_status(docroot, data_dir)


def iso_to_epoch(value: Any) -> float | None:
    """Epoch seconds of an ISO 8601 time (a naive one is taken as local time), or of a number."""
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _when(value: Any) -> str:
    seconds = iso_to_epoch(value)
    if seconds is None:
        return "-" if value is None else str(value)
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(seconds))


def render_html(document: dict[str, Any]) -> str:
    """The status page: served versions, release serial and time, last run, upstream."""
    e = html.escape
    rows = []
    for db, info in sorted(document.get("versions", {}).items()):
        rows.append(
            f"<tr><td>{e(db)}</td><td>{e(str(info.get('version')))}</td>"
            f"<td>{e(str(info.get('signatures', '-')))}</td><td>{e(_when(info.get('build_time')))}</td></tr>"
        )
    versions = "".join(rows) or '<tr><td colspan="4">no database served</td></tr>'
    release = document.get("release")
    if release:
        release_text = (
            f"serial {e(str(release.get('serial')))}, created {e(_when(release.get('created')))}"
            f" ({e(str(release.get('files', '?')))} files)"
        )
    else:
        release_text = e(document.get("release_error") or "no release published yet")
    last = document.get("last_run")
    if last:
        result = str(last.get("result", "?"))
        last_text = f'<span class="{e(result)}">{e(result)}</span>, finished {e(_when(last.get("finished")))}'
        if last.get("error"):
            last_text += f" &mdash; {e(str(last['error']))}"
    else:
        last_text = "never"
    record = document.get("version_record")
    # pum.status.collect_status keeps the upstream in last_run and lists the configured servers
    upstream = (
        document.get("upstream")
        or (last or {}).get("upstream")
        or ", ".join(document.get("upstream_servers") or [])
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>PUM status</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .8em;text-align:left}}.ok{{color:#070}}.error{{color:#b00}}</style>
</head><body>
<h1>PUM status</h1>
<table>
<tr><th>release</th><td>{release_text}</td></tr>
<tr><th>version record</th><td><code>{e(record) if record else "-"}</code></td></tr>
<tr><th>last run</th><td>{last_text}</td></tr>
<tr><th>upstream</th><td>{e(str(upstream)) if upstream else "-"}</td></tr>
<tr><th>generated</th><td>{e(_when(document.get("generated")))}</td></tr>
</table>
<h2>Served databases</h2>
<table><tr><th>database</th><th>version</th><th>signatures</th><th>built</th></tr>{versions}</table>
<p><a href="/metrics">metrics</a> &middot; <a href="/.pum/status.json">status.json</a>
&middot; <a href="/.pum/manifest.json">manifest</a></p>
</body></html>
"""
