"""A detached PKCS#7 (CMS SignedData, RFC 5652) signature over some bytes, its signer chained to a pinned
root.

What ClamAV checks with OpenSSL's `PKCS7_verify(DETACHED | BINARY | NOCRL)` against its certs directory
(libclamav_rust/src/codesign.rs, `Verifier::verify`): every signer's signed attributes carry the content
type `data` and the digest of the bytes, the attributes are signed by the signer's certificate, and that
certificate chains through the certificates the signature carries to one of the pinned roots given (never
to a root it carries itself). The structure is read by `der`/`x509`, the math done by `pubkey`: standard
library only, Python 3.6-clean, so that checking a `.sign` imports nothing heavy (and the host side may
use it).

Certificate validity is checked at the signing time the signature carries (else at `now`), and that
time may not lie in the future: PUM asks "did ClamAV sign these bytes", and a signature stays genuine
after its certificate expires (a relayed database is not re-signed).
"""

import base64
import binascii
import datetime as dt
import functools
import hashlib
import hmac
from typing import Callable, Dict, List, Optional, Sequence

from . import FormatError, der
from .pubkey import HASHES, algorithm, signature_ok
from .x509 import (
    CODE_SIGNING,
    DIGITAL_SIGNATURE,
    EMAIL_PROTECTION,
    KEY_CERT_SIGN,
    Certificate,
    name_text,
    parse_certificate,
)

# a chain longer than this is not ClamAV's (root -> intermediate -> signing certificate)
MAX_CHAIN = 6
# one .sign line carries one signer; a few more are allowed, each costs one public-key check
MAX_SIGNERS = 8
# a signing time at most this far ahead of our clock is a clock skew, not a forgery
CLOCK_SKEW = dt.timedelta(days=1)
DigestOf = Callable[[str], bytes]

_SIGNED_DATA = "1.2.840.113549.1.7.2"
_DATA = "1.2.840.113549.1.7.1"
_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_SIGNING_TIME = "1.2.840.113549.1.9.5"
_UNIQUE_ATTRIBUTES = {
    _CONTENT_TYPE: "content_type",
    _MESSAGE_DIGEST: "message_digest",
    _SIGNING_TIME: "signing_time",
}
_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_END = b"-----END CERTIFICATE-----"


def load_root(der_or_pem: bytes) -> Certificate:
    """A pinned root certificate (PEM or DER); FormatError if it is not one."""
    if der_or_pem.lstrip().startswith(b"-----BEGIN"):
        body = der_or_pem.strip()
        if not (body.startswith(_PEM_BEGIN) and body.endswith(_PEM_END)):
            raise FormatError("not a PEM certificate: expected one BEGIN/END CERTIFICATE block")
        try:
            der_or_pem = base64.b64decode(
                b"".join(body[len(_PEM_BEGIN) : -len(_PEM_END)].split()), validate=True
            )
        except (binascii.Error, ValueError) as error:
            raise FormatError(f"not a PEM certificate: {error}") from None
    try:
        return _certificate(der_or_pem)
    except FormatError as error:
        raise FormatError(f"malformed root certificate: {error}") from None


def digest_of_bytes(content: bytes) -> DigestOf:
    """`digest_of` for content held in memory."""
    return lambda name: hashlib.new(name, content).digest()


def verify_detached(
    signature: bytes, digest_of: DigestOf, roots: Sequence[Certificate], now: dt.datetime
) -> str:
    """Check `signature` (a DER PKCS#7 SignedData) signs the content and chains to one of `roots` (from
    `load_root`).

    `digest_of("sha256")` is the content's digest with that hashlib algorithm (the caller streams a file
    of any size through it). Returns the signer's common name; raises FormatError saying what failed."""
    if not roots:
        raise FormatError("no pinned root to check the signature against")
    content_type, content = der.sequence(der.parse(signature, "PKCS#7"), "PKCS#7", 2, 2)
    kind = der.oid(content_type, "PKCS#7")
    if kind != _SIGNED_DATA:
        raise FormatError(f"a PKCS#7 {kind}, expected signed_data")
    (signed_data,) = der.sequence(content, "PKCS#7", 1, 1, der.context(0))
    fields = der.sequence(signed_data, "PKCS#7 SignedData", 4, 6)
    der.integer(fields[0], "PKCS#7 version")
    der.sequence(fields[1], "PKCS#7 digest algorithms", 0, 8, der.SET)
    encapsulated = der.sequence(fields[2], "PKCS#7 content", 1, 2)
    if der.oid(encapsulated[0], "PKCS#7 content") != _DATA or len(encapsulated) != 1:
        raise FormatError("not a detached signature over data")
    rest = fields[3:]
    carried = der.optional(rest, 0, der.context(0))
    certificates = _certificates(carried) if carried is not None else []
    position = int(carried is not None)
    if der.optional(rest, position, der.context(1)) is not None:
        position += 1  # revocation lists: ClamAV verifies with NOCRL
    if position != len(rest) - 1:
        raise FormatError("PKCS#7 SignedData: unexpected fields before the signer infos")
    signer_infos = der.children(
        der.expect(rest[position], der.SET, "PKCS#7 signer infos"), "PKCS#7 signer infos"
    )
    if not signer_infos:
        raise FormatError("the PKCS#7 has no signer")
    if len(signer_infos) > MAX_SIGNERS:
        raise FormatError(f"the PKCS#7 has {len(signer_infos)} signers, at most {MAX_SIGNERS}")
    names = [_verify_signer(info, digest_of, certificates, roots, now) for info in signer_infos]
    return ", ".join(names)


