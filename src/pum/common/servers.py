"""Servers as both configuration files name them: `[scheme://]host[:port][/path]`, comma-separated; pum.conf
also takes `file:///path`, a bundle carried across an air gap."""

import re
from typing import List, NamedTuple, Optional, Tuple


class Server(NamedTuple):
    """One server: `host[:port][/path]` from `update_servers`, `product_servers` or `UpdateServer`."""

    host: str
    port: Optional[int] = None
    path: str = ""
    scheme: Optional[str] = None  # written as `https://host`: wins over the configured protocol

    @property
    def is_bundle(self) -> bool:
        return self.scheme == "file"

    def base_url(self, protocol: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme or protocol}://{host}{port}{self.path}/"

    def __str__(self) -> str:
        if self.is_bundle:
            return "file://" + self.path
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = f"{self.scheme}://" if self.scheme else ""
        port = f":{self.port}" if self.port else ""
        return scheme + host + port + self.path


def comma_list(text: str) -> Tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


_DIGITS = re.compile(r"^[0-9]{1,5}$")  # ASCII only: int() also takes '１２' and '1_000'


def parse_port(text: str) -> int:
    if not _DIGITS.match(text) or not 1 <= int(text) <= 65535:
        raise ValueError(f"port must be 1-65535, got {text!r}")
    return int(text)


_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.-]+))(?::(?P<port>\d+))?$")


def split_host_port(item: str) -> Tuple[str, Optional[int]]:
    """`host`, `host:port`, `[v6]` or `[v6]:port` -> (host, port or None); ValueError otherwise."""
    match = _HOST_PORT.match(item)
    if not match:
        raise ValueError(f"expected host[:port], got {item!r}")
    host = match.group("v6") or match.group("host")
    port = match.group("port")
    return host, parse_port(port) if port else None


def parse_servers(text: str, bundles: bool = False) -> Tuple[Server, ...]:
    """`bundles`: `file:///path` is a bundle (directory or .tar, `pum export`), never mixed with network
    servers (pum.conf); proscan.conf takes network servers only."""
    servers: List[Server] = []
    for item in comma_list(text):
        written, separator, rest = item.partition("://")
        scheme: Optional[str] = written.lower() if separator else None
        if not separator:
            rest = item
        elif scheme == "file" and bundles:
            servers.append(_bundle_location(item, rest))
            continue
        elif scheme not in ("http", "https"):
            allowed = "http://, https:// or file://" if bundles else "http:// or https://"
            raise ValueError(f"only {allowed} servers, got {item!r}")
        hostport, slash, path = rest.partition("/")
        host, port = split_host_port(hostport)
        path = ("/" + path.strip("/")) if slash and path.strip("/") else ""
        servers.append(Server(host, port, path, scheme))
    if not servers:
        raise ValueError("needs at least one server")
    if len({server.is_bundle for server in servers}) > 1:
        raise ValueError("file:// (bundles carried by hand) and network servers cannot be mixed")
    return tuple(servers)


def parse_servers_or_bundles(text: str) -> Tuple[Server, ...]:
    return parse_servers(text, bundles=True)


def _bundle_location(item: str, rest: str) -> Server:
    """`file:///media/usb/pum`: a bundle (directory or .tar) carried across an air gap (`pum export`)."""
    if not rest.startswith("/") or "\0" in rest:
        raise ValueError(f"file:// takes an absolute path, as file:///media/usb/pum, got {item!r}")
    return Server("", None, rest.rstrip("/") or "/", "file")
