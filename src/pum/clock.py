"""The one UTC stamp PUM writes (`2025-09-01T03:32:09Z`): manifests, state documents, the local index.

Stdlib only and Python 3.6-clean (no `X | None`, no `datetime.UTC`): the host side may use it too.
"""

import datetime as dt
from typing import Optional

STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_UTC = dt.timezone.utc  # noqa: UP017 - datetime.UTC is 3.11+


def utc_stamp(seconds: Optional[float] = None) -> str:  # noqa: UP045 - 3.6-clean
    """Now (or `seconds` since the epoch) in UTC, to the second, with a `Z`."""
    when = dt.datetime.now(_UTC) if seconds is None else dt.datetime.fromtimestamp(seconds, _UTC)
    return when.strftime(STAMP_FORMAT)
