"""The pure TUF verifier's parts, against the libraries python-tuf uses: canonical JSON as securesystemslib
writes it, RSA-PSS signatures as cryptography makes them, metadata files refused for their form."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given
from hypothesis import strategies as st
from securesystemslib.formats import encode_canonical

from pum.formats import FormatError
from pum.formats.tuf_metadata import (
    canonical_json,
    parse_metadata,
    rsa_pss_sha256_ok,
    rsa_public_key,
)

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(_json)
def test_canonical_json_is_securesystemslib_s(value):
    assert canonical_json(value) == encode_canonical(value).encode("utf-8")


def test_canonical_json_refuses_floats():
    with pytest.raises(FormatError, match="floats"):
        canonical_json({"a": 1.5})


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


def _pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.mark.parametrize("salt", [padding.PSS.DIGEST_LENGTH, 0, padding.PSS.MAX_LENGTH])
def test_rsa_pss_signatures_of_cryptography_verify(rsa_key, salt):
    modulus, exponent = rsa_public_key(_pem(rsa_key))
    signature = rsa_key.sign(
        b"signed part", padding.PSS(padding.MGF1(hashes.SHA256()), salt), hashes.SHA256()
    )
    assert rsa_pss_sha256_ok(modulus, exponent, b"signed part", signature)
    assert not rsa_pss_sha256_ok(modulus, exponent, b"signed parT", signature)
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    assert not rsa_pss_sha256_ok(modulus, exponent, b"signed part", flipped)
    assert not rsa_pss_sha256_ok(modulus, exponent, b"signed part", signature[1:])


def test_a_pkcs1_v15_signature_is_not_pss(rsa_key):
    modulus, exponent = rsa_public_key(_pem(rsa_key))
    signature = rsa_key.sign(b"signed part", padding.PKCS1v15(), hashes.SHA256())
    assert not rsa_pss_sha256_ok(modulus, exponent, b"signed part", signature)


def test_a_public_key_that_is_not_rsa_is_refused():
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(FormatError, match="not an RSA key"):
        rsa_public_key(pem)


def test_a_short_rsa_key_is_refused():
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(FormatError, match="under 2048 bits"):
        rsa_public_key(_pem(small))


def test_a_pem_body_that_is_not_base64_is_refused():
    with pytest.raises(FormatError, match="base-64"):
        rsa_public_key("-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----")


def _document(**signed) -> dict:
    body = {"_type": "timestamp", "spec_version": "1.0.31", "version": 3, "expires": "2030-01-01T00:00:00Z"}
    body.update(signed)
    return {"signed": body, "signatures": [{"keyid": "ab", "sig": "00"}]}


def test_a_well_formed_timestamp_parses():
    metadata = parse_metadata(json.dumps(_document()).encode(), "timestamp")
    assert (metadata.role, metadata.version) == ("timestamp", 3)
    assert metadata.expires == dt.datetime(2030, 1, 1)
    assert metadata.signatures == {"ab": "00"}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff", "not JSON"),
        (b"[]", "expected a JSON object"),
        (json.dumps(_document(_type="snapshot")).encode(), "_type is 'snapshot'"),
        (json.dumps(_document(spec_version="2.0.0")).encode(), "not 1.x"),
        (json.dumps(_document(version=0)).encode(), "above 0"),
        (json.dumps(_document(version=True)).encode(), "'version' missing"),
        (json.dumps(_document(expires="2030-01-01")).encode(), "expires"),
        (json.dumps(_document(expires="2030-02-30T00:00:00Z")).encode(), "not a date"),
        (json.dumps(_document(length=1.0)).encode(), "not an integer"),
        (b'{"signed": {}, "signed": {}, "signatures": []}', "duplicate key"),
    ],
)
def test_malformed_metadata_is_refused(data, reason):
    with pytest.raises(FormatError, match=reason):
        parse_metadata(data, "timestamp")


def test_two_signatures_by_one_key_are_refused():
    document = _document()
    document["signatures"] *= 2
    with pytest.raises(FormatError, match="two signatures by key ab"):
        parse_metadata(json.dumps(document).encode(), "timestamp")


def test_pem_roundtrip_helper_reads_cryptography_keys(rsa_key):
    modulus, exponent = rsa_public_key(_pem(rsa_key))
    numbers = rsa_key.public_key().public_numbers()
    assert (modulus, exponent) == (numbers.n, numbers.e)
