"""HTTP dates (RFC 9110 section 5.6.7): `Last-Modified`, `If-Modified-Since`, `Date`, `Retry-After`.

Stdlib only and Python 3.6-clean: the host side uses it too.
"""
# ruff: noqa: UP045 - Optional, not `X | None`: this module runs on Python 3.6

import calendar
import time
from email.utils import parsedate_tz
from typing import Optional

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_LONGEST = 64  # the longest form (RFC 850 with a long weekday) is 37 characters


def http_date(seconds: float) -> str:
    """IMF-fixdate, e.g. `Tue, 22 Jun 2021 22:58:22 GMT` (by hand: `strftime` follows the locale)."""
    t = time.gmtime(seconds)
    return (
        f"{_WEEKDAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def parse_http_date(value: Optional[str]) -> Optional[int]:
    """Epoch seconds of an HTTP date in any of the three forms RFC 9110 accepts; None for anything else."""
    if not value or len(value) > _LONGEST:
        return None
    parts = parsedate_tz(value)
    if parts is None:
        return None
    try:
        seconds = calendar.timegm(parts[:9])
    except (ValueError, OverflowError):
        return None
    return seconds - (parts[9] or 0)
