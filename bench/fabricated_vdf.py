"""bench/sync's fabricated upstream, for the bench only: CVDs, CDIFFs and `.sign` files of any version,
signed by keys the bench makes, and a bench-only copy of PUM's source that pins those keys in place of
ClamAV's. The signed test databases stop at version 6 and their keys are Talos's, so 10 or 100 cdiffs in
a row can only be had this way (issue 15 item 5 allows it "for the bench only, checked by the same cost
path").

Same code, same cost path, only pinned bytes differ: the copy of `src/pum` is byte for byte PUM's except
its TEST root certificate (`trust_roots/clamav-test-root.crt`, which `trust_test_root=yes` pins beside
the production root) and four numbers appended to `formats/sign.py` (the CVD and CDIFF RSA keys of
libclamav's dsig.c / cdiff.rs, replaced by the bench's with the same public exponents). What is
fabricated has the real files' shape and size: the CVD is test-6.cvd's tar.gz with its `.info` header
line rewritten, the CDIFF test-6.cdiff's gzip script under a new header, the `.sign` a PKCS#7 made by
`openssl smime -sign` (OpenSSL's PKCS7_sign, as `sigtool --sign`) by a root -> intermediate -> signer
chain of 4096-bit RSA keys like ClamAV's. Nothing of this ever enters the package or the tests.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import math
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TESTDATA = Path(__file__).resolve().parent.parent / "src" / "pum" / "testdata"
# libclamav's public exponents (formats/sign.py): the bench's keys keep them, so pow() costs the same
CVD_EXPONENT = 100001027
CDIFF_EXPONENT = 100002053
DSIG_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
MARKER = "# bench/sync: the bench's own keys in place of ClamAV's (this bench-only copy of PUM only)"


@dataclass(frozen=True)
class RawRsa:
    modulus: int
    exponent: int
    private: int


@dataclass(frozen=True)
class BenchKeys:
    cvd: RawRsa
    cdiff: RawRsa
    root_pem: bytes
    signer_pem: Path  # certificate, for openssl smime -signer
    signer_key: Path
    intermediate_pem: Path


def _raw_rsa(bits: int, exponent: int) -> RawRsa:
    for _ in range(20):  # an exponent sharing a factor with (p-1)(q-1) is rare; try another key
        numbers = rsa.generate_private_key(public_exponent=65537, key_size=bits).private_numbers()
        p, q = numbers.p, numbers.q
        phi = (p - 1) * (q - 1)
        if math.gcd(exponent, phi) == 1:
            return RawRsa(p * q, exponent, pow(exponent, -1, phi))
    raise SystemExit("could not make a bench RSA key")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PUM bench"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(subject: str, key, issuer: x509.Name, issuer_key, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    usage = dict.fromkeys(
        [
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "encipher_only",
            "decipher_only",
        ],
        False,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca, **usage), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION]),
            critical=True,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_keys(workdir: Path) -> BenchKeys:
    """The bench's CVD and CDIFF keys and its root -> intermediate -> signer chain (4096-bit RSA)."""
    workdir.mkdir(parents=True, exist_ok=True)
    root_key, intermediate_key, signer_key = (
        rsa.generate_private_key(public_exponent=65537, key_size=4096) for _ in range(3)
    )
    root = _certificate("PUM bench Root CA", root_key, _name("PUM bench Root CA"), root_key, ca=True)
    intermediate = _certificate(
        "PUM bench Intermediate CA", intermediate_key, root.subject, root_key, ca=True
    )
    signer = _certificate(
        "PUM bench Signing Cert", signer_key, intermediate.subject, intermediate_key, ca=False
    )
    pem = serialization.Encoding.PEM
    (workdir / "intermediate.pem").write_bytes(intermediate.public_bytes(pem))
    (workdir / "signer.pem").write_bytes(signer.public_bytes(pem))
    (workdir / "signer.key").write_bytes(
        signer_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return BenchKeys(
        cvd=_raw_rsa(1024, CVD_EXPONENT),
        cdiff=_raw_rsa(2048, CDIFF_EXPONENT),
        root_pem=root.public_bytes(pem),
        signer_pem=workdir / "signer.pem",
        signer_key=workdir / "signer.key",
        intermediate_pem=workdir / "intermediate.pem",
    )


def pinned_copy(src: Path, dest: Path, keys: BenchKeys) -> Path:
    """A copy of the source tree `src` (holding `pum/`) pinning the bench's keys; returns `dest`."""
    shutil.copytree(src / "pum", dest / "pum", ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "pum" / "trust_roots" / "clamav-test-root.crt").write_bytes(keys.root_pem)
    sign = dest / "pum" / "formats" / "sign.py"
    sign.write_text(
        sign.read_text()
        + f"\n\n{MARKER}\n_CVD_MODULUS = {keys.cvd.modulus}\n_CVD_EXPONENT = {keys.cvd.exponent}\n"
        f"_CDIFF_MODULUS = {keys.cdiff.modulus}\n_CDIFF_EXPONENT = {keys.cdiff.exponent}\n"
    )
    return dest


def _dsig(number: int, modulus: int) -> str:
    """A signature number in libclamav's base 64 (dsig.c cli_decodesig: lowest six bits first)."""
    return "".join(DSIG_ALPHABET[(number >> (6 * i)) & 63] for i in range(-(-modulus.bit_length() // 6)))


def _mgf1_sha256(seed: bytes, length: int) -> bytes:
    stream = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(-(-length // 32)))
    return stream[:length]


def _cdiff_dsig(key: RawRsa, digest: bytes) -> str:
    # the block cli_versig2 (dsig.c) opens: masked data (zeros, 0x01, a 32-byte salt) | hash | 0xbc
    salt = hashlib.sha256(digest + b"bench salt").digest()
    signed_hash = hashlib.sha256(bytes(8) + digest + salt).digest()
    data = bytes(223 - 33) + b"\x01" + salt
    masked = bytearray(a ^ b for a, b in zip(data, _mgf1_sha256(signed_hash, 223), strict=True))
    masked[0] &= 0x7F
    block = int.from_bytes(bytes(masked) + signed_hash + b"\xbc", "big")
    return _dsig(pow(block, key.private, key.modulus), key.modulus)


def write_sign(target: Path, sign: Path, keys: BenchKeys) -> None:
    """`<file>.sign` over `target`: one `#clamsign-1.0` line holding a detached PKCS#7 by `openssl smime`."""
    der = subprocess.run(
        [
            "openssl",
            "smime",
            "-sign",
            "-binary",
            "-md",
            "sha256",
            "-in",
            str(target),
            "-signer",
            str(keys.signer_pem),
            "-inkey",
            str(keys.signer_key),
            "-certfile",
            str(keys.intermediate_pem),
            "-outform",
            "DER",
        ],
        check=True,
        capture_output=True,
    ).stdout
    import base64

    sign.write_text(f"#clamsign-1.0\n230::pkcs7-pem:{base64.b64encode(der).decode()}\n")


def write_cvd(path: Path, version: int, stime: int, keys: BenchKeys) -> None:
    """A CVD of `version` built at `stime`: test-6.cvd's members, its `.info` header line rewritten."""
    real = (TESTDATA / "test-6.cvd").read_bytes()
    time_text = time.strftime("%d %b %Y %H-%M +0000", time.gmtime(stime))
    fields = f"{time_text}:{version}:14:90"
    body = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(gzip.decompress(real[512:])), mode="r:") as source,
        gzip.GzipFile(fileobj=body, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w:", format=tarfile.USTAR_FORMAT) as archive,
    ):
        for member in source.getmembers():
            content = source.extractfile(member).read()
            if member.name.endswith(".info"):
                rest = content.split(b"\n", 1)[1]
                content = f"ClamAV-VDB:{fields}:X:X:bench:{stime}\n".encode() + rest
            member.size = len(content)
            archive.addfile(member, io.BytesIO(content))
    md5 = hashlib.md5(body.getvalue()).hexdigest()
    dsig = _dsig(pow(int(md5, 16), keys.cvd.private, keys.cvd.modulus), keys.cvd.modulus)
    header = f"ClamAV-VDB:{fields}:{md5}:{dsig}:bench:{stime}".encode().ljust(512, b" ")
    path.write_bytes(header + body.getvalue())


def write_cdiff(path: Path, version: int, keys: BenchKeys) -> None:
    """A CDIFF to `version`: test-6.cdiff's gzip script under a new header, signed by the bench's key."""
    real = (TESTDATA / "test-6.cdiff").read_bytes()
    _magic, _version, length, rest = real.split(b":", 3)
    script = rest[: rest.rindex(b":")]
    signed = b"ClamAV-Diff:%d:%s:" % (version, length) + script
    path.write_bytes(signed + b":" + _cdiff_dsig(keys.cdiff, hashlib.sha256(signed).digest()).encode())
