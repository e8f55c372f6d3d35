"""The release manifest `.pum/manifest.json`."""

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pum.formats import FormatError
from pum.formats.manifest import FileRecord, Manifest, parse_manifest

SHA = "a" * 64
MANIFEST = Manifest(
    serial=7,
    created="2025-09-01T03:32:05Z",
    files={
        "test.cvd": FileRecord(size=9952, sha256=SHA, mtime=1624412045),
        "ibm/power/PSHB06.lst": FileRecord(size=120, sha256="b" * 64, mtime=1756690325),
    },
    source="http://clamav-latest.example.com",
)
MANIFEST_JSON = (
    "{\n"
    ' "created": "2025-09-01T03:32:05Z",\n'
    ' "files": {\n'
    '  "ibm/power/PSHB06.lst": {\n'
    '   "mtime": 1756690325,\n'
    f'   "sha256": "{"b" * 64}",\n'
    '   "size": 120\n'
    "  },\n"
    '  "test.cvd": {\n'
    '   "mtime": 1624412045,\n'
    f'   "sha256": "{SHA}",\n'
    '   "size": 9952\n'
    "  }\n"
    " },\n"
    ' "generation": 1,\n'
    ' "serial": 7,\n'
    ' "source": "http://clamav-latest.example.com"\n'
    "}\n"
).encode()


def _document(**changes: Any) -> bytes:
    document: dict[str, Any] = json.loads(MANIFEST_JSON)
    document.update(changes)
    return json.dumps(document).encode()


def test_manifest_is_written_as_stable_sorted_json_with_a_trailing_newline() -> None:
    assert MANIFEST.to_json() == MANIFEST_JSON


def test_manifest_parses_back_to_itself() -> None:
    assert parse_manifest(MANIFEST.to_json()) == MANIFEST


def test_manifest_without_generation_and_source_reads_as_generation_1_from_nowhere() -> None:
    raw = b'{"serial": 1, "created": "2025-09-01T03:32:05Z", "files": {}}'
    assert parse_manifest(raw) == Manifest(
        serial=1, created="2025-09-01T03:32:05Z", files={}, generation=1, source=""
    )


def test_unknown_keys_from_a_newer_pum_of_the_same_generation_are_ignored() -> None:
    assert parse_manifest(_document(mirrors=["a"])) == MANIFEST


def test_manifest_of_a_newer_generation_is_refused() -> None:
    with pytest.raises(FormatError, match=r"manifest generation 2 is newer than this PUM reads \(1\)"):
        parse_manifest(_document(generation=2))


def test_manifest_does_not_change_with_the_dict_it_was_built_from() -> None:
    files = {"a": FileRecord(1, SHA, 1)}
    manifest = Manifest(serial=1, created="2025-09-01T03:32:05Z", files=files)
    files["b"] = FileRecord(2, SHA, 2)
    assert list(manifest.files) == ["a"]
    with pytest.raises(TypeError):
        manifest.files["b"] = FileRecord(2, SHA, 2)  # type: ignore[index]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "manifest is not JSON"),
        (b"{", "manifest is not JSON"),
        (b"\xff{}", "manifest is not UTF-8"),
        (b"[]", "expected a JSON object, got list"),
        (b"[" * 100_000, "nested too deeply|not JSON"),
        (b'{"serial": 1, "created": "2025-09-01T03:32:05Z"}', "manifest lacks files"),
        (
            b'{"serial": 1, "serial": 2, "created": "2025-09-01T03:32:05Z", "files": {}}',
            "key 'serial' appears twice",
        ),
        (
            b'{"serial": 1, "created": "2025-09-01T03:32:05Z", "files": {"a": {}, "a": {}}}',
            "key 'a' appears twice",
        ),
    ],
)
def test_manifest_that_is_not_a_manifest_document_is_refused(raw: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        parse_manifest(raw)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"serial": "7"}, "serial must be an integer, got '7'"),
        ({"serial": True}, "serial must be an integer, got True"),
        ({"serial": 7.0}, "serial must be an integer, got 7.0"),
        ({"serial": -1}, "serial must not be negative"),
        ({"generation": 0}, "generation must be at least 1"),
        ({"source": None}, "source must be a string"),
        ({"created": "2025-09-01 03:32:05"}, "created must be ISO 8601 UTC"),
        ({"created": "2025-09-01T03:32:05+02:00"}, "created must be ISO 8601 UTC"),
        ({"created": "2025-02-30T03:32:05Z"}, "created is not a real date and time"),
        ({"files": []}, "files must be an object, got list"),
        ({"files": {"../etc/passwd": {}}}, "'..' component in path '../etc/passwd'"),
        ({"files": {"/etc/passwd": {}}}, "absolute path"),
        ({"files": {"./test.cvd": {}}}, "path './test.cvd' is not canonical, expected 'test.cvd'"),
        ({"files": {"a\\b": {}}}, "backslash in path"),
        ({"files": {"test.cvd": 5}}, r"files\['test.cvd'\] must be an object"),
        ({"files": {"test.cvd": {"size": 1, "mtime": 1}}}, r"files\['test.cvd'\] lacks sha256"),
        ({"files": {"test.cvd": {"size": 1, "mtime": 1, "sha256": SHA.upper()}}}, "64 lowercase hex"),
        ({"files": {"test.cvd": {"size": 1, "mtime": 1, "sha256": SHA[:-1]}}}, "64 lowercase hex"),
        ({"files": {"test.cvd": {"size": -1, "mtime": 1, "sha256": SHA}}}, "size must not be negative"),
        ({"files": {"test.cvd": {"size": 1, "mtime": "1", "sha256": SHA}}}, "mtime must be an integer"),
    ],
)
def test_manifest_with_a_bad_value_is_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(FormatError, match=f"^manifest.*{message}"):
        parse_manifest(_document(**changes))


