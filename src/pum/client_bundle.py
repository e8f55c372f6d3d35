"""proscanup as one file: `proscanup.pyz` (stdlib zipapp) with only the host-side modules, and its place
in every release, `/.pum/client/proscanup.pyz`, so hosts install and update it from their own PUM.

The archive is byte-for-byte the same for the same sources (sorted members, fixed times), so an unchanged
PUM does not make a new release for it, and every PUM of a version serves the same sha256.
"""

import hashlib
import io
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

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
_LEVEL = 1


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
    return _archive(_entries())


def _entries() -> Dict[str, bytes]:
    package = Path(pum.__file__).parent
    entries = {"__main__.py": MAIN.encode()}
    for relative in host_side_files(package):
        entries["pum/" + relative.as_posix()] = (package / relative).read_bytes()
    return entries


def _archive(entries: Dict[str, bytes]) -> bytes:
    import zipfile  # here: a run whose archive is known (the sources' digest) builds none

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
                pyz.writestr(entry, entries[name], compresslevel=_LEVEL)
    data = archive.getvalue()
    if len(data) > SIZE_LIMIT:
        raise AssertionError(f"proscanup.pyz is {len(data)} bytes, over the {SIZE_LIMIT} bytes it may be")
    return data


def _built_from(entries: Dict[str, bytes]) -> str:
    """The digest of everything the archive's bytes depend on: the members, this builder's own source, the
    zip times (local time), the Python and zlib that compress."""
    import zlib

    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(repr((time.localtime(_FIXED_TIME)[:6], sys.version, zlib.ZLIB_RUNTIME_VERSION)).encode())
    for name in sorted(entries):
        digest.update(b"%d %s %d\n" % (len(name.encode()), name.encode(), len(entries[name])))
        digest.update(entries[name])
    return digest.hexdigest()


def build_client(dest: Path) -> Path:
    """Write proscanup.pyz to `dest` (executable), beside and renamed over."""
    data = build_client_bytes()
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(str(tmp), 0o755)
    os.replace(str(tmp), str(dest))
    return dest


def stage_client(staging: Any, known: Optional[Path] = None) -> None:
    """Put proscanup.pyz into a release being built (a `store.Staging`); its sha256 goes into the
    manifest like every file's. The same archive as the served release's is a hard link to it, so an
    unchanged PUM makes no new release for it and writes nothing.

    `known` (a state file) holds the sha256 of the last archive built and the digest of what it was built
    from: while those are the same, the archive is not built again (~8 ms of every publishing run) when
    the release has it already or links it from the served one."""
    entries = _entries()
    built_from = _built_from(entries)
    sha256 = _known_sha256(known, built_from)
    data = None
    if sha256 is None:
        data = _archive(entries)
        sha256 = hashlib.sha256(data).hexdigest()
    served = staging.current.files.get(PYZ_PATH) if staging.current is not None else None
    if staging.has(PYZ_PATH) and staging.records[PYZ_PATH].sha256 == sha256:
        pass
    elif served is not None and served.sha256 == sha256:
        staging.link_from_current(PYZ_PATH)
    else:
        data = data if data is not None else _archive(entries)
        staging.write_bytes(PYZ_PATH, data, mtime=_FIXED_TIME)
    if known is not None and data is not None:
        _remember(known, sha256, built_from)


_KNOWN = re.compile(r"([0-9a-f]{64}) built from ([0-9a-f]{64})\n")


def _known_sha256(known: Optional[Path], built_from: str) -> Optional[str]:
    """The sha256 `known` holds for an archive built from `built_from`; None when absent, another, or not
    a line this module writes (then the archive is built, and the line written again)."""
    try:
        match = _KNOWN.fullmatch(known.read_text(encoding="ascii")) if known is not None else None
    except (OSError, UnicodeDecodeError):
        return None
    return match.group(1) if match and match.group(2) == built_from else None


def _remember(known: Path, sha256: str, built_from: str) -> None:
    from pum.store.state import write_state_file

    write_state_file(known, [f"{sha256} built from {built_from}\n".encode("ascii")])


def main(argv: List[str]) -> int:
    """`python -m pum.client_bundle [DEST]` (scripts/build-proscanup): write proscanup.pyz, print where."""
    dest = Path(argv[0] if argv else "proscanup.pyz")
    build_client(dest)
    print(f"{dest} ({dest.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
