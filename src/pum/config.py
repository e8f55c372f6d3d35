"""pum.conf (the original `key=value` format) -> Config, a frozen dataclass built once."""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pum import __version__
from pum.common.conffile import parse_seconds, parse_yes_no, read_config_text
from pum.common.servers import Server, comma_list, parse_servers, split_host_port
from pum.errors import ConfigError

CONFIG_SEARCH_PATH = (Path("/opt/proscan/pum/pum.conf"), Path("/etc/pum/pum.conf"))


@dataclass(frozen=True)
class Nameserver:
    address: str
    port: int = 53


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    mode: str = "server"
    logfile: Path = Path("/var/log/pum/pum.log")
    log_rotate: bool = True
    log_generation: int = 5
    update_servers: tuple[Server, ...] = (Server("database.clamav.net"),)
    update_protocol: str = "https"
    proxy_host: str | None = None
    proxy_port: int = 3128
    proxy_user: str | None = None
    proxy_passwd: str | None = field(default=None, repr=False)
    dns_resolve: bool = True
    retention_period: int = 30
    docroot: Path = Path("/var/www/pum")
    data_dir: Path = Path("/var/lib/pum")
    databases: tuple[str, ...] = ("main", "daily", "bytecode")
    dns_record: str = "current.cvd.clamav.net"
    nameservers: tuple[Nameserver, ...] = ()
    ca_bundle: Path | None = None
    user_agent: str = f"PUM/{__version__}"
    connect_timeout: float = 30.0
    read_timeout: float = 60.0
    retries: int = 3
    keep_releases: int = 3
    validate_command: str | None = None
    products: tuple[str, ...] = ()
    product_servers: tuple[Server, ...] = ()
    listen: str = "127.0.0.1:8080"
    workers: int = 1
    tls_cert: Path | None = None
    tls_key: Path | None = None
    access_log: Path = Path("/var/log/pum-access.log")

    @property
    def proxy_url(self) -> str | None:
        """The proxy URL with credentials; never log it (see `proxy_display`)."""
        if not self.proxy_host:
            return None
        from urllib.parse import quote

        auth = ""
        if self.proxy_user:
            auth = quote(self.proxy_user, safe="") + ":" + quote(self.proxy_passwd or "", safe="") + "@"
        return f"http://{auth}{self.proxy_host}:{self.proxy_port}"

    @property
    def proxy_display(self) -> str | None:
        if not self.proxy_host:
            return None
        user = f"{self.proxy_user}:***@" if self.proxy_user else ""
        return f"http://{user}{self.proxy_host}:{self.proxy_port}"

    @property
    def sources_of_products(self) -> tuple[Server, ...]:
        return self.product_servers or self.update_servers

    @property
    def releases_dir(self) -> Path:
        return self.data_dir / "releases"

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "state"


def default_listen() -> str:
    return "0.0.0.0:80" if os.geteuid() == 0 else "127.0.0.1:8080"


# -- value parsers: each takes the raw text and returns the value or raises ValueError(reason) --


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise ValueError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _port(text: str) -> int:
    value = _int_at_least(1)(text)
    if value > 65535:
        raise ValueError(f"port must be 1-65535, got {value}")
    return value


def _choice(*choices: str):
    def parse(text: str) -> str:
        if text.lower() not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
        return text.lower()

    return parse


def _nameservers(text: str) -> tuple[Nameserver, ...]:
    result = []
    for item in comma_list(text):
        host, port = split_host_port(item)
        result.append(Nameserver(host, port or 53))
    return tuple(result)


_DB_NAME = re.compile(r"^[a-z0-9_]+$")


def _databases(text: str) -> tuple[str, ...]:
    names = comma_list(text)
    for name in names:
        if not _DB_NAME.match(name):
            raise ValueError(f"database names are lowercase letters, digits and _, got {name!r}")
    return names


def _product_lists(text: str) -> tuple[str, ...]:
    names = comma_list(text)
    for name in names:
        if name.startswith("/") or ".." in name.split("/") or not name.endswith(".lst"):
            raise ValueError(f"a product list is a relative path ending in .lst, got {name!r}")
    return names


def _listen(text: str) -> str:
    host, port = split_host_port(text) if not text.isdigit() else ("0.0.0.0", int(text))
    if port is None:
        raise ValueError(f"expected host:port, got {text!r}")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _text(text: str) -> str:
    return text


