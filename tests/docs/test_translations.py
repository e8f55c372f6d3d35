"""The English and Japanese guides cannot drift apart: same files, sections and snippets; working links."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
from guide_text import DOCS, LANGUAGES, fenced_blocks, guide_files

_HEADING = re.compile(r"^(#{1,6}) (.+?)\s*$")
_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def _names(language: str) -> list[str]:
    return [path.name for path in guide_files(language)]


def _headings(path: Path) -> list[tuple[int, str]]:
    found, in_block = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_block = not in_block
        match = None if in_block else _HEADING.match(line)
        if match:
            found.append((len(match[1]), match[2]))
    return found


def _pairs() -> list:
    return [pytest.param(DOCS / "en" / name, DOCS / "ja" / name, id=name) for name in _names("en")]


def test_both_languages_have_the_same_guide_files():
    assert _names("en"), "no guide in docs/en"
    assert _names("en") == _names("ja")


@pytest.mark.parametrize(("english", "japanese"), _pairs())
def test_both_languages_hold_the_same_snippets_in_the_same_order(english, japanese):
    en = [(block.kind, block.text) for block in fenced_blocks(english)]
    ja = [(block.kind, block.text) for block in fenced_blocks(japanese)]
    assert len(en) == len(ja), f"{english.name}: {len(en)} blocks in English, {len(ja)} in Japanese"
    for number, (en_block, ja_block) in enumerate(zip(en, ja, strict=True), start=1):
        assert en_block == ja_block, f"{english.name}: block {number} differs between the languages"


@pytest.mark.parametrize(("english", "japanese"), _pairs())
def test_both_languages_have_the_same_sections(english, japanese):
    en, ja = _headings(english), _headings(japanese)
    assert [level for level, _ in en] == [level for level, _ in ja], f"{english.name}: heading levels differ"
    for (_, en_title), (_, ja_title) in zip(en, ja, strict=True):
        if en_title.startswith("`") and en_title.endswith("`"):
            assert en_title == ja_title, f"{english.name}: the entry {en_title} is {ja_title} in Japanese"


def slug(title: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, blanks to '-'."""
    text = title.strip().lower()
    kept = [
        char
        for char in text
        if char in " -_" or unicodedata.category(char)[0] in "LN" or unicodedata.category(char) == "Mn"
    ]
    return "".join(kept).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    counts: dict[str, int] = {}
    for _, title in _headings(path):
        base = slug(title)
        count = counts.get(base, 0)
        anchors.add(base if count == 0 else f"{base}-{count}")
        counts[base] = count + 1
    return anchors


@pytest.mark.parametrize("language", LANGUAGES)
def test_links_between_the_guides_lead_somewhere(language):
    broken = []
    for path in guide_files(language):
        for match in _LINK.finditer(path.read_text(encoding="utf-8")):
            target = match["target"]
            if re.match(r"^[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            destination = (path.parent / file_part).resolve() if file_part else path
            if not destination.exists():
                broken.append(f"{path.name}: {target} (no such file)")
            elif anchor and destination.suffix == ".md" and anchor not in _anchors(destination):
                broken.append(f"{path.name}: {target} (no such section)")
    assert not broken, broken
