"""`pum serve` as processes: bind the listening socket, run one worker or supervise several, stop cleanly.

With `workers` > 1 the supervisor binds one listening socket before forking and every worker accepts
from it, as nginx's workers do: a connection goes to a worker that runs. One SO_REUSEPORT socket per
worker had the kernel pick the worker by a hash of the connection, running or not, and on a machine whose
CPUs other jobs share, connections waited for a worker that had no CPU while the other idled (0.45-0.66x
nginx on new connections at two workers, for the same CPU time per request). A privileged port is bound
once, by the parent. A worker that dies is started again; the socket and its queued connections stay.
SIGTERM or SIGINT stops accepting, lets answers in flight finish (`STOP_GRACE`), and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import sys
import time
import traceback
from collections.abc import Callable, Coroutine
from pathlib import Path
from resource import RLIM_INFINITY, RLIMIT_NOFILE, getrlimit, setrlimit
from typing import Any

from pum.errors import ConfigError, PumError
from pum.serve.accesslog import AccessLog
from pum.serve.metrics import Board
from pum.serve.server import STOP_GRACE, Site, serve_socket, status_networks
from pum.serve.status_page import StatusProvider, default_status_provider


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port`, `:port` or `port` -> (host, port); an empty host means every address."""
    text = listen.strip()
    if text.isdigit():
        host, port_text = "", text
    elif text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ConfigError(f"listen: expected [address]:port, got {listen!r}")
        port_text = rest[1:]
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon:
            raise ConfigError(f"listen: expected host:port, got {listen!r}")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"listen: port must be 1-65535, got {port_text!r} in {listen!r}")
    return host, int(port_text)


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket every worker accepts from."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ConfigError(f"listen: can't resolve {host!r}: {error.strerror}") from None
    family, kind, proto, _, address = infos[0]
    if not host:
        family, address = socket.AF_INET, ("0.0.0.0", port)
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError as error:
        sock.close()
        hint = " (a port below 1024 needs root)" if error.errno == 13 else ""
        raise PumError(
            f"pum serve: can't listen on {host or '0.0.0.0'}:{port}: {error.strerror}{hint}"
        ) from None
    return sock


def raise_descriptor_limit() -> None:
    """Lift the soft RLIMIT_NOFILE to the hard one (nginx's worker_rlimit_nofile): a shell's 1024
    would cap the connections; pum-serve.service sets LimitNOFILE=65536."""
    soft, hard = getrlimit(RLIMIT_NOFILE)
    if soft != RLIM_INFINITY and (hard == RLIM_INFINITY or soft < hard):
        with contextlib.suppress(ValueError, OSError):
            setrlimit(RLIMIT_NOFILE, (min(hard, 1 << 20) if hard != RLIM_INFINITY else 1 << 20, hard))


def start_line(sock: socket.socket, tls: bool, docroot: Path, workers: int) -> str:
    """What an operator needs at start: where to point clients, what is served, where the status is."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    url = f"{'https' if tls else 'http'}://{shown}:{port}/"
    plural = "" if workers == 1 else "s"
    return (
        f"pum serve: listening on {url} ({workers} worker{plural}), serving {docroot};"
        f" status at {url}.pum/status"
    )


def tls_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError("tls_cert and tls_key go together: set both to serve https, or neither")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(f"tls_cert {cert} / tls_key {key}: {error}") from None
    return context


def _access_log(config: Any) -> AccessLog:
    path = Path(config.access_log) if config.access_log else None
    try:
        return AccessLog(path, bool(config.log_rotate), int(config.log_generation))
    except OSError as error:
        raise PumError(f"access_log {path}: {error.strerror}: check the path and its permissions") from None


async def _worker(
    sock: socket.socket,
    config: Any,
    board: Board,
    index: int,
    provider: StatusProvider,
    context: ssl.SSLContext | None,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    site = Site(
        Path(config.docroot),
        _access_log(config),
        board,
        index,
        provider,
        max_connections=-(-int(config.max_connections) // board.workers),
        status_allow=status_networks(config.status_allow),
    )
    await serve_socket(sock, site, context, stop)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop when it is installed (the `fast` extra): its accept path and transports cost a
    fraction of asyncio's per connection, which is most of the work of freshclam's one request per
    connection. Without it, asyncio's own loop serves the same way."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(main)


class _Stop(Exception):
    pass


def run_server(config: Any, status_provider: StatusProvider | None = None) -> None:
    """Serve `config.docroot` on `config.listen` until SIGTERM or SIGINT. Blocks."""
    host, port = parse_listen(config.listen)
    context = tls_context(config.tls_cert, config.tls_key)
    provider = status_provider or default_status_provider(config)
    workers = max(1, int(config.workers))
    raise_descriptor_limit()
    _access_log(config).close()  # fail here, with one clear line, rather than in every worker
    sock = bind_socket(host, port)
    print(start_line(sock, context is not None, config.docroot, workers), flush=True)
    board = Board(workers)
    try:
        if workers == 1:
            run_loop(_worker(sock, config, board, 0, provider, context))
        else:
            _supervise(sock, workers, config, board, provider, context)
    finally:
        sock.close()


def _supervise(
    sock: socket.socket,
    workers: int,
    config: Any,
    board: Board,
    provider: StatusProvider,
    context: ssl.SSLContext | None,
) -> None:
    children: dict[int, tuple[int, float]] = {}
    signals = {signal.SIGTERM, signal.SIGINT}

    def spawn(index: int) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        try:
            pid = os.fork()
            if pid == 0:
                _child(index, sock, config, board, provider, context, signals)
            children[pid] = (index, time.monotonic())
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)

    def on_signal(signum: int, frame: object) -> None:
        raise _Stop

    previous = {signum: signal.signal(signum, on_signal) for signum in signals}
    try:
        for index in range(workers):
            spawn(index)
        while True:
            pid, status = os.wait()
            if pid not in children:
                continue
            index, started = children.pop(pid)
            print(
                f"pum serve: worker {index} (pid {pid}) ended with status {status}; starting it again",
                file=sys.stderr,
            )
            if time.monotonic() - started < 1.0:
                time.sleep(1.0)
            spawn(index)
    except _Stop:
        pass
    finally:
        for signum in signals:
            signal.signal(signum, signal.SIG_IGN)
        _stop_children(children)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _child(
    index: int,
    sock: socket.socket,
    config: Any,
    board: Board,
    provider: StatusProvider,
    context: ssl.SSLContext | None,
    signals: set[signal.Signals],
) -> None:
    code = 0
    try:
        for signum in signals:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
        run_loop(_worker(sock, config, board, index, provider, context))
    except BaseException:  # noqa: BLE001 - a forked worker must never return into the parent's code
        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)


def _stop_children(children: dict[int, tuple[int, float]]) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE + 2
    while children and time.monotonic() < deadline:
        pid, _ = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            time.sleep(0.05)
        else:
            children.pop(pid, None)
    for pid in list(children):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
