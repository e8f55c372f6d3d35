"""Every HTTP request PUM makes upstream: failover, proxy, TLS, timeouts, retries, resume, cool-down."""

from __future__ import annotations

import hashlib
import os
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple, TypedDict, TypeVar

from pum.common.download import (
    STALE_PART_SECONDS,
    PartAnswer,
    StartAgain,
    TooLarge,
    UnexpectedAnswer,
    part_offset,
    stream_to_part,
)
from pum.common.servers import Server
from pum.config import Config
from pum.errors import UpstreamError
from pum.formats.httpdate import http_date, parse_http_date
from pum.net import http1
from pum.net.answers import Body, Downloaded, Missing, NotModified
from pum.net.cooldown import COOL_DOWN_FORBIDDEN, COOL_DOWN_TOO_MANY, CoolDowns, retry_after_seconds
from pum.runlog import RunLog
from pum.store.state import COOL_DOWNS

_T = TypeVar("_T")
# a download may take `download_deadline` seconds plus one second per MIN_RATE bytes of its size: a body
# dripping a byte at a time outlives every read timeout, and must not hold the run lock for ever
MIN_RATE = 16 << 10
# compressed answers (only the manifest asks for one) may be this much larger than their limit on the wire
GZIP_SLACK = 64 << 10

sleep = time.sleep  # patched out by tests
clock = time.monotonic


class TransportSettings(NamedTuple):
    """What a Transport needs of pum.conf, and nothing else."""

    protocol: str  # update_protocol: for servers written without a scheme
    proxy_url: str | None  # with credentials: never logged
    proxy_display: str | None
    ca_bundle: Path | None
    connect_timeout: float
    read_timeout: float
    user_agent: str
    retries: int
    cool_downs: Path  # state/cooldown.json
    proxy_address: str | None = None  # host:port, for messages
    download_deadline: float = 600.0  # seconds every download may take, whatever its size
    max_file_size: int = 2048 << 20  # bytes, for a file whose size nobody told us
    max_rate: int = 0  # bytes per second over the whole run; 0: no cap

    @classmethod
    def of(cls, config: Config) -> TransportSettings:
        return cls(
            protocol=config.update_protocol,
            proxy_url=config.proxy_url,
            proxy_display=config.proxy_display,
            ca_bundle=config.ca_bundle,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            user_agent=config.user_agent,
            retries=config.retries,
            cool_downs=config.state_dir / COOL_DOWNS,
            proxy_address=f"{config.proxy_host}:{config.proxy_port}" if config.proxy_host else None,
            download_deadline=config.download_deadline,
            max_file_size=config.max_file_size << 20,
            max_rate=config.max_rate,
        )


class RateCap:
    """`max_rate` over everything one Transport receives (as `wget --limit-rate` did for the original):
    after each chunk, sleep until the bytes so far fit the rate."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.started: float | None = None
        self.received = 0
        self._lock = threading.Lock()  # shared by the Transports of parallel downloads (`sibling`)

    def took(self, count: int) -> None:
        if not self.rate:
            return
        with self._lock:
            now = clock()
            if self.started is None:
                self.started = now
            self.received += count
            ahead = self.received / self.rate - (now - self.started)
        if ahead > 0:
            sleep(ahead)


ProgressHook = Callable[[str, int, int | None], None]  # (name, bytes so far, total or None)


class _ServerUnusable(Exception):
    """This server can't answer now (down, refusing, cooling down): try the next one."""


