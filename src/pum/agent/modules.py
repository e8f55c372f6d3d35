"""Step 1: replace changed modules atomically.

Each changed module is downloaded beside its target (same directory, so the same filesystem), checked
against the list's md5, and renamed over the old file: a process running the old binary keeps its inode,
so nobody ever sees "Text file busy" or half a file. All changed modules are fetched and checked before the
first rename, so a refused file leaves every module as it was.
"""

from __future__ import annotations

import os
from pathlib import Path

from pum.agent.http import UpdateClient
from pum.agent.listing import Module, Say
from pum.store import md5_file

EXECUTABLE_DIRS = ("bin", "sbin")


def changed_modules(modules: list[Module]) -> list[Module]:
    return [m for m in modules if not (m.target.is_file() and md5_file(m.target) == m.entry.md5)]


def update_modules(client: UpdateClient, modules: list[Module], say: Say) -> list[Module]:
    """Returns the modules replaced."""
    changed = changed_modules(modules)
    if not changed:
        say("Modules are up to date")
        return []
    staged: list[tuple[Module, Path]] = []
    try:
        for module in changed:
            say(f"Downloading file {module.relative}, Please wait...")
            beside = module.target.with_name(f".{module.target.name}.proscanup-new")
            client.download(module.entry.path, beside, module.entry.md5)
            os.chmod(beside, _mode_for(module))
            staged.append((module, beside))
    except BaseException:
        for _module, beside in staged:
            beside.unlink(missing_ok=True)
        raise
    for module, beside in staged:
        os.replace(beside, module.target)
        say(f"Success: Update module {module.relative} [md5sum {module.entry.md5}]")
    return changed


def _mode_for(module: Module) -> int:
    """A replaced module keeps its mode; a new one is executable only in bin/ or sbin/."""
    try:
        return module.target.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o755 if module.relative.split("/")[0] in EXECUTABLE_DIRS else 0o644
