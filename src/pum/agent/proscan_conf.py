"""proscan.conf ([update.options] of the scanner's INI file) -> AgentConfig, an immutable record."""

import configparser
import difflib
import re
from pathlib import Path
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

from pum import __version__
from pum.common.conffile import parse_seconds, parse_yes_no, read_config_file
from pum.common.servers import Server, parse_servers
from pum.errors import ConfigError
from pum.formats import FormatError
from pum.formats.productlist import safe_relative_path

DEFAULT_CONFIG = Path("/etc/opt/proscan/proscan.conf")
SECTION = "update.options"


class AgentConfig(NamedTuple):
    path: Path
    servers: Tuple[Server, ...]
    product_list: str
    protocol: str = "http"
    install_dir: Path = Path("/opt/proscan")
    database_dir: Path = Path("/opt/proscan/var/clamav")
    state_dir: Path = Path("/var/opt/proscan/proscanup")
    command_timeout: float = 300.0
    reload_application: bool = False
    vdf_command: Optional[str] = None
    freshclam: str = "freshclam"
    databases: Tuple[str, ...] = ()
    version_file: Path = Path("/opt/proscan/VERSION")
    installer: Optional[str] = None  # None: auto_install.sh when the package has one, else install.sh
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    user_agent: str = "proscanup/" + __version__
    ca_file: Optional[Path] = None
    report_state: bool = True
    download_deadline: float = 3600.0
    encoding: str = "utf-8"  # the encoding proscan.conf was read in
    # the engine upgrade (agent/upgrade.py)
    engine_version_command: Optional[str] = None  # None: <InstallDir>/bin/clamd -V, else clamd -V on PATH
    engine_dir: Path = Path("/usr/lib/clamav")
    upgrade_backup_paths: Tuple[Path, ...] = ()
    upgrade_free_space: Tuple[Tuple[Path, int], ...] = ((Path("/usr/lib"), 700),)
    max_rate: int = 0  # bytes/s for the package download; 0: no limit
    trusted_root: Optional[Path] = None  # the pinned root metadata (`pum keys show`); None: MD5 only
    self_update: bool = True  # replace the running proscanup.pyz by the PUM's (agent/selfupdate.py)

    @property
    def list_dir(self) -> str:
        """The list's directory on the server: modules below it are installed below `install_dir`."""
        return self.product_list.rpartition("/")[0]

    @property
    def post_update_path(self) -> Path:
        return self.install_dir / "bin" / "post_update.sh"

    @property
    def downloads(self) -> Path:
        return self.state_dir / "downloads"


def _megabytes(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"expected a whole number of megabytes, got {text!r}")
    return int(text)


def _protocol(text: str) -> str:
    if text.lower() not in ("http", "https"):
        raise ValueError(f"expected http or https, got {text!r}")
    return text.lower()


def _list_path(text: str) -> str:
    try:
        path = safe_relative_path(text)
    except FormatError as error:
        raise ValueError(str(error)) from None
    if not path.endswith(".lst"):
        raise ValueError(f"a product list path ends in .lst, got {text!r}")
    return path


def _databases(text: str) -> Tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    for name in names:
        if not re.match(r"^[a-z0-9_]+$", name):
            raise ValueError(f"database names are lowercase letters, digits and _, got {name!r}")
    return names


def _path(text: str) -> Path:
    path = Path(text)
    if not path.is_absolute():
        raise ValueError(f"expected an absolute path, got {text!r}")
    return path


def _text(text: str) -> str:
    return text


