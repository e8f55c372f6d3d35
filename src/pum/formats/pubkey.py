"""Public keys and signature checks of X.509 and PKCS#7: RSA PKCS#1 v1.5 (what ClamAV signs with),
RSA-PSS and ECDSA over P-256 / P-384, with SHA-256/384/512. Verification only: no secret is ever
handled, so plain integer arithmetic leaks nothing. Standard library only, Python 3.6-clean.

RSA PKCS#1 v1.5 is checked by building the whole expected block (`00 01 FF.. 00 DigestInfo`) and
comparing it with `s^e mod n` byte for byte, never by parsing the decrypted block: a parser that skips
what it does not understand is what Bleichenbacher's 2006 forgery of e=3 signatures exploits.
"""

import hashlib
import hmac
from typing import List, NamedTuple, Optional, Union

from . import FormatError, der

# hashlib names, by their OIDs (NIST hash algorithms, RFC 5754)
HASHES = {
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
_HASH_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}
# RFC 8017 9.2 note 1: the DER of DigestInfo up to the digest itself
_DIGEST_INFO = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
_RSA_PSS = "1.2.840.113549.1.1.10"
_MGF1 = "1.2.840.113549.1.1.8"
_RSA_WITH = {
    "1.2.840.113549.1.1.11": "sha256",
    "1.2.840.113549.1.1.12": "sha384",
    "1.2.840.113549.1.1.13": "sha512",
}
_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
_ECDSA_WITH = {
    "1.2.840.10045.4.3.2": "sha256",
    "1.2.840.10045.4.3.3": "sha384",
    "1.2.840.10045.4.3.4": "sha512",
}
# names of the algorithms no hash of which is accepted, for the messages
_REFUSED = {
    "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
    "1.2.840.113549.1.1.4": "md5WithRSAEncryption",
    "1.2.840.10045.4.1": "ecdsa-with-SHA1",
}
# the smallest RSA key OpenSSL's default security level accepts; and bounds on the work of one check, a
# hostile certificate's key being checked before anything says it is ClamAV's: OpenSSL too refuses a
# public exponent over 64 bits for large keys (OPENSSL_RSA_MAX_PUBEXP_BITS); ClamAV's keys are 4096 bits
RSA_MIN_BITS = 1024
RSA_MAX_BITS = 8192
RSA_MAX_EXPONENT_BITS = 64


class Curve(NamedTuple):
    name: str
    p: int
    b: int  # a = -3 on both curves
    n: int
    gx: int
    gy: int


# SEC 2 / FIPS 186-4 D.1.2
_CURVES = {
    "1.2.840.10045.3.1.7": Curve(
        "P-256",
        2**256 - 2**224 + 2**192 + 2**96 - 1,
        0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
        0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
        0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
        0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
    ),
    "1.3.132.0.34": Curve(
        "P-384",
        2**384 - 2**128 - 2**96 + 2**32 - 1,
        0xB3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875AC656398D8A2ED19D2A85C8EDD3EC2AEF,
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
        0xAA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A385502F25DBF55296C3A545E3872760AB7,
        0x3617DE4A96262C6F5D9E98BF9292DC29F8F41DBD289A147CE9DA3113B5F0B8C00A60B1CE1D7E819D7A431D7C90EA0E5F,
    ),
}


class RsaKey(NamedTuple):
    modulus: int
    exponent: int


class EcKey(NamedTuple):
    curve: Curve
    x: int
    y: int


PublicKey = Union[RsaKey, EcKey]


class Algorithm(NamedTuple):
    """A signature algorithm: `kind` is rsa_pkcs1v15, rsa_pss or ecdsa; `hash_name` the hashlib name of
    the digest it names (None for rsaEncryption, whose digest is given beside it, as in a SignerInfo);
    for RSA-PSS the MGF1 hash and the salt length."""

    kind: str
    hash_name: Optional[str]
    mgf_hash: Optional[str] = None
    salt_length: int = 0


def public_key(spki: der.Element) -> PublicKey:
    """The key of a SubjectPublicKeyInfo (RFC 5280 4.1.2.7)."""
    what = "public key"
    algorithm, key_bits = der.sequence(spki, what, 2, 2)
    identifier = der.sequence(algorithm, what, 1, 2)
    kind = der.oid(identifier[0], what)
    key = der.bits(key_bits, what)
    if kind == _RSA_ENCRYPTION:
        if len(identifier) == 2:
            der.null(identifier[1], what)
        modulus, exponent = der.sequence(der.parse(key, what), what, 2, 2)
        rsa = RsaKey(der.unsigned(modulus, "RSA modulus"), der.unsigned(exponent, "RSA exponent"))
        if not RSA_MIN_BITS <= rsa.modulus.bit_length() <= RSA_MAX_BITS or not rsa.modulus & 1:
            raise FormatError(f"an RSA key of {rsa.modulus.bit_length()} bits")
        if not 3 <= rsa.exponent < rsa.modulus or not rsa.exponent & 1:
            raise FormatError("an RSA key with an exponent that is not one")
        if rsa.exponent.bit_length() > RSA_MAX_EXPONENT_BITS:
            raise FormatError(f"an RSA key with a {rsa.exponent.bit_length()}-bit exponent (at most 64)")
        return rsa
    if kind == _EC_PUBLIC_KEY and len(identifier) == 2 and identifier[1].tag == der.OID:
        curve = _CURVES.get(der.oid(identifier[1], what))
        if curve is None:
            raise FormatError(f"an EC key on curve {der.oid(identifier[1], what)}: P-256 or P-384 only")
        size = (curve.p.bit_length() + 7) // 8
        if len(key) != 1 + 2 * size or key[0] != 4:
            raise FormatError(f"an EC key that is not an uncompressed {curve.name} point")
        x, y = int.from_bytes(key[1 : 1 + size], "big"), int.from_bytes(key[1 + size :], "big")
        if x >= curve.p or y >= curve.p or (y * y - x * x * x + 3 * x - curve.b) % curve.p:
            raise FormatError(f"an EC key that is not a point of {curve.name}")
        return EcKey(curve, x, y)
    raise FormatError(f"public key algorithm {kind}: RSA or EC only")


