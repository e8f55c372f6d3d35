"""The neutral layer both sides use: hashing, `host[:port]` servers, config-file reading, resumable downloads.

Standard library only and Python 3.6-clean (no `from __future__ import annotations`, no dataclasses, no
`X | None`): the host side (`proscanup`) imports it on the scanner hosts' system Pythons, the server side
imports it too, and neither imports the other.
"""
