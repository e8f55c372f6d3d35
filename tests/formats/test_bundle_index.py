"""formats/bundle.py: the index of a bundle that carries a release across an air gap."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pum.formats import FormatError
from pum.formats.bundle import BundleIndex, Carried, parse_bundle_index

SHA = "ab" * 32


def _index(**changes: object) -> BundleIndex:
    fields: dict = dict(
        origin="main-pum",
        from_serial=4,
        to_serial=7,
        created="2026-12-01T03:20:00Z",
        manifest=Carried(120, SHA),
        files={"daily-7.cdiff": Carried(10, SHA), "ibm/power/PSHB06.lst": Carried(3, SHA)},
    )
    fields.update(changes)
    return BundleIndex(**fields)


def test_an_index_reads_back_as_written():
    index = _index()
    assert parse_bundle_index(index.to_json()) == index
    assert parse_bundle_index(_index(from_serial=None).to_json()).full


@pytest.mark.parametrize(
    "change, message",
    [
        ({"from_serial": 9}, "after to_serial"),
        ({"to_serial": 0}, "positive integer"),
        ({"origin": "a b"}, "origin"),
        ({"created": "yesterday"}, "created"),
        ({"files": {"../etc/passwd": Carried(1, SHA)}}, "passwd"),
        ({"files": {"./a": Carried(1, SHA)}}, "canonical"),
    ],
)
def test_a_bad_index_is_refused(change, message):
    with pytest.raises(FormatError, match=message):
        _index(**change)


def _raw(**changes: object) -> bytes:
    document = json.loads(_index().to_json())
    document.update(changes)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "raw, message",
    [
        (b'{"kind": "pum-bundle", "kind": "pum-bundle"}', "twice"),
        (_raw(kind="other"), "not a PUM bundle index"),
        (_raw(generation=2), "newer than this PUM reads"),
        (_raw(files={"a": {"size": -1, "sha256": SHA}}), "size"),
        (_raw(files={"a": {"size": 1, "sha256": SHA.upper()}}), "sha256"),
        (_raw(files={"a": {"size": 1, "sha256": SHA, "mode": 4095}}), "size, sha256"),
        (_raw(manifest=None), "manifest"),
        (b"\xff", "not UTF-8"),
        (b"[" * 100000, "nested too deeply|not JSON"),
    ],
)
def test_hostile_index_bytes_are_refused_with_a_format_error(raw, message):
    with pytest.raises(FormatError, match=message):
        parse_bundle_index(raw)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_format_error(raw):
    with contextlib.suppress(FormatError):
        parse_bundle_index(raw)
