"""One response body sent with sendfile(2) straight from the release file to a connection's socket.

`loop.sendfile` re-registers the socket with epoll around every chunk and runs through futures; for a
60 MB CVD that overhead is a measurable share of a core. Here the socket is watched for writability
through a duplicate descriptor (asyncio refuses a second watcher on a transport's own descriptor), which
stays registered until the body is out. A TLS connection, or one whose transport still holds
unsent bytes, gets the file in chunks through the transport, one more each time the transport's
buffer drains: so progress is seen there too, and a client that stops reading is dropped like any other.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import BinaryIO

Done = Callable[[int], None]
CHUNK = 256 * 1024  # written to a TLS transport at a time, when its buffer has room


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
        paused: Callable[[], bool],
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
        self._finished = False
        self.paused = paused  # the transport's buffer is above its high-water mark
        self.native = True
        self.progressed = True  # bytes went out since the server last looked (it drops stalled clients)

    def start(self) -> None:
        if not can_send_natively(self.transport):
            self.native = False
            self._copy()
            return
        self._fd = os.dup(self.transport.get_extra_info("socket").fileno())
        self._step()

    def resume(self) -> None:
        """The transport's buffer drained (the protocol's resume_writing)."""
        if not self.native and not self._finished:
            self._copy()

    def cancel(self) -> None:
        """The connection is gone: stop, release the descriptors, report what was sent."""
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

    def _copy(self) -> None:
        file_fd = self.stream.fileno()
        while self.remaining and not self.paused():
            if self.transport.is_closing():
                break  # the client went away
            try:
                chunk = os.pread(file_fd, min(CHUNK, self.remaining), self.offset)
            except OSError:
                break
            if not chunk:
                break  # shorter than it was: never for a release, which is immutable
            self.transport.write(chunk)  # may pause the protocol, which ends this loop
            self.progressed = True
            self.offset += len(chunk)
            self.sent += len(chunk)
            self.remaining -= len(chunk)
        else:
            if self.remaining:
                return  # paused: resume() goes on
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
