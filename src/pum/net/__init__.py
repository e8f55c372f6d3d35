"""Every request PUM makes upstream (transport.py) and the DNS lookup (dns.py)."""

import sys

# httpx imports its command-line client (rich and pygments, ~50 ms) whenever they are installed; PUM never
# runs it, and a run answered 304 spends most of its time importing. httpx falls back to a stub.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
