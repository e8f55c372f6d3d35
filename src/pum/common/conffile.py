"""Reading configuration files (pum.conf's `key=value`, proscan.conf's INI) and their common values.

A file saved by Notepad starts with a UTF-8 BOM; a file edited on a Japanese Windows desktop is CP932
(Shift_JIS): both are read, and `ConfigText.encoding` says which encoding was used so a check can tell.
"""

from pathlib import Path
from typing import NamedTuple

from pum.errors import ConfigError

# CP932 is Microsoft's Shift_JIS (it adds NEC and IBM characters); a Shift_JIS file reads the same in it.
ENCODINGS = ("utf-8", "cp932")
MAX_CONFIG_BYTES = 1 << 20


class ConfigText(NamedTuple):
    text: str
    encoding: str  # "utf-8", "utf-8 with BOM" or "cp932"


def decode_config_bytes(data: bytes) -> ConfigText:
    """UTF-8 (a BOM is dropped), else CP932; UnicodeDecodeError when neither reads it."""
    if data.startswith(b"\xef\xbb\xbf"):
        return ConfigText(data[3:].decode("utf-8"), "utf-8 with BOM")
    try:
        return ConfigText(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError:
        return ConfigText(data.decode("cp932"), "cp932")


def read_config_file(path: Path, missing_hint: str = "") -> ConfigText:
    """A configuration file's text and encoding, or one ConfigError line naming the file."""
    try:
        with open(str(path), "rb") as stream:
            data = stream.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file{missing_hint}") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes: not a configuration file")
    try:
        return decode_config_bytes(data)
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: cannot read: neither UTF-8 nor CP932 (Shift_JIS) text ({error}); save it as UTF-8"
        ) from None


def read_config_text(path: Path, missing_hint: str = "") -> str:
    """A configuration file's text (pum.conf, proscan.conf), or one ConfigError line naming the file."""
    return read_config_file(path, missing_hint).text


def parse_yes_no(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("yes", "on", "true", "1"):
        return True
    if lowered in ("no", "off", "false", "0"):
        return False
    raise ValueError(f"expected yes or no, got {text!r}")


def parse_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"must be more than 0 seconds, got {text}")
    return value
