"""`.pum/products.json`: the products source's record of a release, parsed and written in formats/."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pum.formats import FormatError
from pum.formats.products_record import ListedFile, parse_products_record, products_record_bytes

MD5, SHA256 = "0" * 32, "a" * 64
RECORD = {"ibm/power/PSHB06.lst": {"ibm/power/bin/proscand": ListedFile(MD5, SHA256)}}


def test_a_record_reads_back_as_written():
    assert parse_products_record(products_record_bytes(RECORD)) == RECORD


def test_the_bytes_are_canonical_json():
    document = json.loads(products_record_bytes(RECORD))
    assert document == {
        "generation": 1,
        "lists": {
            "ibm/power/PSHB06.lst": {"files": {"ibm/power/bin/proscand": {"md5": MD5, "sha256": SHA256}}}
        },
    }


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"lists": []},
        {"lists": {"a.lst": {"files": {"../etc/passwd": {"md5": MD5, "sha256": SHA256}}}}},
        {"lists": {"a.lst": {"files": {"x": {"md5": "nope", "sha256": SHA256}}}}},
        {"lists": {"a.lst": {"files": {"x": {"md5": MD5}}}}},
        {"lists": {"./a.lst": {"files": {}}}},
    ],
)
def test_a_record_that_is_not_what_pum_writes_is_a_format_error(document):
    with pytest.raises(FormatError):
        parse_products_record(json.dumps(document).encode())


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_format_error(data):
    with contextlib.suppress(FormatError):
        parse_products_record(data)
