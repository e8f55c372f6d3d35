"""`pum install` / `pum uninstall`: directories, a commented pum.conf, the web server config or the
pum-serve unit, the schedule of `pum run`, and a record of every file written so uninstall removes just those.

Everything is written under `root` (default /), so an image, a chroot or a test's directory can be
installed into; the files themselves name the final paths (`root` is not part of them), like DESTDIR.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from pum.config import CONFIG_SEARCH_PATH, Config, parse_config
from pum.deploy import cron, systemd
from pum.errors import ConfigError, PumError, StoreError

DEFAULT_CONFIG_PATH = Path("/etc/pum/pum.conf")
RECORD_PATH = Path("/var/lib/pum/installed.json")
WEB_CHOICES = ("apache", "nginx", "pum", "none")
SCHEDULERS = ("systemd", "cron")

Say = Callable[[str], None]


def default_config_text() -> str:
    """The commented pum.conf `pum install` writes; it loads to exactly `Config()`'s defaults."""
    return resources.files("pum").joinpath("default.conf").read_text(encoding="utf-8")


def pum_executable() -> list[str]:
    """How the units and the cron job call this PUM: its console script, else `python -m pum.cli`."""
    invoked = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    candidates = [
        invoked if invoked is not None and invoked.name == "pum" else None,
        Path(sys.executable).parent / "pum",  # a venv or pipx's venv keeps the script beside python
        Path(found) if (found := shutil.which("pum")) else None,
    ]
    for candidate in candidates:
        if candidate is not None and candidate.is_file() and os.access(candidate, os.X_OK):
            return [str(candidate.absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "pum.cli"]


@dataclass
class InstallRecord:
    """<root>/var/lib/pum/installed.json: what `pum install` wrote, by final path."""

    config: str
    config_written: bool = False
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256 of what was written
    directories: list[str] = field(default_factory=list)  # made by install; removed when empty
    units: list[str] = field(default_factory=list)  # systemd units to enable
    scheduler: str = "cron"
    web: str = "none"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def load(cls, path: Path) -> InstallRecord | None:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise StoreError(
                f"{path}: unreadable install record ({error}); remove it and install again"
            ) from None
        known = {key: value for key, value in document.items() if key in cls.__dataclass_fields__}
        return cls(**known)


class _Tree:
    """Writes under `root`, says each change in one line, and notes what it made in `record`."""

    def __init__(self, root: Path, say: Say, record: InstallRecord) -> None:
        self.root = root
        self.say = say
        self.record = record
        self.changed: list[str] = []  # final paths of files written (not unchanged) this time
        self.replaced: list[str] = []  # of those, the ones that were there before with other content

    def at(self, path: Path) -> Path:
        return self.root / path.relative_to("/")

    def directory(self, path: Path) -> None:
        missing = [
            p for p in [path, *path.parents] if not self.at(p).exists() and not self.at(p).is_symlink()
        ]
        for made in reversed(missing):
            try:
                self.at(made).mkdir(mode=0o755)
            except OSError as error:
                raise StoreError(f"can't make directory {self.at(made)}: {error.strerror}") from None
            self.say(f"made {self.at(made)}/")
            if str(made) not in self.record.directories:
                self.record.directories.append(str(made))

    def file(self, path: Path, text: str, mode: int = 0o644) -> None:
        data = text.encode("utf-8")
        real = self.at(path)
        self.directory(path.parent)
        try:
            unchanged = real.read_bytes() == data and (real.stat().st_mode & 0o7777) == mode
            existed = True
        except FileNotFoundError:
            unchanged = existed = False
        if not unchanged:
            temporary = real.with_name(f".{real.name}.pum-new")
            try:
                temporary.write_bytes(data)
                temporary.chmod(mode)
                os.replace(temporary, real)
            except OSError as error:
                raise StoreError(f"can't write {real}: {error.strerror}") from None
            self.changed.append(str(path))
            if existed:
                self.replaced.append(str(path))
        self.say(f"{'unchanged' if unchanged else 'wrote'} {real}")
        self.note(path, data)

    def note(self, path: Path, data: bytes) -> None:
        self.record.files[str(path)] = hashlib.sha256(data).hexdigest()


def find_config_target(root: Path, explicit: str | os.PathLike[str] | None) -> Path:
    """The pum.conf to use: the one named, else an existing one on the search path, else /etc/pum/pum.conf."""
    if explicit:
        return Path(os.path.abspath(explicit))
    for candidate in CONFIG_SEARCH_PATH:
        if (root / candidate.relative_to("/")).is_file():
            return candidate
    return DEFAULT_CONFIG_PATH


def install(
    root: Path = Path("/"),
    config_path: str | os.PathLike[str] | None = None,
    schedule: str = cron.DEFAULT_SCHEDULE,
    web: str | None = None,
    port: int | None = None,
    flavor: str | None = None,
    scheduler: str | None = None,
    random_delay: int = cron.DEFAULT_RANDOM_DELAY,
    say: Say = print,
) -> list[str]:
    """Install PUM under `root`; return the final paths of the files that changed (none the second time)."""
    parsed_schedule = cron.parse_schedule(schedule)  # every option is checked before anything is written
    if not 0 <= random_delay <= 32767:  # bash's $RANDOM, which the cron job uses, stops at 32767
        raise ConfigError(f"--random-delay must be 0-32767 seconds, got {random_delay}")
    if web is not None and web not in WEB_CHOICES:
        raise ConfigError(f"--web {web!r}: expected one of {', '.join(WEB_CHOICES)}")
    if scheduler is not None and scheduler not in SCHEDULERS:
        raise ConfigError(f"--scheduler {scheduler!r}: expected systemd or cron")
    root = Path(os.path.abspath(root))
    if root == Path("/") and os.geteuid() != 0:
        raise PumError("pum install writes under /etc and /var: run it as root (or give --root DIR)")
    scheduler = scheduler or ("systemd" if systemd.systemd_running() else "cron")
    web = web or _detect_web(root, scheduler, say)
    if web == "pum" and scheduler != "systemd":
        raise ConfigError(
            "--web pum installs pum-serve.service, which needs systemd; without systemd start `pum serve` "
            "from your init system or container, or give --web apache, nginx or none"
        )
    if web in ("apache", "nginx"):
        from pum.deploy.web import detect_flavor

        flavor = flavor or detect_flavor(root)  # may refuse: before anything is written
    previous = InstallRecord.load(root / RECORD_PATH.relative_to("/"))
    target = find_config_target(root, config_path)
    record = InstallRecord(
        config=str(target),
        directories=list(previous.directories) if previous else [],
        scheduler=scheduler,
        web=web,
    )
    tree = _Tree(root, say, record)
    config = _install_config(
        tree, target, previous, listen=f"0.0.0.0:{port}" if web == "pum" and port else None
    )
    _make_directories(tree, config, web)
    web_changed = False
    if web in ("apache", "nginx"):
        flavor, web_changed = _install_web_config(tree, config, web, port, flavor)
    command = [*pum_executable(), "--config", str(target)]
    unit_dir = Path("/") / systemd.UNIT_DIR
    if web == "pum":
        tree.file(unit_dir / systemd.SERVE_SERVICE, systemd.render_serve_service(command))
        record.units.append(systemd.SERVE_SERVICE)
    if scheduler == "systemd":
        tree.file(unit_dir / systemd.RUN_SERVICE, systemd.render_run_service(command))
        tree.file(unit_dir / systemd.RUN_TIMER, systemd.render_run_timer(parsed_schedule, random_delay))
        record.units.append(systemd.RUN_TIMER)
    else:
        tree.file(
            Path("/") / cron.CRON_FILE,
            cron.render_cron_file(parsed_schedule, [*command, "run"], random_delay),
        )
    if previous is not None:
        dropped_units = [unit for unit in previous.units if unit not in record.units]
        if dropped_units and root == Path("/") and systemd.systemd_running():
            _run(["systemctl", "disable", "--now", *dropped_units], say)
        kept = (record.config, previous.config)  # a pum.conf is never removed by install
        _remove_files(tree, [Path(p) for p in previous.files if p not in record.files and p not in kept])
    tree.directory(RECORD_PATH.parent)
    record.config_written = record.config_written or bool(
        previous and previous.config_written and previous.config == record.config
    )
    tree.file(RECORD_PATH, record.to_json())
    _activate(tree, root, scheduler, web, flavor if web_changed else None)
    from pum.trust.keys import pin_notes

    for line in pin_notes(config, tree.at(config.data_dir)):
        say(line)
    say("nothing changed" if not tree.changed else f"{len(tree.changed)} file(s) changed")
    return tree.changed


def _detect_web(root: Path, scheduler: str, say: Say) -> str:
    """Apache first, as the original install.sh looked for it; then nginx; else `pum serve` under systemd."""
    for web, directories in (("apache", ("etc/apache2", "etc/httpd")), ("nginx", ("etc/nginx",))):
        found = next((d for d in directories if (root / d).is_dir()), None)
        if found:
            say(f"web server: {web} (found {root / found}; --web chooses another)")
            return web
    web = "pum" if scheduler == "systemd" else "none"
    say(f"web server: {'pum serve' if web == 'pum' else 'none'} (no Apache or nginx found; --web chooses)")
    return web


def _install_config(tree: _Tree, target: Path, previous: InstallRecord | None, listen: str | None) -> Config:
    real = tree.at(target)
    try:
        text = real.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{real}: cannot read: {error}") from None
    if text is None:
        text = default_config_text()
        if listen:
            text = text.replace("\nlisten=\n", f"\nlisten={listen}\n")
        config = parse_config(text, target, shown_as=str(real))
        tree.file(target, text, mode=0o640)  # 0640: it will hold proxy_passwd
        tree.record.config_written = True
        return config
    config = parse_config(text, target, shown_as=str(real))
    recorded = (
        previous is not None and previous.files.get(str(target)) == hashlib.sha256(text.encode()).hexdigest()
    )
    if recorded or text == default_config_text():  # ours as written (maybe by an install since removed)
        tree.say(f"unchanged {real}")
        tree.note(target, text.encode("utf-8"))
        tree.record.config_written = True
    else:
        tree.say(f"kept {real} (pum install never overwrites a pum.conf)")
    if listen and config.listen != listen:
        tree.say(f"note: {real} says listen={config.listen}; edit it to serve on {listen}")
    return config


def _make_directories(tree: _Tree, config: Config, web: str) -> None:
    wanted = [config.data_dir, config.logfile.parent, config.docroot.parent]
    if web == "pum":
        wanted.append(config.access_log.parent)
    for directory in wanted:
        tree.directory(directory)
    # an empty directory where the docroot symlink will be: web servers start without warnings, and the
    # first `pum run` replaces it (Store accepts an empty directory there)
    if not tree.at(config.docroot).exists() and not tree.at(config.docroot).is_symlink():
        tree.directory(config.docroot)


def _install_web_config(
    tree: _Tree, config: Config, server: str, port: int | None, flavor: str | None
) -> tuple[str, bool]:
    """The Apache or nginx config through `pum.deploy.web`; returns the flavor and whether it changed."""
    from pum.deploy.web import DEFAULT_PORT, config_path, detect_flavor, render_web_config, write_web_config

    flavor = flavor or detect_flavor(tree.root)
    target = Path("/") / config_path(server, flavor)
    expected = render_web_config(server, config.docroot, port or DEFAULT_PORT, flavor)
    real = tree.at(target)
    tree.directory(target.parent)
    if real.is_file() and real.read_text(encoding="utf-8") == expected:
        tree.say(f"unchanged {real}")
        tree.note(target, expected.encode("utf-8"))
        return flavor, False
    for written in write_web_config(config, server, port, root=tree.root, flavor=flavor):
        final = Path("/") / written.relative_to(tree.root)
        tree.say(f"wrote {written}")
        tree.note(final, written.read_bytes())
        tree.changed.append(str(final))
    return flavor, True


def _activate(tree: _Tree, root: Path, scheduler: str, web: str, web_flavor: str | None) -> None:
    """Start what changed when installing into the running system; else say the commands to run.

    `web_flavor` is set when the Apache or nginx config changed: the server must read it again.
    """
    if not tree.changed:
        return
    live = root == Path("/")
    units = tree.record.units
    if scheduler == "systemd" or web == "pum":
        commands = [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", *units]]
        if str(Path("/") / systemd.UNIT_DIR / systemd.SERVE_SERVICE) in tree.replaced:
            commands.append(["systemctl", "try-restart", systemd.SERVE_SERVICE])
        if live and systemd.systemd_running():
            for command in commands:
                _run(command, tree.say)
        else:
            tree.say("to start: " + " && ".join(" ".join(c) for c in commands))
    elif live and not (shutil.which("cron") or shutil.which("crond")):
        tree.say(f"note: no cron daemon found to read {cron.CRON_FILE}: install cron, or run `pum daemon`")
    if web_flavor is not None:
        from pum.deploy.web import reload_command

        tree.say(f"now run: {reload_command(web, web_flavor)}")


def _run(command: list[str], say: Say, must_succeed: bool = True) -> None:
    try:
        finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PumError(f"{' '.join(command)}: {error}") from None
    if finished.returncode != 0:
        detail = (finished.stderr or finished.stdout).strip().splitlines()
        failure = f"{' '.join(command)} exited {finished.returncode}: {detail[-1] if detail else 'no output'}"
        if must_succeed:
            raise PumError(failure)
        say(f"note: {failure}")
        return
    say(f"ran {' '.join(command)}")


def _remove_files(tree: _Tree, paths: list[Path]) -> None:
    for path in paths:
        real = tree.at(path)
        for enabled in _enabled_links(real):
            enabled.unlink()
            tree.say(f"removed {enabled}")
        if real.is_file() or real.is_symlink():
            real.unlink()
            tree.say(f"removed {real}")
            tree.changed.append(str(path))


def _enabled_links(real: Path) -> list[Path]:
    """Debian's a2enconf links conf-enabled/X to conf-available/X; a dangling one stops Apache."""
    if real.parent.name != "conf-available":
        return []
    link = real.parent.parent / "conf-enabled" / real.name
    return [link] if link.is_symlink() and os.path.realpath(link) == os.path.realpath(real) else []


def uninstall(root: Path = Path("/"), purge: bool = False, say: Say = print) -> None:
    """Remove what `pum install` wrote under `root`; releases, logs and pum.conf stay unless `purge`."""
    root = Path(os.path.abspath(root))
    if root == Path("/") and os.geteuid() != 0:
        raise PumError("pum uninstall removes files under /etc and /var: run it as root (or give --root DIR)")
    record_file = root / RECORD_PATH.relative_to("/")
    record = InstallRecord.load(record_file)
    if record is None:
        say(f"nothing to uninstall: no install record at {record_file}")
        return
    tree = _Tree(root, say, record)
    live = root == Path("/") and systemd.systemd_running()
    if live and record.units:
        # units an operator already removed make this fail: say so and remove the rest anyway
        _run(["systemctl", "disable", "--now", *record.units], say, must_succeed=False)
    config = _config_for_purge(tree, record) if purge else None
    _remove_files(tree, [Path(p) for p in record.files if p != record.config])
    if live and record.units:
        _run(["systemctl", "daemon-reload"], say)
    if record.web in ("apache", "nginx"):
        say(f"reload {record.web} so that it stops serving PUM's tree")
    conf = tree.at(Path(record.config))
    if config is not None:
        _purge(tree, config)
        if record.config_written and conf.is_file():
            conf.unlink()
            say(f"removed {conf}")
        elif conf.is_file():
            say(f"kept {conf} (not written by pum install)")
    record_file.unlink(missing_ok=True)
    say(f"removed {record_file}")
    for directory in sorted(record.directories, key=lambda d: len(Path(d).parts), reverse=True):
        real = tree.at(Path(directory))
        if real.is_dir() and not real.is_symlink() and not any(real.iterdir()):
            real.rmdir()
            say(f"removed {real}/")
    if config is None:
        kept = [str(conf)] if conf.is_file() else []
        say(f"kept {', '.join([*kept, 'releases, state and logs'])} (--purge removes them)")


def _config_for_purge(tree: _Tree, record: InstallRecord) -> Config:
    conf = tree.at(Path(record.config))
    try:
        text = conf.read_text(encoding="utf-8")
    except FileNotFoundError:
        tree.say(f"{conf} is gone: purging the default places")
        return Config()
    return parse_config(text, Path(record.config), shown_as=str(conf))


def _purge(tree: _Tree, config: Config) -> None:
    data_dir = tree.at(config.data_dir)
    if data_dir.is_dir():
        markers = ("generation", "releases", "state", "downloads", RECORD_PATH.name, "pum.lock")
        if any(data_dir.iterdir()) and not any((data_dir / m).exists() for m in markers):
            raise StoreError(
                f"data_dir {data_dir} holds no PUM data (no releases/, no generation): not removed"
            )
        for entry in data_dir.iterdir():
            if entry.name != RECORD_PATH.name or data_dir != tree.at(RECORD_PATH.parent):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        tree.say(f"removed the releases and state in {data_dir}/")
    docroot = tree.at(config.docroot)
    if docroot.is_symlink():
        docroot.unlink()
        tree.say(f"removed {docroot}")
    elif docroot.is_dir() and not any(docroot.iterdir()):
        docroot.rmdir()
        tree.say(f"removed {docroot}/")
    for log in (config.logfile, config.access_log):
        real = tree.at(log)
        for generation in sorted(real.parent.glob(f"{real.name}*")) if real.parent.is_dir() else []:
            suffix = generation.name[len(real.name) :]
            if suffix == "" or (suffix.startswith(".") and suffix[1:].isdigit()):
                generation.unlink()
                tree.say(f"removed {generation}")
