"""The `proscanup` command: parse arguments, call one function, map errors to an exit status and one line."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import click

from pum import __version__
from pum.agent.config import DEFAULT_CONFIG, AgentConfig, load_agent_config
from pum.errors import ExitStatus, PumError


class Context:
    def __init__(self, config_path: Path, verbose: bool) -> None:
        self.config_path = config_path
        self.verbose = verbose

    @property
    def config(self) -> AgentConfig:
        return load_agent_config(self.config_path)

    def say(self, line: str) -> None:
        if self.verbose:
            click.echo(line)

    def report(self, line: str) -> None:
        click.echo(f"proscanup: {line}", err=True)


pass_context = click.make_pass_decorator(Context)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_CONFIG,
    show_default=True,
    envvar="PROSCANUP_CONFIG",
    help="proscan.conf; proscanup reads its [update.options] section.",
)
@click.option("-V", "--verbose", is_flag=True, help="Show each step and the output of the commands run.")
@click.option("--debug", is_flag=True, help="Show a traceback on errors.")
@click.version_option(__version__, "--version", prog_name="proscanup")
@click.pass_context
def cli(click_ctx: click.Context, config_path: Path, verbose: bool, debug: bool) -> None:
    """Update this scanner host from its PUM: modules, virus databases, post_update.sh.

    Without a command, runs `update`.
    """
    click_ctx.obj = Context(config_path, verbose)
    if click_ctx.invoked_subcommand is None:
        click_ctx.invoke(update)


@cli.command()
@pass_context
@click.pass_context
def update(click_ctx: click.Context, ctx: Context) -> None:
    """Modules from the product list, the VDF by freshclam, then post_update.sh when newly downloaded."""
    from pum.agent.update import run_update

    failures = run_update(ctx.config, ctx.say, ctx.say, ctx.report)
    if failures:
        click_ctx.exit(int(failures[0].exit_status))


@cli.command()
@click.option(
    "--engine-at-most",
    metavar="VERSION",
    help="Upgrade only a host whose engine is at most VERSION (the vendor's 2020 rule: 0.101.5).",
)
@pass_context
def upgrade(ctx: Context, engine_at_most: str | None) -> None:
    """Install the newest upgrade package of the product list when its engine is newer than this host's."""
    from pum.agent.upgrade import run_upgrade
    from pum.formats import FormatError
    from pum.formats.engine import parse_engine_version

    try:
        at_most = parse_engine_version(engine_at_most) if engine_at_most else None
    except FormatError as error:
        raise click.UsageError(f"--engine-at-most: {error}") from None
    run_upgrade(ctx.config, ctx.say, ctx.say, at_most)


def main(argv: list[str] | None = None) -> int:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        code = cli.main(args=argv, prog_name="proscanup", standalone_mode=False)
    except PumError as error:
        if debug:
            traceback.print_exc()
        click.echo(f"proscanup: {error}", err=True)
        return int(error.exit_status)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("proscanup: interrupted", err=True)
        return int(ExitStatus.INTERRUPTED)
    except click.ClickException as error:
        error.show()
        return int(ExitStatus.CONFIG if isinstance(error, click.UsageError) else ExitStatus.ERROR)
    except OSError as error:
        if debug:
            traceback.print_exc()
        where = f"{error.filename}: " if error.filename else ""
        click.echo(f"proscanup: {where}{error.strerror or error}", err=True)
        return int(ExitStatus.STORE)
    return code if isinstance(code, int) else int(ExitStatus.OK)


if __name__ == "__main__":
    sys.exit(main())
