"""`pum verify`: re-check every file of the served release against its manifest and signatures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pum.formats import FormatError
from pum.formats.manifest import Manifest
from pum.store import foreign_files, sha256_file
from pum.sync.fetch import check_signature


@dataclass
class VerifyReport:
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_release(release_dir: Path, manifest: Manifest, signatures: bool = True) -> VerifyReport:
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
        if signatures:
            problem = _signature_problem(path, relpath)
            if problem:
                report.problems.append(f"{relpath}: {problem}")
    if signatures:
        from pum.trust.repository import release_problems

        report.problems += release_problems(release_dir, manifest.files)
    for relpath in foreign_files(release_dir, manifest.files):
        report.problems.append(f"{relpath}: not in the manifest (written by hand? use 'pum import')")
    return report


def _signature_problem(path: Path, relpath: str) -> str | None:
    try:
        check_signature(path, relpath)
    except FormatError as error:
        return f"signature check failed: {error}"
    return None
