"""The main PUM as a TUF repository: every release carries targets, snapshot and timestamp metadata for
all of its files, signed with the online key at publish, under `.pum/tuf/`.

Versions are the release serial: a file of one release checked with the metadata of another fails on its
sha256, and metadata of two releases never mix (snapshot and targets are named `<serial>.<role>.json`,
consistent snapshots). Expiry is short (7 days) and a run re-signs, as a new release, when less than half
of it is left (see docs/architecture.md, "Where we departed").
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pum.config import Config
from pum.formats import FormatError
from pum.formats.manifest import FileRecord
from pum.trust import TUF_DIR

if TYPE_CHECKING:
    from pum.store import Staging

METADATA_LIFETIME = dt.timedelta(days=7)
RESIGN_MARGIN = METADATA_LIFETIME / 2


def is_metadata(relpath: str) -> bool:
    return relpath.startswith(TUF_DIR + "/")


def sign_release(config: Config, staging: Staging, serial: int, now: dt.datetime | None = None) -> bool:
    """Sign the staged tree as release `serial` (server mode with keys); False when nothing was signed.

    Mirror mode carries its upper's metadata unchanged (staged by `pum.trust.upper`): hosts below check
    end to end against the main's root."""
    if config.mode == "mirror":
        return False
    from pum.trust.keys import load_signing_keys, renew_root

    renew_root(config, now)
    keys = load_signing_keys(config)
    if keys is None:
        return False
    from tuf.api.metadata import Metadata, MetaFile, Snapshot, TargetFile, Targets, Timestamp
    from tuf.api.serialization.json import JSONSerializer

    for relpath in [path for path in staging.records if is_metadata(path)]:
        staging.remove(relpath)
    expires = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0) + METADATA_LIFETIME
    targets = Targets(version=serial, expires=expires)
    for relpath, record in sorted(staging.records.items()):
        targets.targets[relpath] = TargetFile(record.size, {"sha256": record.sha256}, relpath)
    serializer = JSONSerializer(compact=True)

    def signed(role: Any) -> bytes:
        metadata = Metadata(role)
        metadata.sign(keys.online)
        return metadata.to_bytes(serializer)

    targets_bytes = signed(targets)
    snapshot_bytes = signed(
        Snapshot(
            version=serial,
            expires=expires,
            meta={"targets.json": _meta_file(MetaFile, serial, targets_bytes)},
        )
    )
    timestamp_bytes = signed(
        Timestamp(version=serial, expires=expires, snapshot_meta=_meta_file(MetaFile, serial, snapshot_bytes))
    )
    for number, data in keys.roots:
        staging.write_bytes(f"{TUF_DIR}/{number}.root.json", data)
    staging.write_bytes(f"{TUF_DIR}/{serial}.targets.json", targets_bytes)
    staging.write_bytes(f"{TUF_DIR}/{serial}.snapshot.json", snapshot_bytes)
    staging.write_bytes(f"{TUF_DIR}/timestamp.json", timestamp_bytes)
    return True


def _meta_file(meta_file: type, version: int, data: bytes) -> Any:
    return meta_file(version=version, length=len(data), hashes={"sha256": hashlib.sha256(data).hexdigest()})


def resign_reason(config: Config, served: Path | None, now: dt.datetime | None = None) -> str | None:
    """Why the served release must be signed again although nothing changed, or None.

    Only at a main PUM with keys: the served release is unsigned, its metadata expires within
    RESIGN_MARGIN, or the keys were rotated since (the new root must reach the clients)."""
    if config.mode == "mirror" or served is None:
        return None
    # here: a mirror's run (every publish asks) needs neither the keys nor the metadata parser
    from pum.formats.tuf_metadata import parse_metadata
    from pum.trust.keys import ROOT_HISTORY, keys_dir, root_versions

    newest_root = root_versions(keys_dir(config) / ROOT_HISTORY)
    if not newest_root:
        return None
    tuf_dir = served / TUF_DIR
    try:
        timestamp = parse_metadata((tuf_dir / "timestamp.json").read_bytes(), "timestamp")
    except FileNotFoundError:
        return "the served release is not signed"
    except FormatError as error:
        return f"the served release's timestamp.json is unreadable ({error})"
    served_roots = root_versions(tuf_dir)
    if not served_roots or served_roots[-1][0] != newest_root[-1][0]:
        return f"root version {newest_root[-1][0]} is not served yet (keys rotated)"
    from pum.trust.keys import root_renewal_due

    renewal = root_renewal_due(config, now)
    if renewal is not None:
        return renewal
    left = timestamp.expires - (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    if left < RESIGN_MARGIN:
        return f"its signed metadata expires {timestamp.expires:%Y-%m-%d %H:%M} UTC"
    return None


def release_problems(
    release_dir: Path, files: Mapping[str, FileRecord], anchor: Path | None = None
) -> list[str]:
    """`pum verify`: the release's signed metadata checked as a host would (from `anchor`, else the
    oldest root the release carries), and every file of its manifest a signed target of the same sha256
    and size. A release without `.pum/tuf/` has nothing to check here."""
    from pum.formats.tuf_metadata import refresh
    from pum.trust.keys import root_versions

    tuf_dir = release_dir / TUF_DIR
    roots = root_versions(tuf_dir)
    if not (tuf_dir / "timestamp.json").exists() and not roots:
        return []
    if anchor is None and not roots:
        return [f"{TUF_DIR}/: timestamp.json but no root metadata"]
    trusted_root = (anchor or roots[0][1]).read_bytes()

    def fetch(name: str, max_length: int) -> bytes | None:
        path = tuf_dir / name
        return path.read_bytes()[: max_length + 1] if path.is_file() else None

    try:
        signed = refresh(fetch, trusted_root, {}, dt.datetime.now(dt.UTC).replace(tzinfo=None)).targets
    except FormatError as error:
        return [f"{TUF_DIR}/: {error}"]
    problems = []
    for relpath, record in sorted(files.items()):
        if is_metadata(relpath):
            continue
        target = signed.get(relpath)
        if target is None:
            problems.append(f"{relpath}: not in the signed targets")
        elif (target.length, target.sha256) != (record.size, record.sha256):
            problems.append(
                f"{relpath}: the signed targets give sha256 {target.sha256} ({target.length} bytes)"
            )
    return problems
