"""HTTP on a bare socket, for what clients like httpx smooth over: `..` in targets, HTTP/1.0,
pipelining, Connection handling, malformed requests."""

from __future__ import annotations

import socket
from dataclasses import dataclass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send `data`, then read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def parse_responses(data: bytes, head_only: tuple[bool, ...] = ()) -> list[Response]:
    """Split a byte stream into responses; `head_only[i]` marks the answer to a HEAD (no body)."""
    responses = []
    while data:
        end = data.index(b"\r\n\r\n")
        lines = data[:end].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        data = data[end + 4 :]
        is_head = head_only[len(responses)] if len(responses) < len(head_only) else False
        if is_head or status == 304:
            length = 0
        elif "content-length" in headers:
            length = int(headers["content-length"])
        else:
            length = len(data)
        responses.append(Response(status, headers, data[:length]))
        data = data[length:]
    return responses


def get(port: int, target: str, version: str = "HTTP/1.1", **headers: str) -> Response:
    fields = {"Host": "127.0.0.1", "Connection": "close", **headers}
    head = f"GET {target} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
    return parse_responses(exchange(port, head.encode("latin-1")))[0]
