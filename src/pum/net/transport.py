"""Every HTTP request PUM makes upstream: failover, proxy, TLS, timeouts, retries, resume, cool-down."""

from __future__ import annotations

import email.utils
import hashlib
import os
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from pum.common.download import PartAnswer, StartAgain, UnexpectedAnswer, part_offset, stream_to_part
from pum.common.servers import Server
from pum.config import Config
from pum.errors import UpstreamError
from pum.net.cooldown import COOL_DOWN_FORBIDDEN, COOL_DOWN_TOO_MANY, CoolDowns, retry_after_seconds
from pum.runlog import RunLog

CHUNK = 1 << 20

sleep = time.sleep  # patched out by tests


@dataclass
class Fetched:
    """The outcome of one download: `status` is 200, 206 (resumed), 304 or 404."""

    status: int
    url: str
    server: Server
    path: Path | None = None
    size: int = 0
    sha256: str = ""
    last_modified: float | None = None
    etag: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def missing(self) -> bool:
        return self.status == 404

    @property
    def not_modified(self) -> bool:
        return self.status == 304


ProgressHook = Callable[[str, int, int | None], None]  # (name, bytes so far, total or None)


def http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


def parse_http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


class _ServerUnusable(Exception):
    """This server can't answer now (down, refusing, cooling down): try the next one."""


