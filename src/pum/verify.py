"""`pum verify`: re-check every file of the served release against its manifest and signatures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pum.formats import FormatError
from pum.formats.manifest import Manifest
from pum.store import foreign_files, sha256_file
from pum.sync.vdfcheck import check_vdf, name_problem


@dataclass
class VerifyReport:
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_release(
    release_dir: Path, manifest: Manifest, roots: tuple[Any, ...], signatures: bool = True
) -> VerifyReport:
    """Every file against the manifest; with `signatures`, every VDF file by the rules it was served by
    (sync/vdfcheck.py: names, signatures, each `.sign` over its file against the pinned `roots`)."""
    report = VerifyReport()
    for relpath, record in manifest.files.items():
        path = release_dir / relpath
        report.checked += 1
        try:
            stat = path.stat()
        except FileNotFoundError:
            report.problems.append(f"{relpath}: missing")
            continue
        if stat.st_size != record.size or sha256_file(path) != record.sha256:
            report.problems.append(
                f"{relpath}: modified (size {stat.st_size}, manifest {record.size}; "
                "sha256 differs from the manifest)"
            )
            continue
        problem = name_problem(relpath)
        if problem is None and signatures:
            problem = _signature_problem(path, relpath, release_dir, roots)
        if problem:
            report.problems.append(f"{relpath}: {problem}")
    for relpath in foreign_files(release_dir, manifest.files):
        report.problems.append(f"{relpath}: not in the manifest (written by hand? use 'pum import')")
    return report


def _signature_problem(path: Path, relpath: str, release_dir: Path, roots: tuple[Any, ...]) -> str | None:
    try:
        check_vdf(path, relpath, release_dir, roots)
    except FormatError as error:
        return f"signature check failed: {error}"
    return None
