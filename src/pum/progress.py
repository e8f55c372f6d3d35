"""Download progress: a rich bar on a terminal, nothing under cron."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pum.net.transport import ProgressHook
    from pum.runlog import RunLog


@contextmanager
def download_progress(
    enabled: bool | None = None, log: RunLog | None = None
) -> Iterator[ProgressHook | None]:
    """Bars on standard error while downloads run; `log`'s terminal lines go through the bars' console
    meanwhile, so that they scroll above the live bars instead of overwriting them."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn

    console = Console(stderr=True)
    tasks: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description}", markup=False),  # names come from upstream
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=True,
    ) as bar:

        def hook(name: str, done: int, total: int | None) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done, total=total)

        def echo_line(text: str) -> None:
            console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)

        if log is None:
            yield hook
        else:
            with log.echo_through(echo_line):
                yield hook
