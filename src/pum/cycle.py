"""The one build cycle behind `pum run`, `pum import` and the demo: lock -> run-log header -> held? ->
begin -> staging filled -> publish (validate, publish, prune) -> last_run.json; and, for `pum rollback`,
the same lock, header and error handling around `Store.rollback()`.

A failure anywhere is logged (`ERROR: ...`), recorded in `last_run.json` and raised; the run log then says
what clients get: the last good release, nothing yet, or the release this cycle did publish.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from pum.clock import utc_stamp
from pum.config import Config
from pum.errors import PumError, StoreError, VerifyError
from pum.formats.productlist import VDF_SUFFIXES, VERSION_FILE
from pum.lock import RunLock
from pum.runlog import RunLog
from pum.store import LastRun, Staging, Store
from pum.store.state import CLIENT_KNOWN
from pum.sync import SyncContext

if TYPE_CHECKING:
    from pum.net.transport import ProgressHook


class CycleOutcome(NamedTuple):
    published: int | None  # the new release's serial, or None when nothing changed or publishing is held
    requests: int
    bytes_received: int


class Build:
    """What one kind of cycle puts in the staging tree; the cycle does everything around it."""

    title: str | None = None  # a run-log line after the header (`import <source>`)
    content = "products"  # the word of "release new <content>" when no VDF file changed
    refuse_when_held = False  # True: a hold is an error (`pum import`); False: the run just stops
    repairs = False  # True: `pum repair`, which builds on a served release changed behind PUM's back
    republish: str | None = None  # a run-log line: publish even when no path changed (`pum repair`)

    def fill(self, ctx: SyncContext) -> None:
        raise NotImplementedError

    def published(self, ctx: SyncContext, serial: int | None) -> None:
        """After publishing (or finding nothing new), still under the lock."""

    def failed(self) -> None:
        """The cycle failed or was stopped before `published`: undo what `fill` prepared."""


def run_cycle(
    config: Config,
    log: RunLog,
    build: Build,
    progress: ProgressHook | None = None,
    allow_downgrade: bool = False,
) -> CycleOutcome:
    store = Store(config)
    with RunLock(config.data_dir / "pum.lock"):
        log.start(config.path, config.mode)
        if build.title:
            log.line(build.title)
        started = utc_stamp()
        ctx: SyncContext | None = None
        try:
            if _held(store, log, build, "nothing fetched"):
                return CycleOutcome(None, 0, 0)
            for serial in store.collect_unserved():
                log.line(f"remove release {serial}: built by an earlier run but never served")
            ctx = SyncContext(
                config, log, store, progress, allow_downgrade=allow_downgrade, repairing=build.repairs
            )
            try:
                build.fill(ctx)
                published = publish_staged(config, store, ctx, log, build)
            except _HeldMeanwhile:
                build.failed()  # downloads are kept: the run after 'pum unhold' fetches nothing twice
                return CycleOutcome(None, ctx.requests, ctx.bytes_received)
            except BaseException:
                build.failed()
                raise
            build.published(ctx, published)
            store.write_last_run(
                LastRun(
                    result="ok",
                    started=started,
                    finished=utc_stamp(),
                    error=None,
                    upstream=ctx.upstream_in_use,
                    serial=published,
                    requests=ctx.requests,
                    bytes=ctx.bytes_received,
                )
            )
            return CycleOutcome(published, ctx.requests, ctx.bytes_received)
        except (PumError, OSError) as caught:
            error = caught if isinstance(caught, PumError) else disk_error(caught, config.data_dir)
            log.error(str(error))
            log.line(_what_is_served(store))
            _record_failure(store, log, started, str(error), ctx.upstream_in_use if ctx else None)
            if error is caught:
                raise
            raise error from caught
        finally:
            if ctx is not None:
                ctx.close()
            shutil.rmtree(store.staging_root, ignore_errors=True)
            refresh_status(config, log)


def refresh_status(config: Config, log: RunLog) -> None:
    """The status files Apache and nginx serve, rewritten after every build and rollback."""
    from pum.status import refresh_status_files

    problem = refresh_status_files(config)
    if problem:
        log.line(problem)


def rollback_cycle(config: Config, log: RunLog) -> int:
    """`pum rollback` under the run lock: serve the previous release and hold publishing."""
    store = Store(config)
    with RunLock(config.data_dir / "pum.lock"):
        log.start(config.path, config.mode)
        try:
            serial = store.rollback()
        except (PumError, OSError) as caught:
            error = caught if isinstance(caught, PumError) else disk_error(caught, config.data_dir)
            log.error(str(error))
            if error is caught:
                raise
            raise error from caught
        log.line(f"rollback: serving release {serial}; publishing is held until 'pum unhold'")
        refresh_status(config, log)
        return serial


def _held(store: Store, log: RunLog, build: Build, consequence: str) -> bool:
    held = store.held()
    if held and build.refuse_when_held:
        raise StoreError(f"publishing is held: {held}; 'pum unhold' first, then import again")
    if held:
        log.line(f"publishing is held: {held}; {consequence} ('pum unhold' resumes)")
    return held is not None


def _what_is_served(store: Store) -> str:
    """The run log's last word on a failed cycle: what clients get now."""
    if store.published is not None:
        return f"release {store.published} is served: the error came after publishing it"
    if store.current_dir() is None:
        return "nothing is served yet"
    return "the last good release stays served"


