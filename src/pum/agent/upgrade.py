"""Step 4, `proscanup upgrade`: the vendor's engine upgrade, as its post_update.sh ran it, made safe.

1. A journal left by a killed upgrade is finished first (agent/journal.py): the previous installation back.
2. The newest upgrade package of the product list; the rollout document beside it, if any, decides whether
   this host takes part now (agent/rollout.py).
3. The vendor's version rule: the installed engine as `EngineVersionCommand` reports it (`clamd -V`:
   `ClamAV 0.101.5/25916/...`) against the engine the package carries (`clamav_version.txt`, dotted or the
   vendor's 7-digit `0010105`, else the name of `clamav/clamav-<engine>.tar.gz`). Only a newer engine goes
   ahead (`found new engine version (0010105 > 0010000)`), and with `--engine-at-most V` only on hosts whose
   engine is at most V (the vendor's 2020 rule). A package carrying neither falls back to the version in
   its name against `VersionFile`. A `VersionFile` already at the package's version spares the download.
4. Free space (`UpgradeFreeSpace`, path:MB pairs) before the download, and again before the install
   counting the unpacked package and the saved copies on each filesystem.
5. The package is downloaded with resume, at most `MaxRate` bytes/s, checked against the list's md5; its
   members are checked (nothing outside its directory, no device or hard link) before it is unpacked.
6. Every tree the installer may change is saved (journal first); a `proscanup` the package carries is
   written beside the running one and renamed over; the installer (`Installer`, else `auto_install.sh`,
   else `install.sh`, in the package's one top directory or at its root) runs from its own directory
   with InstallDir as argument. Success is its exit 0 and the engine command then reporting the package's
   engine; anything else puts every saved tree back by rename.
The package is deleted after success only. A run nested in the proscanup that ran post_update.sh
records its failure for its parent (agent/nested.py).
"""

import json
import os
import re
import shlex
import shutil
import tarfile
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

from pum.agent.command import CommandError, new_token, run_command, script_argv
from pum.agent.journal import (
    Journal,
    NotEnoughSpace,
    SavedTree,
    commit,
    plan_trees,
    recover,
    restore,
    save,
    tree_size,
)
from pum.agent.listing import Package, Say, fetch_plan, parse_version
from pum.agent.nested import RunSlot
from pum.agent.pace import Pace
from pum.agent.proscan_conf import AgentConfig
from pum.agent.pum_client import UpdateClient
from pum.agent.rollout import in_rollout
from pum.agent.update import check_signed_metadata, client_for
from pum.common.hashing import md5_file
from pum.errors import ConfigError, PumError, VerifyError
from pum.formats import FormatError
from pum.formats.engine import EngineVersion, parse_clamd_version, parse_engine_version, parse_version_file
from pum.formats.productlist import safe_relative_path

MB = 1 << 20
ENGINE_FILE = "clamav_version.txt"
INSTALLERS = ("auto_install.sh", "install.sh")
SELF = "proscanup"
ENGINE_COMMAND_TIMEOUT = 60.0
MAX_MEMBERS = 100_000
KNOWN = "packages.json"  # md5 of each package seen -> the engine it carries (_known_packages)
_ENGINE_TARBALL = re.compile(r"clamav/clamav-([0-9]{1,3}\.[0-9]{1,3}(?:\.[0-9]{1,3})?)\.tar\.gz")


class PackageContents(NamedTuple):
    top: str  # the one top directory, or "" when the files are at the root
    engine: Optional[EngineVersion]
    unpacked: int  # bytes of its regular files
    members: List[str]


def run_upgrade(
    config: AgentConfig, say: Say, show: Say, engine_at_most: Optional[EngineVersion] = None
) -> bool:
    """True when an upgrade was installed; False when there was nothing to do."""
    with RunSlot(config.state_dir) as slot:
        try:
            return _upgrade(config, say, show, engine_at_most)
        except PumError as error:
            slot.record_failure(str(error))
            raise


