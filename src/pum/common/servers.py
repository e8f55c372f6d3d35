"""Servers as both configuration files name them: `[scheme://]host[:port][/path]`, comma-separated."""

import re
from typing import List, NamedTuple, Optional, Tuple


class Server(NamedTuple):
    """One server: `host[:port][/path]` from `update_servers`, `product_servers` or `UpdateServer`."""

    host: str
    port: Optional[int] = None
    path: str = ""
    scheme: Optional[str] = None  # written as `https://host`: wins over the configured protocol

    def base_url(self, protocol: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme or protocol}://{host}{port}{self.path}/"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = f"{self.scheme}://" if self.scheme else ""
        port = f":{self.port}" if self.port else ""
        return scheme + host + port + self.path


def comma_list(text: str) -> Tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
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


def parse_servers(text: str) -> Tuple[Server, ...]:
    servers: List[Server] = []
    for item in comma_list(text):
        written, separator, rest = item.partition("://")
        scheme: Optional[str] = written.lower() if separator else None
        if not separator:
            rest = item
        elif scheme not in ("http", "https"):
            raise ValueError(f"only http:// or https:// servers, got {item!r}")
        hostport, slash, path = rest.partition("/")
        host, port = split_host_port(hostport)
        path = ("/" + path.strip("/")) if slash and path.strip("/") else ""
        servers.append(Server(host, port, path, scheme))
    if not servers:
        raise ValueError("needs at least one server")
    return tuple(servers)