# option (as written in the file) -> (attribute, parser)
KEYS: Dict[str, Tuple[str, Callable[[str], Any]]] = {
    "UpdateServer": ("servers", parse_servers),
    "Protocol": ("protocol", _protocol),
    "ProductList": ("product_list", _list_path),
    "InstallDir": ("install_dir", _path),
    "DatabaseDir": ("database_dir", _path),
    "StateDir": ("state_dir", _path),
    "CommandTimeout": ("command_timeout", parse_seconds),
    "ReloadApplication": ("reload_application", parse_yes_no),
    "VdfCommand": ("vdf_command", _text),
    "Freshclam": ("freshclam", _text),
    "Databases": ("databases", _databases),
    "VersionFile": ("version_file", _path),
    "Installer": ("installer", _text),
    "ConnectTimeout": ("connect_timeout", parse_seconds),
    "ReadTimeout": ("read_timeout", parse_seconds),
    "CAFile": ("ca_file", _path),
    "ReportState": ("report_state", parse_yes_no),
    "DownloadDeadline": ("download_deadline", parse_seconds),
    "EngineVersionCommand": ("engine_version_command", _text),
    "EngineDir": ("engine_dir", _path),
    "UpgradeBackupPaths": ("upgrade_backup_paths", lambda text: _paths(text)),
    "UpgradeFreeSpace": ("upgrade_free_space", lambda text: _free_space(text)),
    "MaxRate": ("max_rate", lambda text: _bytes_per_second(text)),
    "TrustedRoot": ("trusted_root", _path),
    "SelfUpdate": ("self_update", parse_yes_no),
}
_BY_LOWER = {key.lower(): key for key in KEYS}
REQUIRED = ("UpdateServer", "ProductList")


def parse_agent_config(text: str, path: Path, encoding: str = "utf-8") -> AgentConfig:
    """Read `[update.options]`; other sections belong to the scanner and are left alone.
    Every error names `file:line`."""
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as error:
        raise ConfigError(f"{path}: {_one_line(error)}") from None
    if not parser.has_section(SECTION):
        raise ConfigError(f"{path}: no [{SECTION}] section (UpdateServer and ProductList go there)")
    lines = _option_lines(text)
    values: Dict[str, Any] = {"encoding": encoding}
    for option, raw in parser.items(SECTION):
        line, written = lines.get(option, ("?", option))
        where = f"{path}:{line}"
        key = _BY_LOWER.get(option)
        if key is None:
            guess = difflib.get_close_matches(option, _BY_LOWER, n=1, cutoff=0.6)
            hint = f" (did you mean '{_BY_LOWER[guess[0]]}'?)" if guess else ""
            raise ConfigError(f"{where}: unknown option '{written}' in [{SECTION}]{hint}")
        if raw.strip() == "":
            continue
        attribute, parse = KEYS[key]
        try:
            values[attribute] = parse(raw.strip())
        except ValueError as error:
            raise ConfigError(f"{where}: bad value for {key} ({raw.strip()!r}): {error}") from None
    for key in REQUIRED:
        if KEYS[key][0] not in values:
            raise ConfigError(f"{path}: [{SECTION}] needs {key}")
    install_dir = values.get("install_dir", Path("/opt/proscan"))
    values.setdefault("database_dir", install_dir / "var" / "clamav")
    values.setdefault("version_file", install_dir / "VERSION")
    return AgentConfig(path=path, **values)


def _option_lines(text: str) -> Dict[str, Tuple[Any, str]]:
    """Line and spelling of each option of [update.options] (configparser keeps neither)."""
    lines: Dict[str, Tuple[Any, str]] = {}
    section = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
        elif (
            section == SECTION and stripped and not stripped.startswith(("#", ";")) and not line[0].isspace()
        ):
            name = re.split(r"[=:]", stripped, maxsplit=1)[0].strip()
            lines.setdefault(name.lower(), (number, name))
    return lines


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _paths(text: str) -> Tuple[Path, ...]:
    """UpgradeBackupPaths: absolute paths, comma-separated."""
    return tuple(_path(part.strip()) for part in text.split(",") if part.strip())


def _free_space(text: str) -> Tuple[Tuple[Path, int], ...]:
    """UpgradeFreeSpace: `path:MB` pairs, comma-separated (`/usr/lib:700,/opt:200`)."""
    rules = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        path, colon, megabytes = part.rpartition(":")
        if not colon:
            raise ValueError(f"expected path:MB, got {part!r}")
        rules.append((_path(path), _megabytes(megabytes)))
    return tuple(rules)


def _bytes_per_second(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,15}", text):
        raise ValueError(f"expected a whole number of bytes per second (0: no limit), got {text!r}")
    return int(text)


def load_agent_config(path: Optional[Path] = None) -> AgentConfig:
    path = path or DEFAULT_CONFIG
    text, encoding = read_config_file(path, " (give --config PATH)")
    return parse_agent_config(text, path, encoding)
