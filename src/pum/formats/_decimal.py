"""Strict decimal numbers, as the ClamAV text formats write them."""

from . import FormatError

# Enough for any uint64 (ClamAV stores build times as uint64, versions as uint32), and far below Python's
# int() digit limit, so no input can make int() raise anything but what we check here.
_MAX_DIGITS = 20


def parse_decimal(text: str, what: str) -> int:
    """Return `text` as a non-negative int; only ASCII digits are accepted (no sign, '_' or blanks)."""
    if not text or not text.isascii() or not text.isdigit():
        raise FormatError(f"{what} must be a decimal number, got {text!r}")
    if len(text) > _MAX_DIGITS:
        raise FormatError(f"{what} must have at most {_MAX_DIGITS} digits, got {len(text)}")
    return int(text)
