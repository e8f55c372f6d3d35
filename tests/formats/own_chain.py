"""A throwaway root -> intermediate -> signer chain made in the test, to reach the branches of
formats.pkcs7 that ClamAV's TEST signatures never take (RSA-PSS, ECDSA, a broken chain). Only ever
verified against its own root, never passed off as ClamAV's."""

import datetime as dt

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def certificate(subject, key, issuer_name, issuer_key, ca: bool, days: int = 3650, extra=None):
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(START)
        .not_valid_after(START + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(_usage(ca), critical=True)
    )
    if extra is not None:
        builder = builder.add_extension(extra, critical=True)
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def chain(signer_key=None, intermediate_is_ca: bool = True, signer_days: int = 3650, signer_extra=None):
    """(root certificate DER, signer certificate, signer key, intermediate certificate)."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = certificate("Own Root", root_key, _name("Own Root"), root_key, ca=True)
    intermediate_key = ec.generate_private_key(ec.SECP256R1())
    intermediate = certificate(
        "Own Intermediate", intermediate_key, root.subject, root_key, ca=intermediate_is_ca
    )
    signer_key = signer_key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = certificate(
        "Own Signer",
        signer_key,
        intermediate.subject,
        intermediate_key,
        ca=False,
        days=signer_days,
        extra=signer_extra,
    )
    return root.public_bytes(serialization.Encoding.DER), signer, signer_key, intermediate


def sign(content: bytes, signer, key, intermediate, pss: bool = False) -> bytes:
    """A detached PKCS#7 (DER) over `content`, with signed attributes, as `sigtool --sign` makes them."""
    builder = pkcs7.PKCS7SignatureBuilder().set_data(content)
    if pss:
        rsa_padding = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
        builder = builder.add_signer(signer, key, hashes.SHA256(), rsa_padding=rsa_padding)
    else:
        builder = builder.add_signer(signer, key, hashes.SHA256())
    options = [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]
    info = cms.ContentInfo.load(builder.sign(serialization.Encoding.DER, options))
    # cryptography 50 leaves out certificates given by add_certificate; the certificate set is outside
    # what the signature covers, so the intermediate goes in afterwards, as `sigtool --sign` carries it
    certificates = info["content"]["certificates"]
    certificates.append(cms.CertificateChoices.load(intermediate.public_bytes(serialization.Encoding.DER)))
    info["content"]["certificates"] = certificates
    return info.dump(force=True)