class Transport:
    """One run's HTTP client over an ordered list of servers; the first that answers is kept for the run."""

    def __init__(
        self,
        settings: TransportSettings,
        servers: tuple[Server, ...],
        log: RunLog,
        protocol: str | None = None,
        progress: ProgressHook | None = None,
    ) -> None:
        self.settings = settings
        self.servers = servers
        self.protocol = protocol or settings.protocol
        self.log = log
        self.progress = progress
        self.cool_downs = CoolDowns(settings.cool_downs, log.line)
        self.chosen: Server | None = None
        self._checked: set[Server] = set()
        self.requests = 0
        self.bytes_received = 0
        self.rate_cap = RateCap(settings.max_rate)
        # False: the caller makes downloads durable itself (one syncfs before publishing, not an fsync each)
        self.durable = True
        self._http: http1.Client | None = None
        self._directories: set[Path] = set()  # made for downloads (a cache: mkdir once each)

    def sibling(self) -> Transport:
        """Another Transport for a worker thread of parallel downloads (each Transport serves one thread at
        a time: its counters are plain numbers): the same servers, cool-downs and `max_rate` cap, starting
        on the server this one chose without logging the choice again."""
        twin = Transport(self.settings, self.servers, self.log, self.protocol, self.progress)
        twin.cool_downs, twin.rate_cap, twin.durable = self.cool_downs, self.rate_cap, self.durable
        twin.chosen, twin._checked = self.chosen, set(self._checked)
        return twin

    @property
    def _client(self) -> http1.Client:
        # built at the first request: a run that needs no HTTP (DNS says nothing changed) pays nothing for TLS
        if self._http is None:
            settings = self.settings
            if (
                self.protocol == "https"
                or settings.ca_bundle
                or any(s.scheme == "https" for s in self.servers)
            ):
                cafile = str(settings.ca_bundle) if settings.ca_bundle else None
                verify = ssl.create_default_context(cafile=cafile)
            else:
                # an http upstream: a context with no trust anchors costs nothing to build (loading the CA
                # store costs ~20 ms) and fails closed if a redirect ever leads to https
                verify = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            self._http = http1.Client(
                verify,
                settings.connect_timeout,
                settings.read_timeout,
                # identity: the bytes we hash and store must be the file's own bytes
                {"User-Agent": settings.user_agent, "Accept-Encoding": "identity"},
                proxy_url=settings.proxy_url,
            )
        return self._http

    def tls_context(self) -> ssl.SSLContext:
        """The TLS settings of this Transport's connections (net/pipeline.py opens its own)."""
        return self._client.tls

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url_for(self, server: Server, relpath: str) -> str:
        return server.base_url(self.protocol) + relpath.lstrip("/")

    # -- server choice --------------------------------------------------------------------------

    def _candidates(self) -> Iterator[Server]:
        ordered = ([self.chosen] if self.chosen else []) + [s for s in self.servers if s != self.chosen]
        for server in ordered:
            cooling = self.cool_downs.active(server)
            if cooling:
                if server not in self._checked:
                    self._checked.add(server)
                    until = time.strftime("%Y-%m-%d %H:%M", time.localtime(cooling.until))
                    self.log.line(
                        f"skip update host({server}): cooling down until {until} ({cooling.reason})"
                    )
                continue
            if server not in self._checked:
                self._checked.add(server)
                self.log.line(f"check update host({server})")
            yield server

    def _chose(self, server: Server) -> None:
        if self.chosen != server:
            self.chosen = server
            self.log.line(f"update server is {server}")

    def _over_servers(self, relpath: str, attempt: Callable[[Server], _T]) -> _T:
        failures = []
        for server in self._candidates():
            try:
                result = attempt(server)
            except _ServerUnusable as why:
                failures.append(f"{server}: {why}")
                self.log.line(f"update host({server}) failed: {why}")
                if self.chosen == server:
                    self.chosen = None
                continue
            self._chose(server)
            return result
        if not failures:
            raise UpstreamError(
                f"no update server available for {relpath}: all are cooling down "
                f"(state in {self.cool_downs.path})"
            )
        raise UpstreamError(f"cannot get {relpath} from any update server: " + "; ".join(failures))

    # -- requests -------------------------------------------------------------------------------

    def get_bytes(
        self,
        relpath: str,
        *,
        byte_range: tuple[int, int] | None = None,
        limit: int = 16 << 20,
        headers: dict[str, str] | None = None,
    ) -> Body | NotModified | Missing:
        """A small GET held in memory (version file, CVD header, product list, manifest), never more than
        `limit` bytes of it, decoded or not: only an answer to `Accept-Encoding: gzip` may be compressed, and
        then only once, inflated with the same bound (a 6 KB bomb once took a run to 12 GB)."""
        extra = dict(headers or {})
        if byte_range:
            extra["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        gzip_asked = "gzip" in extra.get("Accept-Encoding", "")

        def attempt(server: Server) -> Body | NotModified | Missing:
            url = self.url_for(server, relpath)
            with self._request(server, url, extra) as response:
                answer = _answer(response, url, server)
                if response.status_code == 304:
                    return NotModified(**answer)
                if response.status_code == 404:
                    return Missing(**answer)
                if response.status_code not in (200, 206):
                    raise UpstreamError(f"{url}: unexpected answer {response.status_code}")
                wanted = (byte_range[1] - byte_range[0] + 1) if byte_range else limit + 1
                body = self._read_bounded(response, url, wanted, gzip_asked)
                if not byte_range and len(body) > limit:
                    raise UpstreamError(f"{url}: larger than {limit} bytes, refused")
                return Body(**answer, data=body[:wanted] if byte_range else body)

        return self._over_servers(relpath, attempt)

    def _read_bounded(self, response: http1.Response, url: str, wanted: int, gzip_asked: bool) -> bytes:
        """At most `wanted` bytes of the body (one more tells "too large"), inflated when it is gzip."""
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity") and not (gzip_asked and encoding == "gzip"):
            raise UpstreamError(f"{url}: answered with Content-Encoding {encoding!r}, not asked for: refused")
        inflater = zlib.decompressobj(wbits=31) if encoding == "gzip" else None
        deadline = clock() + self.settings.download_deadline
        body, on_wire = bytearray(), 0
        for chunk in response.iter_raw():
            on_wire += len(chunk)
            self.bytes_received += len(chunk)
            self.rate_cap.took(len(chunk))
            if clock() > deadline:
                raise UpstreamError(
                    f"{url}: not received within {self.settings.download_deadline:g}s (download_deadline)"
                )
            if inflater is None:
                body += chunk
            else:
                if on_wire > wanted + GZIP_SLACK:
                    break
                try:
                    body += inflater.decompress(chunk, wanted + 1 - len(body))
                except zlib.error as error:
                    raise UpstreamError(f"{url}: a damaged gzip answer ({error})") from None
                if inflater.unconsumed_tail:
                    body += b"\0"  # more than wanted: the caller refuses it
            if len(body) >= wanted:
                break
        else:
            if inflater is not None and not inflater.eof:
                raise UpstreamError(f"{url}: a truncated gzip answer")
        return bytes(body[: wanted + 1])

    def download(
        self,
        relpath: str,
        dest: Path,
        *,
        if_modified_since: float | None = None,
        etag: str | None = None,
        expected_size: int | None = None,
    ) -> Downloaded | NotModified | Missing:
        """Stream `relpath` to `dest` (through `dest.part`, resumed with Range when it exists).

        The sha256 is computed while streaming, so memory stays flat whatever the size. Never more than
        `expected_size` (from a manifest) or else `max_file_size` bytes, within `download_deadline` plus a
        second per 16 KiB of the size.
        """
        part = dest.with_name(dest.name + ".part")
        if dest.parent not in self._directories:  # not a mkdir per file of a 10,000-file copy
            dest.parent.mkdir(parents=True, exist_ok=True)
            self._directories.add(dest.parent)
        ceiling = expected_size if expected_size is not None else self.settings.max_file_size
        self._drop_stale_part(part, ceiling)

        def attempt(server: Server) -> Downloaded | NotModified | Missing:
            url = self.url_for(server, relpath)
            for attempt_number in range(self.settings.retries + 1):
                try:
                    return self._download_once(
                        server, url, relpath, dest, part, if_modified_since, etag, ceiling
                    )
                except _Retryable as why:
                    if attempt_number == self.settings.retries:
                        raise _ServerUnusable(f"{url}: {why}") from None
                    delay = min(2**attempt_number, 30)
                    self.log.line(f"retry {url} in {delay}s: {why}")
                    sleep(delay)
            raise AssertionError("unreachable")

        return self._over_servers(relpath, attempt)

    def _drop_stale_part(self, part: Path, ceiling: int) -> None:
        """A .part left by a killed run is resumed, unless it is older than a day or larger than the file
        may be: then upstream likely offers another file under that name, and it would fill the disk."""
        try:
            stat = part.stat()
        except FileNotFoundError:
            return
        if stat.st_size > ceiling or time.time() - stat.st_mtime > STALE_PART_SECONDS:
            part.unlink(missing_ok=True)
            self.log.line(f"{part.name}: a stale partial download ({stat.st_size} bytes), starting again")

    def _download_once(
        self,
        server: Server,
        url: str,
        relpath: str,
        dest: Path,
        part: Path,
        if_modified_since: float | None,
        etag: str | None,
        ceiling: int,
    ) -> Downloaded | NotModified | Missing:
        headers: dict[str, str] = {}
        offset = part_offset(part)
        if offset:
            headers["Range"] = f"bytes={offset}-"
        elif if_modified_since is not None:
            headers["If-Modified-Since"] = http_date(if_modified_since)
        if etag and not offset:
            headers["If-None-Match"] = etag
        with self._request(server, url, headers, retry_errors=True) as response:
            answer = _answer(response, url, server)
            if response.status_code == 304:
                return NotModified(**answer)
            if response.status_code == 404:
                return Missing(**answer)
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity") and response.status_code != 416:
                raise UpstreamError(
                    f"{url}: answered with Content-Encoding {encoding!r}, not asked for: refused"
                )
            length = _content_length(response)
            total = length + offset if length is not None and response.status_code == 206 else length
            deadline = clock() + self.settings.download_deadline + (total or ceiling) / MIN_RATE

            def on_chunk(size: int, received: int) -> None:
                self.bytes_received += size
                self.rate_cap.took(size)
                if clock() > deadline:
                    raise _ServerUnusable(
                        f"{url}: {received} bytes in {self.settings.download_deadline:g}s and more "
                        "(download_deadline): too slow; the part is kept for the next run"
                    )
                if self.progress:
                    self.progress(relpath, received, total)

            part_answer = PartAnswer(
                response.status_code,
                response.headers.get("content-range"),
                response.headers.get("content-length"),
            )
            try:
                streamed = stream_to_part(
                    part,
                    offset,
                    part_answer,
                    response.iter_raw(),
                    hashlib.sha256,
                    on_chunk,
                    ceiling,
                    durable=self.durable,
                )
            except StartAgain as why:
                raise _Retryable(str(why)) from None
            except TooLarge as why:
                raise UpstreamError(f"{url}: {why}: refused") from None
            except UnexpectedAnswer:
                raise UpstreamError(
                    f"{url}: unexpected answer {response.status_code} to a download"
                ) from None
            except http1.Interrupted as error:
                raise _Retryable(
                    f"interrupted after {part_offset(part)} bytes ({http1.reason(error)}), resuming"
                ) from None
            os.replace(part, dest)
            return Downloaded(**answer, path=dest, size=streamed.size, sha256=streamed.digest)

    @contextmanager
    def _request(
        self, server: Server, url: str, headers: dict[str, str], retry_errors: bool = False
    ) -> Iterator[http1.Response]:
        self.requests += 1
        try:
            with self._client.stream(url, headers) as response:
                self._check_status(server, url, response, retry_errors)
                yield response
        except http1.ProxyRefused as error:
            raise UpstreamError(
                f"proxy {self.settings.proxy_display} refused {url}: {error}"
                " (check proxy_host, proxy_port, proxy_user, proxy_passwd)"
            ) from None
        except http1.ConnectFailed as error:
            if error.to_proxy and self.settings.proxy_address:
                # every request goes to the proxy first: a dead proxy is not the update server's fault
                raise UpstreamError(
                    f"proxy {self.settings.proxy_address} (proxy_host/proxy_port): cannot connect ({error})"
                ) from None
            raise _ServerUnusable(f"cannot connect ({error})") from None
        except http1.Interrupted as error:
            if retry_errors:
                raise _Retryable(str(error)) from None
            raise _ServerUnusable(str(error)) from None
        # every other way a request can fail is this URL's fault, not the network's: one line naming it
        except http1.TooManyRedirects:
            raise UpstreamError(f"{url}: too many redirects; check the server's address") from None
        except http1.BadUrl as error:
            raise UpstreamError(f"{url}: the request failed ({error})") from None

    def _check_status(self, server: Server, url: str, response: http1.Response, retry_errors: bool) -> None:
        status = response.status_code
        if status == 407:
            raise UpstreamError(
                f"proxy {self.settings.proxy_display} answered 407 Proxy Authentication Required "
                f"for {url}: check proxy_user and proxy_passwd"
            )
        if status in (403, 429):
            delay = retry_after_seconds(response.headers.get("retry-after"))
            if delay is None:
                delay = COOL_DOWN_FORBIDDEN if status == 403 else COOL_DOWN_TOO_MANY
            reason = f"{url} answered {status}"
            self.cool_downs.add(server, delay, reason)
            raise _ServerUnusable(f"answered {status}; cooling down for {delay:.0f}s")
        if status >= 500:
            if retry_errors:
                raise _Retryable(f"server error {status}")
            raise _ServerUnusable(f"server error {status}")
        if status >= 400 and status not in (404, 416):
            raise UpstreamError(f"{url}: unexpected answer {status} {response.reason_phrase}")


class _AnswerFields(TypedDict):
    url: str
    server: Server
    last_modified: int | None
    etag: str | None
    headers: Mapping[str, str]


def _answer(response: http1.Response, url: str, server: Server) -> _AnswerFields:
    return _AnswerFields(
        url=url,
        server=server,
        last_modified=parse_http_date(response.headers.get("last-modified")),
        etag=response.headers.get("etag"),
        headers=response.headers,  # names in lower case, as every reader of an answer asks for them
    )


class _Retryable(Exception):
    """A transient failure on a server that answered: retry there, resuming what we have."""


def _content_length(response: http1.Response) -> int | None:
    value = response.headers.get("content-length")
    return int(value) if value and len(value) <= 18 and value.isascii() and value.isdigit() else None
