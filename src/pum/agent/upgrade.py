"""Step 4, `proscanup upgrade`: the engine upgrade the vendor's 2020 script did by hand, made safe.

Compare the installed version (`VersionFile`) with the newest upgrade package the list offers; only a newer
one goes ahead. Free space is checked first (`UpgradeMinFreeMB` on the install and state filesystems).
The package is downloaded with resume (a finished download from an earlier attempt is reused), checked
against the list's md5, extracted (members that would land outside the extraction directory, links out of
it and device files are refused), and its installer runs with the install directory as argument. Before
that the install directory is copied aside; any failure (installer exit status, CommandTimeout, a version
file that does not then say the new version) puts every previous file back. The package is deleted only
after success.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

from pum.agent.command import CommandError, run_command, script_argv
from pum.agent.listing import Package, Say, fetch_plan, parse_version
from pum.agent.proscan_conf import AgentConfig
from pum.agent.pum_client import UpdateClient
from pum.agent.update import LOCK, client_for
from pum.common.hashing import md5_file
from pum.common.runlock import RunLock
from pum.errors import ConfigError, StoreError, VerifyError
from pum.formats import FormatError
from pum.formats.productlist import safe_relative_path

MB = 1 << 20


class NotEnoughSpace(StoreError):
    """The upgrade was refused before anything was downloaded or changed."""


def run_upgrade(config: AgentConfig, say: Say, show: Say) -> bool:
    """True when an upgrade was installed; False when the installed version is current."""
    with RunLock(config.state_dir / LOCK), client_for(config) as client:
        plan = fetch_plan(client, config, say)
        if not plan.packages:
            say("No upgrade package on the server")
            return False
        package = max(plan.packages, key=lambda p: p.version)
        installed = installed_version(config)
        if package.version <= parse_version(installed):
            say(f"Installed version {installed} is current (the server offers {package.version_text})")
            return False
        say(f"Upgrade {installed} -> {package.version_text} ({package.name})")
        check_free_space(config)
        archive = fetch_package(client, config, package, say)
        install_package(config, archive, package, say, show)
        archive.unlink()
        say(f"Upgrade to {package.version_text} successfully")
        return True


def installed_version(config: AgentConfig) -> str:
    try:
        text = config.version_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(
            f"{config.version_file}: no installed version to compare with (VersionFile in {config.path})"
        ) from None
    try:
        parse_version(text)
    except ValueError as error:
        raise ConfigError(f"{config.version_file}: {error}") from None
    return text


def check_free_space(config: AgentConfig) -> None:
    needed = config.upgrade_min_free_mb
    for directory in (config.install_dir, config.state_dir):
        existing = _existing_ancestor(directory)
        free = shutil.disk_usage(existing).free
        if free < needed * MB:
            raise NotEnoughSpace(
                f"not enough free space for the upgrade on {existing}: {free // MB} MB free, "
                f"{needed} MB needed (UpgradeMinFreeMB in {config.path}); nothing was changed"
            )


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def fetch_package(client: UpdateClient, config: AgentConfig, package: Package, say: Say) -> Path:
    dest = config.downloads / package.name
    if dest.exists():
        if md5_file(dest) == package.entry.md5:
            say(f"Reusing the package downloaded earlier: {dest}")
            return dest
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    if part.exists():
        say(f"Resuming the download of {package.name} at {part.stat().st_size} bytes, Please wait...")
    else:
        say(f"Downloading file {package.name}, Please wait...")
    client.download(package.entry.path, dest, package.entry.md5)
    say(f"Success: Get upgrade package [md5sum {package.entry.md5}]")
    return dest


def extract_package(archive: Path, directory: Path) -> None:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                name = member.name.rstrip("/")
                if name in (".", ""):
                    continue
                try:
                    safe_relative_path(name)
                except FormatError as error:
                    raise VerifyError(f"{archive.name}: member {member.name!r} refused: {error}") from None
            tar.extractall(directory, members=members, filter="data")
    except tarfile.FilterError as error:
        raise VerifyError(f"{archive.name}: refused: {error}") from None
    except (tarfile.TarError, EOFError, OSError) as error:
        raise VerifyError(f"{archive.name}: not a readable tar.gz ({error})") from None


def find_installer(directory: Path, installer: str) -> Path:
    candidates = [directory / installer]
    tops = [p for p in directory.iterdir() if p.is_dir() and not p.is_symlink()]
    if len(tops) == 1 and len(list(directory.iterdir())) == 1:
        candidates.append(tops[0] / installer)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise VerifyError(f"the package has no installer {installer!r} at its top (Installer in proscan.conf)")


def install_package(config: AgentConfig, archive: Path, package: Package, say: Say, show: Say) -> None:
    work = config.state_dir / "upgrade"
    backup = config.state_dir / "backup"
    for leftover in (work, backup):
        if leftover.exists():
            shutil.rmtree(leftover)
    work.mkdir(parents=True)
    try:
        extract_package(archive, work)
        installer = find_installer(work, config.installer)
        excluded = _kept_out(config)
        say(f"Saving the current installation to {backup}")
        _copy_tree(config.install_dir, backup, excluded)
        try:
            _run_installer(config, installer, package, say, show)
        except BaseException:
            _restore(config.install_dir, backup, excluded)
            say(f"The previous installation ({installed_or_unknown(config)}) is restored")
            raise
        shutil.rmtree(backup)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def installed_or_unknown(config: AgentConfig) -> str:
    try:
        return installed_version(config)
    except ConfigError:
        return "version unknown"


def _run_installer(config: AgentConfig, installer: Path, package: Package, say: Say, show: Say) -> None:
    env = dict(os.environ, PROSCAN_INSTALL_DIR=str(config.install_dir), PROSCAN_VERSION=package.version_text)
    say(f"{installer.name} executing...")
    say("-----")
    finished = run_command(
        [*script_argv(installer), str(config.install_dir)],
        timeout=config.command_timeout,
        show=show,
        cwd=installer.parent,
        env=env,
    )
    say("-----")
    if finished.timed_out:
        raise CommandError(
            f"{package.name}: installer killed after CommandTimeout={config.command_timeout:g}s; "
            "the previous installation is restored"
        )
    if finished.returncode != 0:
        tail = finished.output[-1] if finished.output else "no output"
        raise CommandError(
            f"{package.name}: installer exited {finished.returncode} ({tail}); "
            "the previous installation is restored"
        )
    now = installed_or_unknown(config)
    if now == "version unknown" or parse_version(now) != package.version:
        raise CommandError(
            f"{package.name}: installer finished but {config.version_file} says {now}, expected "
            f"{package.version_text}; the previous installation is restored"
        )


def _kept_out(config: AgentConfig) -> set[Path]:
    """Inside the install directory, what the backup neither copies nor restores: our own state and the
    virus databases."""
    return {p for p in (config.state_dir, config.database_dir) if p.is_relative_to(config.install_dir)}


def _copy_tree(source: Path, dest: Path, excluded: set[Path]) -> None:
    def ignore(directory: str, names: list[str]) -> set[str]:
        return {name for name in names if Path(directory, name) in excluded}

    shutil.copytree(source, dest, symlinks=True, ignore=ignore)
    _copy_owners(source, dest)


def _restore(install_dir: Path, backup: Path, excluded: set[Path]) -> None:
    _clear(install_dir, excluded)
    shutil.copytree(backup, install_dir, symlinks=True, dirs_exist_ok=True)
    _copy_owners(backup, install_dir)
    shutil.rmtree(backup)


def _copy_owners(source: Path, dest: Path) -> None:
    """copytree keeps modes and times, not owners; as root, give each copy its original's owner."""
    if os.geteuid() != 0:
        return
    for directory, dirnames, filenames in os.walk(source):
        for name in [".", *dirnames, *filenames]:
            original = Path(directory, name)
            copy = dest / original.relative_to(source)
            if os.path.lexists(copy):
                stat = original.lstat()
                os.lchown(copy, stat.st_uid, stat.st_gid)


def _clear(directory: Path, excluded: set[Path]) -> None:
    for child in directory.iterdir():
        if child in excluded:
            continue
        if child.is_dir() and not child.is_symlink():
            if any(kept.is_relative_to(child) for kept in excluded):
                _clear(child, excluded)
            else:
                shutil.rmtree(child)
        else:
            child.unlink()
