"""Release trees as `pum run` leaves them, built from ClamAV's signed test databases, for serving tests."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
from pathlib import Path

from upstream import TESTDATA

from pum.formats.manifest import FileRecord, Manifest

PRODUCT_LIST = b"# product list\n0123456789abcdef0123456789abcdef  ibm/power/module.bin\n"


def build_time(cvd: Path) -> int:
    """The build time (`stime`, last field) of a CVD's 512-byte header."""
    header = cvd.read_bytes()[:512].decode("latin-1").rstrip(" \x00")
    return int(header.split(":")[8])


class ReleaseTree:
    """`<data_dir>/releases/<serial>/` immutable trees and the `docroot` symlink switched by rename."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data_dir = base / "data"
        self.docroot = base / "www" / "pum"
        self.docroot.parent.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "releases").mkdir(parents=True, exist_ok=True)
        self._serial = 0

    def release(self, version: int, extra: dict[str, bytes] | None = None) -> Path:
        """A new release serving `test` at `version`: test.cvd, its CDIFFs, signatures, dns.txt, a list."""
        self._serial += 1
        serial = self._serial
        root = self.data_dir / "releases" / str(serial)
        root.mkdir()
        cvd = TESTDATA / f"test-{version}.cvd"
        stime = build_time(cvd)
        self._put(root, "test.cvd", cvd.read_bytes(), stime)
        self._put(
            root, f"test-{version}.cvd.sign", (TESTDATA / f"test-{version}.cvd.sign").read_bytes(), stime
        )
        for number in range(2, version + 1):
            cdiff = f"test-{number}.cdiff"
            when = build_time(TESTDATA / f"test-{number}.cvd")
            self._put(root, cdiff, (TESTDATA / cdiff).read_bytes(), when)
            self._put(root, f"{cdiff}.sign", (TESTDATA / f"{cdiff}.sign").read_bytes(), when)
        self._put(root, "dns.txt", f"1.4.6:0:0:{stime}:1:81:0:0\n".encode(), stime)
        self._put(root, "ibm/power/PSHB06.lst", PRODUCT_LIST, stime)
        for name, data in (extra or {}).items():
            self._put(root, name, data, stime)
        self._write_manifest(root, serial)
        return root

    def publish(self, release: Path) -> None:
        """Point the docroot at `release` with one rename(2), as the store does."""
        link = self.docroot.with_name(f".{self.docroot.name}.next")
        if link.is_symlink():
            link.unlink()
        os.symlink(release, link)
        os.replace(link, self.docroot)

    def serve(self, version: int, extra: dict[str, bytes] | None = None) -> Path:
        release = self.release(version, extra)
        self.publish(release)
        return release

    @staticmethod
    def _put(root: Path, name: str, data: bytes, mtime: int) -> None:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o644)
        os.utime(path, (mtime, mtime))

    @staticmethod
    def _write_manifest(root: Path, serial: int) -> None:
        files = {}
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                relative = path.relative_to(root).as_posix()
                stat = path.stat()
                files[relative] = {
                    "size": stat.st_size,
                    "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                    "mtime": int(stat.st_mtime),
                }
        manifest = Manifest(
            serial=serial,
            created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            files={path: FileRecord(**record) for path, record in files.items()},
            source="http://upstream.test",
        )
        (root / ".pum").mkdir(exist_ok=True)
        (root / ".pum" / "manifest.json").write_bytes(manifest.to_json())
        (root / ".pum" / "manifest.json").chmod(0o644)


def remove_release(release: Path) -> None:
    shutil.rmtree(release)
