"""One response body sent with sendfile(2) straight from the release file to a connection's socket.

`loop.sendfile` re-registers the socket with epoll around every chunk and runs through futures; for a
60 MB CVD that overhead is a measurable share of a core. Here the socket is watched for writability
through a duplicate descriptor (asyncio refuses a second watcher on a transport's own descriptor), which
stays registered until the body is out. A TLS connection, or one whose transport still holds
unsent bytes, goes through `loop.sendfile`, which copies through the TLS layer and waits for the buffer.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import BinaryIO

Done = Callable[[int], None]


def can_send_natively(transport: asyncio.Transport) -> bool:
    return (
        transport.get_extra_info("sslcontext") is None
        and transport.get_extra_info("socket") is not None
        and transport.get_write_buffer_size() == 0
    )


class FileSender:
    """Send `length` bytes of `stream` from `offset`, then call `done(bytes_sent)` once and close `stream`."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        transport: asyncio.Transport,
        stream: BinaryIO,
        offset: int,
        length: int,
        done: Done,
    ) -> None:
        self.loop = loop
        self.transport = transport
        self.stream = stream
        self.offset = offset
        self.remaining = length
        self.sent = 0
        self.done = done
        self._fd = -1
        self._watching = False
        self._task: asyncio.Task[None] | None = None
        self._finished = False
        self.native = True
        self.progressed = True  # bytes went out since the server last looked (it drops stalled clients)

    def start(self) -> None:
        if not can_send_natively(self.transport):
            self.native = False  # progress is out of sight: never taken for stalled
            self._task = self.loop.create_task(self._send_through_loop())
            return
        self._fd = os.dup(self.transport.get_extra_info("socket").fileno())
        self._step()

    def cancel(self) -> None:
        """The connection is gone: stop, release the descriptors, report what was sent."""
        if self._task is not None:
            self._task.cancel()
        else:
            self._finish()

    def _step(self) -> None:
        file_fd = self.stream.fileno()
        while self.remaining:
            try:
                count = os.sendfile(self._fd, file_fd, self.offset, self.remaining)
            except (BlockingIOError, InterruptedError):
                if not self._watching:
                    self.loop.add_writer(self._fd, self._step)
                    self._watching = True
                return
            except OSError:
                break  # the client went away
            if count == 0:
                break  # the file is shorter than it was: never for a release, which is immutable
            self.progressed = True
            self.offset += count
            self.sent += count
            self.remaining -= count
        self._finish()

    async def _send_through_loop(self) -> None:
        try:
            self.sent = await self.loop.sendfile(self.transport, self.stream, self.offset, self.remaining)
        except (OSError, RuntimeError):
            pass  # the client went away, or the transport closed under us
        except asyncio.CancelledError:
            pass
        self._finish()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._watching:
            self.loop.remove_writer(self._fd)
            self._watching = False
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.stream.close()
        self.done(self.sent)
