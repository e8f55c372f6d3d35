"""Status as data (devpi's /+status): one document that `pum status`, the HTML page and /metrics render.

Times in the document are UTC with a `Z` (it is JSON); `pum status` and the page show local time with
its offset (`local_time`). Under Apache or nginx, `pum run` (and hold, unhold, rollback) writes the page,
the JSON and the status part of /metrics as files (`write_status_files`) that the web config serves.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from pum import __version__
from pum.config import Config
from pum.formats import FormatError
from pum.formats.manifest import parse_manifest
from pum.net.cooldown import CoolDowns
from pum.store import MANIFEST_PATH, Store


def collect_status(config: Config) -> dict[str, Any]:
    """The served release, its versions and version record, the last run, upstream, hold and cool-downs.

    Read from the served tree and `state/` only, so `pum serve` shows it for a tree it did not build.
    """
    store = Store(config)
    last_run = store.read_state("last_run.json")
    if last_run:
        last_run = _with_utc_times(last_run, ("started", "finished"))
        started, finished = iso_to_epoch(last_run.get("started")), iso_to_epoch(last_run.get("finished"))
        if started is not None and finished is not None:
            last_run["duration_seconds"] = round(max(0.0, finished - started), 3)
    document: dict[str, Any] = {
        "version": __version__,
        "mode": config.mode,
        "docroot": str(config.docroot),
        "held": held(store),
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
            "created": utc_time(manifest.created),
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
            document["cool_downs"][str(server)] = _with_utc_times(
                {"until": active.until, "reason": active.reason}, ("until",)
            )
    mirror = store.read_state("mirror.json")
    if mirror:
        from pum.sync.mirror import lag_now

        # how far behind the release served now is, not the one served at the last run (a rollback)
        mirror.update(lag_now(mirror, manifest))
        document["mirror"] = _with_utc_times(mirror, ("checked", "upper_created"))
    from pum.fleet.document import read_summary

    document["fleet"] = read_summary(config)  # as the last `pum fleet` left it
    document["generated"] = utc_time(time.time())
    return document


def held(store: Store) -> dict[str, Any] | None:
    """Whether publishing is held: why (`pum hold --reason`, or the rollback) and since when."""
    reason = store.held()
    if reason is None:
        return None
    try:
        since = utc_time(store.hold_file.stat().st_mtime)
    except OSError:
        since = None
    return {"reason": re.sub(r" \(since [^)]*\)$", "", reason), "since": since}


# -- times ------------------------------------------------------------------------------------------------


def iso_to_epoch(value: Any) -> float | None:
    """Epoch seconds of an ISO 8601 time (a naive one is taken as local time), or of a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def utc_time(value: Any) -> Any:
    """`2025-09-01T03:32:09Z` for an ISO time or epoch seconds; anything else as it is."""
    seconds = iso_to_epoch(value)
    if seconds is None:
        return value
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def local_time(value: Any) -> str:
    """`2025-09-01 12:32:09 +09:00`: local time with its offset, for a terminal or the page."""
    seconds = iso_to_epoch(value)
    if seconds is None:
        return "-" if value is None else str(value)
    moment = dt.datetime.fromtimestamp(seconds).astimezone()
    return moment.isoformat(sep=" ", timespec="seconds").replace("T", " ")


def _with_utc_times(document: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: utc_time(value) if key in keys else value for key, value in document.items()}


# -- the files Apache and nginx serve -----------------------------------------------------------------


STATUS_DIR = "status"  # under data_dir: status.html, status.json, metrics (the web configs alias them)


def status_dir(config: Config) -> Path:
    return config.data_dir / STATUS_DIR


def refresh_status_files(config: Config) -> str | None:
    """`write_status_files` at the end of a run, a hold or a rollback, where `pum deploy apache|nginx` made
    their directory (`pum serve` renders its own per request, so a PUM behind it pays no manifest read at
    a "not modified" run): a failure is a line to log, never a failed run."""
    if not status_dir(config).is_dir():
        return None
    try:
        write_status_files(config)
    except OSError as error:
        return f"cannot write the status files in {status_dir(config)}: {error.strerror or error}"
    return None


def write_status_files(config: Config) -> None:
    """The page, its JSON and the status part of /metrics as files, each replaced whole, for a web server
    that is not `pum serve` (which renders them per request, with its request counters, and shows
    paths to this host only)."""
    from pum.serve.metrics import render_metrics
    from pum.serve.status_page import render_html

    # the web server shows them to the status_allow networks too: no filesystem paths in them
    document = without_paths(collect_status(config))
    target = status_dir(config)
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o755)
    for name, data in (
        ("status.html", render_html(document).encode()),
        ("status.json", json.dumps(document, indent=1, sort_keys=True).encode() + b"\n"),
        ("metrics", render_metrics(None, lambda: document)),
    ):
        temporary = target / f".{name}.tmp{os.getpid()}"
        temporary.write_bytes(data)
        temporary.chmod(0o644)
        os.replace(temporary, target / name)


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
    from pum.formats.cvd import CVD_HEADER_SIZE, parse_cvd_header  # here: every run imports this module

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
            "build_time": utc_time(header.build_time),
        }
    return versions


def render_text(document: dict[str, Any]) -> str:
    """`pum status`: local times with their offset."""
    lines = [f"mode: {document['mode']}", f"docroot: {document['docroot']}"]
    held = document.get("held")
    if held:
        lines.append(f"HELD: {held['reason']} (since {local_time(held.get('since'))}); 'pum unhold' resumes")
    release = document.get("release")
    if release:
        created = local_time(release["created"])
        lines.append(f"release: {release['serial']} created {created} ({release['files']} files)")
    else:
        lines.append(f"release: {document.get('release_error') or 'none yet'}")
    for db, info in document["versions"].items():
        lines.append(f"  {db}: version {info['version']} built {local_time(info['build_time'])}")
    last = document.get("last_run")
    if last:
        detail = f" ({last['error']})" if last.get("error") else ""
        lines.append(f"last run: {last['result']} at {local_time(last.get('finished'))}{detail}")
    else:
        lines.append("last run: never")
    if document.get("upstream"):
        lines.append(f"upstream: {document['upstream']}")
    for server, info in document.get("cool_downs", {}).items():
        lines.append(f"cooling down: {server} until {local_time(info['until'])} ({info['reason']})")
    mirror = document.get("mirror")
    bundle = mirror.get("bundle") if mirror else None
    if mirror and bundle:
        lines.append(
            f"last bundle: release {bundle.get('to_serial')} of {mirror.get('upper')} "
            f"(exported {bundle.get('exported')}), imported {mirror.get('checked')}; "
            f"the next one: pum export --since {bundle.get('to_serial')}"
        )
    elif mirror:
        lines.append(
            f"upper server: {mirror.get('upper')} serial {mirror.get('upper_serial')} "
            f"(behind by {mirror.get('behind', '?')})"
        )
    from pum.fleet.pages import fleet_text

    lines += fleet_text(document.get("fleet"))
    return "\n".join(lines)
