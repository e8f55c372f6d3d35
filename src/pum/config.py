"""pum.conf (the original `key=value` format) -> Config, a frozen dataclass built once."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

from pum import __version__
from pum.common.conffile import parse_yes_no, read_config_text
from pum.common.servers import Server, comma_list, split_host_port
from pum.common.servers import parse_servers_or_bundles as parse_servers
from pum.errors import ConfigError

CONFIG_SEARCH_PATH = (Path("/opt/proscan/pum/pum.conf"), Path("/etc/pum/pum.conf"))


class Nameserver(NamedTuple):
    address: str
    port: int = 53


# -- value parsers: each takes the raw text and returns the value or raises ValueError(reason) --


_WHOLE = re.compile(r"[0-9]{1,12}")
_DECIMAL = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9})?")


def _int_between(minimum: int, maximum: int) -> Callable[[str], int]:
    """ASCII digits only (int() also takes '１２' and '1_000'), within bounds: a value that passes here
    cannot hang or crash a run later (log_generation=100000000000000000000 rotated forever)."""

    def parse(text: str) -> int:
        if not _WHOLE.fullmatch(text):
            raise ValueError(f"expected a whole number, got {text!r}")
        value = int(text)
        if not minimum <= value <= maximum:
            raise ValueError(f"must be {minimum}-{maximum}, got {value}")
        return value

    return parse


def _port(text: str) -> int:
    if not _WHOLE.fullmatch(text) or not 1 <= int(text) <= 65535:
        raise ValueError(f"port must be 1-65535, got {text!r}")
    return int(text)


def _timeout(text: str) -> float:
    """Seconds as plain decimals, more than 0 and at most an hour: no nan, inf or 1e400."""
    if not _DECIMAL.fullmatch(text) or not 0 < float(text) <= 3600:
        raise ValueError(f"expected seconds above 0 and at most 3600 (such as 30 or 2.5), got {text!r}")
    return float(text)


def _deadline(text: str) -> float:
    if not _DECIMAL.fullmatch(text) or not 1 <= float(text) <= 86400:
        raise ValueError(f"expected seconds from 1 to 86400, got {text!r}")
    return float(text)


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _rate(text: str) -> int:
    """Bytes per second as `wget --limit-rate` takes them: 500K, 2M; 0 for no cap."""
    match = re.fullmatch(r"([0-9]{1,12})([KMG]?)", text.upper())
    if not match:
        raise ValueError(f"expected bytes per second such as 500K or 2M (0: no cap), got {text!r}")
    return int(match[1]) * _UNITS[match[2]]


def _user_agent(text: str) -> str:
    # a header value: printable ASCII only (http.client refuses others mid-run)
    if not re.fullmatch(r"[\x20-\x7e]{1,200}", text):
        raise ValueError("expected at most 200 printable ASCII characters")
    return text


def _choice(*choices: str) -> Callable[[str], str]:
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


def _networks(text: str) -> tuple[str, ...]:
    import ipaddress

    networks = []
    for item in comma_list(text):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"expected an address or network such as 192.0.2.0/24, got {item!r}") from None
    return tuple(networks)


def _hours(text: str) -> float:
    try:
        hours = float(text)
    except ValueError:
        raise ValueError("expected a number of hours") from None
    if not 0 < hours < 100_000:
        raise ValueError("expected a number of hours above 0")
    return hours


def _log_paths(text: str) -> tuple[str, ...]:
    paths = comma_list(text)
    for path in paths:
        if not path.startswith("/"):
            raise ValueError(f"an access log is an absolute path or glob, got {path!r}")
    return paths


def _engine_version(text: str) -> str:
    if not re.fullmatch(r"\d+(\.\d+){0,3}", text):
        raise ValueError("expected a dotted engine version such as 1.0.0")
    return text


class Key(NamedTuple):
    """How one pum.conf key is read: its parser (text -> value, or ValueError(reason)) and whether the
    value is a path (relative paths are relative to pum.conf)."""

    parse: Callable[[str], Any]
    is_path: bool


def _key(default: Any, parse: Callable[[str], Any], *, path: bool = False, secret: bool = False) -> Any:
    return field(default=default, repr=not secret, metadata={"key": Key(parse, path)})


@dataclass(frozen=True)
class Config:
    """pum.conf: every key is a field below, with its default and its parser (the one declaration)."""

    path: Path | None = None  # the pum.conf it was read from; not a key
    mode: str = _key("server", _choice("server", "mirror"))
    logfile: Path = _key(Path("/var/log/pum/pum.log"), _text, path=True)
    log_rotate: bool = _key(True, parse_yes_no)
    log_generation: int = _key(5, _int_between(1, 1000))
    update_servers: tuple[Server, ...] = _key((Server("database.clamav.net"),), parse_servers)
    update_protocol: str = _key("https", _choice("http", "https"))
    proxy_host: str | None = _key(None, _text)
    proxy_port: int = _key(3128, _port)
    proxy_user: str | None = _key(None, _text)
    proxy_passwd: str | None = _key(None, _text, secret=True)
    dns_resolve: bool = _key(True, parse_yes_no)
    retention_period: int = _key(30, _int_between(0, 3650))
    docroot: Path = _key(Path("/var/www/pum"), _text, path=True)
    data_dir: Path = _key(Path("/var/lib/pum"), _text, path=True)
    databases: tuple[str, ...] = _key(("main", "daily", "bytecode"), _databases)
    dns_record: str = _key("current.cvd.clamav.net", _text)
    nameservers: tuple[Nameserver, ...] = _key((), _nameservers)
    ca_bundle: Path | None = _key(None, _text, path=True)
    user_agent: str = _key(f"PUM/{__version__}", _user_agent)
    connect_timeout: float = _key(30.0, _timeout)
    read_timeout: float = _key(60.0, _timeout)
    retries: int = _key(3, _int_between(0, 20))
    keep_releases: int = _key(3, _int_between(1, 1000))
    validate_command: str | None = _key(None, _text)
    products: tuple[str, ...] = _key((), _product_lists)
    product_servers: tuple[Server, ...] = _key((), parse_servers)
    listen: str = _key("127.0.0.1:8080", _listen)
    workers: int = _key(1, _int_between(1, 256))
    tls_cert: Path | None = _key(None, _text, path=True)
    tls_key: Path | None = _key(None, _text, path=True)
    access_log: Path = _key(Path("/var/log/pum-access.log"), _text, path=True)
    max_connections: int = _key(10000, _int_between(16, 1_000_000))
    status_allow: tuple[str, ...] = _key((), _networks)
    max_cdiffs: int = _key(300, _int_between(1, 10000))
    initial_cdiffs: int = _key(100, _int_between(0, 10000))
    client_logs: tuple[str, ...] = _key((), _log_paths)
    fleet_stale_hours: float = _key(26.0, _hours)
    fleet_keep_days: int = _key(90, _int_between(1, 3650))
    fleet_engine: str | None = _key(None, _engine_version)
    fleet_subs: tuple[Server, ...] = _key((), parse_servers)
    trust_test_root: bool = _key(False, parse_yes_no)
    trusted_root: Path | None = _key(None, _text, path=True)  # mirror mode: the main's root (pum keys show)
    download_deadline: float = _key(600.0, _deadline)
    max_file_size: int = _key(2048, _int_between(1, 1 << 20))
    max_rate: int = _key(0, _rate)
    max_parallel: int = _key(4, _int_between(1, 32))  # downloads at once (a first copy, cdiffs and .sign)

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

    @property
    def local_index(self) -> Path:
        """The local content's index (`pum import`, store/local_area.py); none: no local content."""
        return self.data_dir / "local" / "index.json"