# key -> (attribute, parser, is a path); the order is the order `pum install` documents them in
KEYS: dict[str, tuple] = {
    "mode": (_choice("server", "mirror"), False),
    "logfile": (_text, True),
    "log_rotate": (parse_yes_no, False),
    "log_generation": (_int_at_least(1), False),
    "update_servers": (parse_servers, False),
    "update_protocol": (_choice("http", "https"), False),
    "proxy_host": (_text, False),
    "proxy_port": (_port, False),
    "proxy_user": (_text, False),
    "proxy_passwd": (_text, False),
    "dns_resolve": (parse_yes_no, False),
    "retention_period": (_int_at_least(0), False),
    "docroot": (_text, True),
    "data_dir": (_text, True),
    "databases": (_databases, False),
    "dns_record": (_text, False),
    "nameservers": (_nameservers, False),
    "ca_bundle": (_text, True),
    "user_agent": (_text, False),
    "connect_timeout": (parse_seconds, False),
    "read_timeout": (parse_seconds, False),
    "retries": (_int_at_least(0), False),
    "keep_releases": (_int_at_least(1), False),
    "validate_command": (_text, False),
    "products": (_product_lists, False),
    "product_servers": (parse_servers, False),
    "listen": (_listen, False),
    "workers": (_int_at_least(1), False),
    "tls_cert": (_text, True),
    "tls_key": (_text, True),
    "access_log": (_text, True),
}

_KEY_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def parse_config(text: str, path: Path | None = None, shown_as: str | None = None) -> Config:
    """Build a Config from pum.conf text; every error names `file:line` (the file as the user named it)."""
    where = shown_as or (str(path) if path else "pum.conf")
    base_dir = path.parent if path else Path.cwd()
    values: dict[str, object] = {}
    seen: dict[str, int] = {}
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        match = _KEY_LINE.match(line)
        if not match:
            if "=" in line and re.match(r"^\S+\s+=|^\S+=\s", line):
                raise ConfigError(f"{where}:{number}: no blanks allowed around '=' (write name=value)")
            raise ConfigError(f"{where}:{number}: expected name=value, got {_shown(line)!r}")
        key, raw_value = match[1], match[2]
        if key not in KEYS:
            guess = difflib.get_close_matches(key, KEYS, n=1, cutoff=0.6)
            hint = f" (did you mean '{guess[0]}'?)" if guess else ""
            raise ConfigError(f"{where}:{number}: unknown key '{key}'{hint}")
        if key in seen:
            raise ConfigError(f"{where}:{number}: '{key}' is set again (first set on line {seen[key]})")
        seen[key] = number
        if raw_value != raw_value.strip():
            raise ConfigError(f"{where}:{number}: no blanks allowed around '=' (write name=value)")
        if raw_value == "":
            continue
        parser, is_path = KEYS[key]
        try:
            value = parser(raw_value)
        except ValueError as error:
            shown = "***" if key == "proxy_passwd" else raw_value
            raise ConfigError(f"{where}:{number}: bad value for {key} ({shown!r}): {error}") from None
        if is_path:
            value = (base_dir / value) if not Path(value).is_absolute() else Path(value)
        values[key] = value
    values.setdefault("listen", default_listen())
    config = Config(path=path, **values)  # type: ignore[arg-type]
    _check_combinations(config, where, seen)
    return config


def _check_combinations(config: Config, where: str, seen: dict[str, int]) -> None:
    if (config.tls_cert is None) != (config.tls_key is None):
        line = seen.get("tls_cert") or seen.get("tls_key")
        raise ConfigError(f"{where}:{line}: tls_cert and tls_key must be set together")
    if config.proxy_user and not config.proxy_host:
        raise ConfigError(f"{where}:{seen['proxy_user']}: proxy_user is set but proxy_host is not")
    if config.mode == "server" and not config.databases and not config.products:
        raise ConfigError(f"{where}:{seen.get('databases', 0)}: nothing to carry: set databases or products")


def _shown(line: str) -> str:
    return line if not line.lower().startswith("proxy_passwd") else "proxy_passwd..."


def find_config_path(explicit: str | os.PathLike[str] | None) -> Path:
    if explicit:
        return Path(explicit)
    from_env = os.environ.get("PUM_CONFIG")
    if from_env:
        return Path(from_env)
    for candidate in CONFIG_SEARCH_PATH:
        if candidate.exists():
            return candidate
    searched = ", ".join(str(p) for p in CONFIG_SEARCH_PATH)
    raise ConfigError(f"no configuration file: give --config PATH or set PUM_CONFIG (searched {searched})")


def load_config(explicit: str | os.PathLike[str] | None = None) -> Config:
    path = find_config_path(explicit)
    return parse_config(read_config_text(path), path.resolve(), shown_as=str(path))