def _certificates(carried: der.Element) -> List[Certificate]:
    found: List[Certificate] = []
    for choice in der.children(carried, "PKCS#7 certificates"):
        if choice.tag != der.SEQUENCE:
            raise FormatError(f"unsupported certificate kind (DER tag 0x{choice.tag:02x}) in the PKCS#7")
        if len(found) == MAX_CHAIN:
            raise FormatError(f"the PKCS#7 carries more than {MAX_CHAIN} certificates")
        found.append(_certificate(choice.der))
    return found


# Every .sign of a run carries the same chain to the same pinned roots: what is learnt of those bytes once
# (a parsed certificate, a checked issuer signature) is not worked out again for each file. Keyed by the
# DER bytes, so a cached answer is the answer for exactly those bytes; bounded.
@functools.lru_cache(maxsize=64)
def _certificate(data: bytes) -> Certificate:
    return parse_certificate(data)


def _verify_signer(
    info: der.Element,
    digest_of: DigestOf,
    certificates: List[Certificate],
    roots: Sequence[Certificate],
    now: dt.datetime,
) -> str:
    members = der.sequence(info, "PKCS#7 signer", 5, 7)
    der.integer(members[0], "PKCS#7 signer version")
    signer = _signer_certificate(members[1], certificates)
    digest_algorithm = der.sequence(members[2], "PKCS#7 digest algorithm", 1, 2)
    digest_oid = der.oid(digest_algorithm[0], "PKCS#7 digest algorithm")
    if digest_oid not in HASHES:
        raise FormatError(f"digest algorithm {digest_oid}: expected one of {', '.join(HASHES.values())}")
    digest_name = HASHES[digest_oid]
    attributes = der.optional(members, 3, der.context(0))
    if attributes is None:
        raise FormatError("no signed attributes (ClamAV's signatures carry the content's digest in them)")
    after = members[4:]
    if len(after) not in (2, 3) or (len(after) == 3 and after[2].tag != der.context(1)):
        raise FormatError("PKCS#7 signer: unexpected fields after the signed attributes")
    signature_algorithm = algorithm(after[0], "PKCS#7 signature algorithm")
    signature = der.octets(after[1], "PKCS#7 signature")
    values = _unique_attributes(attributes)
    content_type = values.get(_CONTENT_TYPE)
    if content_type is None or der.oid(content_type, "content type") != _DATA:
        raise FormatError("the signed content type is not data")
    message_digest = values.get(_MESSAGE_DIGEST)
    if message_digest is None:
        raise FormatError("no message digest among the signed attributes")
    if not hmac.compare_digest(der.octets(message_digest, "message digest"), digest_of(digest_name)):
        raise FormatError(
            "the signature is over other bytes (message digest differs): a .sign of another file?"
        )
    # RFC 5652 5.4: the signature is over the DER of the attributes as a SET OF, not their [0] tag
    signed = bytes([der.SET]) + attributes.der[1:]
    if not signature_ok(signer.key, signature_algorithm, digest_name, signature, signed):
        raise FormatError("the PKCS#7 signature does not verify with its signer's certificate")
    signing_time = values.get(_SIGNING_TIME)
    at = der.time(signing_time, "signing time") if signing_time is not None else now
    if at > now + CLOCK_SKEW:
        raise FormatError(f"signing time {at:%Y-%m-%d %H:%M} is in the future")
    _check_usage(signer, leaf=True)
    _chain_to_root(signer, certificates, roots, at)
    return signer.name


