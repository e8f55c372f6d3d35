"""Where ClamAV's real signed test databases are, and how tests read and vary them."""

# src/pum/testdata in the repository (see its README.md). Missing data is a failure, not a skip: these
# tests mean nothing without the real signed bytes.
from upstream import TESTDATA

CVD_VERSIONS = range(1, 7)
CDIFF_VERSIONS = range(2, 7)


def read(name: str) -> bytes:
    path = TESTDATA / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ClamAV test data missing (it ships in src/pum/testdata)")
    return path.read_bytes()


def flipped(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    """`data` with the byte at `offset` XORed with `mask`."""
    return data[:offset] + bytes([data[offset] ^ mask]) + data[offset + 1 :]