def default_listen() -> str:
    return "0.0.0.0:80" if os.geteuid() == 0 else "127.0.0.1:8080"


# every pum.conf key, in the order `pum install` documents them: the fields of Config that have a parser
KEYS: dict[str, Key] = {item.name: item.metadata["key"] for item in fields(Config) if "key" in item.metadata}

_KEY_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
# NUL in a path is a crash in open(); other control characters are never meant (tab aside)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def parse_config(text: str, path: Path | None = None, shown_as: str | None = None) -> Config:
    """Build a Config from pum.conf text; every error names `file:line` (the file as the user named it)."""
    where = shown_as or (str(path) if path else "pum.conf")
    base_dir = path.parent if path else Path.cwd()
    values: dict[str, Any] = {}
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
            import difflib

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
        control = _CONTROL.search(raw_value)
        if control:
            raise ConfigError(
                f"{where}:{number}: bad value for {key}: control character {control[0]!r} "
                "(a damaged file, or binary pasted in?)"
            )
        try:
            value: Any = KEYS[key].parse(raw_value)
        except ValueError as error:
            shown = "***" if key == "proxy_passwd" else raw_value
            raise ConfigError(f"{where}:{number}: bad value for {key} ({shown!r}): {error}") from None
        if KEYS[key].is_path:
            value = (base_dir / value) if not Path(value).is_absolute() else Path(value)
        values[key] = value
    values.setdefault("listen", default_listen())
    config = Config(path=path, **values)
    _check_combinations(config, where, seen)
    return config


def _check_combinations(config: Config, where: str, seen: dict[str, int]) -> None:
    if config.ca_bundle is not None and not config.ca_bundle.is_file():
        raise ConfigError(f"{where}:{seen['ca_bundle']}: ca_bundle {config.ca_bundle}: no such file")
    if (config.tls_cert is None) != (config.tls_key is None):
        line = seen.get("tls_cert") or seen.get("tls_key")
        raise ConfigError(f"{where}:{line}: tls_cert and tls_key must be set together")
    if config.proxy_user and not config.proxy_host:
        raise ConfigError(f"{where}:{seen['proxy_user']}: proxy_user is set but proxy_host is not")
    if config.mode == "server" and any(server.is_bundle for server in config.update_servers):
        raise ConfigError(
            f"{where}:{seen['update_servers']}: file:// update_servers (bundles) need mode=mirror"
        )
    if any(server.is_bundle for server in config.product_servers):
        raise ConfigError(f"{where}:{seen['product_servers']}: product_servers cannot be file://")
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