def algorithm(identifier: der.Element, what: str) -> Algorithm:
    """A signature AlgorithmIdentifier (RFC 5280 4.1.1.2; RFC 4055 for RSA-PSS; RFC 5758 for ECDSA)."""
    members = der.sequence(identifier, what, 1, 2)
    name = der.oid(members[0], what)
    if name in _RSA_WITH or name == _RSA_ENCRYPTION:
        return Algorithm("rsa_pkcs1v15", _RSA_WITH.get(name))
    if name in _ECDSA_WITH:
        return Algorithm("ecdsa", _ECDSA_WITH[name])
    if name == _RSA_PSS and len(members) == 2:
        return _pss(members[1], what)
    raise FormatError(f"{what}: signature algorithm {_REFUSED.get(name, name)} is not accepted")


def _hash_of(identifier: der.Element, what: str) -> str:
    members = der.sequence(identifier, what, 1, 2)
    name = der.oid(members[0], what)
    if name not in HASHES:
        raise FormatError(f"{what}: hash {name}: expected SHA-256, SHA-384 or SHA-512")
    return HASHES[name]


def _pss(parameters: der.Element, what: str) -> Algorithm:
    # RSASSA-PSS-params: every field has a SHA-1 default, which is refused, so all must be present
    fields = {member.tag: member for member in der.sequence(parameters, what, 0, 4)}
    if der.context(0) not in fields or der.context(1) not in fields or der.context(2) not in fields:
        raise FormatError(f"{what}: RSA-PSS with SHA-1 defaults is not accepted")
    if der.context(3) in fields and der.integer(der.parse(fields[der.context(3)].value, what), what) != 1:
        raise FormatError(f"{what}: RSA-PSS trailer field other than 1")
    hash_name = _hash_of(der.parse(fields[der.context(0)].value, what), what)
    mask = der.sequence(der.parse(fields[der.context(1)].value, what), what, 2, 2)
    if der.oid(mask[0], what) != _MGF1:
        raise FormatError(f"{what}: RSA-PSS with a mask other than MGF1")
    salt_length = der.integer(der.parse(fields[der.context(2)].value, what), what)
    if not 0 <= salt_length <= 1024:
        raise FormatError(f"{what}: RSA-PSS salt length {salt_length}")
    return Algorithm("rsa_pss", hash_name, _hash_of(mask[1], what), salt_length)


def signature_ok(
    key: PublicKey, algorithm: Algorithm, hash_name: str, signature: bytes, signed: bytes
) -> bool:
    """Does `signature` sign `signed` with `key` by `algorithm`, hashing with `hash_name`?"""
    if hash_name not in _HASH_SIZES:
        return False
    digest = hashlib.new(hash_name, signed).digest()
    if isinstance(key, RsaKey) and algorithm.kind == "rsa_pkcs1v15":
        return _pkcs1v15_ok(key, hash_name, digest, signature)
    if isinstance(key, RsaKey) and algorithm.kind == "rsa_pss" and algorithm.mgf_hash is not None:
        return _pss_ok(key, algorithm.mgf_hash, algorithm.salt_length, hash_name, digest, signature)
    if isinstance(key, EcKey) and algorithm.kind == "ecdsa":
        return _ecdsa_ok(key, digest, signature)
    return False


def _rsa_open(key: RsaKey, signature: bytes) -> Optional[bytes]:
    """`signature^e mod n` as the modulus's number of bytes; None when the signature cannot be one."""
    size = (key.modulus.bit_length() + 7) // 8
    number = int.from_bytes(signature, "big")
    # RFC 8017 8.2.2 step 1 and 5.2.2: exactly the modulus's length, and a number below it
    if len(signature) != size or number >= key.modulus:
        return None
    return pow(number, key.exponent, key.modulus).to_bytes(size, "big")


