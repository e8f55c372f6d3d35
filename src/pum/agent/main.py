"""The `proscanup` command: parse arguments, call one function, map errors to an exit status and one line.

argparse, not click: proscanup runs on the hosts' system Pythons with the standard library only, and its
start-up stays small (each command imports what it needs when it runs).
"""

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import List, NoReturn, Optional

from pum import __version__
from pum.errors import ExitStatus, PumError

DEFAULT_CONFIG = "/etc/opt/proscan/proscan.conf"  # the same as proscan_conf.DEFAULT_CONFIG, not imported

EPILOG = """\
commands:
  update     modules from the product list, the VDF by freshclam, then post_update.sh (the default)
  upgrade    install the newest upgrade package the product list offers, when its engine is newer
             than this host's (--engine-at-most VERSION: only hosts at most that old)
  install    write proscan.conf defaults (if absent) and an hourly crontab line
  uninstall  remove what install wrote

exit statuses: 0 ok, 1 a command failed (freshclam, post_update.sh, installer), 2 configuration,
3 another run holds the lock, 4 no PUM answered, 5 a file failed its check, 6 a local file could not be
written, 130 interrupted.
"""


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> "NoReturn":
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--config",
        dest="config_path",
        default=argparse.SUPPRESS,
        help=f"proscan.conf; proscanup reads its [update.options] section (default: $PROSCANUP_CONFIG "
        f"or {DEFAULT_CONFIG})",
    )
    common.add_argument(
        "-V",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show each step and the output",
    )
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="traceback on errors")
    parser = _Parser(
        prog="proscanup",
        description="Update this scanner host from its PUM: modules, virus databases, post_update.sh.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"proscanup, version {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("update", parents=[common], help="the update (the default)")
    upgrade = commands.add_parser("upgrade", parents=[common], help="install a newer upgrade package")
    upgrade.add_argument(
        "--engine-at-most",
        metavar="VERSION",
        default=None,
        help="upgrade only a host whose engine is at most VERSION (the vendor's 2020 rule: 0.101.5)",
    )
    for name in ("install", "uninstall"):
        sub = commands.add_parser(name, parents=[common], help=f"{name} the crontab line and config defaults")
        sub.add_argument(
            "--root", type=Path, default=Path("/"), help="write below this directory (tests, images)"
        )
        sub.add_argument("--crontab-file", type=Path, default=None, help=argparse.SUPPRESS)
    return parser


def _say(line: str) -> None:
    print(line, flush=True)


def _quiet(line: str) -> None:
    pass


def _report(line: str) -> None:
    print(f"proscanup: {line}", file=sys.stderr, flush=True)


def run(arguments: argparse.Namespace) -> int:
    from pum.agent.proscan_conf import load_agent_config

    verbose = getattr(arguments, "verbose", False)
    say = _say if verbose else _quiet
    command = arguments.command or "update"
    if command in ("install", "uninstall"):
        from pum.agent.cron_install import Installer, this_program

        installer = Installer(arguments.root, arguments.crontab_file)
        if command == "install":
            installer.install(this_program(), _say)
        else:
            installer.uninstall(_say)
        return int(ExitStatus.OK)
    config_path = (
        getattr(arguments, "config_path", None) or os.environ.get("PROSCANUP_CONFIG") or DEFAULT_CONFIG
    )
    config = load_agent_config(Path(config_path))
    if config.encoding != "utf-8":
        say(f"{config.path}: read as {config.encoding}")
    if command == "upgrade":
        from pum.agent.upgrade import run_upgrade
        from pum.formats import FormatError
        from pum.formats.engine import parse_engine_version

        try:
            at_most = parse_engine_version(arguments.engine_at_most) if arguments.engine_at_most else None
        except FormatError as error:
            raise UsageError(f"--engine-at-most: {error}") from None
        run_upgrade(config, say, say, at_most)
        return int(ExitStatus.OK)
    from pum.agent.progress_line import ProgressLine
    from pum.agent.update import run_update

    progress = ProgressLine()
    try:
        failures = run_update(config, say, say, _report, progress if progress.enabled else None)
    finally:
        progress.finish()
    return int(failures[0].exit_status) if failures else int(ExitStatus.OK)


def main(argv: Optional[List[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        arguments = build_parser().parse_args(args)
        return run(arguments)
    except UsageError as error:
        print(f"proscanup: {error} (see proscanup --help)", file=sys.stderr)
        return int(ExitStatus.CONFIG)
    except SystemExit as exit:  # --help and --version
        return exit.code if isinstance(exit.code, int) else int(ExitStatus.OK)
    except PumError as error:
        if debug:
            traceback.print_exc()
        _report(str(error))
        return int(error.exit_status)
    except KeyboardInterrupt:
        _report("interrupted")
        return int(ExitStatus.INTERRUPTED)
    except OSError as error:
        if debug:
            traceback.print_exc()
        where = f"{error.filename}: " if error.filename else ""
        _report(f"{where}{error.strerror or error}")
        return int(ExitStatus.STORE)


if __name__ == "__main__":
    sys.exit(main())
