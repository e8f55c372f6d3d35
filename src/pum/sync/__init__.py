"""Sources that fill the staging tree of the next release: one module per source (vdf, products, mirror)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pum.common.servers import Server
from pum.config import Config
from pum.runlog import RunLog
from pum.store import Staging, Store

if TYPE_CHECKING:
    from pum.net.transport import ProgressHook, Transport


class SyncContext:
    """What every source gets: the config, the run log, the store and staging tree, shared transports.

    The staging tree is begun on first use (`staging`): a run that learns nothing changed (the upper's 304)
    begins none, so it costs the same for 1,000 served files as for 100,000 (no link, no lstat, no parse)."""

    __slots__ = (
        "config",
        "log",
        "store",
        "progress",
        "allow_downgrade",
        "repairing",
        "from_current",
        "_staging",
        "_transports",
        "_siblings",
    )

    def __init__(
        self,
        config: Config,
        log: RunLog,
        store: Store,
        progress: ProgressHook | None = None,
        *,
        allow_downgrade: bool = False,
        repairing: bool = False,
    ) -> None:
        self.config = config
        self.log = log
        self.store = store
        self.progress = progress
        self.allow_downgrade = allow_downgrade  # `pum run --allow-downgrade`: a CVD older than the served one
        self.repairing = repairing  # `pum repair`: builds on a served release changed behind PUM's back
        # a staging tree begun later starts from everything served (server mode; a mirror kept by a 304)
        self.from_current = False
        self._staging: Staging | None = None
        self._transports: dict[tuple[tuple[Server, ...], str], Transport] = {}
        self._siblings: list[Transport] = []  # of parallel downloads (sync/parallel.py)

    @property
    def staging(self) -> Staging:
        return self.begin_staging()

    def begin_staging(self) -> Staging:
        if self._staging is None:
            staging = self.store.begin(repairing=self.repairing)
            if self.from_current:
                staging.start_from_current()
            self._staging = staging
        return self._staging

    @property
    def staging_begun(self) -> bool:
        return self._staging is not None

    def transport(self, servers: tuple[Server, ...] | None = None, protocol: str | None = None) -> Transport:
        # imported here: the HTTP stack costs start-up time that a run answered by DNS alone never needs
        from pum.net.transport import Transport, TransportSettings

        key = (servers or self.config.update_servers, protocol or self.config.update_protocol)
        if key not in self._transports:
            settings = TransportSettings.of(self.config)
            transport = Transport(settings, key[0], self.log, key[1], self.progress)
            # made durable at publish (one fsync each there, or one syncfs): a download lost to a crash is
            # found wrong by its sha256 or signature next run and fetched again
            transport.durable = False
            self._transports[key] = transport
        return self._transports[key]

    def sibling_transport(self, transport: Transport) -> Transport:
        """Another Transport like `transport` for a worker thread, counted in this run and closed with it."""
        sibling = transport.sibling()
        self._siblings.append(sibling)
        return sibling

    def close(self) -> None:
        for transport in [*self._transports.values(), *self._siblings]:
            transport.close()

    @property
    def upstream_in_use(self) -> str | None:
        """The servers that answered this run, for the status document."""
        chosen = [str(t.chosen) for t in self._transports.values() if t.chosen is not None]
        return ", ".join(chosen) or None

    @property
    def requests(self) -> int:
        return sum(t.requests for t in [*self._transports.values(), *self._siblings])

    @property
    def bytes_received(self) -> int:
        return sum(t.bytes_received for t in [*self._transports.values(), *self._siblings])


class Source(Protocol):
    """One kind of content: decides what is needed, asks Transport, hands verified files to Staging."""

    def sync(self, ctx: SyncContext) -> None: ...


@runtime_checkable
class AfterPublish(Protocol):
    """A source that records something once the cycle published (or found nothing new), under the lock."""

    def published(self, ctx: SyncContext, serial: int | None) -> None: ...
