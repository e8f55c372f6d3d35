"""`.sign` files: the `#clamsign-1.0` text (formats.clamsign) and the PKCS#7 inside (formats.pkcs7), with
the real signatures ClamAV's TEST root made over the test databases."""

import contextlib
import datetime as dt
import hashlib

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from pum.formats import FormatError
from pum.formats.clamsign import parse_sign_file
from pum.formats.pkcs7 import digest_of_bytes, load_root, verify_detached
from pum.sync.vdfcheck import PRODUCTION_ROOT, TEST_ROOT, TRUST_ROOTS

from . import own_chain
from .clamav_testdata import CDIFF_VERSIONS, CVD_VERSIONS, flipped, read

TEST_ROOTS = (load_root((TRUST_ROOTS / TEST_ROOT).read_bytes()),)
PRODUCTION_ROOTS = (load_root((TRUST_ROOTS / PRODUCTION_ROOT).read_bytes()),)
NOW = dt.datetime.now(dt.UTC)
SIGNED = [f"test-{v}.cvd" for v in CVD_VERSIONS] + [f"test-{v}.cdiff" for v in CDIFF_VERSIONS]


def pkcs7_of(name: str) -> bytes:
    (line,) = parse_sign_file(read(f"{name}.sign"))
    return line.pkcs7_der


def verify(der: bytes, content: bytes, roots=TEST_ROOTS) -> str:
    return verify_detached(der, digest_of_bytes(content), roots, NOW)


def test_a_real_sign_file_holds_one_pkcs7_for_feature_level_230_and_up():
    (line,) = parse_sign_file(read("test-6.cvd.sign"))
    assert (line.line, line.min_flevel, line.max_flevel) == (2, 230, None)
    assert line.pkcs7_der[:1] == b"\x30"


@pytest.mark.parametrize("name", SIGNED)
def test_every_real_signature_verifies_over_its_file_and_chains_to_the_test_root(name):
    assert verify(pkcs7_of(name), read(name)) == "ClamAV TEST CVD Signing Cert"


def test_a_signature_over_another_file_is_refused():
    with pytest.raises(FormatError, match="over other bytes"):
        verify(pkcs7_of("test-5.cvd"), read("test-6.cvd"))


def test_the_test_signatures_do_not_chain_to_the_production_root():
    with pytest.raises(FormatError, match="does not chain to a pinned ClamAV root"):
        verify(pkcs7_of("test-6.cvd"), read("test-6.cvd"), PRODUCTION_ROOTS)


def test_no_pinned_root_verifies_nothing():
    with pytest.raises(FormatError, match="no pinned root"):
        verify(pkcs7_of("test-6.cvd"), read("test-6.cvd"), ())


def test_a_flipped_bit_in_the_signature_value_is_refused():
    der = pkcs7_of("test-6.cvd")
    with pytest.raises(FormatError, match="does not verify with its signer's certificate"):
        verify(flipped(der, len(der) - 10), read("test-6.cvd"))


def test_a_flipped_bit_in_the_signed_message_digest_is_refused():
    der, data = pkcs7_of("test-6.cvd"), read("test-6.cvd")
    offset = der.index(hashlib.sha256(data).digest())
    with pytest.raises(FormatError, match="over other bytes"):
        verify(flipped(der, offset + 5), data)


def test_a_flipped_bit_in_the_signers_certificate_breaks_the_chain():
    der = pkcs7_of("test-6.cvd")
    offset = der.index(b"ClamAV TEST CVD Signing Cert")
    with pytest.raises(FormatError):
        verify(flipped(der, offset + 3), read("test-6.cvd"))


def test_validity_is_checked_at_the_signing_time_which_may_not_be_in_the_future():
    der, data = pkcs7_of("test-6.cvd"), read("test-6.cvd")
    with pytest.raises(FormatError, match="in the future"):
        verify_detached(der, digest_of_bytes(data), TEST_ROOTS, dt.datetime(2024, 1, 1, tzinfo=dt.UTC))


