"""The tests' reference: PUM's PKCS#7 verifier before formats/pkcs7.py (standard library only) replaced
it, kept unchanged to check that the new one never accepts what this one refuses.

A detached PKCS#7 (CMS SignedData) signature over some bytes, its signer chained to a pinned root.

What ClamAV checks with OpenSSL's `PKCS7_verify(DETACHED | BINARY | NOCRL)` against its certs directory
(libclamav_rust/src/codesign.rs, `Verifier::verify`), done with asn1crypto (the CMS structure) and
cryptography (the public-key math): every signer's signed attributes carry the content type `data` and
the digest of the bytes, the attributes are signed by the signer's certificate, and that certificate
chains through the certificates the signature carries to one of the pinned roots given (never to a root
it carries itself).

Certificate validity is checked at the signing time the signature carries (else at `now`), and that
time may not lie in the future: PUM asks "did ClamAV sign these bytes", and a signature stays genuine
after its certificate expires (a relayed database is not re-signed).
"""

import datetime as dt
import functools
import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import Any

from asn1crypto import cms, pem, x509  # type: ignore[import-untyped]
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from pum.formats import FormatError

# a chain longer than this is not ClamAV's (root -> intermediate -> signing certificate)
MAX_CHAIN = 6
# a signing time at most this far ahead of our clock is a clock skew, not a forgery
CLOCK_SKEW = dt.timedelta(days=1)
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
DigestOf = Callable[[str], bytes]


def load_root(der_or_pem: bytes) -> Any:
    """A pinned root certificate (PEM or DER) as an asn1crypto Certificate; FormatError if it is not one."""
    if der_or_pem.lstrip().startswith(b"-----BEGIN"):
        try:
            _kind, _headers, der_or_pem = pem.unarmor(der_or_pem)
        except ValueError as error:
            raise FormatError(f"not a PEM certificate: {error}") from None
    return _parsed(lambda: _loaded_certificate(der_or_pem), "root certificate")


def verify_detached(der: bytes, digest_of: DigestOf, roots: Sequence[Any], now: dt.datetime) -> str:
    """Check `der` (a PKCS#7 SignedData) signs the content and chains to one of `roots` (from `load_root`).

    `digest_of("sha256")` is the content's digest with that hashlib algorithm (the caller streams a file
    of any size through it). Returns the signer's common name; raises FormatError saying what failed."""
    if not roots:
        raise FormatError("no pinned root to check the signature against")
    signed_data = _parsed(lambda: _signed_data(der), "PKCS#7")
    certificates = _parsed(lambda: _certificates(signed_data), "PKCS#7 certificates")
    signer_infos = _parsed(lambda: list(signed_data["signer_infos"]), "PKCS#7 signer infos")
    if not signer_infos:
        raise FormatError("the PKCS#7 has no signer")
    names = [
        _parsed(lambda i=info: _verify_signer(i, digest_of, certificates, roots, now), "PKCS#7 signer")
        for info in signer_infos
    ]
    return ", ".join(names)


def _parsed(step: Any, what: str) -> Any:
    # asn1crypto parses lazily: a malformed structure surfaces as one of these when a field is read (an
    # AttributeError too: a flipped tag can turn a field into a type without `.native`)
    try:
        return step()
    except FormatError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError) as error:
        raise FormatError(f"malformed {what}: {str(error)[:120]}") from None


# Every .sign of a run carries the same chain to the same pinned roots: what is learnt of those bytes once
# (a parsed certificate, a checked issuer signature, two names compared) is not worked out again for each
# file. Keyed by the DER bytes, so a cached answer is the answer for exactly those bytes; bounded.
@functools.lru_cache(maxsize=64)
def _loaded_certificate(der: bytes) -> Any:
    certificate = x509.Certificate.load(der, strict=True)
    _ = certificate.native  # parse it all now, so that a malformed one fails here
    return certificate


def _signed_data(der: bytes) -> Any:
    info = cms.ContentInfo.load(der, strict=True)
    if info["content_type"].native != "signed_data":
        raise FormatError(f"a PKCS#7 {info['content_type'].native}, expected signed_data")
    signed_data = info["content"]
    encapsulated = signed_data["encap_content_info"]
    if encapsulated["content_type"].native != "data" or encapsulated["content"].native is not None:
        raise FormatError("not a detached signature over data")
    return signed_data


