"""Where ClamAV's real signed test databases are, and how tests read and vary them."""

from pathlib import Path

# ../shared/testdata/clamav beside the repository (see its README.md). Missing data is a failure,
# not a skip: these tests mean nothing without the real signed bytes.
TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "clamav"

CVD_VERSIONS = range(1, 7)
CDIFF_VERSIONS = range(2, 7)


def read(name: str) -> bytes:
    path = TESTDATA / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ClamAV test data missing (expected ../shared/testdata/clamav)")
    return path.read_bytes()


def flipped(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    """`data` with the byte at `offset` XORed with `mask`."""
    return data[:offset] + bytes([data[offset] ^ mask]) + data[offset + 1 :]
