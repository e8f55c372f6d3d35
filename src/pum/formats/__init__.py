"""Pure parsers and verifiers for the files PUM carries: bytes in, values or FormatError out."""

__all__ = ["FormatError"]


class FormatError(ValueError):
    """Raised by every parser in `pum.formats`; the message says what is wrong, expected vs got."""
