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
from pum.serve.status_page import StatusProvider, iso_to_epoch

STATUSES = (200, 206, 304, 400, 404, 405, 408, 416, 431, 500, 503, 505)
STATUS_INDEX = {status: index for index, status in enumerate(STATUSES)}
OTHER = len(STATUSES)
BYTES = OTHER + 1
ROW = BYTES + 1

__all__ = ["CONTENT_TYPE_LATEST", "Board", "render_metrics"]


class Board:
    """Counters of every worker: requests by status and bytes sent, in shared memory."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._map = mmap.mmap(-1, 8 * ROW * workers)
        self._cells = memoryview(self._map).cast("Q")

    def row(self, worker: int) -> memoryview:
        """The counters one worker writes: index by `STATUS_INDEX` (or OTHER), bytes at BYTES."""
        return self._cells[worker * ROW : (worker + 1) * ROW]

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
    def __init__(self, board: Board, status: dict[str, Any]) -> None:
        self.board = board
        self.status = status

    def collect(self) -> Iterator[Metric]:
        by_status, sent = self.board.totals()
        requests = CounterMetricFamily(
            "pum_http_requests", "HTTP requests answered, by status", labels=["status"]
        )
        for status, count in sorted(by_status.items(), key=lambda item: str(item[0])):
            requests.add_metric([str(status)], count)
        yield requests
        yield CounterMetricFamily("pum_http_sent_bytes", "Bytes sent, header and body", value=sent)
        yield GaugeMetricFamily("pum_serve_workers", "Processes of pum serve", value=self.board.workers)
        versions = GaugeMetricFamily(
            "pum_database_version", "Version of each database served", labels=["database"]
        )
        for db, info in sorted(self.status.get("versions", {}).items()):
            if isinstance(info.get("version"), int):
                versions.add_metric([db], info["version"])
        yield versions
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
            yield GaugeMetricFamily(
                "pum_seconds_since_last_good_release",
                "Age of the served release: every published release passed verification",
                value=max(0.0, time.time() - created),
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
        yield from fleet_metrics(self.status.get("fleet"), time.time())


def render_metrics(board: Board, status_provider: StatusProvider) -> bytes:
    """The Prometheus text exposition of the counters and of the status document."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(board, status_provider()))
    return generate_latest(registry)
