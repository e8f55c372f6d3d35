"""Product lists (md5sum format) and the path rule every tree path goes through."""

import posixpath
from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pum.formats import FormatError
from pum.formats.productlist import ListEntry, parse_product_list, safe_relative_path

MD5 = "d41d8cd98f00b204e9800998ecf8427e"
OTHER_MD5 = "0cc175b9c0f1b6a831c399e269772661"


def test_list_in_md5sum_format_parses_with_line_numbers() -> None:
    text = f"# PSHB06 modules\n\n{MD5}  ibm/power/module.bin\n{OTHER_MD5}  post_update.sh\n"
    assert parse_product_list(text, "PSHB06.lst") == [
        ListEntry(md5=MD5, path="ibm/power/module.bin", line=3),
        ListEntry(md5=OTHER_MD5, path="post_update.sh", line=4),
    ]


def test_binary_mode_marker_is_accepted() -> None:
    assert parse_product_list(f"{MD5} *module.bin", "a.lst") == [ListEntry(MD5, "module.bin", 1)]


def test_uppercase_md5_is_read_as_lowercase() -> None:
    assert parse_product_list(f"{MD5.upper()}  module.bin", "a.lst")[0].md5 == MD5


def test_crlf_line_endings_are_accepted() -> None:
    entries = parse_product_list(f"{MD5}  a.bin\r\n{OTHER_MD5}  b.bin\r\n", "a.lst")
    assert [entry.path for entry in entries] == ["a.bin", "b.bin"]


def test_indented_comments_and_blank_lines_are_skipped() -> None:
    assert parse_product_list("  # comment\n \t \n", "a.lst") == []


def test_paths_with_spaces_inside_are_kept() -> None:
    assert (
        parse_product_list(f"{MD5}  release notes/read me.txt", "a.lst")[0].path
        == "release notes/read me.txt"
    )


def test_leading_dot_slash_is_dropped() -> None:
    # What `find . -type f | xargs md5sum` writes.
    assert parse_product_list(f"{MD5}  ./ibm/module.bin", "a.lst")[0].path == "ibm/module.bin"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (f"{MD5} module.bin", "expected '<32 hex md5>  <path>'"),
        (f"{MD5[:-1]}  module.bin", "expected '<32 hex md5>  <path>'"),
        (f"{MD5}\tmodule.bin", "expected '<32 hex md5>  <path>'"),
        ("module.bin", "expected '<32 hex md5>  <path>'"),
        (f"{MD5}  ", "empty path"),
        (f"{MD5}  /etc/passwd", "absolute path '/etc/passwd'"),
        (f"{MD5}  ../etc/passwd", "'..' component in path '../etc/passwd'"),
        (f"{MD5}  ibm/../../etc", "'..' component"),
        (f"{MD5}  ibm/./module.bin", "'.' component"),
        (f"{MD5}  .", "'.' component"),
        (f"{MD5}  ibm\\module.bin", "backslash in path"),
        (f"{MD5}  ibm//module.bin", "empty component"),
        (f"{MD5}  ibm/", "empty component"),
        (f"{MD5}  ibm/mod\0ule.bin", "control or invisible character U\\+0000"),
        (f"{MD5}  ibm/mod\x1bule.bin", "control or invisible character U\\+001B"),
        (f"{MD5}  ibm/\u202enib.exe", "control or invisible character U\\+202E"),
        (f"{MD5}  module.bin ", "blank at the start or end"),
        (f"{MD5}   module.bin", "blank at the start or end"),
        (f"{MD5}  {'x' * 256}", "longer than 255 bytes"),
    ],
)
def test_malformed_line_is_refused_with_list_name_and_line_number(line: str, message: str) -> None:
    with pytest.raises(FormatError, match=rf"^PSHB06\.lst:3: .*{message}"):
        parse_product_list(f"# header\n{MD5}  fine.bin\n{line}\n", "PSHB06.lst")


def test_duplicate_path_is_refused_naming_both_lines() -> None:
    text = f"{MD5}  a.bin\n{OTHER_MD5}  b.bin\n{OTHER_MD5}  ./a.bin\n"
    with pytest.raises(FormatError, match=r"^a\.lst:3: duplicate path 'a.bin' \(first on line 1\)"):
        parse_product_list(text, "a.lst")


def test_safe_relative_path_returns_a_canonical_path_unchanged() -> None:
    assert safe_relative_path("ibm/power/PSHB06.lst") == "ibm/power/PSHB06.lst"


def test_safe_relative_path_drops_repeated_leading_dot_slashes() -> None:
    assert safe_relative_path("././ibm/a") == "ibm/a"


@pytest.mark.parametrize("path", ["", "./", "/", "//server/share", "a/..", "..", "C:\\x", "a/\udcff"])
def test_safe_relative_path_refuses_paths_that_leave_the_tree_or_are_not_names(path: str) -> None:
    with pytest.raises(FormatError):
        safe_relative_path(path)


def _stays_inside(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return (
        not path.startswith("/")
        and ".." not in parts
        and posixpath.normpath(path) == path
        and posixpath.relpath(posixpath.join("/tree", path), "/tree").split("/")[0] != ".."
    )  # a name such as `..d41d8` stays inside: only a `..` component leaves


@given(st.text())
def test_parse_product_list_raises_only_format_error_and_accepts_only_paths_inside_the_tree(
    text: str,
) -> None:
    try:
        entries = parse_product_list(text, "fuzz.lst")
    except FormatError as error:
        assert str(error).startswith("fuzz.lst:")
        return
    for entry in entries:
        assert _stays_inside(entry.path)


_LINE_PIECES = st.sampled_from(
    [MD5, "  ", " *", "/", "./", "../", "..", ".", "a", "b c", "\\", "\0", "\r", "\n", "#"]
)


@given(st.lists(_LINE_PIECES, max_size=30).map("".join))
def test_parse_product_list_on_near_lists_raises_only_format_error_and_stays_inside(text: str) -> None:
    try:
        entries = parse_product_list(text, "fuzz.lst")
    except FormatError:
        return
    assert all(_stays_inside(entry.path) for entry in entries)
    assert len({entry.path for entry in entries}) == len(entries)


@given(st.text())
def test_safe_relative_path_accepts_only_canonical_paths_inside_the_tree(path: str) -> None:
    try:
        canonical = safe_relative_path(path)
    except FormatError:
        return
    assert _stays_inside(canonical)
    assert safe_relative_path(canonical) == canonical


_COMPONENT = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/\\"),
    min_size=1,
    max_size=20,
).filter(lambda name: name not in (".", ".."))


@given(st.lists(_COMPONENT, min_size=1, max_size=6).map("/".join))
def test_safe_relative_path_accepts_any_plain_relative_path(path: str) -> None:
    assert safe_relative_path(path) == path


def test_printable_ascii_holds_no_unreadable_character_so_its_fast_path_refuses_nothing_more() -> None:
    from pum.formats.productlist import _PRINTABLE_ASCII, _unreadable

    printable = "".join(chr(code) for code in range(0x20, 0x7F))
    assert _PRINTABLE_ASCII.fullmatch(printable)
    assert not [char for char in printable if _unreadable(char)]
    assert all(_unreadable(chr(code)) for code in [*range(0x20), 0x7F])