def _upgrade(config: AgentConfig, say: Say, show: Say, engine_at_most: Optional[EngineVersion]) -> bool:
    journal = Journal(config.state_dir)
    recover(journal, say)
    with client_for(config) as client:
        check_signed_metadata(client, config, say)
        plan = fetch_plan(client, config, say)
        if not plan.packages:
            say("No upgrade package on the server")
            return False
        package = max(plan.packages, key=lambda p: p.version)
        if not in_rollout(client.get_optional, config.state_dir, package.entry.path, say):
            return False
        installed = _Installed(config)
        if engine_at_most is not None and installed.engine() > engine_at_most:
            say(
                f"Installed engine {installed.engine().dotted()} is above --engine-at-most "
                f"{engine_at_most.dotted()}: not upgraded"
            )
            return False
        known = _known_packages(config)
        decided = package.entry.md5 in known
        if decided and not _newer(known[package.entry.md5], installed, package, say):
            return False
        trees = _trees(config)
        check_free_space(config, trees, 0)
        archive = fetch_package(client, config, package, say)
        contents = read_package(archive)
        _remember_package(config, package.entry.md5, contents.engine)
        if not decided and not _newer(contents.engine, installed, package, say):
            archive.unlink()
            return False
        check_free_space(config, trees, contents.unpacked)
        install_package(config, archive, contents, package, trees, say, show)
        archive.unlink()
        say(f"Upgrade to {package.version_text} successfully")
        return True


