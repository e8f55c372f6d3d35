"""A release's changelog `.pum/changes/<S>.json`: what changed from release S, checked by files_digest."""

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pum.formats import FormatError
from pum.formats.changes import (
    MAX_ENTRIES,
    Changes,
    canonical_files,
    changes_between,
    changes_path,
    changes_serial,
    files_digest,
    files_of_canonical,
    parse_changes,
)
from pum.formats.manifest import FileRecord

CREATED = "2025-09-01T03:32:05Z"
OLD = {
    "test.cvd": FileRecord(size=9952, sha256="a" * 64, mtime=1624412045),
    "dns.txt": FileRecord(size=40, sha256="b" * 64, mtime=1756690325),
    "ibm/old.bin": FileRecord(size=3, sha256="c" * 64, mtime=1756690325),
}
NEW = {
    "test.cvd": FileRecord(size=9952, sha256="a" * 64, mtime=1624412045),
    "dns.txt": FileRecord(size=41, sha256="d" * 64, mtime=1756690400),
    "test-7.cdiff": FileRecord(size=500, sha256="e" * 64, mtime=1756690400),
}


def _document(**fields: Any) -> bytes:
    document: dict[str, Any] = json.loads(changes_between(4, OLD, 7, CREATED, NEW).to_json())
    document.update(fields)
    return json.dumps(document).encode()


def test_changes_hold_the_records_set_and_the_paths_removed() -> None:
    changes = changes_between(4, OLD, 7, CREATED, NEW)
    assert dict(changes.set) == {"dns.txt": NEW["dns.txt"], "test-7.cdiff": NEW["test-7.cdiff"]}
    assert changes.removed == {"ibm/old.bin"}
    assert (changes.from_files, changes.files) == (files_digest(OLD), files_digest(NEW))


def test_changes_parse_back_to_themselves() -> None:
    changes = changes_between(4, OLD, 7, CREATED, NEW)
    assert parse_changes(changes.to_json()) == changes


def test_changes_applied_to_the_old_file_set_give_the_new_one() -> None:
    assert changes_between(4, OLD, 7, CREATED, NEW).applied_to(OLD) == NEW


records = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d/e", "d/f", "g"]),
    st.builds(FileRecord, size=st.integers(0, 3), sha256=st.sampled_from(["1" * 64, "2" * 64]),
              mtime=st.integers(0, 2)),
)  # fmt: skip


@given(records, records, records)
def test_changes_followed_by_later_changes_are_the_net_change(first: Any, second: Any, third: Any) -> None:
    early = changes_between(1, first, 2, CREATED, second)
    late = changes_between(2, second, 3, CREATED, third)
    both = early.then(late)
    assert both.applied_to(first) == third
    assert files_digest(both.applied_to(first)) == both.files
    assert parse_changes(both.to_json()) == both


def test_changes_from_elsewhere_cannot_be_followed() -> None:
    early = changes_between(1, OLD, 2, CREATED, NEW)
    with pytest.raises(FormatError, match="cannot be followed"):
        early.then(changes_between(3, NEW, 4, CREATED, OLD))


def test_the_changelog_paths_are_digits_only() -> None:
    assert changes_path(12) == ".pum/changes/12.json"
    assert changes_serial(".pum/changes/12.json") == 12
    assert changes_serial(".pum/changes/0.json") == 0
    too_long = ".pum/changes/" + "9" * 19 + ".json"
    for other in (".pum/changes/012.json", ".pum/changes/x.json", ".pum/changes/1.json.bak",
                  "x/.pum/changes/1.json", ".pum/changes/1/2.json", too_long):  # fmt: skip
        assert changes_serial(other) is None, other


@pytest.mark.parametrize(
    "fields, problem",
    [
        ({"set": {"../etc/passwd": {"size": 1, "sha256": "a" * 64, "mtime": 1}}}, "outside|'\\.\\.'"),
        ({"set": {"./dns.txt": {"size": 1, "sha256": "a" * 64, "mtime": 1}}}, "not a canonical"),
        ({"set": {"/etc/passwd": {"size": 1, "sha256": "a" * 64, "mtime": 1}}}, "absolute"),
        ({"removed": ["a\x00b"]}, "control"),
        ({"removed": [7]}, "not a canonical"),
        ({"removed": ["x", "x"]}, "removed twice"),
        ({"removed": ["dns.txt"]}, "both set and removed"),
        ({"set": {"x": {"size": -1, "sha256": "a" * 64, "mtime": 1}}}, "size"),
        ({"set": {"x": {"size": True, "sha256": "a" * 64, "mtime": 1}}}, "size"),
        ({"set": {"x": {"size": 1, "sha256": "A" * 64, "mtime": 1}}}, "sha256"),
        ({"set": {"x": {"size": 1, "sha256": "a" * 64}}}, "size, sha256 and mtime"),
        ({"files": "0" * 63}, "files"),
        ({"serial": 3}, "back to release 3"),
        ({"serial": 4}, "into itself"),
        ({"generation": 2}, "generation 2"),
        ({"created": "yesterday"}, "created"),
        ({"from": 4}, "from must be"),
        ({"set": []}, "set must be"),
        ({"removed": ["r"] * (MAX_ENTRIES + 1)}, "entries, at most"),
    ],
)
def test_a_hostile_changelog_is_refused(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(FormatError, match=problem):
        parse_changes(_document(**fields))


def test_a_changelog_too_large_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(FormatError, match="at most"):
        parse_changes(b" " * (9 << 20))


@pytest.mark.parametrize("raw", [b"", b"[]", b"\xff", b'{"generation": 1, "generation": 1}', b"[" * 100_000])
def test_what_is_not_a_changelog_is_refused(raw: bytes) -> None:
    with pytest.raises(FormatError):
        parse_changes(raw)


@given(st.binary(max_size=300))
def test_any_bytes_give_changes_or_format_error(raw: bytes) -> None:
    with contextlib.suppress(FormatError):
        parse_changes(raw)


def test_the_empty_changes_of_a_release_since_itself_parse() -> None:
    digest = files_digest(NEW)
    empty = Changes(7, digest, 7, CREATED, digest)
    assert parse_changes(empty.to_json()) == empty


def test_a_file_set_kept_as_its_canonical_bytes_is_read_back_only_with_its_digest() -> None:
    raw = canonical_files(NEW)
    assert files_of_canonical(raw, files_digest(NEW)) == NEW
    with pytest.raises(FormatError, match="files_digest"):
        files_of_canonical(raw.replace(b"41", b"42"), files_digest(NEW))
