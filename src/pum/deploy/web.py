"""`pum deploy apache|nginx`: a web server config serving the docroot by the rules of `pum serve`."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any

from pum.deploy import render_template
from pum.errors import ConfigError, PumError
from pum.status import STATUS_DIR

SERVERS = ("apache", "nginx")
FLAVORS = ("debian", "rhel")
DEFAULT_PORT = 8000  # the port the original product's installation guide used
# where `pum run` writes the status page, its JSON and the status metrics (pum.status.write_status_files)
DEFAULT_STATUS_DIR = Path("/var/lib/pum") / STATUS_DIR

# Where each distribution's web server reads extra config (the original product wrote the RHEL one).
CONFIG_PATHS = {
    ("apache", "debian"): Path("etc/apache2/conf-available/pum.conf"),
    ("apache", "rhel"): Path("etc/httpd/conf.d/pum.conf"),
    ("nginx", "debian"): Path("etc/nginx/conf.d/pum.conf"),
    ("nginx", "rhel"): Path("etc/nginx/conf.d/pum.conf"),
}

RELOAD_COMMANDS = {
    ("apache", "debian"): "a2enconf pum && apache2ctl configtest && systemctl reload apache2",
    ("apache", "rhel"): "apachectl configtest && systemctl reload httpd",
    ("nginx", "debian"): "nginx -t && systemctl reload nginx",
    ("nginx", "rhel"): "nginx -t && systemctl reload nginx",
}

# Ports a stock Apache already listens on: a second `Listen` for them stops Apache from starting.
_STOCK_PORTS = {80, 443}


def detect_flavor(root: Path = Path("/")) -> str:
    """ "debian" or "rhel", from the files the distribution leaves in /etc."""
    if (root / "etc/debian_version").exists() or (root / "etc/apache2").is_dir():
        return "debian"
    if (root / "etc/redhat-release").exists() or (root / "etc/httpd").is_dir():
        return "rhel"
    raise ConfigError(
        f"can't tell the distribution from {root / 'etc'}: give --flavor debian or --flavor rhel"
    )


def _check(server: str, flavor: str | None) -> None:
    if server not in SERVERS:
        raise ConfigError(f"unknown web server {server!r}: expected apache or nginx")
    if flavor is not None and flavor not in FLAVORS:
        raise ConfigError(f"unknown flavor {flavor!r}: expected debian or rhel")


def config_path(server: str, flavor: str) -> Path:
    """Where the config goes, relative to the filesystem root."""
    _check(server, flavor)
    return CONFIG_PATHS[(server, flavor)]


def reload_command(server: str, flavor: str | None = None, root: Path = Path("/")) -> str:
    """The shell command that makes the web server read the written config."""
    _check(server, flavor)
    return RELOAD_COMMANDS[(server, flavor or detect_flavor(root))]


def render_web_config(
    server: str,
    docroot: Path,
    port: int = DEFAULT_PORT,
    flavor: str = "debian",
    address: str | None = None,
    status_dir: Path = DEFAULT_STATUS_DIR,
    status_allow: tuple[str, ...] = (),
) -> str:
    """The config text for `server` serving `docroot` on `port` of every address (or of `address`),
    and the status files of `status_dir` to this host and the `status_allow` networks."""
    _check(server, flavor)
    if not 0 < port < 65536:
        raise ConfigError(f"port must be 1-65535, got {port}")
    _check_path("docroot", docroot)
    _check_path("status directory", status_dir)
    if address is not None and not re.fullmatch(r"[0-9.]+|\[[0-9A-Fa-f:.]+\]", address):
        raise ConfigError(f"address must be an IPv4 address or [IPv6], got {address!r}")
    # checked by the config parser already; written again from ipaddress's own form, never as given
    networks = [str(ipaddress.ip_network(item, strict=False)) for item in status_allow]
    bind = f"{address}:" if address else ""
    values = {
        "docroot": str(docroot),
        "port": str(port),
        "flavor": flavor,
        "address": bind,
        "status_dir": str(status_dir),
        "apache_allow": "".join(f" && ! -R '{network}'" for network in networks),
        "nginx_allow": "".join(f"    {network} 1;\n" for network in networks),
    }
    if server == "apache":
        values["listen"] = (
            f"# Port {port} is in the stock ports.conf/httpd.conf already: no Listen here.\n"
            if port in _STOCK_PORTS and not address
            else f"Listen {bind}{port}\n"
        )
        values["enable"] = "enable it with `a2enconf pum`." if flavor == "debian" else "read from conf.d."
        values["selinux"] = (
            "# SELinux: label the release store for httpd, e.g.\n"
            "#   semanage fcontext -a -t httpd_sys_content_t '/var/lib/pum(/.*)?'\n"
            "#   restorecon -R /var/lib/pum\n"
            f"#   semanage port -a -t http_port_t -p tcp {port}\n"
            if flavor == "rhel"
            else ""
        )
    return render_template(f"{server}.conf", values)


def _check_path(what: str, path: Path) -> None:
    if not path.is_absolute():
        raise ConfigError(f"{what} must be an absolute path, got {path}")
    if re.search(r'[\s"{};#$\\]', str(path)):
        raise ConfigError(
            f"{what} {str(path)!r}: a web server config can't name a path with blanks, "
            f"quotes, braces, '#', '$', ';' or '\\' safely; choose another {what}"
        )


def write_web_config(
    config: Any,
    server: str,
    port: int | None,
    root: Path = Path("/"),
    flavor: str | None = None,
    address: str | None = None,
) -> list[Path]:
    """Write the web server config for `config.docroot`; return the files written.

    `root` prefixes every path (a chroot, an image being built, a test's directory); `address` limits
    the server to one address (default: all, as the original guide's `Listen 8000`). Print
    `reload_command(server, flavor)` after it.
    """
    _check(server, flavor)
    flavor = flavor or detect_flavor(root)
    text = render_web_config(
        server,
        Path(config.docroot),
        port or DEFAULT_PORT,
        flavor,
        address,
        Path(config.data_dir) / STATUS_DIR,
        tuple(config.status_allow),
    )
    target = root / config_path(server, flavor)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp{os.getpid()}")
        temporary.write_text(text, encoding="utf-8")
        temporary.chmod(0o644)
        os.replace(temporary, target)
    except OSError as error:
        raise PumError(f"can't write {target}: {error.strerror}") from None
    if root == Path("/"):
        _make_status_files(config)
    return [target]


def _make_status_files(config: Any) -> None:
    """The status files this web server serves, written now: their directory is what tells `pum run` to
    keep them current (a PUM behind `pum serve` has none)."""
    directory = Path(config.data_dir) / STATUS_DIR
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PumError(f"can't make {directory}: {error.strerror}") from None
    if hasattr(config, "logfile"):  # a whole Config: the document can be made
        from pum.status import refresh_status_files

        refresh_status_files(config)
