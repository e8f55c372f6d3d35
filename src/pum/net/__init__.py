"""Every request PUM makes upstream (transport.py over http1.py) and the DNS lookup (dns.py)."""