def _pkcs1v15_ok(key: RsaKey, hash_name: str, digest: bytes, signature: bytes) -> bool:
    block = _rsa_open(key, signature)
    if block is None:
        return False
    digest_info = _DIGEST_INFO[hash_name] + digest
    padding = len(block) - len(digest_info) - 3
    if padding < 8:
        return False
    # RFC 8017 8.2.2 step 3 (EMSA-PKCS1-v1_5 encoding, 9.2) and step 4: compare the whole block
    expected = b"\x00\x01" + b"\xff" * padding + b"\x00" + digest_info
    return hmac.compare_digest(block, expected)


def _mgf1(hash_name: str, seed: bytes, length: int) -> bytes:
    size = _HASH_SIZES[hash_name]
    rounds = -(-length // size)
    stream = b"".join(hashlib.new(hash_name, seed + i.to_bytes(4, "big")).digest() for i in range(rounds))
    return stream[:length]


def _pss_ok(
    key: RsaKey, mgf_hash: str, salt_length: int, hash_name: str, digest: bytes, signature: bytes
) -> bool:
    # EMSA-PSS-VERIFY, RFC 8017 9.1.2, with the salt length the algorithm names
    block = _rsa_open(key, signature)
    if block is None:
        return False
    em_bits = key.modulus.bit_length() - 1
    em_length = (em_bits + 7) // 8
    if len(block) > em_length:
        if block[0]:
            return False
        block = block[1:]
    hash_size = _HASH_SIZES[hash_name]
    if em_length < hash_size + salt_length + 2 or block[-1] != 0xBC:
        return False
    masked, signed_hash = block[: em_length - hash_size - 1], block[em_length - hash_size - 1 : -1]
    unused = 8 * em_length - em_bits
    if unused and masked[0] >> (8 - unused):
        return False
    data = bytearray(a ^ b for a, b in zip(masked, _mgf1(mgf_hash, signed_hash, len(masked))))
    data[0] &= 0xFF >> unused
    zeros = len(data) - salt_length - 1
    if any(data[:zeros]) or data[zeros] != 1:
        return False
    salt = bytes(data[zeros + 1 :])
    expected = hashlib.new(hash_name, bytes(8) + digest + salt).digest()
    return hmac.compare_digest(expected, signed_hash)


# ECDSA verification (SEC 1 4.1.4) in Jacobian coordinates on a curve with a = -3; None is the point
# at infinity. Public data only, so nothing here needs to run in constant time.
_Point = Optional[List[int]]


def _double(point: _Point, p: int) -> _Point:
    if point is None or point[1] == 0:
        return None
    x, y, z = point
    zz = z * z % p
    m = 3 * (x - zz) * (x + zz) % p
    yy = y * y % p
    s = 4 * x * yy % p
    x3 = (m * m - 2 * s) % p
    return [x3, (m * (s - x3) - 8 * yy * yy) % p, 2 * y * z % p]


def _add(one: _Point, other: _Point, p: int) -> _Point:
    if one is None:
        return other
    if other is None:
        return one
    x1, y1, z1 = one
    x2, y2, z2 = other
    z1z1, z2z2 = z1 * z1 % p, z2 * z2 % p
    u1, u2 = x1 * z2z2 % p, x2 * z1z1 % p
    s1, s2 = y1 * z2 * z2z2 % p, y2 * z1 * z1z1 % p
    if u1 == u2:
        return _double(one, p) if s1 == s2 else None
    h, r = (u2 - u1) % p, (s2 - s1) % p
    hh = h * h % p
    hhh = h * hh % p
    x3 = (r * r - hhh - 2 * u1 * hh) % p
    return [x3, (r * (u1 * hh - x3) - s1 * hhh) % p, h * z1 * z2 % p]


def _ecdsa_ok(key: EcKey, digest: bytes, signature: bytes) -> bool:
    curve = key.curve
    try:
        r_element, s_element = der.sequence(der.parse(signature, "ECDSA signature"), "ECDSA signature", 2, 2)
        r, s = der.unsigned(r_element, "ECDSA r"), der.unsigned(s_element, "ECDSA s")
    except FormatError:
        return False
    if not (0 < r < curve.n and 0 < s < curve.n):
        return False
    e = int.from_bytes(digest, "big")
    excess = 8 * len(digest) - curve.n.bit_length()
    if excess > 0:
        e >>= excess
    w = pow(s, curve.n - 2, curve.n)  # n is prime; pow(s, -1, n) needs Python 3.8
    u1, u2 = e * w % curve.n, r * w % curve.n
    # Shamir's trick: u1*G + u2*Q in one pass over the bits
    g: _Point = [curve.gx, curve.gy, 1]
    q: _Point = [key.x, key.y, 1]
    both = _add(g, q, curve.p)
    total: _Point = None
    for position in range(max(u1.bit_length(), u2.bit_length()) - 1, -1, -1):
        total = _double(total, curve.p)
        pick = (u1 >> position & 1, u2 >> position & 1)
        addend = both if pick == (1, 1) else g if pick == (1, 0) else q if pick == (0, 1) else None
        total = _add(total, addend, curve.p)
    if total is None:
        return False
    x, _y, z = total
    zz = pow(z * z % curve.p, curve.p - 2, curve.p)
    return x * zz % curve.p % curve.n == r
