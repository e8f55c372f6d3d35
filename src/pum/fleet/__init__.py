"""The fleet view: which clients took the update, which are behind, failing, or went quiet.

Read from what the PUM already sees, its access logs (see docs/architecture.md, "Fleet"):
logs.py (incremental reading) -> ingest.py (lines to clients) -> table.py (SQLite) -> states.py
(against the served release) -> document.py (fleet.json, the summary, the table) ; rollup.py (subs).
"""
