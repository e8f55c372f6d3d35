"""Every HTTP request PUM makes upstream: failover, proxy, TLS, timeouts, retries, resume, cool-down."""

from __future__ import annotations

import hashlib
import os
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, TypeVar

import httpx

from pum.config import Config, Server
from pum.errors import UpstreamError
from pum.formats.httpdate import http_date, parse_http_date
from pum.net.answers import Body, Downloaded, Missing, NotModified
from pum.net.cooldown import COOL_DOWN_FORBIDDEN, COOL_DOWN_TOO_MANY, CoolDowns, retry_after_seconds
from pum.runlog import RunLog
from pum.store.state import COOL_DOWNS

CHUNK = 1 << 20
_T = TypeVar("_T")

sleep = time.sleep  # patched out by tests


@dataclass(frozen=True)
class TransportSettings:
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
        )


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
        self._http: httpx.Client | None = None

    @property
    def _client(self) -> httpx.Client:
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
                # store is most of httpx's start-up) and fails closed if a redirect ever leads to https
                verify = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            self._http = httpx.Client(
                proxy=settings.proxy_url,
                verify=verify,
                timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
                # identity: the bytes we hash and store must be the file's own bytes
                headers={"User-Agent": settings.user_agent, "Accept-Encoding": "identity"},
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
        """A small GET held in memory (version file, CVD header, product list, manifest)."""
        extra = dict(headers or {})
        if byte_range:
            extra["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"

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
                body = bytearray()
                wanted = (byte_range[1] - byte_range[0] + 1) if byte_range else limit + 1
                for chunk in response.iter_bytes(65536):
                    body += chunk
                    if len(body) >= wanted:
                        break
                if not byte_range and len(body) > limit:
                    raise UpstreamError(f"{url}: larger than {limit} bytes, refused")
                self.bytes_received += len(body)
                return Body(**answer, data=bytes(body[:wanted]) if byte_range else bytes(body))

        return self._over_servers(relpath, attempt)

    def download(
        self, relpath: str, dest: Path, *, if_modified_since: float | None = None, etag: str | None = None
    ) -> Downloaded | NotModified | Missing:
        """Stream `relpath` to `dest` (through `dest.part`, resumed with Range when it exists).

        The sha256 is computed while streaming, so memory stays flat whatever the size.
        """
        part = dest.with_name(dest.name + ".part")
        dest.parent.mkdir(parents=True, exist_ok=True)

        def attempt(server: Server) -> Downloaded | NotModified | Missing:
            url = self.url_for(server, relpath)
            for attempt_number in range(self.settings.retries + 1):
                try:
                    return self._download_once(server, url, relpath, dest, part, if_modified_since, etag)
                except _Retryable as why:
                    if attempt_number == self.settings.retries:
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
    ) -> Downloaded | NotModified | Missing:
        headers: dict[str, str] = {}
        offset = part.stat().st_size if part.exists() else 0
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
            if response.status_code == 416 and offset:
                part.unlink()  # our partial file is not a prefix of theirs: start over
                raise _Retryable("resume refused (416), starting again")
            digest = hashlib.sha256()
            if response.status_code == 206 and offset and content_range_start(response) == offset:
                with open(part, "rb") as done:
                    for chunk in iter(lambda: done.read(CHUNK), b""):
                        digest.update(chunk)
                mode = "ab"
            elif response.status_code == 200:
                offset, mode = 0, "wb"
            elif response.status_code == 206:
                part.unlink(missing_ok=True)  # another range than the one asked for: start over
                raise _Retryable("the server answered another range than asked, starting again")
            else:
                raise UpstreamError(f"{url}: unexpected answer {response.status_code} to a download")
            total = _content_length(response)
            total = total + offset if total is not None else None
            received = offset
            try:
                with open(part, mode) as out:
                    for chunk in response.iter_raw():
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        self.bytes_received += len(chunk)
                        if self.progress:
                            self.progress(relpath, received, total)
                    out.flush()
                    os.fsync(out.fileno())
            except (httpx.TransportError, httpx.StreamError) as error:
                raise _Retryable(
                    f"interrupted after {received} bytes ({type(error).__name__}), resuming"
                ) from None
            if total is not None and received != total:
                raise _Retryable(f"short body: {received} of {total} bytes, resuming")
            os.replace(part, dest)
            return Downloaded(**answer, path=dest, size=received, sha256=digest.hexdigest())

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
                f"proxy {self.settings.proxy_display} refused {url}: {short_reason(error)}"
                " (check proxy_host, proxy_port, proxy_user, proxy_passwd)"
            ) from None
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise _ServerUnusable(f"cannot connect ({short_reason(error)})") from None
        except (httpx.TransportError, httpx.StreamError) as error:
            if retry_errors:
                raise _Retryable(f"{type(error).__name__}: {short_reason(error)}") from None
            raise _ServerUnusable(f"{type(error).__name__}: {short_reason(error)}") from None
        # every other way a request can fail is this URL's fault, not the network's: one line naming it
        except httpx.TooManyRedirects:
            raise UpstreamError(f"{url}: too many redirects; check the server's address") from None
        except httpx.DecodingError as error:
            raise UpstreamError(f"{url}: the answer cannot be decoded ({short_reason(error)})") from None
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            raise UpstreamError(
                f"{url}: the request failed ({type(error).__name__}: {short_reason(error)})"
            ) from None

    def _check_status(self, server: Server, url: str, response: httpx.Response, retry_errors: bool) -> None:
        status = response.status_code
        if status == 407:
            raise UpstreamError(
                f"proxy {self.settings.proxy_display} answered 407 Proxy Authentication Required "
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


class _AnswerFields(TypedDict):
    url: str
    server: Server
    last_modified: int | None
    etag: str | None
    headers: Mapping[str, str]


def _answer(response: httpx.Response, url: str, server: Server) -> _AnswerFields:
    return _AnswerFields(
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


def content_range_start(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Range", "")
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def short_reason(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:200]