def _certificates(signed_data: Any) -> list[Any]:
    found = []
    for choice in signed_data["certificates"] or []:
        if choice.name != "certificate":
            raise FormatError(f"unsupported certificate kind {choice.name} in the PKCS#7")
        found.append(_loaded_certificate(choice.chosen.dump()))
    if len(found) > MAX_CHAIN:
        raise FormatError(f"the PKCS#7 carries {len(found)} certificates, at most {MAX_CHAIN}")
    return found


def digest_of_bytes(content: bytes) -> DigestOf:
    """`digest_of` for content held in memory."""
    return lambda name: hashlib.new(name, content).digest()


def _verify_signer(
    info: Any, digest_of: DigestOf, certificates: list[Any], roots: Sequence[Any], now: dt.datetime
) -> str:
    signer = _signer_certificate(info["sid"], certificates)
    digest_name = info["digest_algorithm"]["algorithm"].native
    if digest_name not in _HASHES:
        raise FormatError(f"digest algorithm {digest_name}: expected one of {', '.join(_HASHES)}")
    attributes = info["signed_attrs"]
    if not attributes:
        raise FormatError("no signed attributes (ClamAV's signatures carry the content's digest in them)")
    values = {attribute["type"].native: attribute["values"] for attribute in attributes}
    # RFC 5652 11.1-11.3: each of these once, with one value, else two readers may see two digests
    for unique in ("content_type", "message_digest", "signing_time"):
        count = sum(1 for attribute in attributes if attribute["type"].native == unique)
        if count > 1 or (count == 1 and len(values[unique]) != 1):
            raise FormatError(f"the signed attribute {unique} must appear once with one value")
    if "content_type" not in values or values["content_type"][0].native != "data":
        raise FormatError("the signed content type is not data")
    if "message_digest" not in values:
        raise FormatError("no message digest among the signed attributes")
    digest = digest_of(digest_name)
    if not hmac.compare_digest(values["message_digest"][0].native, digest):
        raise FormatError(
            "the signature is over other bytes (message digest differs): a .sign of another file?"
        )
    # RFC 5652 5.4: the signature is over the DER of the attributes as a SET OF, not their [0] tag
    signed_bytes = b"\x31" + attributes.dump()[1:]
    _check_signature(
        signer,
        info["signature_algorithm"],
        digest_name,
        info["signature"].native,
        signed_bytes,
        "the PKCS#7 signature does not verify with its signer's certificate",
    )
    at = values["signing_time"][0].native if "signing_time" in values else now
    if at > now + CLOCK_SKEW:
        raise FormatError(f"signing time {at:%Y-%m-%d %H:%M} is in the future")
    _check_usage(signer, leaf=True)
    _chain_to_root(signer, certificates, roots, at)
    return _name(signer)


def _signer_certificate(sid: Any, certificates: list[Any]) -> Any:
    if sid.name == "issuer_and_serial_number":
        wanted = sid.chosen
        for certificate in certificates:
            if (
                _same_name(certificate.issuer, wanted["issuer"])
                and certificate.serial_number == wanted["serial_number"].native
            ):
                return certificate
    elif sid.name == "subject_key_identifier":
        for certificate in certificates:
            if certificate.key_identifier == sid.chosen.native:
                return certificate
    raise FormatError("the signer's certificate is not in the PKCS#7")