def disk_error(error: OSError, data_dir: Path) -> StoreError:
    """An OSError (a full disk, a permission) as one line naming the file and what to do. A failed write(2)
    names no file: every file a cycle writes is under `data_dir`, so that is named instead."""
    where = f"{error.filename or data_dir}: "
    hint = "; free some space and run again" if error.errno == errno.ENOSPC else ""
    return StoreError(f"{where}{error.strerror or error}{hint}")


def _record_failure(store: Store, log: RunLog, started: str, message: str, upstream: str | None) -> None:
    failure = LastRun(
        result="error", started=started, finished=utc_stamp(), error=message, upstream=upstream, serial=None
    )
    try:
        store.write_last_run(failure)
    except OSError as error:  # the disk that failed the run may refuse this too: say so, keep the first error
        log.line(f"cannot record the failed run in {store.state}: {error.strerror}")


class _HeldMeanwhile(Exception):
    """`pum hold` (or `pum rollback`) came while this cycle ran: nothing is published."""


def publish_staged(config: Config, store: Store, ctx: SyncContext, log: RunLog, build: Build) -> int | None:
    """The end of every build: unchanged -> None, else validate, publish, prune. The hold is read again
    right before publishing: `pum hold` does not wait for the run lock. A build that began no staging
    tree (the upper answered 304) changed nothing."""
    if not ctx.staging_begun:
        log.line("no update")
        return None
    from pum.trust.repository import resign_reason

    staging = ctx.staging
    _stage_client(config, staging)
    changed = staging.changed_paths()
    resign = resign_reason(config, staging.current_dir)
    if not changed and not resign and not build.republish:
        log.line("no update")
        return None
    if not changed and build.republish:
        log.line(build.republish)
    elif not changed:
        log.line(f"sign the served files again: {resign}")
    validate(config, staging.dir, log)
    if _held(store, log, build, "nothing published"):
        raise _HeldMeanwhile
    published = store.publish(staging)
    what = "vdf" if any(_is_vdf(path) for path in changed) else build.content
    log.line(f"release new {what} (release {published})")
    for serial in store.prune():
        log.line(f"remove old release {serial}")
    return published


def _stage_client(config: Config, staging: Staging) -> None:
    """Every release serves proscanup.pyz to its hosts (`.pum/client/`), this PUM's own build. A mirror
    that carries its upper's signed metadata adds nothing the main did not sign: its hosts check every
    file against the main's targets."""
    from pum.client_bundle import stage_client
    from pum.trust.repository import is_metadata

    if config.mode == "mirror" and any(is_metadata(path) for path in staging.records):
        return
    stage_client(staging, known=config.state_dir / CLIENT_KNOWN)


def _is_vdf(path: str) -> bool:
    return "/" not in path and (path == VERSION_FILE or path.endswith(VDF_SUFFIXES))


def validate(config: Config, staged_dir: Path, log: RunLog) -> None:
    """The operator's own test of the staged tree (e.g. `clamscan -d {dir}`) must pass before release."""
    if not config.validate_command:
        return
    import shlex
    import subprocess

    command = config.validate_command.replace("{dir}", shlex.quote(str(staged_dir)))
    log.line(f"validate: {command}")
    try:
        finished = subprocess.run(
            command, shell=True, capture_output=True, text=True, timeout=max(config.read_timeout, 600)
        )
    except subprocess.TimeoutExpired:
        raise VerifyError(f"validate_command did not finish in time: {command}") from None
    for line in (finished.stdout + finished.stderr).splitlines()[-20:]:
        log.line(f"  {line}")
    if finished.returncode != 0:
        raise VerifyError(f"validate_command exited {finished.returncode}: {command}; nothing released")
