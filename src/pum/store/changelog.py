"""A release's changelog (`.pum/changes/<S>.json`, formats/changes.py), written at publish beside the
manifest: what changed since the served release, and each entry of the served release's own changelog
followed by that change, newest first, while within `KEEP_SERIALS` and the byte bounds.

Like the manifest, the changelog describes the release and is not listed in it. Every file of one release's
changelog has the same mtime, later than the served release's: a sub asks for `changes/<its serial>.json`
with the Last-Modified of the changes it last read (any file of that release), and gets 304 while the
upper still serves it (nginx's `if_modified_since exact` included).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pum.formats import FormatError
from pum.formats.changes import (
    CHANGES_DIR,
    CHANGES_LIMIT,
    KEEP_SERIALS,
    TOTAL_LIMIT,
    WRITE_LIMIT,
    Changes,
    changes_between,
    changes_path,
    changes_serial,
    files_digest,
    parse_changes,
)
from pum.formats.manifest import Manifest

# a changes file larger than half the manifest saves a sub little: it then reads the manifest instead
SMALLEST_LIMIT = 64 << 10


def write_changelog(release_dir: Path, served_dir: Path | None, served: Manifest | None, manifest: Manifest,
                    manifest_size: int) -> list[str]:  # fmt: skip
    """Write release `manifest.serial`'s changelog into `release_dir`; the release paths written."""
    entries: list[Changes] = []
    if served is not None and served_dir is not None and served.serial < manifest.serial:
        newest = changes_between(
            served.serial, served.files, manifest.serial, manifest.created, manifest.files
        )
        entries.append(newest)
        for earlier in _served_changelog(served_dir, served.serial, newest.from_files):
            entries.append(earlier.then(newest))
        digest = newest.files
    else:
        digest = files_digest(manifest.files)
    entries.insert(0, Changes(manifest.serial, digest, manifest.serial, manifest.created, digest))
    directory = release_dir / CHANGES_DIR
    directory.mkdir(parents=True, exist_ok=True)
    stamp = max(int(time.time()), _stamp(served_dir, served) + 1)
    limit = min(WRITE_LIMIT, max(SMALLEST_LIMIT, manifest_size // 2))
    written: list[str] = []
    total = 0
    for entry in entries[: KEEP_SERIALS + 1]:
        data = entry.to_json()
        if len(data) > limit or total + len(data) > TOTAL_LIMIT:
            break  # older entries hold at least these changes: larger still
        relpath = changes_path(entry.from_serial)
        path = release_dir / relpath
        path.write_bytes(data)
        os.chmod(path, 0o444)
        os.utime(path, (stamp, stamp))
        written.append(relpath)
        total += len(data)
    return written


def _served_changelog(served_dir: Path, serial: int, digest: str) -> list[Changes]:
    """The served release's changes since earlier releases, newest first. A file that cannot be read or
    does not lead to the served release is left out: each is a whole change on its own."""
    found: list[Changes] = []
    try:
        names = os.listdir(served_dir / CHANGES_DIR)
    except OSError:
        return found  # a release published before changelogs, or none at all
    for name in names:
        earlier = changes_serial(f"{CHANGES_DIR}/{name}")
        if earlier is None or earlier >= serial:
            continue
        try:
            with open(served_dir / CHANGES_DIR / name, "rb") as stream:
                changes = parse_changes(stream.read(CHANGES_LIMIT + 1))
        except (OSError, FormatError):
            continue
        if changes.from_serial == earlier and changes.serial == serial and changes.files == digest:
            found.append(changes)
    found.sort(key=lambda changes: changes.from_serial, reverse=True)
    return found[: KEEP_SERIALS - 1]


def _stamp(served_dir: Path | None, served: Manifest | None) -> int:
    """The mtime of the served release's changelog (0 when it has none)."""
    if served_dir is None or served is None:
        return 0
    try:
        return int((served_dir / changes_path(served.serial)).stat().st_mtime)
    except OSError:
        return 0
