"""The `pum` command: parse arguments, call one function, map errors to an exit status and one line."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

import click

from pum import __version__
from pum.config import Config, load_config
from pum.errors import ExitStatus, PumError, StoreError


class Context:
    def __init__(self, config_path: str | None, verbose: bool) -> None:
        self.config_path = config_path
        self.verbose = verbose
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def run_log(self):
        from pum.runlog import RunLog

        config = self.config
        return RunLog(
            config.logfile,
            rotate=config.log_rotate,
            generations=config.log_generation,
            echo=sys.stderr if self.verbose else None,
        )


pass_context = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="pum.conf (default: $PUM_CONFIG, /opt/proscan/pum/pum.conf, /etc/pum/pum.conf)",
)
@click.option("-v", "--verbose", is_flag=True, help="Show the run log on the terminal too.")
@click.option("--debug", is_flag=True, help="Show a traceback on errors.")
@click.version_option(__version__, prog_name="pum")
@click.pass_context
def cli(click_ctx: click.Context, config_path: str | None, verbose: bool, debug: bool) -> None:
    """PUM: the local update server for ClamAV-based scanner fleets."""
    click_ctx.obj = Context(config_path, verbose)


@cli.command()
@pass_context
def run(ctx: Context) -> None:
    """One update cycle: fetch what changed, verify it, publish a new release."""
    from pum.progress import download_progress
    from pum.run import run_once

    with ctx.run_log() as log, download_progress() as progress:
        outcome = run_once(ctx.config, log, progress)
    if ctx.verbose or sys.stdout.isatty():
        click.echo(f"release {outcome.published} published" if outcome.published else "no new release")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status document as JSON.")
@pass_context
def status(ctx: Context, as_json: bool) -> None:
    """What is served, the last run, the upstream."""
    from pum.status import collect_status, render_text

    document = collect_status(ctx.config)
    click.echo(json.dumps(document, indent=1, sort_keys=True) if as_json else render_text(document))


@cli.group("config")
def config_group() -> None:
    """Work with pum.conf."""


@config_group.command("check")
@pass_context
def config_check(ctx: Context) -> None:
    """Load pum.conf and report the first problem, with its line."""
    config = ctx.config
    click.echo(f"{config.path}: OK (mode={config.mode}, servers={','.join(map(str, config.update_servers))})")


@cli.command()
@pass_context
def rollback(ctx: Context) -> None:
    """Serve the previous release again and hold publishing (a suspect VDF)."""
    from pum.lock import RunLock
    from pum.store import Store

    store = Store(ctx.config)
    with RunLock(ctx.config.data_dir / "pum.lock"):
        previous = store.previous_serial()
        if previous is None:
            raise StoreError(f"no earlier release to roll back to in {store.releases}")
        store.switch_to(previous)
        store.hold(f"rolled back to release {previous}")
        _refresh_status(ctx.config)
    click.echo(f"serving release {previous}; publishing is held until 'pum unhold'")


def _refresh_status(config: Config) -> None:
    """The status files Apache and nginx serve show a hold or rollback at once."""
    from pum.status import refresh_status_files

    problem = refresh_status_files(config)
    if problem:
        click.echo(f"pum: {problem}", err=True)


@cli.command()
@click.option("--reason", default="held by operator", help="Shown by 'pum status'.")
@pass_context
def hold(ctx: Context, reason: str) -> None:
    """Stop publishing new releases (the served one stays)."""
    from pum.store import Store

    Store(ctx.config).hold(reason)
    _refresh_status(ctx.config)
    click.echo("publishing is held; 'pum unhold' resumes")


@cli.command()
@pass_context
def unhold(ctx: Context) -> None:
    """Resume publishing."""
    from pum.store import Store

    was_held = Store(ctx.config).unhold()
    _refresh_status(ctx.config)
    click.echo("publishing resumed" if was_held else "publishing was not held")


@cli.command()
@click.option("--no-signatures", is_flag=True, help="Check sizes and sha256 only.")
@pass_context
def verify(ctx: Context, no_signatures: bool) -> None:
    """Re-check every served file against the release manifest and its signature."""
    from pum.errors import VerifyError
    from pum.store import Store
    from pum.verify import verify_release

    store = Store(ctx.config)
    manifest = store.current_manifest()
    current = store.current_dir()
    if manifest is None or current is None:
        raise StoreError(f"nothing is served at {ctx.config.docroot} yet: run 'pum run' first")
    report = verify_release(current, manifest, signatures=not no_signatures)
    for problem in report.problems:
        click.echo(problem)
    if not report.ok:
        raise VerifyError(
            f"release {manifest.serial}: {len(report.problems)} problem(s) in {report.checked} files"
        )
    click.echo(f"release {manifest.serial}: {report.checked} files OK")


@cli.command("import")
@click.argument("source", metavar="[ARCHIVE|DIR]", required=False, type=click.Path(path_type=Path))
@click.option("--dest", metavar="PATH", help="Put the files under this path of the release.")
@click.option("--list", "show_list", is_flag=True, help="Show the local content, sizes and checksums.")
@click.option("--remove", metavar="PATH", help="Take a file (or a directory's files) out; new release.")
@pass_context
def import_command(
    ctx: Context, source: Path | None, dest: str | None, show_list: bool, remove: str | None
) -> None:
    """Add a .zip, .tar.gz/.tgz or directory to every release (never unzip into the served tree)."""
    from pum.local import import_content, list_content, remove_content

    if sum((source is not None, show_list, remove is not None)) != 1:
        raise click.UsageError("give one of ARCHIVE|DIR, --list, --remove PATH")
    if dest is not None and source is None:
        raise click.UsageError("--dest goes with ARCHIVE|DIR")
    if show_list:
        click.echo(list_content(ctx.config))
        return
    with ctx.run_log() as log:
        if source is not None:
            outcome = import_content(ctx.config, source, dest, log)
        else:
            assert remove is not None
            outcome = remove_content(ctx.config, remove, log)
    click.echo("\n".join(outcome.lines))


@cli.command()
@pass_context
def serve(ctx: Context) -> None:
    """Serve the current release over HTTP (follows new releases without a restart)."""
    from pum.serve import run_server

    run_server(ctx.config)


@cli.command()
@click.argument("server", type=click.Choice(["apache", "nginx"]))
@click.option("--port", type=int, help="Listen port (default: 8000, as the original installation guide).")
@click.option("--root", type=click.Path(path_type=Path), default=Path("/"), help="Install under this root.")
@click.option(
    "--flavor", type=click.Choice(["debian", "rhel"]), help="Distribution layout (default: detect)."
)
@pass_context
def deploy(ctx: Context, server: str, port: int | None, root: Path, flavor: str | None) -> None:
    """Write an Apache or nginx config serving the release tree the way freshclam needs."""
    from pum.deploy.web import reload_command, write_web_config

    for path in write_web_config(ctx.config, server, port, root=root, flavor=flavor):
        click.echo(f"wrote {path}")
    click.echo(f"now run: {reload_command(server, flavor, root)}")


@cli.command()
@click.option("--root", type=click.Path(path_type=Path), default=Path("/"), help="Install under this root.")
@click.option("--schedule", default="20 * * * *", show_default=True, help="When `pum run` runs (cron).")
@click.option("--random-delay", type=int, default=300, show_default=True, help="Seconds of random delay.")
@click.option("--web", type=click.Choice(["apache", "nginx", "pum", "none"]), help="Default: detect.")
@click.option("--port", type=int, help="Port of the web server (apache/nginx: 8000; pum: pum.conf's listen).")
@click.option("--flavor", type=click.Choice(["debian", "rhel"]), help="Distribution (default: detect).")
@click.option("--scheduler", type=click.Choice(["systemd", "cron"]), help="Default: systemd if it runs.")
@pass_context
def install(
    ctx: Context,
    root: Path,
    schedule: str,
    random_delay: int,
    web: str | None,
    port: int | None,
    flavor: str | None,
    scheduler: str | None,
) -> None:
    """Set PUM up on this machine: directories, pum.conf, the web server, the schedule of `pum run`."""
    from pum.install import install as install_pum

    install_pum(
        root=root,
        config_path=ctx.config_path,
        schedule=schedule,
        web=web,
        port=port,
        flavor=flavor,
        scheduler=scheduler,
        random_delay=random_delay,
        say=click.echo,
    )


@cli.command()
@click.option("--root", type=click.Path(path_type=Path), default=Path("/"), help="Uninstall under this root.")
@click.option("--purge", is_flag=True, help="Also remove pum.conf, the releases, state and logs.")
def uninstall(root: Path, purge: bool) -> None:
    """Remove what `pum install` wrote; the data stays unless --purge."""
    from pum.install import uninstall as uninstall_pum

    uninstall_pum(root=root, purge=purge, say=click.echo)


@cli.command()
@click.option("--interval", type=float, default=3600, show_default=True, help="Seconds between cycles.")
@click.option("--jitter", type=float, default=300, show_default=True, help="Up to this many seconds more.")
@pass_context
def daemon(ctx: Context, interval: float, jitter: float) -> None:
    """Run the update cycle every --interval, in the foreground, until SIGTERM (containers, systemd)."""
    from pum.daemon import run_daemon

    run_daemon(ctx.config, ctx.run_log, interval=interval, jitter=jitter)


@cli.command()
@click.option("--dir", "directory", type=click.Path(path_type=Path), help="Work here (kept), not in /tmp.")
@click.option("--keep", is_flag=True, help="Keep the temporary directory.")
def demo(directory: Path | None, keep: bool) -> None:
    """PUM's whole job offline, without root, on the signed test databases it ships."""
    from pum.demo import run_demo

    run_demo(directory, keep=keep, say=click.echo)


def main(argv: list[str] | None = None) -> int:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="pum", standalone_mode=False)
    except PumError as error:
        if debug:
            traceback.print_exc()
        click.echo(f"pum: {error}", err=True)
        return int(error.exit_status)
    except click.exceptions.Abort:
        click.echo("pum: interrupted", err=True)
        return int(ExitStatus.INTERRUPTED)
    except click.ClickException as error:
        error.show()
        return int(ExitStatus.CONFIG if isinstance(error, click.UsageError) else ExitStatus.ERROR)
    except KeyboardInterrupt:
        click.echo("pum: interrupted", err=True)
        return int(ExitStatus.INTERRUPTED)
    except OSError as error:
        if debug:
            traceback.print_exc()
        click.echo(f"pum: {error.filename or ''}: {error.strerror or error}".replace(": : ", ": "), err=True)
        return int(ExitStatus.STORE)
    return int(ExitStatus.OK)


if __name__ == "__main__":
    sys.exit(main())