class Transport:
    """One run's HTTP client over an ordered list of servers; the first that answers is kept for the run."""

    def __init__(
        self,
        config: Config,
        servers: tuple[Server, ...],
        log: RunLog,
        protocol: str | None = None,
        progress: ProgressHook | None = None,
    ) -> None:
        self.config = config
        self.servers = servers
        self.protocol = protocol or config.update_protocol
        self.log = log
        self.progress = progress
        self.cool_downs = CoolDowns(config.state_dir / "cooldown.json")
        self.chosen: Server | None = None
        self._checked: set[Server] = set()
        self.requests = 0
        self.bytes_received = 0
        self._http: httpx.Client | None = None

    @property
    def _client(self) -> httpx.Client:
        # built at the first request: a run that needs no HTTP (DNS says nothing changed) pays nothing for TLS
        if self._http is None:
            config = self.config
            if self.protocol == "https" or config.ca_bundle or any(s.scheme == "https" for s in self.servers):
                cafile = str(config.ca_bundle) if config.ca_bundle else None
                verify = ssl.create_default_context(cafile=cafile)
            else:
                # an http upstream: a context with no trust anchors costs nothing to build (loading the CA
                # store is most of httpx's start-up) and fails closed if a redirect ever leads to https
                verify = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            self._http = httpx.Client(
                proxy=config.proxy_url,
                verify=verify,
                timeout=httpx.Timeout(config.read_timeout, connect=config.connect_timeout),
                # identity: the bytes we hash and store must be the file's own bytes
                headers={"User-Agent": config.user_agent, "Accept-Encoding": "identity"},
                follow_redirects=True,
                trust_env=False,
            )
        return self._http

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
                    until = time.strftime("%Y-%m-%d %H:%M", time.localtime(cooling["until"]))
                    self.log.line(
                        f"skip update host({server}): cooling down until {until} ({cooling['reason']})"
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

    def _over_servers(self, relpath: str, attempt: Callable[[Server], Fetched]) -> Fetched:
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
    ) -> Fetched | tuple[Fetched, bytes]:
        """A small GET held in memory (version file, CVD header, product list). 404 -> Fetched(404)."""
        extra = dict(headers or {})
        if byte_range:
            extra["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        box: list[bytes] = []

        def attempt(server: Server) -> Fetched:
            url = self.url_for(server, relpath)
            with self._request(server, url, extra) as response:
                fetched = self._fetched(response, url, server)
                if response.status_code in (200, 206):
                    body = bytearray()
                    wanted = (byte_range[1] - byte_range[0] + 1) if byte_range else limit + 1
                    for chunk in response.iter_bytes(65536):
                        body += chunk
                        if len(body) >= wanted:
                            break
                    if not byte_range and len(body) > limit:
                        raise UpstreamError(f"{url}: larger than {limit} bytes, refused")
                    self.bytes_received += len(body)
                    box.append(bytes(body[:wanted]) if byte_range else bytes(body))
                return fetched

        fetched = self._over_servers(relpath, attempt)
        return (fetched, box[0]) if box else fetched

    def download(
        self, relpath: str, dest: Path, *, if_modified_since: float | None = None, etag: str | None = None
    ) -> Fetched:
        """Stream `relpath` to `dest` (through `dest.part`, resumed with Range when it exists).

        The sha256 is computed while streaming, so memory stays flat whatever the size.
        """
        part = dest.with_name(dest.name + ".part")
        dest.parent.mkdir(parents=True, exist_ok=True)

        def attempt(server: Server) -> Fetched:
            url = self.url_for(server, relpath)
            for attempt_number in range(self.config.retries + 1):
                try:
                    return self._download_once(server, url, relpath, dest, part, if_modified_since, etag)
                except _Retryable as why:
                    if attempt_number == self.config.retries:
                        raise _ServerUnusable(f"{url}: {why}") from None
                    delay = min(2**attempt_number, 30)
                    self.log.line(f"retry {url} in {delay}s: {why}")
                    sleep(delay)
            raise AssertionError("unreachable")

        return self._over_servers(relpath, attempt)

    def _download_once(
        self,
        server: Server,
        url: str,
        relpath: str,
        dest: Path,
        part: Path,
        if_modified_since: float | None,
        etag: str | None,
    ) -> Fetched:
        headers: dict[str, str] = {}
        offset = part.stat().st_size if part.exists() else 0
        if offset:
            headers["Range"] = f"bytes={offset}-"
        elif if_modified_since is not None:
            headers["If-Modified-Since"] = http_date(if_modified_since)
        if etag and not offset:
            headers["If-None-Match"] = etag
        with self._request(server, url, headers, retry_errors=True) as response:
            fetched = self._fetched(response, url, server)
            if response.status_code in (304, 404):
                return fetched
            answer = PartAnswer(
                response.status_code,
                response.headers.get("Content-Range"),
                response.headers.get("Content-Length"),
            )

            length = _content_length(response)
            base = offset if response.status_code == 206 else 0
            total = length + base if length is not None else None

            def on_chunk(size: int, received: int) -> None:
                self.bytes_received += size
                if self.progress:
                    self.progress(relpath, received, total)

            try:
                streamed = stream_to_part(part, offset, answer, response.iter_raw(), hashlib.sha256, on_chunk)
            except StartAgain as why:
                raise _Retryable(str(why)) from None
            except UnexpectedAnswer:
                raise UpstreamError(
                    f"{url}: unexpected answer {response.status_code} to a download"
                ) from None
            except (httpx.TransportError, httpx.StreamError) as error:
                raise _Retryable(
                    f"interrupted after {part_offset(part)} bytes ({type(error).__name__}), resuming"
                ) from None
            received = streamed.size
            digest_hex = streamed.digest
            os.replace(part, dest)
            fetched.path, fetched.size, fetched.sha256 = dest, received, digest_hex
            fetched.status = 200
            return fetched

    @contextmanager
    def _request(
        self, server: Server, url: str, headers: dict[str, str], retry_errors: bool = False
    ) -> Iterator[httpx.Response]:
        self.requests += 1
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                self._check_status(server, url, response, retry_errors)
                yield response
        except httpx.ProxyError as error:
            raise UpstreamError(
                f"proxy {self.config.proxy_display} refused {url}: {short_reason(error)}"
                " (check proxy_host, proxy_port, proxy_user, proxy_passwd)"
            ) from None
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise _ServerUnusable(f"cannot connect ({short_reason(error)})") from None
        except (httpx.TransportError, httpx.StreamError) as error:
            if retry_errors:
                raise _Retryable(f"{type(error).__name__}: {short_reason(error)}") from None
            raise _ServerUnusable(f"{type(error).__name__}: {short_reason(error)}") from None

    def _check_status(self, server: Server, url: str, response: httpx.Response, retry_errors: bool) -> None:
        status = response.status_code
        if status == 407:
            raise UpstreamError(
                f"proxy {self.config.proxy_display} answered 407 Proxy Authentication Required "
                f"for {url}: check proxy_user and proxy_passwd"
            )
        if status in (403, 429):
            delay = retry_after_seconds(response.headers.get("Retry-After"))
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

    def _fetched(self, response: httpx.Response, url: str, server: Server) -> Fetched:
        return Fetched(
            status=response.status_code,
            url=url,
            server=server,
            last_modified=parse_http_date(response.headers.get("Last-Modified")),
            etag=response.headers.get("ETag"),
            headers=dict(response.headers),
        )


class _Retryable(Exception):
    """A transient failure on a server that answered: retry there, resuming what we have."""


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def short_reason(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:200]
