"""Downloads at once (`max_parallel`): each job runs in a worker thread on a Transport of its own, over a
kept-alive connection; results come back in the order the jobs were given, so the caller stages them in
its own order (`.sign` files after what they sign). The first failure cancels the jobs not started and
waits for the running ones: the caller raises before staging anything more, so nothing partial is
published."""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
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

    # a sliding window of submitted jobs: memory stays flat for 100,000 files (no future, no result held
    # beyond the window), and a failure leaves at most the window to cancel
    waiting = iter(jobs)
    with ThreadPoolExecutor(workers, thread_name_prefix="pum-download") as pool:
        submitted: deque[Future[T]] = deque(pool.submit(run, job) for job in islice(waiting, 2 * workers))
        try:
            while submitted:
                result = submitted.popleft().result()
                following = next(waiting, None)
                if following is not None:
                    submitted.append(pool.submit(run, following))
                yield result
        finally:
            for future in submitted:
                future.cancel()