def _check_signature(
    issuer: Any, algorithm: Any, hash_name: str, signature: bytes, signed: bytes, failure: str
) -> None:
    """`signature` over `signed` by `issuer`'s key; `algorithm` is an asn1crypto SignedDigestAlgorithm
    (RSA PKCS#1 v1.5, RSA-PSS or ECDSA), `hash_name` the digest it uses."""
    if hash_name not in _HASHES:
        raise FormatError(f"{failure}: hash {hash_name} is not accepted")
    kind = algorithm.signature_algo
    try:
        key = load_der_public_key(issuer["tbs_certificate"]["subject_public_key_info"].dump())
        hash_algorithm = _HASHES[hash_name]()
        if isinstance(key, rsa.RSAPublicKey) and kind == "rsassa_pkcs1v15":
            key.verify(signature, signed, padding.PKCS1v15(), hash_algorithm)
        elif isinstance(key, rsa.RSAPublicKey) and kind == "rsassa_pss":
            key.verify(signature, signed, _pss(algorithm["parameters"], failure), hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and kind == "ecdsa":
            key.verify(signature, signed, ec.ECDSA(hash_algorithm))
        else:
            raise FormatError(f"{failure}: signature algorithm {kind} with a {type(key).__name__}")
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        raise FormatError(failure) from None


def _pss(parameters: Any, failure: str) -> padding.PSS:
    mask = parameters["mask_gen_algorithm"]
    mask_hash = mask["parameters"]["algorithm"].native
    if mask["algorithm"].native != "mgf1" or mask_hash not in _HASHES:
        raise FormatError(f"{failure}: RSA-PSS with mask {mask['algorithm'].native} {mask_hash}")
    return padding.PSS(mgf=padding.MGF1(_HASHES[mask_hash]()), salt_length=parameters["salt_length"].native)


def _check_usage(certificate: Any, leaf: bool) -> None:
    name = _name(certificate)
    usage = certificate.key_usage_value
    usages = set(usage.native) if usage is not None else None
    if leaf:
        if usages is not None and "digital_signature" not in usages:
            raise FormatError(f"certificate {name!r} may not sign (key usage)")
        extended = certificate.extended_key_usage_value
        # OpenSSL's PKCS7_verify checks the S/MIME signing purpose; ClamAV's certificates say codeSigning too
        if extended is not None and not {"code_signing", "email_protection"} & set(extended.native):
            raise FormatError(f"certificate {name!r} is not for code signing (extended key usage)")
        return
    if not certificate.ca:
        raise FormatError(f"certificate {name!r} is not a CA, yet it issued a certificate of the chain")
    if usages is not None and "key_cert_sign" not in usages:
        raise FormatError(f"certificate {name!r} may not sign certificates (key usage)")


def _check_validity(certificate: Any, at: dt.datetime) -> None:
    validity = certificate["tbs_certificate"]["validity"]
    start, end = validity["not_before"].native, validity["not_after"].native
    if not start <= at <= end:
        raise FormatError(
            f"certificate {_name(certificate)!r} is valid {start:%Y-%m-%d} to {end:%Y-%m-%d}, "
            f"not at the signing time {at:%Y-%m-%d}"
        )


def _chain_to_root(signer: Any, certificates: list[Any], roots: Sequence[Any], at: dt.datetime) -> None:
    certificate = signer
    for _depth in range(MAX_CHAIN):
        _check_validity(certificate, at)
        for root in roots:
            if _same_name(root.subject, certificate.issuer) and _issued_by(certificate, root):
                _check_validity(root, at)
                return
        issuers = [
            c for c in certificates if _same_name(c.subject, certificate.issuer) and c is not certificate
        ]
        issuer = next((c for c in issuers if _issued_by(certificate, c)), None)
        if issuer is None:
            raise FormatError(
                f"certificate {_name(certificate)!r} does not chain to a pinned ClamAV root "
                f"(issuer {_name_of(certificate.issuer)!r})"
            )
        _check_usage(issuer, leaf=False)
        certificate = issuer
    raise FormatError(f"certificate chain longer than {MAX_CHAIN}")


def _same_name(one: Any, other: Any) -> bool:
    return _names_equal(one.dump(), other.dump())


@functools.lru_cache(maxsize=256)
def _names_equal(one: bytes, other: bytes) -> bool:
    # X.520 comparison (asn1crypto's __eq__: string preparation of every attribute) only when the bytes differ
    return one == other or bool(x509.Name.load(one) == x509.Name.load(other))


def _issued_by(certificate: Any, issuer: Any) -> bool:
    return _signature_checks(certificate.dump(), issuer.dump())


@functools.lru_cache(maxsize=64)
def _signature_checks(certificate_der: bytes, issuer_der: bytes) -> bool:
    certificate, issuer = _loaded_certificate(certificate_der), _loaded_certificate(issuer_der)
    algorithm = certificate["signature_algorithm"]
    try:
        _check_signature(
            issuer,
            algorithm,
            algorithm.hash_algo,
            certificate["signature_value"].native,
            certificate["tbs_certificate"].dump(),
            "",
        )
    except FormatError:
        return False
    return True


def _name(certificate: Any) -> str:
    return _name_of(certificate.subject)


def _name_of(name: Any) -> str:
    return str(name.native.get("common_name") or name.human_friendly)
