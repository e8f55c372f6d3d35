"""PUM: the local update server for ClamAV-based scanner fleets."""

__version__ = "2.0.0"
