"""`pum verify`: re-check every file of the served release against its manifest and signatures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pum.config import Config
from pum.errors import StoreError, VerifyError
from pum.formats import FormatError
from pum.formats.manifest import Manifest
from pum.store import Store, foreign_files, sha256_file
from pum.sync.vdfcheck import check_vdf, name_problem, pinned_roots


@dataclass
class VerifyReport:
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    serial: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def outcome(self) -> str:
        """One line when every file is right; VerifyError naming the count otherwise."""
        if self.problems:
            problems = len(self.problems)
            raise VerifyError(f"release {self.serial}: {problems} problem(s) in {self.checked} files")
        return f"release {self.serial}: {self.checked} files OK"


def verify_served(config: Config, signatures: bool = True) -> VerifyReport:
    """`pum verify`: the served release against its manifest and signatures."""
    store = Store(config)
    manifest = store.current_manifest()
    current = store.current_dir()
    if manifest is None or current is None:
        raise StoreError(f"nothing is served at {config.docroot} yet: run 'pum run' first")
    report = verify_release(current, manifest, pinned_roots(config.trust_test_root), signatures=signatures)
    report.serial = manifest.serial
    return report


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
    if signatures:
        from pum.trust.repository import release_problems

        report.problems += release_problems(release_dir, manifest.files)
    for relpath in foreign_files(release_dir, manifest.files):
        report.problems.append(f"{relpath}: not in the manifest (written by hand? use 'pum import')")
    return report


def _signature_problem(path: Path, relpath: str, release_dir: Path, roots: tuple[Any, ...]) -> str | None:
    try:
        check_vdf(path, relpath, release_dir, roots)
    except FormatError as error:
        return f"signature check failed: {error}"
    return None
