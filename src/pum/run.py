"""`pum run`: the sources of the mode fill the staging tree of the one build cycle (`pum.cycle`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pum.config import Config
from pum.cycle import Build, CycleOutcome, run_cycle
from pum.runlog import RunLog
from pum.sync import AfterPublish, Source, SyncContext
from pum.sync.fetch import collect_stale_parts

if TYPE_CHECKING:
    from pum.net.transport import ProgressHook


def sources_for(config: Config) -> list[Source]:
    if config.mode == "mirror" and config.update_servers[0].is_bundle:
        from pum.sync.bundle import BundleSource, first_bundle

        sources: list[Source] = [BundleSource(first_bundle(config.update_servers))]
    elif config.mode == "mirror":
        from pum.sync.mirror import MirrorSource

        sources = [MirrorSource()]
    else:
        from pum.sync.vdf import VdfSource

        sources = [VdfSource()] if config.databases else []
        if config.products:
            from pum.sync.products import ProductsSource

            sources.append(ProductsSource())
    if not config.local_index.exists():
        return sources  # no local content to lay over: its modules are not even imported
    from pum.sync.local_content import LocalContentSource

    return [*sources, LocalContentSource()]


class SourcesBuild(Build):
    """Server mode starts from everything served now; mirror mode from nothing (the upper's manifest says
    what a release holds). Then each source of the mode, local content last."""

    def __init__(self, config: Config, sources: list[Source] | None = None) -> None:
        self.sources = sources if sources is not None else sources_for(config)
        self.from_current = config.mode == "server"

    def fill(self, ctx: SyncContext) -> None:
        collect_stale_parts(ctx)
        if self.from_current:
            ctx.from_current = True
            ctx.begin_staging()  # at once: the served tree is checked before anything is fetched
        for source in self.sources:
            source.sync(ctx)

    def published(self, ctx: SyncContext, serial: int | None) -> None:
        ctx.store.clear_downloads()  # kept only while a failed or killed run may need them again
        for source in self.sources:
            if isinstance(source, AfterPublish):
                source.published(ctx, serial)


def run_once(
    config: Config,
    log: RunLog,
    progress: ProgressHook | None = None,
    sources: list[Source] | None = None,
    allow_downgrade: bool = False,
) -> CycleOutcome:
    """One `pum run`; `sources` replaces the mode's (`pum import --bundle`: the bundle, local content)."""
    return run_cycle(config, log, SourcesBuild(config, sources), progress, allow_downgrade=allow_downgrade)
