"""`proscanup install` / `uninstall` without systemd: proscan.conf defaults and one crontab line.

AIX cron and RHEL 7 cron both read `crontab -l` / `crontab FILE`; the line runs proscanup hourly at a
minute drawn once per host, so a fleet does not ask its PUM all at the same second. The line carries a
marker comment: uninstall removes exactly that line, and proscan.conf only when it still is the file
install wrote (a changed one is the operator's and is kept).
"""

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Callable, List, Optional

from pum.agent.proscan_conf import DEFAULT_CONFIG
from pum.common.hashing import sha256_file
from pum.errors import ConfigError, PumError

MARKER = "# proscanup: written by 'proscanup install'"
DEFAULTS = """\
# written by 'proscanup install'; the scanner's own sections may follow.
[update.options]
# The PUM(s) of this host, host[:port], comma-separated: the first that answers is used.
UpdateServer = pum.example.com
ProductList = ibm/power/PSHB06.lst
Protocol = http
InstallDir = /opt/proscan
StateDir = /var/opt/proscan/proscanup
ReloadApplication = no
CommandTimeout = 300
ReportState = yes
"""


class CrontabError(PumError):
    """crontab could not be read or written."""


def cron_line(minute: int, program: str, config: Path) -> str:
    return f"{minute} * * * * {program} --config {config} >/dev/null 2>&1 {MARKER}"


def _crontab(args: List[str], text: Optional[str] = None) -> str:
    try:
        process = subprocess.Popen(
            ["crontab"] + args,
            stdin=subprocess.PIPE if text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = process.communicate(None if text is None else text.encode(), timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise CrontabError(f"crontab {' '.join(args)}: {error}") from None
    if process.returncode != 0:
        if args == ["-l"] and b"no crontab" in err.lower():
            return ""
        raise CrontabError(
            f"crontab {' '.join(args)} exited {process.returncode}: {err.decode(errors='replace')[:200]}"
        )
    return out.decode(errors="replace")


class Installer:
    """Where install writes: `root` (for tests) prefixes the config path; `crontab_file` replaces the
    user's crontab by a plain file."""

    def __init__(self, root: Path = Path("/"), crontab_file: Optional[Path] = None) -> None:
        self.config = root / DEFAULT_CONFIG.relative_to("/")
        self.stamp = root / "var/opt/proscan/proscanup/installed-proscan.conf.sha256"
        self.crontab_file = crontab_file

    def read_crontab(self) -> str:
        if self.crontab_file is None:
            return _crontab(["-l"])
        return self.crontab_file.read_text() if self.crontab_file.exists() else ""

    def write_crontab(self, text: str) -> None:
        if self.crontab_file is None:
            _crontab(["-"], text)
        else:
            self.crontab_file.write_text(text)

    def install(self, program: str, say: Callable[[str], None]) -> None:
        if self.config.exists():
            say(f"{self.config} exists: kept as it is")
        else:
            self.config.parent.mkdir(parents=True, exist_ok=True)
            self.config.write_text(DEFAULTS)
            self.stamp.parent.mkdir(parents=True, exist_ok=True)
            self.stamp.write_text(sha256_file(self.config) + "\n")
            say(f"{self.config} written with defaults: set UpdateServer and ProductList")
        lines = [line for line in self.read_crontab().splitlines() if MARKER not in line]
        line = cron_line(random.SystemRandom().randrange(60), program, DEFAULT_CONFIG)
        self.write_crontab("".join(entry + "\n" for entry in lines + [line]))
        say(f"crontab: {line}")

    def uninstall(self, say: Callable[[str], None]) -> None:
        lines = self.read_crontab().splitlines()
        kept = [line for line in lines if MARKER not in line]
        if len(kept) != len(lines):
            self.write_crontab("".join(entry + "\n" for entry in kept))
            say("crontab: the proscanup line is removed")
        if self.stamp.exists():
            if self.config.exists() and sha256_file(self.config) + "\n" == self.stamp.read_text():
                self.config.unlink()
                say(f"{self.config} removed (unchanged since install)")
            elif self.config.exists():
                say(f"{self.config} was changed since install: kept")
            self.stamp.unlink()


def this_program() -> str:
    """How cron should start this proscanup: the pyz (or script) it runs from, by absolute path."""
    argv0 = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if argv0.endswith(".pyz") or os.path.basename(argv0) == "proscanup":
        return argv0
    raise ConfigError(
        "cannot tell where proscanup is installed: run install as /path/to/proscanup.pyz install"
    )
