"""/metrics: request counters shared by all workers, and their Prometheus text exposition.

Each worker counts into its own row of an anonymous shared memory map made before the workers are
forked (one writer per row, no lock), and whichever worker answers /metrics sums the rows. This avoids
prometheus-client's multiprocess mode, which depends on an environment variable being set before the
library is first imported and on a directory of files. prometheus-client still renders the text.
"""

from __future__ import annotations

import mmap
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from pum.fleet.pages import fleet_metrics
from pum.serve.status_page import StatusProvider
from pum.status import iso_to_epoch

STATUSES = (200, 206, 302, 304, 400, 404, 405, 408, 416, 431, 500, 503, 505)
STATUS_INDEX = {status: index for index, status in enumerate(STATUSES)}
OTHER = len(STATUSES)
BYTES = OTHER + 1
ROW = BYTES + 1
# cells from one worker's row to the next: 128 bytes, so two workers never write the same cache line
STRIDE = -(-ROW // 16) * 16

__all__ = ["CONTENT_TYPE_LATEST", "Board", "render_metrics"]


class Board:
    """Counters of every worker: requests by status and bytes sent, in shared memory."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._map = mmap.mmap(-1, 8 * STRIDE * workers)
        self._cells = memoryview(self._map).cast("Q")

    def row(self, worker: int) -> memoryview:
        """The counters one worker writes: index by `STATUS_INDEX` (or OTHER), bytes at BYTES."""
        return self._cells[worker * STRIDE : worker * STRIDE + ROW]

    def totals(self) -> tuple[dict[int | str, int], int]:
        by_status: dict[int | str, int] = {}
        sent = 0
        for worker in range(self.workers):
            row = self.row(worker)
            for index, status in enumerate(STATUSES):
                if row[index]:
                    by_status[status] = by_status.get(status, 0) + row[index]
            if row[OTHER]:
                by_status["other"] = by_status.get("other", 0) + row[OTHER]
            sent += row[BYTES]
        return by_status, sent


class _Collector:
    def __init__(self, board: Board | None, status: dict[str, Any]) -> None:
        self.board = board
        self.status = status

    def collect(self) -> Iterator[Metric]:
        if self.board is not None:
            yield from self._requests(self.board)
        info = GaugeMetricFamily("pum_build_info", "The PUM that serves", labels=["version"])
        info.add_metric([str(self.status.get("version", ""))], 1)
        yield info
        versions = GaugeMetricFamily("pum_database_version", "Version of each database served", labels=["db"])
        built = GaugeMetricFamily(
            "pum_database_build_timestamp_seconds", "When each served database was built", labels=["db"]
        )
        for db, database in sorted(self.status.get("versions", {}).items()):
            if isinstance(database.get("version"), int):
                versions.add_metric([db], database["version"])
            build_time = iso_to_epoch(database.get("build_time"))
            if build_time is not None:
                built.add_metric([db], build_time)
        yield versions
        yield built
        held = self.status.get("held")
        yield GaugeMetricFamily(
            "pum_publishing_held",
            "1 while publishing is held (pum hold, pum rollback)",
            value=int(bool(held)),
        )
        since = iso_to_epoch((held or {}).get("since"))
        if since is not None:
            yield GaugeMetricFamily(
                "pum_publishing_held_since_timestamp_seconds", "When publishing was held", value=since
            )
        yield from self._release_and_run()

    def _requests(self, board: Board) -> Iterator[Metric]:
        by_status, sent = board.totals()
        requests = CounterMetricFamily(
            "pum_http_requests", "HTTP requests answered, by status", labels=["code"]
        )
        for status, count in sorted(by_status.items(), key=lambda item: str(item[0])):
            requests.add_metric([str(status)], count)
        yield requests
        yield CounterMetricFamily("pum_http_sent_bytes", "Bytes sent, header and body", value=sent)
        yield GaugeMetricFamily("pum_serve_workers", "Processes of pum serve", value=board.workers)

    def _release_and_run(self) -> Iterator[Metric]:
        release = self.status.get("release") or {}
        if isinstance(release.get("serial"), int):
            yield GaugeMetricFamily(
                "pum_release_serial", "Serial of the served release", value=release["serial"]
            )
        created = iso_to_epoch(release.get("created"))
        if created is not None:
            yield GaugeMetricFamily(
                "pum_release_created_timestamp_seconds", "When the served release was made", value=created
            )
        last = self.status.get("last_run")
        if last:
            yield GaugeMetricFamily(
                "pum_last_run_success",
                "1 if the last pum run succeeded",
                value=int(last.get("result") == "ok"),
            )
            finished = iso_to_epoch(last.get("finished"))
            if finished is not None:
                yield GaugeMetricFamily(
                    "pum_last_run_finished_timestamp_seconds",
                    "When the last pum run finished",
                    value=finished,
                )
            if isinstance(last.get("duration_seconds"), int | float):
                yield GaugeMetricFamily(
                    "pum_last_run_duration_seconds",
                    "How long the last pum run took",
                    value=last["duration_seconds"],
                )
        yield from self._bundle()
        yield from fleet_metrics(self.status.get("fleet"), time.time())

    def _bundle(self) -> Iterator[Metric]:
        """A closed network's PUM: the last bundle it took (alert when it gets old)."""
        mirror = self.status.get("mirror") or {}
        bundle = mirror.get("bundle")
        if not isinstance(bundle, dict):
            return
        if isinstance(bundle.get("to_serial"), int):
            yield GaugeMetricFamily(
                "pum_bundle_release", "The main's release the last bundle brought", value=bundle["to_serial"]
            )
        for name, key, what in (
            (
                "pum_bundle_exported_timestamp_seconds",
                bundle.get("exported"),
                "When the last bundle was made",
            ),
            (
                "pum_bundle_imported_timestamp_seconds",
                mirror.get("checked"),
                "When the last bundle was taken",
            ),
        ):
            seconds = iso_to_epoch(key)
            if seconds is not None:
                yield GaugeMetricFamily(name, what, value=seconds)


def render_metrics(board: Board | None, status_provider: StatusProvider) -> bytes:
    """The Prometheus text exposition of the counters (none without a board: Apache or nginx serve)
    and of the status document."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(board, status_provider()))
    return generate_latest(registry)
