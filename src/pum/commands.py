"""The `pum` command tree (click): every subcommand's options and help. pum/cli.py is the entry: a plain
`pum run` goes without click (its import is ~30 ms of a run that copies 1,000 small files in ~40 ms)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from pum import __version__
from pum.cli import Context, run_command
from pum.errors import ExitStatus

if TYPE_CHECKING:
    from pum.config import Config


pass_context = click.make_pass_decorator(Context)


# what each exit status means, for `pum --help` (the troubleshooting guide says what to do)
EXIT_STATUS_MEANING = {
    ExitStatus.OK: "done; also nothing new, or publishing held",
    ExitStatus.ERROR: "another error",
    ExitStatus.CONFIG: "pum.conf or the command line is wrong",
    ExitStatus.LOCK_HELD: "another run holds the lock; this one did nothing",
    ExitStatus.UPSTREAM: "upstream, the proxy or DNS could not be reached or refused",
    ExitStatus.VERIFY: "a file received (or served) is wrong; nothing published",
    ExitStatus.STORE: "the release store on disk (path, permission, space)",
    ExitStatus.INTERRUPTED: "interrupted (Ctrl-C, SIGINT)",
}
EXIT_STATUSES_HELP = "\b\nExit statuses:\n" + "\n".join(
    f"  {status.value:>3}  {status.name:<11}  {EXIT_STATUS_MEANING[status]}" for status in ExitStatus
)


def _set_config(click_ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        click_ctx.ensure_object(Context).config_path = value


def _set_verbose(click_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        click_ctx.ensure_object(Context).verbose = True


def _global_options() -> list[click.Parameter]:
    """--config, -v and --debug, accepted after the subcommand too (`pum run -v`, `pum status --config X`)."""
    return [
        click.Option(
            ["--config", "config_path"],
            metavar="PATH",
            expose_value=False,
            callback=_set_config,
            help="pum.conf (default: $PUM_CONFIG, /opt/proscan/pum/pum.conf, /etc/pum/pum.conf)",
        ),
        click.Option(
            ["-v", "--verbose"],
            is_flag=True,
            expose_value=False,
            callback=_set_verbose,
            help="Show the run log on the terminal too.",
        ),
        click.Option(["--debug"], is_flag=True, expose_value=False, help="Show a traceback on errors."),
    ]


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_STATUSES_HELP)
@click.version_option(__version__, prog_name="pum")
@click.pass_context
def cli(click_ctx: click.Context) -> None:
    """PUM: the local update server for ClamAV-based scanner fleets."""
    click_ctx.ensure_object(Context)  # made by an option's callback when one came first


@cli.command()
@click.option("--allow-downgrade", is_flag=True, help="Accept a CVD older than the one served.")
@pass_context
def run(ctx: Context, allow_downgrade: bool) -> None:
    """One update cycle: fetch what changed, verify it, publish a new release."""
    run_command(ctx, allow_downgrade)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status document as JSON.")
@pass_context
def status(ctx: Context, as_json: bool) -> None:
    """What is served, the last run, the upstream."""
    from pum.status import collect_status, render_text

    document = collect_status(ctx.config)
    import json

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
    encoding = config_encoding(config.path)
    if encoding != "utf-8":
        click.echo(f"{config.path}: read as {encoding}, not plain UTF-8; saving it as UTF-8 is safer")


def config_encoding(path: Path | None) -> str:
    """How config loading read pum.conf: "utf-8", "utf-8 with BOM" or "cp932" (the neutral layer's
    `read_config_file` tells; without it pum.conf is read as UTF-8 only)."""
    try:
        from pum.common.conffile import read_config_file  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return "utf-8"
    if path is None:
        return "utf-8"
    return str(read_config_file(path).encoding)


@cli.command()
@pass_context
def rollback(ctx: Context) -> None:
    """Serve the previous release again and hold publishing (a suspect VDF)."""
    from pum.cycle import rollback_cycle

    with ctx.run_log() as log:
        serial = rollback_cycle(ctx.config, log)
    click.echo(f"serving release {serial}; publishing is held until 'pum unhold'")


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
    """Re-check every file of every kept release against its manifest (and the served one's signatures)."""
    from pum.verify import kept_outcome, verify_kept

    reports = verify_kept(ctx.config, signatures=not no_signatures)
    for report in reports:
        for problem in report.problems:
            click.echo(f"release {report.serial}: {problem}")
    click.echo(kept_outcome(reports))


@cli.command()
@pass_context
def repair(ctx: Context) -> None:
    """Put every kept release back to its manifest; move files written by hand aside (for 'pum import')."""
    from pum.repair import repair as repair_releases

    with ctx.run_log() as log:
        outcome = repair_releases(ctx.config, log)
    click.echo("\n".join(outcome.lines))
    if outcome.published:
        click.echo(f"release {outcome.published} published")


@cli.command()
@click.argument("dest", type=click.Path(path_type=Path))
@click.option(
    "--since",
    type=click.IntRange(min=1),
    metavar="SERIAL",
    help="The release the closed side holds (its 'pum status' shows it): carry only what changed.",
)
@click.option("--full", is_flag=True, help="Carry the whole release (a closed side that holds nothing).")
@click.option("--tar", "as_tar", is_flag=True, help="Write one .tar file instead of a directory.")
@pass_context
def export(ctx: Context, dest: Path, since: int | None, full: bool, as_tar: bool) -> None:
    """Write a bundle for a closed network: the served release's changes since SERIAL (or all of it)."""
    from pum.export import export_bundle

    if (since is None) == (not full):
        raise click.UsageError("give one of --since SERIAL or --full")
    outcome = export_bundle(ctx.config, dest, since, as_tar)
    index = outcome.index
    span = "everything" if index.full else f"release {index.from_serial} -> {index.to_serial}"
    click.echo(
        f"bundle {outcome.path}: release {index.to_serial} ({span}), {len(index.files)} "
        f"file{'' if len(index.files) == 1 else 's'}, {index.payload_bytes} bytes"
    )


@cli.command("import")
@click.argument("source", metavar="[ARCHIVE|DIR]", required=False, type=click.Path(path_type=Path))
@click.option("--dest", metavar="PATH", help="Put the files under this path of the release.")
@click.option("--list", "show_list", is_flag=True, help="Show the local content, sizes and checksums.")
@click.option("--remove", metavar="PATH", help="Take a file (or a directory's files) out; new release.")
@click.option(
    "--bundle",
    metavar="PATH",
    type=click.Path(path_type=Path),
    help="Take the release a 'pum export' bundle carries (a directory or .tar).",
)
@pass_context
def import_command(
    ctx: Context,
    source: Path | None,
    dest: str | None,
    show_list: bool,
    remove: str | None,
    bundle: Path | None,
) -> None:
    """Add a .zip, .tar.gz/.tgz or directory to every release (never unzip into the served tree)."""
    from pum.importer import import_content, list_content, remove_content

    if sum((source is not None, show_list, remove is not None, bundle is not None)) != 1:
        raise click.UsageError("give one of ARCHIVE|DIR, --list, --remove PATH, --bundle PATH")
    if bundle is not None:
        _import_bundle(ctx, bundle)
        return
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


def _import_bundle(ctx: Context, bundle: Path) -> None:
    """A bundle is an upstream like an upper PUM: the cycle copies the release it carries, as mirror mode."""
    import dataclasses

    from pum.run import run_once, sources_for
    from pum.sync.bundle import BundleSource

    config = dataclasses.replace(ctx.config, mode="mirror")
    sources = [BundleSource(bundle), *sources_for(config)[1:]]
    with ctx.run_log() as log:
        outcome = run_once(config, log, sources=sources)
    click.echo(f"release {outcome.published} published" if outcome.published else "no new release")


@cli.command()
@click.argument("package", metavar="PACKAGE-PATH")
@click.option(
    "--percent", type=click.FloatRange(0, 100), required=True, help="Share of hosts that upgrade now."
)
@click.option(
    "--hosts", "hosts_file", type=click.Path(path_type=Path, dir_okay=False), help="Hosts that upgrade now."
)
@pass_context
def rollout(ctx: Context, package: str, percent: float, hosts_file: Path | None) -> None:
    """Let PERCENT % of the hosts (and those listed in --hosts) install an upgrade package now."""
    from pum.rollout import publish_rollout

    with ctx.run_log() as log:
        outcome = publish_rollout(ctx.config, package, percent, hosts_file, log)
    click.echo("\n".join(outcome.lines))


@cli.command()
@pass_context
def serve(ctx: Context) -> None:
    """Serve the current release over HTTP (follows new releases without a restart)."""
    from pum.serve import run_server

    run_server(ctx.config)


@cli.command()
@click.option("--behind", is_flag=True, help="Only clients behind the served release.")
@click.option("--stale", is_flag=True, help="Only clients not seen for fleet_stale_hours.")
@click.option("--failing", is_flag=True, help="Only clients failing to update.")
@click.option("--engine-below", metavar="VERSION", help="Only clients whose engine is older than VERSION.")
@click.option("--json", "as_json", is_flag=True, help="Print the fleet document as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the table as CSV.")
@click.option("--now", metavar="TIME", help="Judge staleness at TIME (epoch seconds or ISO 8601).")
@pass_context
def fleet(
    ctx: Context,
    behind: bool,
    stale: bool,
    failing: bool,
    engine_below: str | None,
    as_json: bool,
    as_csv: bool,
    now: str | None,
) -> None:
    """Which clients took the update: read the access logs, print the fleet, trouble first."""
    from pum.fleet.document import render_counts, render_csv, render_table, select_rows
    from pum.fleet.update import parse_now, update_fleet

    document = update_fleet(ctx.config, parse_now(now)).document
    rows = select_rows(document, behind, stale, failing, engine_below)
    if as_json:
        import json

        click.echo(json.dumps({**document, "clients": rows}, indent=1))
    elif as_csv:
        click.echo(render_csv(rows), nl=False)
    else:
        click.echo(render_counts(document))
        if rows:
            click.echo(render_table(rows))


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
    from pum.deploy.install import install as install_pum

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
    from pum.deploy.install import uninstall as uninstall_pum

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


@cli.group("keys")
def keys_group() -> None:
    """The keys that sign releases (The Update Framework): make, show what to pin, rotate."""


@keys_group.command("init")
@click.option("--offline-root", type=click.Path(path_type=Path), help="Write the root key here, not online.")
@pass_context
def keys_init(ctx: Context, offline_root: Path | None) -> None:
    """Make the root and online keys (data_dir/keys, mode 0600) and root metadata version 1."""
    from pum.trust.keys import describe_keys, init_keys

    init_keys(ctx.config, offline_root)
    click.echo("\n".join(describe_keys(ctx.config)))


@keys_group.command("show")
@pass_context
def keys_show(ctx: Context) -> None:
    """Print the root metadata to pin on sub-PUMs and hosts, with its sha256."""
    from pum.trust.keys import describe_keys

    click.echo("\n".join(describe_keys(ctx.config)))


@keys_group.command("rotate")
@click.option("--offline-root", type=click.Path(path_type=Path), help="Where the root key is kept offline.")
@click.option("--root-key", "new_root_key", is_flag=True, help="Replace the root key too.")
@pass_context
def keys_rotate(ctx: Context, offline_root: Path | None, new_root_key: bool) -> None:
    """New online keys; a new root version names them, signed by the old root (the next run publishes it)."""
    from pum.trust.keys import describe_keys, rotate_keys

    rotate_keys(ctx.config, offline_root, new_root_key)
    click.echo("\n".join(describe_keys(ctx.config)))


def _accept_global_options(group: click.Group) -> None:
    group.params[:0] = _global_options()
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _accept_global_options(command)
        else:
            command.params += _global_options()


_accept_global_options(cli)


def main_by_click(argv: list[str] | None) -> int:
    """Every command line but a plain `pum run`; PumError, OSError and Ctrl-C go up to pum.cli.main."""
    try:
        cli.main(args=argv, prog_name="pum", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("pum: interrupted", err=True)
        return int(ExitStatus.INTERRUPTED)
    except click.ClickException as error:
        error.show()
        return int(ExitStatus.CONFIG if isinstance(error, click.UsageError) else ExitStatus.ERROR)
    return int(ExitStatus.OK)
