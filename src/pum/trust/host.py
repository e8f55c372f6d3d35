"""The host side of the chain of trust (proscanup): refresh the signed metadata of a PUM from a pinned root
and answer which files it signs. Stdlib only, Python 3.6-clean, like everything proscanup imports.

proscanup calls `verified_targets` once per run (when proscan.conf has `TrustedRoot=`), then checks every
file it would install (product list included) against the answer: length and sha256 must match.
"""

import datetime
import hashlib
import hmac
import os
from typing import Callable, Dict, Optional

from pum.formats import FormatError
from pum.formats.tuf_metadata import TargetInfo, refresh

# the files a refresh keeps in its state directory: the newest root, the chain, and the top-level roles
_KEPT = ("root.json", "timestamp.json", "snapshot.json", "targets.json")


def verified_targets(
    fetch: Callable[[str, int], Optional[bytes]],
    trusted_root_path: str,
    state_dir: str,
    now: Optional[datetime.datetime] = None,
) -> Dict[str, TargetInfo]:
    """{path: (length, sha256)} of every file the PUM's signed metadata names, or FormatError.

    `fetch(name, max_length)` GETs `/.pum/tuf/<name>` from the PUM (None on 404, never more than
    max_length bytes). `state_dir` keeps the metadata trusted so far (it refuses rollback), created 0700.
    """
    with open(trusted_root_path, "rb") as stream:
        pinned = stream.read()
    stored = {}  # type: Dict[str, bytes]
    if os.path.isdir(state_dir):
        for name in os.listdir(state_dir):
            if name in _KEPT or name.endswith(".root.json"):
                with open(os.path.join(state_dir, name), "rb") as stream:
                    stored[name] = stream.read()
    moment = now or datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    outcome = refresh(fetch, pinned, stored, moment)
    _keep(state_dir, outcome.to_store)
    return outcome.targets


def check_file(targets: Dict[str, TargetInfo], relpath: str, path: str) -> None:
    """Refuse (FormatError) a downloaded file that is not the signed target `relpath`: length and sha256."""
    digest = hashlib.sha256()
    length = 0
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
            length += len(block)
    _compare(targets, relpath, digest.hexdigest(), length)


def check_data(targets: Dict[str, TargetInfo], relpath: str, data: bytes) -> None:
    """`check_file` for a file held in memory (the product list, read before it is parsed)."""
    _compare(targets, relpath, hashlib.sha256(data).hexdigest(), len(data))


def _compare(targets: Dict[str, TargetInfo], relpath: str, sha256: str, length: int) -> None:
    signed = targets.get(relpath)
    if signed is None:
        raise FormatError(f"{relpath}: not in the signed targets of the PUM")
    if length != signed.length or not hmac.compare_digest(sha256, signed.sha256):
        raise FormatError(
            f"{relpath}: sha256 {sha256} ({length} bytes) is not the signed "
            f"{signed.sha256} ({signed.length} bytes)"
        )


def _keep(state_dir: str, files: Dict[str, bytes]) -> None:
    if not os.path.isdir(state_dir):
        os.makedirs(state_dir, 0o700)
    for name, data in sorted(files.items()):
        tmp = os.path.join(state_dir, "." + name + ".tmp")
        with open(tmp, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, os.path.join(state_dir, name))