def test_manifest_cannot_be_built_with_a_path_that_leaves_the_tree() -> None:
    with pytest.raises(FormatError, match="'..' component"):
        Manifest(serial=1, created="2025-09-01T03:32:05Z", files={"../x": FileRecord(1, SHA, 1)})


def test_manifest_cannot_be_built_with_a_source_json_could_not_write() -> None:
    with pytest.raises(FormatError, match="source is not valid UTF-8"):
        Manifest(serial=1, created="2025-09-01T03:32:05Z", files={}, source="\udcff")


def test_manifest_naming_a_file_that_is_also_a_directory_is_refused() -> None:
    raw = MANIFEST_JSON.replace(b'"ibm/power/PSHB06.lst"', b'"test.cvd/PSHB06.lst"')
    with pytest.raises(
        FormatError, match="path 'test.cvd' is a file and also the directory of 'test.cvd/PSHB06.lst'"
    ):
        parse_manifest(raw)


def test_file_record_cannot_be_built_with_a_bad_sha256() -> None:
    with pytest.raises(FormatError, match="64 lowercase hex"):
        FileRecord(size=1, sha256="x", mtime=1)


_COMPONENT = st.text(
    alphabet=st.characters(exclude_categories=["C", "Zl", "Zp"], exclude_characters="/\\"),
    min_size=1,
    max_size=12,
).filter(lambda name: name not in (".", "..") and name == name.strip())
_PATH = st.lists(_COMPONENT, min_size=1, max_size=4).map("/".join).filter(lambda path: path == path.strip())
_RECORD = st.builds(
    FileRecord,
    size=st.integers(min_value=0, max_value=2**63),
    sha256=st.binary(min_size=32, max_size=32).map(bytes.hex),
    mtime=st.integers(min_value=0, max_value=2**40),
)
_CREATED = st.datetimes(timezones=st.none()).map(lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%SZ"))


def _no_file_is_a_directory(files: dict[str, FileRecord]) -> bool:
    return not any(other.startswith(path + "/") for path in files for other in files)


@given(
    serial=st.integers(min_value=0, max_value=2**63),
    created=_CREATED.filter(lambda text: len(text) == 20),
    files=st.dictionaries(_PATH, _RECORD, max_size=8).filter(_no_file_is_a_directory),
    source=st.text(alphabet=st.characters(exclude_categories=["Cs"])),
)
def test_any_manifest_round_trips_through_json(
    serial: int, created: str, files: dict[str, FileRecord], source: str
) -> None:
    manifest = Manifest(serial=serial, created=created, files=files, source=source)
    raw = manifest.to_json()
    assert parse_manifest(raw) == manifest
    assert parse_manifest(raw).to_json() == raw


@given(st.binary(max_size=300))
def test_parse_manifest_raises_only_format_error_on_random_bytes(raw: bytes) -> None:
    with pytest.raises(FormatError):
        parse_manifest(raw)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "serial": _JSON | st.integers(),
            "created": _JSON | _CREATED,
            "files": _JSON | st.dictionaries(_PATH | st.text(max_size=10), _JSON, max_size=3),
            "generation": _JSON | st.integers(),
            "source": _JSON,
        },
    )
)
def test_parse_manifest_raises_only_format_error_on_arbitrary_json(document: dict[str, Any]) -> None:
    with contextlib.suppress(FormatError):
        parse_manifest(json.dumps(document).encode())


