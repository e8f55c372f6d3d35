"""ClamAV's RSA signature checks (the CVD header dsig and the CDIFF dsig), in pure Python.

Host side too: standard library only, Python 3.6-clean.
"""

import binascii
import hashlib
import hmac
import re
from typing import Optional

# The public key that signs the MD5 of every CVD body: CLI_NSTR / CLI_ESTR in libclamav/dsig.c.
_CVD_MODULUS = int(
    "118640995551645342603070001658453189751527774412027743746599405743243142607464144767361060640655844"
    "749760788890022283424922762488917565551002467771109669598189410434699034532232228621591089508178591"
    "428456220796841621637175567590476666928698770143328137383952820383197532047771780196576957695822641"
    "224262693037"
)
_CVD_EXPONENT = 100001027

# The public key that signs CDIFFs: PUBLIC_KEY_MODULUS / PUBLIC_KEY_EXPONENT in libclamav_rust/src/cdiff.rs.
_CDIFF_MODULUS = int(
    "1478390587407746709026222851655791757025459963837620353203198921410555284726968748977197579212344218"
    "5817287694951949800908791527542017115600501303394778618535864845235700041590056318230102449612217458"
    "5490160893133065913885907907965158196541023207257123008223563487240112326548375032417361779077841987"
    "0083444068112472706054003575469965810589505009657622675300859688169882818565242490192166875832657846"
    "2003247906470982092298106789657211905488986281078346361469524484829559560886227198091995498440676639"
    "6398304635932113860550653602884223940539981344586237125406832940349538184124583621981178119900060219"
    "89844180721010947"
)
_CDIFF_EXPONENT = 100002053

# ClamAV's own base-64 digits (libclamav/dsig.c, cli_ndecode): lowercase first, unlike RFC 4648.
_DSIG_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
_DSIG_TEXT = re.compile(r"[a-zA-Z0-9+/]*")
# each ClamAV digit as the RFC 4648 digit of the same value, so that binascii decodes a dsig in C
_RFC4648_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_TO_RFC4648 = str.maketrans(_DSIG_ALPHABET, _RFC4648_ALPHABET)

# A CVD dsig sits inside the 512-byte header, so it can never be longer; the key is 1024 bits, so real
# ones are 171 characters (1024 / 6 rounded up). A CDIFF dsig is at most SIG_SIZE = 350 characters
# (libclamav_rust/src/cdiff.rs).
_CVD_DSIG_MAX = 512
CDIFF_DSIG_MAX = 350

_MD5_SIZE = 16
_SHA256_SIZE = 32
# Layout of the PSS-style block in cli_versig2 (libclamav/dsig.c): a 2048-bit block ending in 0xbc,
# a 223-byte masked data block, then the 32-byte hash, and a 32-byte salt inside the data block.
_PSS_BLOCK = 2048 // 8
_PSS_DATA = _PSS_BLOCK - _SHA256_SIZE - 1
_PSS_TRAILER = 0xBC
_PSS_SALT = 32


def dsig_alphabet_ok(dsig: str) -> bool:
    """True when every character of `dsig` is one of ClamAV's 64 signature digits."""
    return _DSIG_TEXT.fullmatch(dsig) is not None


def _dsig_number(dsig: str) -> Optional[int]:
    # cli_decodesig (libclamav/dsig.c) adds digit << (6 * i) for character i: the first character holds
    # the lowest six bits, so the text is a little-endian number. Reversed it is big-endian base 64,
    # which binascii decodes (zero digits in front make whole groups of four).
    if not dsig_alphabet_ok(dsig):
        return None
    big_endian = dsig[::-1].translate(_TO_RFC4648)
    padded = "A" * (-len(big_endian) % 4) + big_endian
    return int.from_bytes(binascii.a2b_base64(padded), "big")


def _rsa_open(dsig: str, max_length: int, modulus: int, exponent: int, size: int) -> Optional[bytes]:
    """The signed block inside `dsig`, as `size` big-endian bytes, or None when it cannot be one."""
    if not dsig or len(dsig) > max_length:
        return None
    signature = _dsig_number(dsig)
    if signature is None:
        return None
    block = pow(signature, exponent, modulus)
    # cli_decodesig refuses a result longer than the expected size and right-aligns a shorter one, so
    # an MD5 starting with zero bytes still compares equal.
    if block.bit_length() > 8 * size:
        return None
    return block.to_bytes(size, "big")


def legacy_md5_signature_ok(md5_hex: str, dsig: str) -> bool:
    """Does `dsig` (a CVD header's dsig field) sign `md5_hex` with ClamAV's CVD key (cli_versig)?"""
    # cli_versig refuses anything but 32 characters as the MD5 ("MD5 basic test failure").
    if len(md5_hex) != 2 * _MD5_SIZE or not all(char in "0123456789abcdefABCDEF" for char in md5_hex):
        return False
    signed = _rsa_open(dsig, _CVD_DSIG_MAX, _CVD_MODULUS, _CVD_EXPONENT, _MD5_SIZE)
    if signed is None:
        return False
    return hmac.compare_digest(signed.hex(), md5_hex.lower())


def _mgf1_sha256(seed: bytes, length: int) -> bytes:
    # The mask generator of cli_versig2: SHA-256 of seed + a 4-byte big-endian counter, concatenated.
    rounds = -(-length // _SHA256_SIZE)
    stream = b"".join(hashlib.sha256(seed + counter.to_bytes(4, "big")).digest() for counter in range(rounds))
    return stream[:length]


def cdiff_signature_ok(sha256_digest: bytes, dsig: str) -> bool:
    """Does `dsig` sign `sha256_digest` with ClamAV's CDIFF key (cli_versig2, PSS-style, 32-byte salt)?

    `sha256_digest` is the raw 32-byte SHA-256 of the CDIFF up to its last ':'; any other length is False.
    """
    if len(sha256_digest) != _SHA256_SIZE:
        return False
    block = _rsa_open(dsig, CDIFF_DSIG_MAX, _CDIFF_MODULUS, _CDIFF_EXPONENT, _PSS_BLOCK)
    if block is None or block[-1] != _PSS_TRAILER:
        return False
    masked = block[:_PSS_DATA]
    signed_hash = block[_PSS_DATA : _PSS_DATA + _SHA256_SIZE]
    mask = _mgf1_sha256(signed_hash, _PSS_DATA)
    if len(mask) != len(masked):
        return False
    data = bytearray(a ^ b for a, b in zip(masked, mask))  # noqa: B905 - lengths checked above; zip(strict=) is 3.10+
    data[0] &= 0x7F
    # cli_versig2 takes the salt after the first 0x01 and demands it be exactly 32 bytes long; like it,
    # we do not look at the bytes before that 0x01.
    separator = data.find(1)
    if separator < 0:
        return False
    salt = bytes(data[separator + 1 :])
    if len(salt) != _PSS_SALT:
        return False
    expected = hashlib.sha256(bytes(8) + sha256_digest + salt).digest()
    return hmac.compare_digest(expected, signed_hash)
