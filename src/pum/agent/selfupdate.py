"""proscanup updates its own `proscanup.pyz` from its PUM (`SelfUpdate=yes`, the default), last in a run.

The expected sha256 comes first, cheaply: from the signed targets (TrustedRoot, already fetched this run)
or else from the release manifest `/.pum/manifest.json` (legacy trust, like the MD5 lists). Only when it
differs from the running file's is the pyz downloaded (bounded), checked (that sha256, the signed target,
a zip with `__main__.py`), written beside the running file as `<path>.proscanup-new` and renamed over it.
It runs after every other step: CPython's zipimport reads modules from the archive by path, so nothing
may be imported from the pyz once it has been replaced (this module imports what it needs up front).
"""

import hashlib
import io
import json
import os
import re
import zipfile
import zipimport
from pathlib import Path
from typing import Callable, Optional

from pum.agent.pum_client import UpdateClient
from pum.common.hashing import sha256_file
from pum.errors import StoreError, UpstreamError, VerifyError

PYZ_PATH = ".pum/client/proscanup.pyz"  # the same as client_bundle.PYZ_PATH (not imported: host side)
MANIFEST_PATH = ".pum/manifest.json"
PYZ_LIMIT = 2 << 20  # bytes: the pyz is built under 500 KB
MANIFEST_LIMIT = 64 << 20  # bytes: a release manifest names every file of the PUM
NEW_SUFFIX = ".proscanup-new"
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")

Say = Callable[[str], None]


def running_pyz() -> Optional[Path]:
    """The proscanup.pyz this process runs from; None when proscanup runs from an installed package."""
    import pum

    loader = getattr(pum, "__loader__", None)
    archive = getattr(loader, "archive", None) if isinstance(loader, zipimport.zipimporter) else None
    return Path(os.path.abspath(archive)) if archive else None


def self_update(client: UpdateClient, say: Say, pyz: Optional[Path] = None) -> bool:
    """Replace the running pyz by the PUM's when they differ; True when it was replaced."""
    pyz = pyz or running_pyz()
    if pyz is None:
        return False
    wanted = _wanted_sha256(client)
    if wanted is None:
        say(f"{client.url(MANIFEST_PATH)}: not served; proscanup.pyz not updated")
        return False
    if sha256_file(pyz) == wanted:
        say(f"proscanup.pyz is the PUM's (sha256 {wanted})")
        return False
    data = client.get_optional(PYZ_PATH, PYZ_LIMIT)
    url = client.url(PYZ_PATH)
    if data is None:
        raise UpstreamError(f"{url}: not served (404); proscanup.pyz not updated")
    _check(client, data, wanted, url)
    _replace(pyz, data)
    say(f"proscanup updated itself (sha256 {wanted})")
    return True


def _wanted_sha256(client: UpdateClient) -> Optional[str]:
    if client.targets is not None:
        signed = client.targets.get(PYZ_PATH)
        if signed is None:
            url = client.url(PYZ_PATH)
            raise VerifyError(f"{url}: not in the signed targets of the PUM: refused (TrustedRoot)")
        return str(signed.sha256)
    raw = client.get_optional(MANIFEST_PATH, MANIFEST_LIMIT)
    if raw is None:
        return None
    url = client.url(MANIFEST_PATH)
    try:
        sha256 = json.loads(raw.decode("utf-8"))["files"][PYZ_PATH]["sha256"]
    except (ValueError, KeyError, TypeError):
        sha256 = None
    if not isinstance(sha256, str) or not _SHA256_HEX.match(sha256):
        raise UpstreamError(f"{url}: no sha256 for {PYZ_PATH}: proscanup.pyz not updated")
    return sha256


def _check(client: UpdateClient, data: bytes, wanted: str, url: str) -> None:
    client.check_signed_data(PYZ_PATH, data, url)
    got = hashlib.sha256(data).hexdigest()
    if got != wanted:
        raise VerifyError(f"{url}: sha256 {got}, the release manifest says {wanted}: refused")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, ValueError, OSError):
        names = []
    if "__main__.py" not in names:
        raise VerifyError(f"{url}: not a zip archive with __main__.py: refused")


def _replace(pyz: Path, data: bytes) -> None:
    """Beside and renamed over: the running file is never written to."""
    new = pyz.with_name(pyz.name + NEW_SUFFIX)
    try:
        mode = os.stat(str(pyz)).st_mode & 0o7777
        with open(str(new), "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(str(new), mode)
        os.replace(str(new), str(pyz))
    except OSError as error:
        if os.path.exists(str(new)):
            os.unlink(str(new))
        where = f"{error.filename}: " if error.filename else ""
        why = error.strerror or error
        raise StoreError(f"self-update: {where}{why}; proscanup.pyz not updated") from None
