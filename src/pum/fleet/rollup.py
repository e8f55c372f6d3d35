"""The roll-up: a main PUM fetches each sub's `/.pum/fleet.json` (`fleet_subs`), so it shows the tree.

What a sub sends is checked by `pum.formats.fleet` and kept in `state/fleet_subs/<sub>.json`; the main
shows its rows under the sub's name, with `stale` judged again by the main's clock. A sub that cannot be
reached keeps its last document, which turns stale on its own.
"""

from __future__ import annotations

import json
import os
import re
import ssl
from pathlib import Path
from typing import Any

from pum.config import Config
from pum.formats import FormatError
from pum.formats.fleet import MAX_DOCUMENT_BYTES, parse_fleet_document
from pum.net import http1

SUBS_DIR = "fleet_subs"
FLEET_PATH = ".pum/fleet.json"


def fetch_subs(config: Config) -> list[str]:
    """Fetch every sub's fleet.json; returns one line per sub that failed (the others are stored)."""
    problems = []
    directory = config.state_dir / SUBS_DIR
    tls = ssl.create_default_context(cafile=str(config.ca_bundle) if config.ca_bundle else None)
    client = http1.Client(tls, config.connect_timeout, config.read_timeout, {"User-Agent": config.user_agent})
    for server in config.fleet_subs:
        url = server.base_url(config.update_protocol) + FLEET_PATH
        try:
            data = _get(client, url)
            document = parse_fleet_document(data)
        except (http1.HttpError, FormatError, _Refused) as error:
            problems.append(f"{url}: {error}")
            continue
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / (_file_name(str(server)) + ".json")
        temporary = target.with_name(f".{target.name}.new")
        temporary.write_text(
            json.dumps({"name": document.name, "generated": document.generated, "clients": document.clients})
        )
        os.replace(temporary, target)
    client.close()
    return problems


class _Refused(Exception):
    pass


def _get(client: http1.Client, url: str) -> bytes:
    with client.stream(url, {"Accept-Encoding": "identity"}) as r:
        if r.status_code != 200:
            raise _Refused(f"answered {r.status_code}")
        encoding = r.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise _Refused(f"answered with Content-Encoding {encoding[:40]!r}, not asked for")
        body = bytearray()
        for chunk in r.iter_raw(65536):
            body += chunk
            if len(body) > MAX_DOCUMENT_BYTES:
                raise _Refused(f"more than {MAX_DOCUMENT_BYTES} bytes")
    return bytes(body)


def _file_name(server: str) -> str:
    return re.sub(r"[^0-9A-Za-z._-]", "_", server)[:100]


def read_rolled_up(config: Config, now: int, stale_seconds: int) -> list[dict[str, Any]]:
    """Rows of every stored sub document, under the sub's name (a sub's own subs: `sub/subsub`)."""
    rows: list[dict[str, Any]] = []
    directory = config.state_dir / SUBS_DIR
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return rows
    for name in names:
        if not name.endswith(".json") or name.startswith("."):
            continue
        try:
            stored = json.loads(Path(directory / name).read_bytes())
            sub = stored["name"]
            clients = stored["clients"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for row in clients:
            row["tier"] = f"{sub}/{row['tier']}" if row.get("tier") else sub
            if now - row["last_seen"] > stale_seconds:
                row["state"] = "stale"
            rows.append(row)
    return rows
