"""`pum verify`: re-check every file of every kept release against its manifest, and the served one's
signatures. Releases share unchanged files through hard links, so a file changed in place in the served
release is changed in the older ones too: a rollback would serve it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pum.config import Config
from pum.errors import StoreError, VerifyError
from pum.formats import FormatError
from pum.formats.manifest import Manifest, parse_manifest
from pum.store import MANIFEST_PATH, Store, foreign_files, sha256_file
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


class Digests:
    """sha256 per inode: releases share unchanged files through hard links, each is read once."""

    def __init__(self) -> None:
        self._known: dict[tuple[int, int, int, int], str] = {}

    def sha256(self, path: Path) -> str:
        info = path.stat()
        key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        if key not in self._known:
            self._known[key] = sha256_file(path)
        return self._known[key]


def verify_served(config: Config, signatures: bool = True, digests: Digests | None = None) -> VerifyReport:
    """The served release against its manifest and signatures."""
    store = Store(config)
    manifest = store.current_manifest()
    current = store.current_dir()
    if manifest is None or current is None:
        raise StoreError(f"nothing is served at {config.docroot} yet: run 'pum run' first")
    roots = pinned_roots(config.trust_test_root)
    report = verify_release(current, manifest, roots, signatures=signatures, digests=digests)
    report.serial = manifest.serial
    return report


def verify_kept(config: Config, signatures: bool = True) -> list[VerifyReport]:
    """`pum verify`: the served release (with signatures), then every other kept release against its
    manifest (a file matching its manifest's sha256 is the file verified when that release was built)."""
    digests = Digests()
    served = verify_served(config, signatures, digests)
    reports = [served]
    store = Store(config)
    for serial in reversed(store.serials()):
        if serial == served.serial:
            continue
        directory = store.releases / str(serial)
        try:
            manifest = parse_manifest((directory / MANIFEST_PATH).read_bytes())
        except (OSError, FormatError) as error:
            reports.append(VerifyReport(0, [f"{MANIFEST_PATH}: unreadable ({error})"], serial))
            continue
        report = verify_release(directory, manifest, (), signatures=False, digests=digests)
        report.serial = serial
        reports.append(report)
    return reports


def kept_outcome(reports: list[VerifyReport]) -> str:
    """One line when every kept release is right; VerifyError naming the damaged releases otherwise."""
    damaged = [report for report in reports if not report.ok]
    if damaged:
        problems = sum(len(report.problems) for report in damaged)
        serials = ", ".join(str(report.serial) for report in damaged)
        raise VerifyError(
            f"{problems} problem(s) in release(s) {serials}: 'pum repair' puts every kept release back to "
            "its manifest (and moves foreign files aside)"
        )
    others = (
        f"; releases kept: {len(reports) - 1}, every file as its manifest says" if len(reports) > 1 else ""
    )
    return reports[0].outcome() + others


def verify_release(
    release_dir: Path,
    manifest: Manifest,
    roots: tuple[Any, ...],
    signatures: bool = True,
    digests: Digests | None = None,
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
        digest = digests.sha256(path) if digests is not None else sha256_file(path)
        if stat.st_size != record.size or digest != record.sha256:
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
