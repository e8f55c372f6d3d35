"""A ProScan product tree made by the tests, beside the signed test VDF in the upstream's directory."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

POWER_LIST = "ibm/power/PSHB06.lst"
PACKAGE_DIR = "ibm/packages"


def md5_of(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class ProductTree:
    """Files under `root` at the paths they are served at, and lists naming them (paths from the root)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, path: str, data: bytes | str, mtime: float | None = None) -> str:
        raw = data.encode() if isinstance(data, str) else data
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(raw)
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        os.replace(tmp, target)
        return md5_of(raw)

    def read(self, path: str) -> bytes:
        return (self.root / path).read_bytes()

    def write_list(
        self,
        list_path: str,
        paths: list[str],
        *,
        md5s: dict[str, str] | None = None,
        extra_lines: tuple[str, ...] = (),
        mtime: float | None = None,
    ) -> str:
        """The list in md5sum format; `md5s` overrides a file's real md5 (to make a wrong list)."""
        lines = [f"# {list_path}"]
        for path in paths:
            md5 = (md5s or {}).get(path) or md5_of(self.read(path))
            lines.append(f"{md5}  {path}")
        lines.extend(extra_lines)
        return self.put(list_path, "\n".join(lines) + "\n", mtime=mtime)

    def package(self, name: str, files: dict[str, str | bytes], top: str | None = None) -> str:
        """A tar.gz upgrade package under ibm/packages/; `files` are relative to its top directory."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for member_name, content in files.items():
                raw = content.encode() if isinstance(content, str) else content
                info = tarfile.TarInfo(f"{top}/{member_name}" if top else member_name)
                info.size = len(raw)
                info.mode = 0o755 if member_name.endswith(".sh") else 0o644
                tar.addfile(info, io.BytesIO(raw))
        path = f"{PACKAGE_DIR}/{name}"
        self.put(path, buffer.getvalue())
        return path