def _unique_attributes(attributes: der.Element) -> Dict[str, der.Element]:
    """The one value of each of content type, message digest and signing time present."""
    values: Dict[str, der.Element] = {}
    for attribute in der.children(attributes, "PKCS#7 signed attributes"):
        kind, value_set = der.sequence(attribute, "PKCS#7 signed attribute", 2, 2)
        name = der.oid(kind, "PKCS#7 signed attribute")
        found = der.sequence(value_set, "PKCS#7 signed attribute", 0, 64, der.SET)
        if name not in _UNIQUE_ATTRIBUTES:
            continue
        # RFC 5652 11.1-11.3: each of these once, with one value, else two readers may see two digests
        if name in values or len(found) != 1:
            raise FormatError(
                f"the signed attribute {_UNIQUE_ATTRIBUTES[name]} must appear once with one value"
            )
        values[name] = found[0]
    return values


def _signer_certificate(sid: der.Element, certificates: List[Certificate]) -> Certificate:
    if sid.tag == der.SEQUENCE:
        issuer, serial = der.sequence(sid, "PKCS#7 signer identifier", 2, 2)
        serial_number = der.integer(serial, "PKCS#7 signer serial number")
        for certificate in certificates:
            if certificate.issuer == issuer.der and certificate.serial_number == serial_number:
                return certificate
    elif sid.tag == der.context(0, constructed=False):
        for certificate in certificates:
            if certificate.key_identifier is not None and hmac.compare_digest(
                certificate.key_identifier, sid.value
            ):
                return certificate
    raise FormatError("the signer's certificate is not in the PKCS#7")


def _check_usage(certificate: Certificate, leaf: bool) -> None:
    usages = certificate.key_usage
    if leaf:
        if usages is not None and DIGITAL_SIGNATURE not in usages:
            raise FormatError(f"certificate {certificate.name!r} may not sign (key usage)")
        extended = certificate.extended_key_usage
        # OpenSSL's PKCS7_verify checks the S/MIME signing purpose; ClamAV's certificates say codeSigning too
        if extended is not None and not {CODE_SIGNING, EMAIL_PROTECTION} & extended:
            raise FormatError(
                f"certificate {certificate.name!r} is not for code signing (extended key usage)"
            )
        return
    if not certificate.ca:
        raise FormatError(
            f"certificate {certificate.name!r} is not a CA, yet it issued a certificate of the chain"
        )
    if usages is not None and KEY_CERT_SIGN not in usages:
        raise FormatError(f"certificate {certificate.name!r} may not sign certificates (key usage)")


def _check_validity(certificate: Certificate, at: dt.datetime) -> None:
    start, end = certificate.not_before, certificate.not_after
    if not start <= at <= end:
        raise FormatError(
            f"certificate {certificate.name!r} is valid {start:%Y-%m-%d} to {end:%Y-%m-%d}, "
            f"not at the signing time {at:%Y-%m-%d}"
        )


def _chain_to_root(
    signer: Certificate, certificates: List[Certificate], roots: Sequence[Certificate], at: dt.datetime
) -> None:
    certificate = signer
    for _depth in range(MAX_CHAIN):
        _check_validity(certificate, at)
        for root in roots:
            if root.subject == certificate.issuer and _issued_by(certificate, root):
                _check_validity(root, at)
                return
        issuer: Optional[Certificate] = None
        for candidate in certificates:
            same_name = candidate.subject == certificate.issuer and candidate is not certificate
            if same_name and _issued_by(certificate, candidate):
                issuer = candidate
                break
        if issuer is None:
            raise FormatError(
                f"certificate {certificate.name!r} does not chain to a pinned ClamAV root "
                f"(issuer {name_text(certificate.issuer)!r})"
            )
        _check_usage(issuer, leaf=False)
        certificate = issuer
    raise FormatError(f"certificate chain longer than {MAX_CHAIN}")


def _issued_by(certificate: Certificate, issuer: Certificate) -> bool:
    return _signature_checks(certificate.der, issuer.der)


@functools.lru_cache(maxsize=64)
def _signature_checks(certificate_der: bytes, issuer_der: bytes) -> bool:
    certificate, issuer = _certificate(certificate_der), _certificate(issuer_der)
    used = certificate.signature_algorithm
    # an algorithm not accepted, or rsaEncryption alone (it names no hash): not a certificate signature
    if used is None or used.hash_name is None:
        return False
    return signature_ok(issuer.key, used, used.hash_name, certificate.signature, certificate.signed)
