"""One update cycle: lock, log, fill staging from each source of the mode, verify, publish, prune."""

from __future__ import annotations

import datetime as dt
import errno
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pum.config import Config
from pum.errors import PumError, StoreError, VerifyError
from pum.lock import RunLock
from pum.runlog import RunLog
from pum.store import Staging, Store
from pum.sync import Source, SyncContext

if TYPE_CHECKING:
    from pum.net.transport import ProgressHook

LAST_RUN = "last_run.json"


@dataclass(frozen=True)
class RunOutcome:
    published: int | None  # the new release's serial, or None when nothing changed or publishing is held
    requests: int
    bytes_received: int


def sources_for(config: Config) -> list[Source]:
    if config.mode == "mirror":
        from pum.sync.mirror import MirrorSource

        sources: list[Source] = [MirrorSource()]
    else:
        from pum.sync.vdf import VdfSource

        sources = [VdfSource()] if config.databases else []
        if config.products:
            from pum.sync.products import ProductsSource

            sources.append(ProductsSource())
    from pum.sync.local import LocalContentSource

    return [*sources, LocalContentSource()]


def run_once(config: Config, log: RunLog, progress: ProgressHook | None = None) -> RunOutcome:
    store = Store(config)
    with RunLock(config.data_dir / "pum.lock"):
        log.start(config.path, config.mode)
        started = _now()
        held = store.held()
        if held:
            log.line(f"publishing is held: {held}; nothing fetched ('pum unhold' resumes)")
            return RunOutcome(None, 0, 0)
        ctx: SyncContext | None = None
        try:
            staging = store.begin()
            ctx = SyncContext(config, log, store, staging, progress)
            if config.mode == "server":
                staging.start_from_current()
            for source in sources_for(config):
                source.sync(ctx)
            upstream = ctx.upstream_in_use
            published = publish_staged(config, store, staging, log)
            store.clear_downloads()
            store.write_state(
                LAST_RUN,
                {
                    "result": "ok",
                    "started": started,
                    "finished": _now(),
                    "error": None,
                    "upstream": upstream,
                    "serial": published,
                    "requests": ctx.requests,
                    "bytes": ctx.bytes_received,
                },
            )
            return RunOutcome(published, ctx.requests, ctx.bytes_received)
        except (PumError, OSError) as caught:
            error = caught if isinstance(caught, PumError) else disk_error(caught)
            log.error(str(error))
            log.line("the last good release stays served")
            _record_failure(store, log, started, str(error), ctx.upstream_in_use if ctx else None)
            if error is caught:
                raise
            raise error from caught
        finally:
            if ctx is not None:
                ctx.close()
            shutil.rmtree(store.staging_root, ignore_errors=True)


def disk_error(error: OSError) -> StoreError:
    """An OSError (a full disk, a permission) as one line naming the file and what to do."""
    where = f"{error.filename}: " if error.filename else ""
    hint = "; free some space and run again" if error.errno == errno.ENOSPC else ""
    return StoreError(f"{where}{error.strerror or error}{hint}")


def _record_failure(store: Store, log: RunLog, started: str, message: str, upstream: str | None) -> None:
    document = {
        "result": "error",
        "started": started,
        "finished": _now(),
        "error": message,
        "upstream": upstream,
        "serial": None,
    }
    try:
        store.write_state(LAST_RUN, document)
    except OSError as error:  # the disk that failed the run may refuse this too: say so, keep the first error
        log.line(f"cannot record the failed run in {store.state}: {error.strerror}")


def publish_staged(
    config: Config, store: Store, staging: Staging, log: RunLog, what: str = "vdf"
) -> int | None:
    """The end of every build (`pum run`, `pum import`): unchanged -> None, else validate, publish, prune."""
    from pum.client_bundle import stage_client  # every release serves proscanup.pyz to its hosts

    stage_client(staging)
    if not staging.differs_from_current():
        log.line("no update")
        return None
    validate(config, staging.dir, log)
    published = store.publish(staging)
    log.line(f"release new {what} (release {published})")
    for serial in store.prune():
        log.line(f"remove old release {serial}")
    return published


def validate(config: Config, staged_dir, log: RunLog) -> None:
    """The operator's own test of the staged tree (e.g. `clamscan -d {dir}`) must pass before release."""
    if not config.validate_command:
        return
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


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
