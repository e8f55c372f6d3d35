"""Every config snippet of the administrator's guides (English and Japanese) loads in its program."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from conftest import free_port, require_program, running_pum_serve, write_config
from guide_text import CONFIG_KINDS, LANGUAGES, Snippet, code_messages, snippets
from upstream import TESTDATA, ClamavTree, Upstream

from pum.cli import main as pum_main
from pum.config import parse_config


def _unique(kind: str) -> list[Snippet]:
    """Each distinct snippet once (the translation test makes sure both languages hold the same ones)."""
    seen: dict[str, Snippet] = {}
    for language in LANGUAGES:
        for snippet in snippets(language):
            if snippet.kind == kind:
                seen.setdefault(snippet.text, snippet)
    return list(seen.values())


def _params(kind: str) -> list:
    return [pytest.param(snippet, id=snippet.where) for snippet in _unique(kind)]


@pytest.mark.parametrize("kind", [*CONFIG_KINDS, "sh", "pum.log"])
def test_the_guides_hold_snippets_of_every_kind(kind):
    assert _unique(kind), f"no ```{kind} block in docs/en or docs/ja"


# -- pum.conf --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("snippet", _params("pum.conf"))
def test_pum_conf_snippet_loads(snippet):
    parse_config(snippet.text, shown_as=f"{snippet.where} (line of the block)")


def _validate_commands() -> list:
    found = []
    for snippet in _unique("pum.conf"):
        for line in snippet.text.splitlines():
            if line.startswith("validate_command="):
                found.append(pytest.param(line.partition("=")[2], id=snippet.where))
    return found


@pytest.mark.parametrize("command", _validate_commands())
def test_documented_validate_command_passes_on_a_real_release(command, upstream_tree, pum_conf, pum):
    require_program(shlex.split(command)[0])
    upstream_tree.publish(3)
    conf = pum_conf(validate_command=command)
    result = pum("--config", conf, "run")
    assert result.code == 0, result
    log = (conf.parent / "log" / "pum.log").read_text()
    assert "validate: " in log and "release new vdf (release 1)" in log, log


# -- freshclam.conf: real freshclam updates a client from a PUM with the snippet --------------------------


@pytest.fixture(scope="module")
def pum_serve_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PUM that released `test` version 6 (CDIFFs 2-6) from a loopback upstream, served by `pum serve`."""
    base = tmp_path_factory.mktemp("docs-pum")
    tree = ClamavTree(base / "upstream")
    tree.publish(1)
    upstream = Upstream(tree.root).start()
    try:
        port = free_port()
        conf = write_config(base / "pum", update_servers=upstream.address, listen=f"127.0.0.1:{port}")
        assert pum_main(["--config", str(conf), "run"]) == 0
        tree.publish(6)
        assert pum_main(["--config", str(conf), "run"]) == 0
        with running_pum_serve(conf, port):
            yield f"http://127.0.0.1:{port}"
    finally:
        upstream.stop()


_MIRROR_LINE = re.compile(r"^(?P<directive>[ \t]*(?:DatabaseMirror|PrivateMirror)[ \t]+)\S+[ \t]*$", re.M)


