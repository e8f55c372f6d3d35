"""TXT lookups for the version record: the configured nameservers and ports (else /etc/resolv.conf's),
one bounded timeout for the whole lookup, UDP and then TCP when the answer is truncated.

The standard library's sockets and `formats/dns_message.py`, not dnspython: importing dnspython cost
~40-50 ms of every update run for one question. Each query has a random id and goes out on a connected
UDP socket (the kernel drops datagrams from any other address and port, and picks a random source port);
a reply whose id or question is not ours is ignored, as a stray datagram.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from pum.config import Nameserver
from pum.errors import UpstreamError
from pum.formats import FormatError
from pum.formats.dns_message import NXDOMAIN, RCODES, Answer, parse_answer, query

RESOLV_CONF = Path("/etc/resolv.conf")
# glibc's resolver reads at most three nameservers (MAXNS in resolv.h)
_MAX_SYSTEM_NAMESERVERS = 3
# one try's wait at most; the lookup as a whole has the caller's timeout
_PER_TRY = 5.0
_MAX_ROUNDS = 100
# datagrams that are not our answer (late replies to an earlier query, junk) ignored per try, at most
_MAX_STRAY = 16
_MAX_UDP = 65535


def lookup_txt(name: str, nameservers: tuple[Nameserver, ...], timeout: float) -> str:
    """The first TXT string of `name`; UpstreamError with the name and the reason otherwise."""
    servers = list(nameservers) or system_nameservers()
    if not servers:
        reason = f"no nameserver configured nor in {RESOLV_CONF}"
        raise UpstreamError(f"DNS: lookup of {name} failed: {reason}")
    deadline = time.monotonic() + timeout
    problems: list[str] = []
    for _round in range(_MAX_ROUNDS):
        for server in list(servers):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UpstreamError(f"DNS: no answer for {name} within {timeout:.0f}s")
            try:
                answer = _ask(server, name, min(remaining, _PER_TRY))
            except TimeoutError:
                continue
            except (OSError, FormatError) as error:
                # like dnspython's resolver: a server that fails (refused, unreachable, malformed) is
                # not asked again in this lookup
                problems.append(f"{server.address}:{server.port}: {error}")
                servers.remove(server)
                continue
            if answer.rcode == NXDOMAIN:
                raise UpstreamError(f"DNS: {name} does not exist")
            if answer.rcode:
                problems.append(
                    f"{server.address}:{server.port} answered {RCODES.get(answer.rcode, answer.rcode)}"
                )
                servers.remove(server)
                continue
            if not answer.texts:
                raise UpstreamError(f"DNS: {name} has no TXT record")
            return answer.texts[0].decode("ascii", errors="replace")
        if not servers:
            reason = "; ".join(problems)[:300]
            raise UpstreamError(f"DNS: lookup of {name} failed: {reason}")
    raise UpstreamError(f"DNS: no answer for {name} within {timeout:.0f}s")


def system_nameservers() -> list[Nameserver]:
    """The `nameserver` lines of /etc/resolv.conf (at most three, as glibc reads them)."""
    try:
        text = RESOLV_CONF.read_text("ascii", errors="replace")
    except OSError:
        return []
    found = []
    for line in text.splitlines()[:1000]:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            found.append(Nameserver(fields[1]))
    return found[:_MAX_SYSTEM_NAMESERVERS]


def _random_id() -> int:
    # os.urandom, not the secrets module: the same source without importing random and its kin
    return int.from_bytes(os.urandom(2), "big")


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _ask(server: Nameserver, name: str, wait: float) -> Answer:
    """The answer of `server` to our TXT question, over UDP (then TCP when truncated), within `wait`."""
    deadline = time.monotonic() + wait
    query_id = _random_id()
    with socket.socket(_family(server.address), socket.SOCK_DGRAM) as udp:
        udp.connect((server.address, server.port))
        udp.settimeout(wait)
        udp.send(query(name, query_id))
        for _ in range(_MAX_STRAY):
            udp.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                answer = parse_answer(udp.recv(_MAX_UDP), name, query_id)
            except FormatError:
                continue  # not our answer: keep waiting for it
            if not answer.truncated:
                return answer
            break
        else:
            raise TimeoutError
    return _ask_tcp(server, name, deadline)


def _ask_tcp(server: Nameserver, name: str, deadline: float) -> Answer:
    # RFC 1035 4.2.2: a two-byte length before each message
    query_id = _random_id()
    message = query(name, query_id)
    with socket.create_connection(
        (server.address, server.port), timeout=max(deadline - time.monotonic(), 0.001)
    ) as tcp:
        tcp.sendall(len(message).to_bytes(2, "big") + message)
        size = int.from_bytes(_receive(tcp, 2, deadline), "big")
        return parse_answer(_receive(tcp, size, deadline), name, query_id)


def _receive(tcp: socket.socket, size: int, deadline: float) -> bytes:
    parts = []
    missing = size
    while missing:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        tcp.settimeout(remaining)
        part = tcp.recv(missing)
        if not part:
            raise FormatError("DNS answer over TCP: the connection closed early")
        parts.append(part)
        missing -= len(part)
    return b"".join(parts)
