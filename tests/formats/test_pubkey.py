"""formats.pubkey: the signature math, checked against signatures `cryptography` makes with keys made in
the test (never passed off as ClamAV's), and against a Bleichenbacher forgery."""

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from pum.formats import FormatError, der
from pum.formats.pubkey import Algorithm, RsaKey, public_key, signature_ok

MESSAGE = b"a database"
_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_of(private) -> object:
    spki = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public_key(der.parse(spki, "key"))


@pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512"])
def test_rsa_pkcs1v15_signatures_verify_and_a_flipped_bit_does_not(hash_name):
    signature = _RSA_KEY.sign(MESSAGE, padding.PKCS1v15(), getattr(hashes, hash_name.upper())())
    algorithm = Algorithm("rsa_pkcs1v15", hash_name)
    assert signature_ok(key_of(_RSA_KEY), algorithm, hash_name, signature, MESSAGE)
    assert not signature_ok(key_of(_RSA_KEY), algorithm, hash_name, signature, MESSAGE + b"x")
    broken = signature[:-1] + bytes([signature[-1] ^ 1])
    assert not signature_ok(key_of(_RSA_KEY), algorithm, hash_name, broken, MESSAGE)


def test_an_rsa_signature_of_another_length_or_not_below_the_modulus_is_refused():
    signature = _RSA_KEY.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA256())
    key = key_of(_RSA_KEY)
    algorithm = Algorithm("rsa_pkcs1v15", "sha256")
    assert not signature_ok(key, algorithm, "sha256", b"\x00" + signature, MESSAGE)
    assert not signature_ok(key, algorithm, "sha256", signature[1:], MESSAGE)
    # s + n is the same number modulo n: a verifier that reduces first would accept it
    wrapped = int.from_bytes(signature, "big") + key.modulus
    if wrapped < 1 << (8 * len(signature)):
        assert not signature_ok(key, algorithm, "sha256", wrapped.to_bytes(len(signature), "big"), MESSAGE)
    assert not signature_ok(key, algorithm, "sha256", key.modulus.to_bytes(len(signature), "big"), MESSAGE)


def _cube_root_ceiling(number: int) -> int:
    low, high = 0, 1 << (number.bit_length() // 3 + 2)
    while low < high:
        middle = (low + high) // 2
        if middle**3 < number:
            low = middle + 1
        else:
            high = middle
    return low


def test_a_bleichenbacher_forgery_with_garbage_after_the_digest_is_refused():
    # e = 3 and a 3072-bit modulus: s^3 never wraps, so a cube root forges the block's first bytes; a
    # verifier that parses the block and ignores what follows the DigestInfo accepts it (Bleichenbacher
    # 2006). The modulus needs no factors: the forger never uses a private key.
    size = 384
    key = RsaKey(modulus=(1 << (8 * size)) - 1, exponent=3)
    digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(MESSAGE).digest()
    prefix = b"\x00\x01" + b"\xff" * 8 + b"\x00" + digest_info
    garbage_bits = 8 * (size - len(prefix))
    forged = _cube_root_ceiling(int.from_bytes(prefix, "big") << garbage_bits)
    assert forged**3 >> garbage_bits == int.from_bytes(prefix, "big")  # the forged block starts right
    signature = forged.to_bytes(size, "big")
    assert not signature_ok(key, Algorithm("rsa_pkcs1v15", "sha256"), "sha256", signature, MESSAGE)


@pytest.mark.parametrize("salt", [0, 32, 64])
def test_rsa_pss_signatures_verify_with_their_salt_length(salt):
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt)
    signature = _RSA_KEY.sign(MESSAGE, pss, hashes.SHA256())
    assert signature_ok(
        key_of(_RSA_KEY), Algorithm("rsa_pss", "sha256", "sha256", salt), "sha256", signature, MESSAGE
    )
    other = Algorithm("rsa_pss", "sha256", "sha256", salt + 1)
    assert not signature_ok(key_of(_RSA_KEY), other, "sha256", signature, MESSAGE)


@pytest.mark.parametrize(("curve", "hash_name"), [(ec.SECP256R1(), "sha256"), (ec.SECP384R1(), "sha384")])
def test_ecdsa_signatures_verify_on_p256_and_p384(curve, hash_name):
    private = ec.generate_private_key(curve)
    signature = private.sign(MESSAGE, ec.ECDSA(getattr(hashes, hash_name.upper())()))
    algorithm = Algorithm("ecdsa", hash_name)
    assert signature_ok(key_of(private), algorithm, hash_name, signature, MESSAGE)
    assert not signature_ok(key_of(private), algorithm, hash_name, signature, MESSAGE + b"x")
    assert not signature_ok(key_of(ec.generate_private_key(curve)), algorithm, hash_name, signature, MESSAGE)


def test_a_key_on_another_curve_is_refused():
    with pytest.raises(FormatError, match="P-256 or P-384 only"):
        key_of(ec.generate_private_key(ec.SECP521R1()))


def _tlv(tag: int, value: bytes) -> bytes:
    size = len(value)
    length = bytes([size]) if size < 0x80 else bytes([0x82]) + size.to_bytes(2, "big")
    if 0x80 <= size < 0x100:
        length = b"\x81" + bytes([size])
    return bytes([tag]) + length + value


def _rsa_spki(modulus: int, exponent: int) -> bytes:
    def integer(number: int) -> bytes:
        return _tlv(0x02, number.to_bytes(number.bit_length() // 8 + 1, "big"))

    rsa_encryption = _tlv(0x30, bytes.fromhex("06092a864886f70d0101010500"))
    return _tlv(0x30, rsa_encryption + _tlv(0x03, b"\x00" + _tlv(0x30, integer(modulus) + integer(exponent))))


@pytest.mark.parametrize(
    ("modulus", "exponent", "expected"),
    [
        ((1 << 511) | 1, 65537, "an RSA key of 512 bits"),
        ((1 << 8192) | 1, 65537, "an RSA key of 8193 bits"),
        ((1 << 4095) | 1, (1 << 64) | 1, "a 65-bit exponent"),  # each check would cost 4,096 squarings
        ((1 << 4095) | 1, 65536, "not one"),
    ],
    ids=["512 bits", "8193 bits", "65-bit exponent", "even exponent"],
)
def test_an_rsa_key_too_small_or_too_costly_to_check_is_refused(modulus, exponent, expected):
    with pytest.raises(FormatError, match=expected):
        public_key(der.parse(_rsa_spki(modulus, exponent), "key"))


def test_a_signature_algorithm_and_key_of_different_kinds_do_not_verify():
    signature = _RSA_KEY.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA256())
    assert not signature_ok(key_of(_RSA_KEY), Algorithm("ecdsa", "sha256"), "sha256", signature, MESSAGE)
