"""The `pum` command's entry: parse arguments, call one function, map errors to an exit status and one line.

The command tree is click's (pum/commands.py). A plain `pum run`, what cron and the timer start every
hour, is read here without click: importing click is ~30 ms, as much as copying 1,000 small files."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, NoReturn

from pum.errors import ExitStatus, PumError

if TYPE_CHECKING:
    from pum.config import Config
    from pum.runlog import RunLog


class Context:
    def __init__(self, config_path: str | None = None, verbose: bool = False) -> None:
        self.config_path = config_path
        self.verbose = verbose
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            from pum.config import load_config  # here: `pum --help` reads no configuration

            self._config = load_config(self.config_path)
        return self._config

    def run_log(self) -> RunLog:
        from pum.runlog import RunLog

        config = self.config
        return RunLog(
            config.logfile,
            rotate=config.log_rotate,
            generations=config.log_generation,
            echo=sys.stderr if self.verbose else None,
        )


def run_command(ctx: Context, allow_downgrade: bool) -> None:
    """`pum run`: one update cycle."""
    from pum.progress import download_progress
    from pum.run import run_once

    with ctx.run_log() as log, download_progress(log=log) as progress:
        outcome = run_once(ctx.config, log, progress, allow_downgrade=allow_downgrade)
    if ctx.verbose or sys.stdout.isatty():
        _say(f"release {outcome.published} published" if outcome.published else "no new release")


def plain_run(args: list[str]) -> tuple[Context, bool] | None:
    """`pum [--config PATH] [-v] [--debug] run [--allow-downgrade]` with the global options on either side of
    `run`, each at most once: the context and allow_downgrade. Anything else (help, another command, a
    repeated or unknown option, an option's `=` form) is click's to read, and to refuse in its words."""
    ctx = Context()
    seen: set[str] = set()
    tokens = iter(args)
    for token in tokens:
        if token in seen:
            return None
        seen.add(token)
        if token == "--config":
            ctx.config_path = next(tokens, None)
            if ctx.config_path is None:
                return None
        elif token in ("-v", "--verbose"):
            if {"-v", "--verbose"} <= seen:
                return None
            ctx.verbose = True
        elif token == "--allow-downgrade":
            if "run" not in seen:
                return None
        elif token not in ("run", "--debug"):
            return None
    return (ctx, "--allow-downgrade" in seen) if "run" in seen else None


def _say(line: str, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(line + "\n")
    stream.flush()


def _print_traceback() -> None:
    import traceback  # --debug only: `pum --help` and a quiet run go without it

    traceback.print_exc()


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    debug = "--debug" in args
    run = plain_run(args)
    try:
        if run is not None:
            run_command(*run)
        else:
            from pum.commands import main_by_click

            return main_by_click(argv)
    except PumError as error:
        if debug:
            _print_traceback()
        _say(f"pum: {error}", err=True)
        return int(error.exit_status)
    except KeyboardInterrupt:
        _say("pum: interrupted", err=True)
        return int(ExitStatus.INTERRUPTED)
    except OSError as error:
        if debug:
            _print_traceback()
        _say(f"pum: {error.filename or ''}: {error.strerror or error}".replace(": : ", ": "), err=True)
        return int(ExitStatus.STORE)
    return int(ExitStatus.OK)


def finish(status: int) -> NoReturn:
    """End the `pum` process with `status`. After a plain `pum run` (cron's and the timer's, every hour)
    the interpreter's teardown, freeing every module and object one by one (~15 ms after a 1,000-file
    copy: as long as writing 100 of the files), is skipped once nothing but it is left: the atexit
    callbacks are run here (a site's .pth may register some), the output flushed; no other thread runs,
    no profiler or tracer waits (its caller writes its results after the program); files are closed by
    then. Anything else exits as usual."""
    if plain_run(sys.argv[1:]) is not None and _nothing_left_but_teardown():
        import os

        os._exit(status)
    sys.exit(status)


def _nothing_left_but_teardown() -> bool:
    import atexit
    import threading

    run_callbacks = getattr(atexit, "_run_exitfuncs", None)  # CPython's, what its exit runs first
    if run_callbacks is None or threading.active_count() != 1:
        return False
    if sys.getprofile() is not None or sys.gettrace() is not None:
        return False
    run_callbacks()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return False
    return True


def entry() -> NoReturn:
    """The `pum` program (pyproject's console script, `python -m pum`, `python -m pum.cli`)."""
    finish(main())


if __name__ == "__main__":
    entry()
