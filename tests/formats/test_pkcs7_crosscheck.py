"""formats.pkcs7 (standard library only) beside the asn1crypto + cryptography verifier it replaced
(tests/formats/pkcs7_reference.py), on ClamAV's real TEST signatures and on every kind of damage to them:
whatever the new verifier accepts, the reference accepts too, naming the same signer.

The new one is stricter in a few places the reference never reads or reads leniently, all outside what a
genuine ClamAV signature holds: the digest algorithm set and the signer's version field are parsed, the
signer's issuer name is compared by its DER bytes (not by X.520 caseless matching), DER lengths must be
in their shortest form, and an unknown critical extension refuses a certificate."""

import datetime as dt
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pum.formats import FormatError, pkcs7
from pum.formats.clamsign import parse_sign_file
from pum.sync.vdfcheck import PRODUCTION_ROOT, TEST_ROOT, TRUST_ROOTS

from . import own_chain, pkcs7_reference
from .clamav_testdata import CDIFF_VERSIONS, CVD_VERSIONS, flipped, read

NOW = dt.datetime.now(dt.UTC)
SIGNED = [f"test-{v}.cvd" for v in CVD_VERSIONS] + [f"test-{v}.cdiff" for v in CDIFF_VERSIONS]
ROOT_FILES = [TEST_ROOT, PRODUCTION_ROOT]


def pkcs7_of(name: str) -> bytes:
    (line,) = parse_sign_file(read(f"{name}.sign"))
    return line.pkcs7_der


def outcomes(der: bytes, content: bytes, root_files=ROOT_FILES) -> tuple[str | None, str | None]:
    """(new, reference): the signer each verifier names, None where it refuses with FormatError."""
    answers = []
    for module in (pkcs7, pkcs7_reference):
        roots = tuple(module.load_root((TRUST_ROOTS / name).read_bytes()) for name in root_files)
        try:
            answers.append(module.verify_detached(der, module.digest_of_bytes(content), roots, NOW))
        except FormatError:
            answers.append(None)
    return answers[0], answers[1]


def assert_never_more_lenient(der: bytes, content: bytes) -> None:
    new, reference = outcomes(der, content)
    assert new is None or new == reference, f"accepted by the stdlib verifier only: {new!r}"


@pytest.mark.parametrize("name", SIGNED)
def test_both_verifiers_accept_every_real_signature_and_name_the_same_signer(name):
    assert outcomes(pkcs7_of(name), read(name)) == ("ClamAV TEST CVD Signing Cert",) * 2


@pytest.mark.parametrize("name", ["test-6.cvd", "test-2.cdiff"])
def test_both_refuse_the_test_signatures_with_only_the_production_root(name):
    assert outcomes(pkcs7_of(name), read(name), [PRODUCTION_ROOT]) == (None, None)


def test_both_refuse_a_signature_over_other_bytes():
    assert outcomes(pkcs7_of("test-5.cdiff"), read("test-6.cdiff")) == (None, None)


@given(
    name=st.sampled_from(["test-6.cdiff", "test-6.cvd"]),
    offset=st.integers(min_value=0, max_value=5000),
    mask=st.integers(min_value=1, max_value=255),
)
@settings(max_examples=500, deadline=None)
def test_a_flipped_byte_is_never_accepted_by_the_new_verifier_alone(name, offset, mask):
    der = pkcs7_of(name)
    assert_never_more_lenient(flipped(der, offset % len(der), mask), read(name))


@given(name=st.sampled_from(["test-6.cdiff", "test-6.cvd"]), cut=st.integers(min_value=0, max_value=5000))
@settings(max_examples=200, deadline=None)
def test_a_truncated_or_extended_signature_is_refused_by_both(name, cut):
    der = pkcs7_of(name)
    cut %= len(der)
    assert outcomes(der[:cut], read(name)) == (None, None)
    assert outcomes(der + der[:cut] if cut else der + b"\x00", read(name)) == (None, None)


@given(
    name=st.sampled_from(["test-6.cdiff", "test-6.cvd"]),
    offset=st.integers(min_value=0, max_value=5000),
    inserted=st.binary(min_size=1, max_size=4),
)
@settings(max_examples=200, deadline=None)
def test_inserted_bytes_are_never_accepted_by_the_new_verifier_alone(name, offset, inserted):
    der = pkcs7_of(name)
    offset %= len(der)
    assert_never_more_lenient(der[:offset] + inserted + der[offset:], read(name))


@pytest.mark.parametrize("pss", [False, True], ids=["RSA PKCS#1 v1.5", "RSA-PSS"])
def test_both_accept_an_own_chain_through_an_ecdsa_intermediate(pss):
    root, signer, key, intermediate = own_chain.chain()
    der = own_chain.sign(b"content", signer, key, intermediate, pss=pss)
    for module in (pkcs7, pkcs7_reference):
        verified = module.verify_detached(
            der, module.digest_of_bytes(b"content"), (module.load_root(root),), NOW
        )
        assert verified == "Own Signer"


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_the_verifier_and_the_dns_messages_load_only_the_standard_library():
    loaded = _modules_after("import pum.formats.pkcs7, pum.formats.dns_message") - _modules_after("pass")
    outside = {m.split(".")[0] for m in loaded} - set(sys.stdlib_module_names) - {"pum"}
    assert sorted(outside) == []