@pytest.mark.parametrize("snippet", _params("freshclam.conf"))
def test_freshclam_conf_snippet_updates_a_client_from_pum(snippet, pum_serve_url, tmp_path):
    binary = require_program("freshclam")
    assert _MIRROR_LINE.search(snippet.text), f"{snippet.where}: names no DatabaseMirror or PrivateMirror"
    # the snippet as written, with its mirror URL pointed at the PUM of this test, and the lines every
    # freshclam.conf has anyway (where the databases live) added after it
    text = _MIRROR_LINE.sub(lambda match: match["directive"] + pum_serve_url, snippet.text)
    client = tmp_path / "clamav"
    client.mkdir()
    shutil.copyfile(TESTDATA / "test-1.cvd", client / "test.cvd")
    conf = tmp_path / "freshclam.conf"
    conf.write_text(
        text + f"DatabaseDirectory {client}\nUpdateLogFile {tmp_path}/freshclam.log\nDatabaseOwner root\n"
    )
    result = subprocess.run(
        [binary, f"--config-file={conf}", "--update-db=test", "--stdout"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{snippet.where}:\n{output}"
    assert re.search(r"test\.c[lv]d updated \(version: 6", output), f"{snippet.where}:\n{output}"


# -- proscan.conf: the proscanup config loader -----------------------------------------------------------


@pytest.mark.parametrize("snippet", _params("proscan.conf"))
def test_proscan_conf_snippet_loads_in_proscanup(snippet, tmp_path):
    from pum.agent.proscan_conf import load_agent_config

    path = tmp_path / "proscan.conf"
    path.write_text(snippet.text)
    load_agent_config(path)


# -- Apache and nginx: their own config test, and the text `pum deploy` writes ---------------------------

# the modules a stock Debian Apache loads, minus those the PUM config has nothing to do with
_APACHE_MODULES = ("mpm_event", "authz_core", "authz_host", "alias", "dir", "mime", "env", "setenvif")


@pytest.mark.parametrize("snippet", _params("apache"))
def test_apache_snippet_passes_apache_configtest(snippet, tmp_path):
    binary = require_program("apache2")
    modules = Path("/usr/lib/apache2/modules")
    included = tmp_path / "pum.conf"
    included.write_text(snippet.text)
    wrapper = tmp_path / "httpd.conf"
    wrapper.write_text(
        f"ServerRoot {tmp_path}\nServerName localhost\nPidFile {tmp_path}/httpd.pid\n"
        f"ErrorLog {tmp_path}/error.log\n"
        + "".join(f"LoadModule {name}_module {modules}/mod_{name}.so\n" for name in _APACHE_MODULES)
        + f"Include {included}\n"
    )
    result = subprocess.run([binary, "-t", "-f", str(wrapper)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "Syntax OK" in result.stderr, f"{snippet.where}:\n{result.stderr}"


@pytest.mark.parametrize("snippet", _params("nginx"))
def test_nginx_snippet_passes_nginx_configtest(snippet, tmp_path):
    binary = require_program("nginx")
    included = tmp_path / "pum.conf"
    included.write_text(snippet.text)
    wrapper = tmp_path / "nginx.conf"
    wrapper.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n    access_log off;\n    include {included};\n}}\n"
    )
    result = subprocess.run(
        [binary, "-t", "-p", f"{tmp_path}/", "-e", f"{tmp_path}/error.log", "-c", str(wrapper)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    passed = result.returncode == 0 and "test is successful" in result.stderr
    assert passed, f"{snippet.where}:\n{result.stderr}"


@pytest.mark.parametrize(
    ("kind", "snippet"),
    [("apache", p.values[0]) for p in _params("apache")] + [("nginx", p.values[0]) for p in _params("nginx")],
    ids=lambda value: value.where if isinstance(value, Snippet) else value,
)
def test_web_server_snippet_is_what_pum_deploy_writes(kind, snippet):
    from pum.deploy.web import FLAVORS, render_web_config

    if kind == "apache":
        port = re.search(r"^<VirtualHost \*:(\d+)>$", snippet.text, re.M)
        docroot = re.search(r'^\s*DocumentRoot "(.+)"$', snippet.text, re.M)
    else:
        port = re.search(r"^\s*listen (\d+);$", snippet.text, re.M)
        docroot = re.search(r"^\s*root (.+);$", snippet.text, re.M)
    assert port and docroot, f"{snippet.where}: can't find the port and docroot in the snippet"
    written = {flavor: render_web_config(kind, Path(docroot[1]), int(port[1]), flavor) for flavor in FLAVORS}
    if snippet.text not in written.values():
        pytest.fail(
            f"{snippet.where}: the guide shows a config `pum deploy {kind}` no longer writes; "
            f"replace the block with:\n{written['debian']}"
        )


# -- the schedule: the timer and the cron file `pum install` writes -----------------------------------------


def _schedule_comment(snippet: Snippet) -> str:
    match = re.search(r'\((.+) in cron\'s words\)|at "(.+)"\.', snippet.text)
    assert match, f"{snippet.where}: the header comment naming the schedule is missing"
    return match[1] or match[2]


@pytest.mark.parametrize("snippet", _params("systemd"))
def test_systemd_snippet_is_what_pum_install_writes(snippet):
    from pum.deploy import cron, systemd

    delay = re.search(r"^RandomizedDelaySec=(\d+)$", snippet.text, re.M)
    assert delay, f"{snippet.where}: no RandomizedDelaySec="
    written = systemd.render_run_timer(cron.parse_schedule(_schedule_comment(snippet)), int(delay[1]))
    if snippet.text != written:
        pytest.fail(f"{snippet.where}: `pum install` now writes:\n{written}")


@pytest.mark.parametrize("snippet", _params("cron"))
def test_cron_snippet_is_what_pum_install_writes(snippet):
    from pum.deploy import cron

    job = re.search(r"^(?:\S+ ){5}root sleep \$\(\(RANDOM \\% (\d+)\)\) && (.+)$", snippet.text, re.M)
    assert job, f"{snippet.where}: no job line with its random sleep"
    schedule = cron.parse_schedule(_schedule_comment(snippet))
    written = cron.render_cron_file(schedule, shlex.split(job[2]), int(job[1]))
    if snippet.text != written:
        pytest.fail(f"{snippet.where}: `pum install` now writes:\n{written}")


# -- command lines: every `pum …` and `proscanup …` the guides show parses -------------------------------


def _command_lines(snippet: Snippet) -> Iterator[list[str]]:
    text = snippet.text.replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        for part in re.split(r"&&|\|\||;|\|", line):
            words = shlex.split(part)
            if words[:1] == ["sudo"]:
                words = words[1:]
            if words and words[0] in ("pum", "proscanup"):
                yield words


def _parse_with_click(command: click.Command, name: str, args: list[str]) -> None:
    """Parse as the command line would, without running anything; a usage error fails the test."""
    try:
        context = command.make_context(name, list(args))
        while isinstance(command, click.Group):
            rest = [*getattr(context, "_protected_args", []), *context.args]
            if not rest:
                return
            sub_name, sub_command, sub_args = command.resolve_command(context, rest)
            assert sub_command is not None and sub_name is not None
            command, context = sub_command, sub_command.make_context(sub_name, sub_args, parent=context)
    except click.exceptions.Exit:
        return  # --version, --help


def _cli_of(program: str) -> click.Command:
    from pum.commands import cli

    return cli


def _parse_proscanup(args: list[str]) -> str | None:
    """The usage error argparse would print for this proscanup command line, or None."""
    from pum.agent.main import UsageError, build_parser

    try:
        build_parser().parse_args(args)
    except UsageError as error:
        return str(error)
    except SystemExit:
        return None  # --version, --help
    return None


@pytest.mark.parametrize("snippet", _params("sh"))
def test_command_lines_in_the_guides_parse(snippet):
    for words in _command_lines(snippet):
        if words[0] == "proscanup":
            problem = _parse_proscanup(words[1:])
            if problem:
                pytest.fail(f"{snippet.where}: {' '.join(words)}: {problem}")
            continue
        try:
            _parse_with_click(_cli_of(words[0]), words[0], words[1:])
        except click.UsageError as error:
            pytest.fail(f"{snippet.where}: {' '.join(words)}: {error.format_message()}")


# -- run log examples: each line is one PUM writes -------------------------------------------------------


@pytest.mark.parametrize("snippet", _params("pum.log"))
def test_run_log_example_lines_are_lines_pum_writes(snippet):
    templates = [message for message in code_messages("log") if message.has_words]
    unknown = [
        line
        for line in snippet.text.splitlines()
        if line and not any(message.pattern.fullmatch(line) for message in templates)
    ]
    assert not unknown, f"{snippet.where}: PUM writes no such log lines: {unknown}"
