"""The guides cover what the code has: every pum.conf key with its default, every exit status, every error
line PUM can print, every run log line."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import click
import pytest
from guide_text import DOCS, LANGUAGES, Message, code_messages, code_spans

from pum.config import KEYS, Config
from pum.errors import ExitStatus

# keys whose default is not one fixed value; the table must name these texts
_SPECIAL_DEFAULTS = {
    "listen": ("0.0.0.0:80", "127.0.0.1:8080"),
    "user_agent": ("PUM/<version>",),
}


def _rows(path: Path) -> dict[str, list[str]]:
    """Table rows whose first cell is one `code` span: that name -> the other cells."""
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\|\s*`([^`]+)`\s*\|(.*)\|\s*$", line)
        if match:
            rows[match[1]] = [cell.strip() for cell in match[2].split("|")]
    return rows


def _default_text(value: object) -> str | None:
    """How the reference shows a default in its first `code` span; None: shown in words, no code span."""
    if value is None or value == ():
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_pum_conf_key_has_a_row_in_the_reference(language):
    rows = _rows(DOCS / language / "pum-conf.md")
    assert sorted(set(KEYS) - set(rows)) == [], "keys missing from the reference"
    documented_keys = {name for name in rows if re.fullmatch(r"[a-z_]+", name)}
    assert sorted(documented_keys - set(KEYS)) == [], "the reference documents keys PUM doesn't have"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_reference_shows_the_defaults_of_the_code(language):
    rows = _rows(DOCS / language / "pum-conf.md")
    defaults = {field.name: field.default for field in dataclasses.fields(Config)}
    wrong = []
    for key in KEYS:
        cell = rows[key][0]
        spans = re.findall(r"`([^`]+)`", cell)
        if key in _SPECIAL_DEFAULTS:
            if not all(f"`{text}`" in cell for text in _SPECIAL_DEFAULTS[key]):
                wrong.append(f"{key}: {cell!r} should name {_SPECIAL_DEFAULTS[key]}")
            continue
        expected = _default_text(defaults[key])
        if expected is None and spans and key != "product_servers":
            wrong.append(f"{key}: {cell!r}, but the code has no default value")
        elif expected is not None and spans[:1] != [expected]:
            wrong.append(f"{key}: {cell!r}, the code's default is {expected!r}")
    assert not wrong, wrong


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_reference_tells_original_keys_from_new_ones(language):
    original = {
        "mode", "logfile", "log_rotate", "log_generation", "update_servers", "update_protocol",
        "proxy_host", "proxy_port", "proxy_user", "proxy_passwd", "dns_resolve", "retention_period",
    }  # fmt: skip
    rows = _rows(DOCS / language / "pum-conf.md")
    words = {"en": ("original", "new"), "ja": ("従来", "新規")}[language]
    for key in KEYS:
        assert rows[key][1] == words[0 if key in original else 1], f"{key}: {rows[key][1]!r}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_exit_status_is_explained(language):
    text = (DOCS / language / "troubleshooting.md").read_text(encoding="utf-8")
    for status in ExitStatus:
        assert re.search(rf"^\| {status.value} \| `{status.name}` \|", text, re.M), status


def _uncovered(messages: tuple[Message, ...], path: Path) -> list[str]:
    spans = code_spans(path)
    return [
        f"{message.where}: {message.template}"
        for message in messages
        if message.has_words and not any(message.pattern.fullmatch(span) for span in spans)
    ]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_error_pum_can_print_has_a_troubleshooting_entry(language):
    missing = _uncovered(code_messages("errors"), DOCS / language / "troubleshooting.md")
    assert not missing, "add an entry (the message in `code`, `<…>` for values) for:\n" + "\n".join(missing)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_run_log_line_is_explained(language):
    missing = _uncovered(code_messages("log"), DOCS / language / "admin-guide.md")
    hint = "explain in 'The run log' (the line in `code`, `<…>` for values):\n"
    assert not missing, hint + "\n".join(missing)


def _commands() -> list[tuple[str, list[str]]]:
    """(command line, its long options) of every `pum` and `proscanup` command."""
    import argparse

    from pum.agent.main import build_parser
    from pum.commands import cli as pum

    found: list[tuple[str, list[str]]] = []

    def walk(command: click.Command, path: str) -> None:
        options = [name for param in command.params if isinstance(param, click.Option) for name in param.opts]
        found.append((path, [name for name in options if name.startswith("--")]))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    def walk_argparse(parser: argparse.ArgumentParser, path: str) -> None:
        options = [
            name
            for action in parser._actions
            if action.help != argparse.SUPPRESS
            for name in action.option_strings
            if name.startswith("--") and name not in ("--help", "--version")
        ]
        found.append((path, options))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk_argparse(sub, f"{path} {name}")

    walk(pum, "pum")
    walk_argparse(build_parser(), "proscanup")
    return found


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_command_and_option_is_in_the_guide(language):
    text = (DOCS / language / "admin-guide.md").read_text(encoding="utf-8")
    missing = []
    for command, options in _commands():
        if f"`{command}" not in text:
            missing.append(command)
        missing += [f"{command} {option}" for option in options if f"`{option}" not in text]
    assert not missing, missing


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_proscanup_option_has_a_row(language):
    from pum.agent.proscan_conf import KEYS as AGENT_KEYS

    rows = _rows(DOCS / language / "admin-guide.md")
    assert sorted(set(AGENT_KEYS) - set(rows)) == [], "[update.options] options missing from the table"


# printed for an OSError (cli.main, cycle.disk_error) or made of values only (Store.current_manifest), so no
# template with words to compare them with
_NOT_FROM_A_TEMPLATE = {
    "pum: <path>: <system error>",
    "<path>: No space left on device; free some space and run again",
    "<path>/.pum/manifest.json: <reason>",
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_troubleshooting_entry_is_an_error_pum_can_still_print(language):
    path = DOCS / language / "troubleshooting.md"
    messages = [message for message in code_messages("errors") if message.has_words]
    stale = []
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = re.fullmatch(r"#{3,} (`+)(.+)\1", line)
        if not entry or entry[2] in _NOT_FROM_A_TEMPLATE:
            continue
        if not any(message.pattern.fullmatch(entry[2]) for message in messages):
            stale.append(entry[2])
    assert not stale, "the code no longer prints these; update or remove the entries:\n" + "\n".join(stale)
