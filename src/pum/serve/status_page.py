"""The HTML status page of `pum serve`: it renders the one status document of `pum.status`."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from pum.config import Config
from pum.fleet.pages import fleet_html
from pum.status import collect_status, local_time

StatusProvider = Callable[[], dict[str, Any]]


def default_status_provider(config: Config) -> StatusProvider:
    return lambda: collect_status(config)


_when = local_time


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
    held = document.get("held")
    banner = ""
    if held:
        banner = (
            f'<p class="held">Publishing is held since {e(_when(held.get("since")))}: '
            f"{e(str(held.get('reason')))}. Nothing new is published until <code>pum unhold</code>.</p>\n"
        )
    mirror = document.get("mirror")
    mirror_row = ""
    bundle = mirror.get("bundle") if mirror else None
    if mirror and isinstance(bundle, dict):
        mirror_row = (
            f"<tr><th>last bundle</th><td>release {e(str(bundle.get('to_serial')))} of "
            f"{e(str(mirror.get('upper')))}, exported {e(_when(bundle.get('exported')))}, imported "
            f"{e(_when(mirror.get('checked')))}; the next one: pum export --since "
            f"{e(str(bundle.get('to_serial')))}</td></tr>\n"
        )
    elif mirror:
        mirror_row = (
            f"<tr><th>upper server</th><td>{e(str(mirror.get('upper')))} serial "
            f"{e(str(mirror.get('upper_serial')))}, behind by {e(str(mirror.get('behind', '?')))}"
            f" (checked {e(_when(mirror.get('checked')))})</td></tr>\n"
        )
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
td,th{{border:1px solid #ccc;padding:.3em .8em;text-align:left}}.ok{{color:#070}}.error{{color:#b00}}
.held{{background:#fec;border:1px solid #c80;padding:.6em 1em}}</style>
</head><body>
<h1>PUM status</h1>
{banner}<table>
<tr><th>release</th><td>{release_text}</td></tr>
<tr><th>version record</th><td><code>{e(record) if record else "-"}</code></td></tr>
<tr><th>last run</th><td>{last_text}</td></tr>
<tr><th>upstream</th><td>{e(str(upstream)) if upstream else "-"}</td></tr>
{mirror_row}<tr><th>generated</th><td>{e(_when(document.get("generated")))}</td></tr>
</table>
<h2>Served databases</h2>
<table><tr><th>database</th><th>version</th><th>signatures</th><th>built</th></tr>{versions}</table>
{fleet_html(document.get("fleet"))}
<p><a href="/metrics">metrics</a> &middot; <a href="/.pum/status.json">status.json</a>
&middot; <a href="/.pum/manifest.json">manifest</a></p>
</body></html>
"""
