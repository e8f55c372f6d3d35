"""X.509 certificates (RFC 5280), the fields a chain check needs: the signed part's bytes, names as DER,
validity, the key, and the extensions that limit what a certificate may do. Standard library only,
Python 3.6-clean.

An extension marked critical that is not known here refuses the certificate (RFC 5280 4.2), as OpenSSL
does for ClamAV; a name is compared by its DER bytes, as the issuer writes it into what it signs.
"""

import datetime as dt
from typing import Dict, FrozenSet, List, NamedTuple, Optional

from . import FormatError, der
from .pubkey import Algorithm, PublicKey, algorithm, public_key

_BASIC_CONSTRAINTS = "2.5.29.19"
_KEY_USAGE = "2.5.29.15"
_EXTENDED_KEY_USAGE = "2.5.29.37"
_SUBJECT_KEY_IDENTIFIER = "2.5.29.14"
# critical or not, these limit nothing this check relies on (identifiers, alternative names, policies)
_KNOWN = {
    _BASIC_CONSTRAINTS,
    _KEY_USAGE,
    _EXTENDED_KEY_USAGE,
    _SUBJECT_KEY_IDENTIFIER,
    "2.5.29.35",  # authority key identifier
    "2.5.29.17",  # subject alternative name
    "2.5.29.32",  # certificate policies
}
_MAX_EXTENSIONS = 32
_COMMON_NAME = "2.5.4.3"
_ATTRIBUTE_NAMES = {
    "2.5.4.6": "C",
    "2.5.4.8": "ST",
    "2.5.4.7": "L",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    _COMMON_NAME: "CN",
}
_STRING_CODECS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be"}
# RFC 5280 4.2.1.3, bit numbers of KeyUsage
DIGITAL_SIGNATURE = 0
KEY_CERT_SIGN = 5
CODE_SIGNING = "1.3.6.1.5.5.7.3.3"
EMAIL_PROTECTION = "1.3.6.1.5.5.7.3.4"


class Certificate(NamedTuple):
    der: bytes
    signed: bytes  # the DER of tbsCertificate: what the issuer's signature covers
    signature_algorithm: Optional[Algorithm]  # None when not one accepted: it then issued nothing
    signature: bytes
    serial_number: int
    issuer: bytes  # the Name, as DER
    subject: bytes
    not_before: dt.datetime
    not_after: dt.datetime
    key: PublicKey
    ca: bool
    key_usage: Optional[FrozenSet[int]]  # bit numbers set, None without the extension
    extended_key_usage: Optional[FrozenSet[str]]  # OIDs, None without the extension
    key_identifier: Optional[bytes]
    name: str  # the subject's common name (else the whole subject), for messages


def parse_certificate(data: bytes) -> Certificate:
    """A DER certificate; FormatError when it is not one (or carries an unknown critical extension)."""
    what = "certificate"
    tbs, outer_algorithm, signature = der.sequence(der.parse(data, what), what, 3, 3)
    fields = der.sequence(tbs, what, 6, 10)
    version = der.optional(fields, 0, der.context(0))
    if version is not None:
        (number,) = der.sequence(version, what, 1, 1, version.tag)
        if der.integer(number, "certificate version") not in (0, 1, 2):
            raise FormatError("certificate version is not 1, 2 or 3")
        fields = fields[1:]
    if len(fields) < 6:
        raise FormatError(f"{what}: {len(fields)} fields in tbsCertificate, expected at least 6")
    serial, inner_algorithm, issuer, validity, subject, spki = fields[:6]
    # RFC 5280 4.1.1.2: the algorithm outside what is signed must be the one inside it
    if inner_algorithm.der != outer_algorithm.der:
        raise FormatError(f"{what}: the signature algorithm differs inside and outside the signed part")
    not_before, not_after = der.sequence(validity, "certificate validity", 2, 2)
    extensions = _extensions(fields[6:])
    constraints = extensions.get(_BASIC_CONSTRAINTS)
    usage = extensions.get(_KEY_USAGE)
    extended = extensions.get(_EXTENDED_KEY_USAGE)
    key_identifier = extensions.get(_SUBJECT_KEY_IDENTIFIER)
    return Certificate(
        der=data,
        signed=tbs.der,
        signature_algorithm=_accepted_algorithm(outer_algorithm),
        signature=der.bits(signature, "certificate signature"),
        serial_number=der.integer(serial, "certificate serial number"),
        issuer=issuer.der,
        subject=subject.der,
        not_before=der.time(not_before, "certificate validity"),
        not_after=der.time(not_after, "certificate validity"),
        key=public_key(spki),
        ca=_is_ca(constraints) if constraints is not None else False,
        key_usage=_key_usage(usage) if usage is not None else None,
        extended_key_usage=_extended_key_usage(extended) if extended is not None else None,
        key_identifier=(
            der.octets(der.parse(key_identifier, "key identifier"), "key identifier")
            if key_identifier is not None
            else None
        ),
        name=name_text(subject.der),
    )