class _Installed:
    """What is installed, each asked once: the engine (EngineVersionCommand), the product (VersionFile)."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self._engine: Optional[EngineVersion] = None

    def engine(self) -> EngineVersion:
        if self._engine is None:
            self._engine = installed_engine(self.config)
        return self._engine

    def product(self) -> Optional[str]:
        return _version_file(self.config)


def _newer(engine: Optional[EngineVersion], installed: _Installed, package: Package, say: Say) -> bool:
    """The vendor's rule (engine against engine); for a package that carries no engine, its name's version
    against VersionFile (none: go ahead)."""
    if engine is not None:
        current = installed.engine()
        if engine > current:
            say(f"found new engine version ({engine.seven_digit()} > {current.seven_digit()})")
            return True
        say(f"Installed engine {current.dotted()} is current ({package.name} carries {engine.dotted()})")
        return False
    product = installed.product()
    if product is not None and package.version <= parse_version(product):
        say(f"Installed version {product} is current (the server offers {package.version_text})")
        return False
    say(f"Upgrade {product or 'version unknown'} -> {package.version_text} ({package.name})")
    return True


# -- versions --------------------------------------------------------------------------------------------


def engine_command(config: AgentConfig) -> List[str]:
    if config.engine_version_command:
        return shlex.split(config.engine_version_command)
    local = config.install_dir / "bin" / "clamd"
    if local.exists():
        return [str(local), "-V"]
    found = shutil.which("clamd")
    if found:
        return [found, "-V"]
    raise ConfigError(
        f"no clamd in {local.parent} nor on PATH to ask the installed engine version "
        f"(set EngineVersionCommand in {config.path})"
    )


def installed_engine(config: AgentConfig) -> EngineVersion:
    argv = engine_command(config)
    lines: List[str] = []
    finished = run_command(
        argv, timeout=min(config.command_timeout, ENGINE_COMMAND_TIMEOUT), show=lines.append
    )
    output = "\n".join(lines[:20]).encode()
    try:
        return parse_clamd_version(output)
    except FormatError as error:
        status = "killed at its time limit" if finished.timed_out else f"exit {finished.returncode}"
        raise CommandError(
            f"{' '.join(argv)} ({status}): {error} (EngineVersionCommand in {config.path})"
        ) from None


def _version_file(config: AgentConfig) -> Optional[str]:
    """VersionFile's version, or None when there is none (the vendor's hosts may have none)."""
    try:
        with open(str(config.version_file), "rb") as stream:
            text = stream.read(100).decode("ascii", "replace").strip()
    except FileNotFoundError:
        return None
    try:
        parse_version(text)
    except ValueError as error:
        raise ConfigError(f"{config.version_file}: {error}") from None
    return text


def _known_packages(config: AgentConfig) -> Dict[str, Optional[EngineVersion]]:
    """md5 of each package seen -> the engine it carries (None: none), so that a package that brings
    nothing newer is not downloaded again at every run."""
    try:
        with open(str(config.state_dir / KNOWN), "rb") as stream:
            document = json.loads(stream.read(1 << 20).decode("utf-8"))
        return {md5: parse_engine_version(text) if text else None for md5, text in document.items()}
    except (FileNotFoundError, ValueError, AttributeError, TypeError):
        return {}  # a lost or damaged record only costs one download


def _remember_package(config: AgentConfig, md5: str, engine: Optional[EngineVersion]) -> None:
    known = {k: v.dotted() if v else "" for k, v in _known_packages(config).items()}
    known[md5] = engine.dotted() if engine else ""
    path = config.state_dir / KNOWN
    with open(str(path) + ".part", "w", encoding="utf-8") as stream:
        json.dump(dict(sorted(known.items())[-50:]), stream)
    os.replace(str(path) + ".part", str(path))


# -- space and download ----------------------------------------------------------------------------------


def _trees(config: AgentConfig) -> List[SavedTree]:
    paths = [config.install_dir, config.engine_dir] + list(config.upgrade_backup_paths)
    kept = [config.database_dir, config.state_dir]
    unique: List[Path] = []
    for path in paths:
        if not any(path == other or other in path.parents for other in unique):
            unique.append(path)  # a tree inside one already saved is saved with it
    return plan_trees(unique, kept, config.state_dir)


def check_free_space(config: AgentConfig, trees: List[SavedTree], unpacked: int) -> None:
    """Each `UpgradeFreeSpace` path:MB, plus what this upgrade writes on that filesystem: the saved copies
    and the unpacked package."""
    for path, megabytes in config.upgrade_free_space:
        existing = _existing_ancestor(path)
        device = os.stat(str(existing)).st_dev
        needed = megabytes * MB
        for tree in trees:
            if tree.existed and os.stat(str(_existing_ancestor(tree.saved.parent))).st_dev == device:
                needed += tree_size(Path(tree.path), [Path(tree.path, k) for k in tree.kept])
        if os.stat(str(_existing_ancestor(config.state_dir))).st_dev == device:
            needed += unpacked
        stat = os.statvfs(str(existing))
        free = stat.f_bavail * stat.f_frsize
        if free < needed:
            raise NotEnoughSpace(
                f"not enough free space for the upgrade on {path}: {free // MB} MB free, "
                f"{-(-needed // MB)} MB needed ({megabytes} MB by UpgradeFreeSpace in {config.path}, "
                "plus the package and the saved copies); nothing was changed"
            )


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _signed(client: UpdateClient, package: Package, path: Path) -> bool:
    """A package kept from an earlier run is the signed target too (TrustedRoot), or is fetched again."""
    try:
        client.check_signed(package.entry.path, path, str(path))
    except VerifyError:
        return False
    return True


def fetch_package(client: UpdateClient, config: AgentConfig, package: Package, say: Say) -> Path:
    dest = config.downloads / package.name
    if dest.exists():
        if md5_file(dest) == package.entry.md5 and _signed(client, package, dest):
            say(f"Reusing the package downloaded earlier: {dest}")
            return dest
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    if part.exists():
        say(f"Resuming the download of {package.name} at {part.stat().st_size} bytes, Please wait...")
    else:
        say(f"Downloading file {package.name}, Please wait...")
    pace = Pace(package.name, config.max_rate)
    try:
        client.download(package.entry.path, dest, package.entry.md5, pace)
    finally:
        pace.finish()
    say(f"Success: Get upgrade package [md5sum {package.entry.md5}]")
    return dest


# -- the package -----------------------------------------------------------------------------------------


def read_package(archive: Path) -> PackageContents:
    """Check every member, find the top directory and the engine the package carries; nothing unpacked."""
    try:
        with tarfile.open(str(archive), "r:gz") as tar:
            members = []
            unpacked = 0
            engine_file = b""
            for count, member in enumerate(tar):
                if count >= MAX_MEMBERS:
                    raise VerifyError(f"{archive.name}: more than {MAX_MEMBERS} members, refused")
                name = _checked_member(archive, member)
                if name:
                    members.append(name)
                    unpacked += member.size if member.isfile() else 0
                if name.rpartition("/")[2] == ENGINE_FILE and name.count("/") <= 1 and member.isfile():
                    stream = tar.extractfile(member)
                    engine_file = stream.read(4096) if stream else b""
    except (tarfile.TarError, EOFError, OSError) as error:
        raise VerifyError(f"{archive.name}: not a readable tar.gz ({error})") from None
    tops = {name.partition("/")[0] for name in members}
    top = tops.pop() if len(tops) == 1 and any("/" in name for name in members) else ""
    inside = [name[len(top) + 1 :] if top else name for name in members]
    engine = None
    if engine_file and ENGINE_FILE in inside:
        try:
            engine = parse_version_file(engine_file)
        except FormatError as error:
            raise VerifyError(f"{archive.name}: clamav_version.txt: {error}") from None
    else:
        for name in inside:
            match = _ENGINE_TARBALL.fullmatch(name)
            if match:
                engine = parse_engine_version(match.group(1))
    return PackageContents(top, engine, unpacked, inside)


def _checked_member(archive: Path, member: tarfile.TarInfo) -> str:
    name = member.name.rstrip("/")
    while name.startswith("./"):
        name = name[2:]
    if name in (".", ""):
        return ""
    try:
        safe_relative_path(name)
    except FormatError as error:
        raise VerifyError(f"{archive.name}: member {member.name!r} refused: {error}") from None
    if member.issym():
        target = os.path.normpath(os.path.join(os.path.dirname(name), member.linkname))
        if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
            raise VerifyError(f"{archive.name}: member {member.name!r} refused: a link out of the package")
    elif not (member.isfile() or member.isdir()):
        raise VerifyError(f"{archive.name}: member {member.name!r} refused: not a file, directory or symlink")
    return name


def extract_package(archive: Path, directory: Path) -> None:
    """Unpack members already checked by read_package: files with their permission bits (no setuid),
    directories, symlinks inside the package. Done by hand: tarfile's filters need Python 3.12."""
    with tarfile.open(str(archive), "r:gz") as tar:
        for member in tar:
            name = _checked_member(archive, member)
            if not name:
                continue
            target = directory / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if member.isdir():
                target.mkdir(exist_ok=True)
            elif member.issym():
                os.symlink(member.linkname, str(target))
            else:
                source = tar.extractfile(member)
                assert source is not None
                with open(str(target), "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
                os.chmod(str(target), member.mode & 0o777)


def find_installer(config: AgentConfig, root: Path, contents: PackageContents) -> Path:
    names = (config.installer,) if config.installer else INSTALLERS
    for name in names:
        if name in contents.members and (root / name).is_file():
            return root / name
    raise VerifyError(
        f"the package has no installer ({' or '.join(names)}) at its top (Installer in {config.path})"
    )


# -- the install -----------------------------------------------------------------------------------------


def install_package(
    config: AgentConfig,
    archive: Path,
    contents: PackageContents,
    package: Package,
    trees: List[SavedTree],
    say: Say,
    show: Say,
) -> None:
    work = config.state_dir / "upgrade"
    if work.exists():
        shutil.rmtree(str(work))
    work.mkdir(parents=True)
    try:
        extract_package(archive, work)
        root = work / contents.top if contents.top else work
        installer = find_installer(config, root, contents)
        journal = Journal(config.state_dir)
        session = new_token()
        state = save(journal, package.name, trees, session, say)
        try:
            replace_self(config, root, contents, say)
            _run_installer(config, installer, contents, package, session, say, show)
        except BaseException:
            restore(journal, state)
            say("The previous installation is restored")
            raise
        commit(journal, state)
    finally:
        shutil.rmtree(str(work), ignore_errors=True)


def replace_self(config: AgentConfig, root: Path, contents: PackageContents, say: Say) -> None:
    """A `proscanup` in the package (at its top, in bin/ or in a bin_<version>/ directory) replaces ours:
    written beside it and renamed over, so the running file is never written into (`Text file busy`)."""
    target = config.install_dir / "bin" / SELF
    candidates = [n for n in contents.members if n == SELF or re.fullmatch(r"bin(_[^/]*)?/" + SELF, n)]
    if not candidates or not (root / candidates[0]).is_file() or not target.is_file():
        return
    beside = target.with_name(f".{SELF}.proscanup-new")
    shutil.copyfile(str(root / candidates[0]), str(beside))
    os.chmod(str(beside), 0o755)
    with open(str(beside), "rb") as stream:
        os.fsync(stream.fileno())
    os.rename(str(beside), str(target))
    say(f"{target} replaced by the package's {candidates[0]} (written beside, renamed over)")


def _run_installer(
    config: AgentConfig,
    installer: Path,
    contents: PackageContents,
    package: Package,
    session: str,
    say: Say,
    show: Say,
) -> None:
    env = dict(os.environ, PROSCAN_INSTALL_DIR=str(config.install_dir), PROSCAN_VERSION=package.version_text)
    say(f"{installer.name} executing...")
    say("-----")
    finished = run_command(
        script_argv(installer) + [str(config.install_dir)],
        timeout=config.command_timeout,
        show=show,
        cwd=installer.parent,
        env=env,
        token=session,
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
    if contents.engine is not None:
        try:
            now = installed_engine(config).dotted()
        except PumError as error:
            now = f"nothing readable ({error})"
        if now != contents.engine.dotted():
            raise CommandError(
                f"{package.name}: installer finished but the engine command reports {now}, expected "
                f"{contents.engine.dotted()}; the previous installation is restored"
            )
        say(f"The engine is now {now}")
        return
    product = _version_file(config)
    if product is not None and parse_version(product) != package.version:
        raise CommandError(
            f"{package.name}: installer finished but {config.version_file} says {product}, expected "
            f"{package.version_text}; the previous installation is restored"
        )
