"""TXT lookups for the version record (dnspython): configured nameservers and ports, a bounded timeout."""

from __future__ import annotations

import dns.exception
import dns.nameserver
import dns.resolver

from pum.config import Nameserver
from pum.errors import UpstreamError


def lookup_txt(name: str, nameservers: tuple[Nameserver, ...], timeout: float) -> str:
    """The first TXT string of `name`; UpstreamError with the name and the reason otherwise."""
    if nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(ns.address, ns.port) for ns in nameservers]
    else:
        resolver = dns.resolver.Resolver()
    resolver.lifetime = timeout
    resolver.timeout = min(timeout, 5.0)
    try:
        answer = resolver.resolve(name, "TXT")
    except dns.resolver.NXDOMAIN:
        raise UpstreamError(f"DNS: {name} does not exist") from None
    except dns.resolver.NoAnswer:
        raise UpstreamError(f"DNS: {name} has no TXT record") from None
    except dns.exception.Timeout:
        raise UpstreamError(f"DNS: no answer for {name} within {timeout:.0f}s") from None
    except (dns.exception.DNSException, OSError) as error:
        raise UpstreamError(f"DNS: lookup of {name} failed: {error}") from None
    for record in answer:
        return b"".join(record.strings).decode("ascii", errors="replace")
    raise UpstreamError(f"DNS: {name} has no TXT record")