def _accepted_algorithm(identifier: der.Element) -> Optional[Algorithm]:
    # a root signed with SHA-1 still vouches with its key: its own signature is never checked
    try:
        return algorithm(identifier, "certificate signature algorithm")
    except FormatError:
        return None


def _extensions(rest: List[der.Element]) -> Dict[str, bytes]:
    """The extensions' values (the DER inside extnValue) by OID, from what follows the subject's key."""
    found: Dict[str, bytes] = {}
    for element in rest:
        if element.tag in (der.context(1, False), der.context(2, False)):
            continue  # issuerUniqueID, subjectUniqueID
        if element.tag != der.context(3) or found:
            raise FormatError(f"certificate: unexpected field (DER tag 0x{element.tag:02x}) after the key")
        (listed,) = der.sequence(element, "extensions", 1, 1, element.tag)
        for extension in der.sequence(listed, "extensions", 1, _MAX_EXTENSIONS):
            members = der.sequence(extension, "extension", 2, 3)
            name = der.oid(members[0], "extension")
            critical = len(members) == 3 and der.boolean(members[1], "extension critical")
            if name in found:
                raise FormatError(f"certificate: extension {name} appears twice")
            if critical and name not in _KNOWN:
                raise FormatError(f"certificate: unknown critical extension {name}")
            found[name] = der.octets(members[-1], "extension value")
    return found


def _is_ca(value: bytes) -> bool:
    members = der.sequence(der.parse(value, "basic constraints"), "basic constraints", 0, 2)
    return bool(members) and members[0].tag == der.BOOLEAN and der.boolean(members[0], "basic constraints")


def _key_usage(value: bytes) -> FrozenSet[int]:
    flags = der.bits(der.parse(value, "key usage"), "key usage", whole_bytes=False)
    return frozenset(bit for bit in range(8 * len(flags)) if flags[bit // 8] >> (7 - bit % 8) & 1)


def _extended_key_usage(value: bytes) -> FrozenSet[str]:
    members = der.sequence(der.parse(value, "extended key usage"), "extended key usage", 1, 64)
    return frozenset(der.oid(member, "extended key usage") for member in members)


def name_text(name: bytes) -> str:
    """The common name of a DER Name (RDNSequence), else its attributes as `O=..., OU=...`."""
    parts = []
    common_name = None
    for relative in der.sequence(der.parse(name, "name"), "name", 0, 64):
        for attribute in der.sequence(relative, "name", 1, 16, der.SET):
            kind, value = der.sequence(attribute, "name attribute", 2, 2)
            identifier = der.oid(kind, "name attribute")
            text = value.value.decode(_STRING_CODECS.get(value.tag, "latin-1"), "replace")
            if identifier == _COMMON_NAME and common_name is None:
                common_name = text
            parts.append(f"{_ATTRIBUTE_NAMES.get(identifier, identifier)}={text}")
    return common_name if common_name is not None else ", ".join(parts)