def _as_json_dumps_writes_it(manifest: Manifest) -> bytes:
    document = {
        "generation": manifest.generation,
        "serial": manifest.serial,
        "created": manifest.created,
        "source": manifest.source,
        "files": {
            path: {"size": record.size, "sha256": record.sha256, "mtime": record.mtime}
            for path, record in manifest.files.items()
        },
    }
    return (json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


@pytest.mark.parametrize("count", [0, 1, 12_345])
def test_manifest_written_in_pieces_is_the_json_document_byte_for_byte(count: int) -> None:
    files = {
        f'd{n % 7}/ファイル-{n:05d}"q".bin': FileRecord(n, f"{n:064x}", 1_700_000_000 + n)
        for n in range(count)
    }
    manifest = Manifest(serial=3, created="2025-09-01T03:32:05Z", files=files, source='upper "ü"\n')
    chunks = list(manifest.json_chunks())
    assert b"".join(chunks) == manifest.to_json() == _as_json_dumps_writes_it(manifest)
    assert len(chunks) > 1 or count < 10_000  # a large manifest is never one string


@pytest.mark.parametrize(
    "record",
    [
        f'{{"size": 1, "sha256": "{SHA}", "mtime": 2}}',  # another order
        f'{{"mtime": 2, "sha256": "{SHA}", "size": 1, "md5": "x"}}',  # a key a newer PUM added
    ],
)
def test_manifest_record_written_otherwise_reads_the_same(record: str) -> None:
    raw = b'{"serial": 1, "created": "2025-09-01T03:32:05Z", "files": {"a": %s}}' % record.encode()
    assert parse_manifest(raw).files == {"a": FileRecord(size=1, sha256=SHA, mtime=2)}


def test_manifest_object_shaped_like_a_record_where_files_belong_is_refused() -> None:
    raw = (
        b'{"serial": 1, "created": "2025-09-01T03:32:05Z", "files": {"mtime": 2, "sha256": "%s", "size": 1}}'
    )
    with pytest.raises(FormatError, match="^manifest: files must be an object"):
        parse_manifest(raw % SHA.encode())


def _outcome(parse: Any, raw: bytes) -> Manifest | str:
    try:
        return parse(raw)  # type: ignore[no-any-return]
    except FormatError as error:
        return f"FormatError: {error}"


def _json_reading(raw: bytes) -> Manifest | str:
    # the manifest read as one JSON document, the way every manifest was read before the entry-by-entry
    # reading of PUM's own layout: the reference the fast reading must match
    from pum.formats.manifest import _parse_json

    return _outcome(_parse_json, raw)


@given(
    files=st.dictionaries(_PATH, _RECORD, min_size=1, max_size=6).filter(_no_file_is_a_directory),
    edits=st.lists(
        st.tuples(
            st.integers(min_value=0), st.sampled_from([b"", b'"', b"\\", b"0", b"-", b" ", b"\n", b"\xff"])
        ),
        max_size=3,
    ),
)
def test_manifest_as_pum_writes_it_reads_as_its_json_does_even_when_damaged(
    files: dict[str, FileRecord], edits: list[tuple[int, bytes]]
) -> None:
    raw = bytearray(Manifest(serial=4, created="2025-09-01T03:32:05Z", files=files, source="s").to_json())
    for at, insert in edits:
        where = at % len(raw)
        raw[where : where + (1 if insert == b"" else 0)] = insert
    assert _outcome(parse_manifest, bytes(raw)) == _json_reading(bytes(raw))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'"test.cvd"', b'"ibm/power/PSHB06.lst"'),  # a path twice
        (b'"test.cvd"', b'"./test.cvd"'),  # not canonical
        (b'"test.cvd"', b'"test.cvd/x"'),  # a file that is also a directory
        (b'"test.cvd"', b'"t\\u0065st.cvd"'),  # an escape: the same path
        (b'"test.cvd"', b'"\\u0000"'),  # an escaped control character
        (b'"mtime": 1624412045', b'"mtime": 01624412045'),  # no leading zero in JSON
        (b'"size": 9952', b'"size": 99520000000000000000000'),  # larger than 19 digits
        (b'"serial": 7', b'"serial": 7, "serial": 8'),
        (b'"generation": 1', b'"generation": 2'),
        (b' "files": {', b' "files": {"a": {}},\n "files": {'),
        (b"\n}\n", b"\n}\n{}"),
    ],
)
def test_manifest_as_pum_writes_it_with_one_change_reads_as_its_json_does(old: bytes, new: bytes) -> None:
    assert old in MANIFEST_JSON
    raw = MANIFEST_JSON.replace(old, new, 1)
    assert _outcome(parse_manifest, raw) == _json_reading(raw)