@given(offset=st.integers(min_value=0, max_value=5000), mask=st.integers(min_value=1, max_value=255))
@settings(max_examples=400, deadline=None)
def test_any_flipped_byte_gives_a_format_error_or_a_still_valid_signature(offset, mask):
    der, data = pkcs7_of("test-6.cdiff"), read("test-6.cdiff")
    with contextlib.suppress(FormatError):
        verify(flipped(der, offset % len(der), mask), data)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"<html><body>Not Found</body></html>\n", "line 1"),
        (b"#clamsign-2.0\n230::pkcs7-pem:MAo=\n", "expected '#clamsign-1.0'"),
        (b"#clamsign-1.0\n", "without any signature line"),
        (b"#clamsign-1.0\n# a comment\n\n", "without any signature line"),
        (b"#clamsign-1.0\n230:pkcs7-pem:MAo=\n", "got 3 fields"),
        (b"#clamsign-1.0\nx::pkcs7-pem:MAo=\n", "not numbers"),
        (b"#clamsign-1.0\n230:200:pkcs7-pem:MAo=\n", "is empty"),
        (b"#clamsign-1.0\n230::pkcs7-der:MAo=\n", "signature format"),
        (b"#clamsign-1.0\n230::pkcs7-pem:not base64!\n", "not base64"),
        (b"#clamsign-1.0\n230::pkcs7-pem:MAo\n", "not base64"),
        ("#clamsign-1.0\n230::pkcs7-pem:MAo=é\n".encode(), "not ASCII"),
        (b"#clamsign-1.0\n" + b"230::pkcs7-pem:MAo=\n" * 9, "more than 8 signatures"),
        (b"#clamsign-1.0\n" + b"#" * 70_000, "at most"),
    ],
)
def test_what_is_not_a_sign_file_is_refused(text, expected):
    with pytest.raises(FormatError, match=expected):
        parse_sign_file(text)


def test_blank_lines_comments_and_crlf_are_allowed_as_clamav_reads_them():
    body = read("test-6.cvd.sign").decode().split("\n")[1]
    lines = parse_sign_file(f"#clamsign-1.0\r\n\r\n# signed by TEST\r\n {body} \r\n".encode())
    assert [line.line for line in lines] == [4]


@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_give_a_format_error(data):
    with contextlib.suppress(FormatError):
        parse_sign_file(b"#clamsign-1.0\n" + data)


@given(st.binary(max_size=300))
def test_arbitrary_der_gives_a_format_error(data):
    with pytest.raises(FormatError):
        verify(data, b"content")


# -- the branches ClamAV's TEST chain never takes, on a throwaway chain verified against its own root --

CONTENT = b"a database"


def own_verify(root_der: bytes, der: bytes, content: bytes = CONTENT) -> str:
    return verify_detached(der, digest_of_bytes(content), (load_root(root_der),), NOW)


@pytest.mark.parametrize("pss", [False, True], ids=["RSA PKCS#1 v1.5", "RSA-PSS"])
def test_rsa_signers_verify_through_an_ecdsa_intermediate(pss):
    root, signer, key, intermediate = own_chain.chain()
    assert own_verify(root, own_chain.sign(CONTENT, signer, key, intermediate, pss=pss)) == "Own Signer"


def test_an_ecdsa_signer_verifies():
    root, signer, key, intermediate = own_chain.chain(signer_key=ec.generate_private_key(ec.SECP256R1()))
    assert own_verify(root, own_chain.sign(CONTENT, signer, key, intermediate)) == "Own Signer"


def test_an_intermediate_that_is_not_a_ca_breaks_the_chain():
    root, signer, key, intermediate = own_chain.chain(intermediate_is_ca=False)
    with pytest.raises(FormatError, match="is not a CA"):
        own_verify(root, own_chain.sign(CONTENT, signer, key, intermediate))


def test_a_signer_certificate_expired_at_signing_time_is_refused():
    root, signer, key, intermediate = own_chain.chain(signer_days=1)
    with pytest.raises(FormatError, match="not at the signing time"):
        own_verify(root, own_chain.sign(CONTENT, signer, key, intermediate))


def test_a_signer_certificate_with_an_unknown_critical_extension_is_refused():
    # RFC 5280 4.2: a critical extension not understood refuses the certificate, as OpenSSL does
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    root, signer, key, intermediate = own_chain.chain(signer_extra=unknown)
    with pytest.raises(FormatError, match="unknown critical extension 1.3.6.1.4.1.99999.1"):
        own_verify(root, own_chain.sign(CONTENT, signer, key, intermediate))


def test_a_chain_to_another_root_is_refused():
    _root, signer, key, intermediate = own_chain.chain()
    other_root, *_ = own_chain.chain()
    with pytest.raises(FormatError, match="does not chain"):
        own_verify(other_root, own_chain.sign(CONTENT, signer, key, intermediate))


def test_a_signature_without_the_intermediate_does_not_chain():
    root, signer, key, _intermediate = own_chain.chain()
    with pytest.raises(FormatError, match="does not chain"):
        own_verify(root, own_chain.sign(CONTENT, signer, key, signer))


def test_a_second_message_digest_among_the_signed_attributes_is_refused():
    info = cms.ContentInfo.load(pkcs7_of("test-6.cvd"))
    signer = info["content"]["signer_infos"][0]
    attributes = signer["signed_attrs"]
    digest = next(a for a in attributes if a["type"].native == "message_digest")
    attributes.append(cms.CMSAttribute.load(digest.dump()))
    signer["signed_attrs"] = attributes
    with pytest.raises(FormatError, match="message_digest must appear once"):
        verify(info.dump(force=True), read("test-6.cvd"))
