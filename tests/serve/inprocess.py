"""`pum serve` in this process: a Site served on a loopback port in a thread, or one connection
driven by hand through a stand-in transport."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from pum.serve.accesslog import AccessLog
from pum.serve.metrics import Board
from pum.serve.server import Site, serve_socket

from .releases import ReleaseTree


class Transport:
    """Stands in for an asyncio transport: keeps what is written, and whether it was closed."""

    def __init__(self, peer: str = "127.0.0.1") -> None:
        self.written = b""
        self.closed = self.aborted = False
        self.buffered = 0
        self.peer = peer

    def write(self, data: bytes) -> None:
        self.written += data

    def get_extra_info(self, name: str, default=None):
        return (self.peer, 40000) if name == "peername" else default

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


@contextlib.contextmanager
def serving(
    tree: ReleaseTree,
    tmp_path: Path,
    context: ssl.SSLContext | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
    **timeouts: float,
) -> Iterator[Site]:
    """`serve_socket` on a loopback port in a thread (on asyncio's own loop unless `loop_factory`
    says otherwise), its Site's timeouts set to `timeouts`."""
    tree.serve(6, extra={"big.cvd": os.urandom(16 * 1024 * 1024)})
    site = Site(Path(tree.docroot), AccessLog(tmp_path / "access.log"), Board(1), 0, dict)
    for name, value in timeouts.items():
        setattr(site, name, value)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    site.port = sock.getsockname()[1]  # type: ignore[attr-defined]
    loop = loop_factory()
    stop = asyncio.Event()
    ready = threading.Event()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(serve_socket(sock, site, context, stop, ready.set),)
    )
    thread.start()
    try:
        assert ready.wait(10)
        yield site
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
        sock.close()
