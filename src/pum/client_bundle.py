"""proscanup as one file: `proscanup.pyz` (stdlib zipapp) with only the host-side modules, and its place
in every release, `/.pum/client/proscanup.pyz`, so hosts install and update it from their own PUM.

The archive is byte-for-byte the same for the same sources (sorted members, fixed times), so an unchanged
PUM does not make a new release for it, and every PUM of a version serves the same sha256.
"""

import hashlib
import io
import os
import time
import zipfile
from pathlib import Path
from typing import Any, List

import pum

PYZ_PATH = ".pum/client/proscanup.pyz"
INTERPRETER = "/usr/bin/env python3"
SIZE_LIMIT = 500 * 1024
# What runs on the hosts: the package root, the error family, the neutral layer, the agent, and the pure
# formats it reads. Nothing here may import anything else of pum (tests/agent/test_standalone.py).
HOST_SIDE = (
    "__init__.py",
    "errors.py",
    "common",
    "agent",
    "formats/__init__.py",
    "formats/productlist.py",
    "formats/sign.py",
    "formats/engine.py",
    "formats/rollout.py",
    "formats/tuf_metadata.py",
    "trust/__init__.py",
    "trust/host.py",
)
MAIN = """\
import sys

if sys.version_info < (3, 6):
    sys.exit("proscanup needs Python 3.6 or newer, this is " + sys.version.split()[0])
from pum.agent.main import main

sys.exit(main())
"""
_FIXED_TIME = 315619200  # 1980-01-02, the first date a zip entry can hold (in any time zone)


def host_side_files(package: Path) -> List[Path]:
    """The .py files of the host side, relative to the package directory."""
    files: List[Path] = []
    for item in HOST_SIDE:
        path = package / item
        if path.is_dir():
            files += sorted(p.relative_to(package) for p in path.glob("*.py"))
        else:
            files.append(Path(item))
    return files


def host_side_sources() -> List[str]:
    """The host-side sources the static Python 3.6 check (vermin, in scripts/test) reads."""
    package = Path(pum.__file__).parent
    return [str(package / p) for p in host_side_files(package)]


def build_client_bytes() -> bytes:
    """proscanup.pyz as bytes: `__main__.py` and the host-side modules under `pum/`, written in memory
    (no copy of the sources to a temporary tree: every release build makes it, ~10 ms instead of ~45)."""
    package = Path(pum.__file__).parent
    entries = {"__main__.py": MAIN.encode()}
    for relative in host_side_files(package):
        entries["pum/" + relative.as_posix()] = (package / relative).read_bytes()
    directories = {name.rpartition("/")[0] + "/" for name in entries if "/" in name}
    for directory in list(directories):  # and their parents, as zipapp lists them
        while directory.count("/") > 1:
            directory = directory[: directory[:-1].rindex("/") + 1]
            directories.add(directory)
    archive = io.BytesIO()
    archive.write(b"#!" + INTERPRETER.encode() + b"\n")
    stamp = time.localtime(_FIXED_TIME)[:6]
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as pyz:
        for name in sorted([*entries, *directories], key=lambda name: name.rstrip("/")):
            entry = zipfile.ZipInfo(name, date_time=stamp)
            if name.endswith("/"):
                entry.external_attr = (0o40755 << 16) | 0x10
                pyz.writestr(entry, b"")
            else:
                entry.external_attr = 0o644 << 16
                entry.compress_type = zipfile.ZIP_DEFLATED
                # level 1: 5x faster than the default 6 (every publishing run builds it), ~10 KB larger
                pyz.writestr(entry, entries[name], compresslevel=1)
    data = archive.getvalue()
    if len(data) > SIZE_LIMIT:
        raise AssertionError(f"proscanup.pyz is {len(data)} bytes, over the {SIZE_LIMIT} bytes it may be")
    return data


def build_client(dest: Path) -> Path:
    """Write proscanup.pyz to `dest` (executable), beside and renamed over."""
    data = build_client_bytes()
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(str(tmp), 0o755)
    os.replace(str(tmp), str(dest))
    return dest


def stage_client(staging: Any) -> None:
    """Put proscanup.pyz into a release being built (a `store.Staging`); its sha256 goes into the
    manifest like every file's. The same archive as the served release's is a hard link to it, so an
    unchanged PUM makes no new release for it and writes nothing."""
    data = build_client_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    if staging.has(PYZ_PATH) and staging.records[PYZ_PATH].sha256 == sha256:
        return
    served = staging.current.files.get(PYZ_PATH) if staging.current is not None else None
    if served is not None and served.sha256 == sha256:
        staging.link_from_current(PYZ_PATH)
    else:
        staging.write_bytes(PYZ_PATH, data, mtime=_FIXED_TIME)


def main(argv: List[str]) -> int:
    """`python -m pum.client_bundle [DEST]` (scripts/build-proscanup): write proscanup.pyz, print where."""
    dest = Path(argv[0] if argv else "proscanup.pyz")
    build_client(dest)
    print(f"{dest} ({dest.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
