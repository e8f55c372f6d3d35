"""Downloads at once (`max_parallel`): each job runs in a worker thread on a Transport of its own, over a
kept-alive connection; results come back in the order the jobs were given, so the caller stages them in
its own order (`.sign` files after what they sign). The first failure (or a stop: SIGTERM in
`pum daemon`) cancels the jobs not started and stages nothing more, so nothing partial is published."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from itertools import islice
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from pum.net.transport import Transport
    from pum.sync import SyncContext

T = TypeVar("T")
Job = Callable[["Transport"], T]


class _Workers(Generic[T]):
    """Daemon threads, one Transport each. Daemon threads: a worker inside a download held back by a
    hostile server (bounded by download_deadline) never keeps a stopped run or its process from ending;
    what it leaves is a `.part` in the download area, which the next run resumes or drops."""

    def __init__(self, transports: list[Transport]) -> None:
        self._tasks: queue.SimpleQueue[tuple[Future[T], Job[T]] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, args=(transport,), name="pum-download", daemon=True)
            for transport in transports
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Job[T]) -> Future[T]:
        future: Future[T] = Future()
        self._tasks.put((future, job))
        return future

    def stop(self, wait: bool) -> None:
        for _thread in self._threads:
            self._tasks.put(None)
        if wait:  # every job is done: the workers are idle and end at once
            for thread in self._threads:
                thread.join()

    def _work(self, transport: Transport) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            future, job = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job(transport))
            except BaseException as error:  # handed to the caller, which raises it
                future.set_exception(error)


def fetch_in_parallel(ctx: SyncContext, transport: Transport, jobs: Sequence[Job[T]]) -> Iterator[T]:
    """Each job's result, in the jobs' order, as soon as it and those before it are done."""
    count = min(ctx.config.max_parallel, len(jobs))
    if count <= 1:
        for job in jobs:
            yield job(transport)
        return
    workers: _Workers[T] = _Workers([ctx.sibling_transport(transport) for _ in range(count)])
    # a sliding window of submitted jobs: memory stays flat for 100,000 files (no future, no result held
    # beyond the window), and a failure leaves at most the window to cancel
    waiting = iter(jobs)
    submitted = deque(workers.submit(job) for job in islice(waiting, 2 * count))
    done = False
    try:
        while submitted:
            result = submitted.popleft().result()
            following = next(waiting, None)
            if following is not None:
                submitted.append(workers.submit(following))
            yield result
        done = True
    finally:
        for future in submitted:
            future.cancel()
        workers.stop(wait=done)
