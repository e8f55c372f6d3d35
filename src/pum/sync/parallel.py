"""Downloads at once (`max_parallel`): each job runs in a worker thread on a Transport of its own, over a
kept-alive connection; results come back in the order the jobs were given, so the caller stages them in
its own order (`.sign` files after what they sign). The first failure cancels the jobs not started and
waits for the running ones: the caller raises before staging anything more, so nothing partial is
published."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from pum.net.transport import Transport
    from pum.sync import SyncContext

T = TypeVar("T")
Job = Callable[["Transport"], T]


def fetch_in_parallel(ctx: SyncContext, transport: Transport, jobs: Sequence[Job[T]]) -> Iterator[T]:
    """Each job's result, in the jobs' order, as soon as it and those before it are done."""
    workers = min(ctx.config.max_parallel, len(jobs))
    if workers <= 1:
        for job in jobs:
            yield job(transport)
        return
    idle: queue.SimpleQueue[Transport] = queue.SimpleQueue()
    idle.put(transport)
    for _ in range(workers - 1):
        idle.put(ctx.sibling_transport(transport))

    def run(job: Job[T]) -> T:
        mine = idle.get_nowait()  # never empty: at most `workers` jobs run at once
        try:
            return job(mine)
        finally:
            idle.put(mine)

    with ThreadPoolExecutor(workers, thread_name_prefix="pum-download") as pool:
        futures: list[Future[T]] = [pool.submit(run, job) for job in jobs]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()
