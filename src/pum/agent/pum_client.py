"""proscanup's HTTP to its PUM: server failover, timeouts, bounded bodies, resumed downloads checked
against a list's md5. Standard library only (`http.client`), so it runs on the hosts' system Pythons.

Not the server's Transport: that one carries upstream etiquette a client of its own PUM must not have
(403/429 cool-downs persisted under a data_dir, the run log, a pum.conf). A scanner host needs "the first
PUM that answers", a time limit on every request and on every file, and resume.
"""

import contextlib
import http.client
import os
import socket
import ssl
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple
from urllib.parse import quote, unquote, urljoin, urlsplit

from pum.common.download import (
    PartAnswer,
    StartAgain,
    TooLarge,
    UnexpectedAnswer,
    part_offset,
    stream_to_part,
)
from pum.common.hashing import new_md5
from pum.common.servers import Server
from pum.errors import UpstreamError, VerifyError

RESUME_ATTEMPTS = 3
MAX_REDIRECTS = 5
LIST_LIMIT = 4 << 20  # bytes: a product list larger than this is refused
CHUNK = 65536
REDIRECTS = (301, 302, 303, 307, 308)

Progress = Callable[[str, int, Optional[int]], None]  # (file name, bytes so far, total or None)
OnBytes = Callable[[int, Optional[int]], None]  # one download's (bytes so far, total or None): MaxRate
Failover = Callable[[str, str, str], None]  # (URL that failed, why, the next server's URL)


class _Unusable(Exception):
    """This server cannot answer now: try the next one."""


class _Missing(_Unusable):
    """This server answered 404."""


class _Interrupted(_Unusable):
    """The body stopped coming: resume from what we have."""


class _Response:
    """One answer, its connection kept until `close()`."""

    def __init__(self, connection: http.client.HTTPConnection, raw: http.client.HTTPResponse, url: str):
        self.connection, self.raw, self.url = connection, raw, url
        self.status = raw.status

    def header(self, name: str) -> Optional[str]:
        return self.raw.getheader(name)

    def close(self) -> None:
        self.raw.close()
        self.connection.close()


class UpdateClient:
    def __init__(
        self,
        servers: Tuple[Server, ...],
        protocol: str,
        connect_timeout: float,
        read_timeout: float,
        user_agent: str,
        ca_file: Optional[Path] = None,
        download_deadline: float = 3600.0,
    ) -> None:
        self.servers = servers
        self.protocol = protocol
        self.chosen: Optional[Server] = None
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.download_deadline = download_deadline
        self.headers = {"User-Agent": user_agent, "Accept-Encoding": "identity"}
        self.progress: Optional[Progress] = None
        # TrustedRoot: the PUM's signed targets (pum.trust.host); every file is checked against them
        self.targets: Optional[Dict[str, Any]] = None
        self._tls: Optional[ssl.SSLContext] = None
        if protocol == "https" or any(s.scheme == "https" for s in servers):
            self._tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)

    def close(self) -> None:
        """Nothing to release: every request has its own connection, closed with its answer."""

    def __enter__(self) -> "UpdateClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, relpath: str, server: Optional[Server] = None) -> str:
        server = server or self.chosen or self.servers[0]
        # list paths may hold blanks, '#', '?' or non-ASCII: percent-encoded, as every web server expects
        return server.base_url(self.protocol) + quote(relpath, safe="/")

    def _ordered(self) -> List[Server]:
        return ([self.chosen] if self.chosen else []) + [s for s in self.servers if s != self.chosen]

    def get_bytes(
        self, relpath: str, limit: int = LIST_LIMIT, query: str = "", on_failover: Optional[Failover] = None
    ) -> bytes:
        """A small file (a product list) in memory, from the first server that has it. `query` (without
        `?`) is sent but not shown: it is the fleet report, for the PUM's access log."""
        failures = []
        servers = self._ordered()
        for index, server in enumerate(servers):
            url = self.url(relpath, server)
            try:
                body = self._get_small(url + ("?" + query if query else ""), url, limit)
            except _Unusable as why:
                failures.append(f"{url}: {why}")
                if on_failover is not None and index + 1 < len(servers):
                    on_failover(url, str(why), self.url(relpath, servers[index + 1]))
                continue
            self.chosen = server
            return body
        raise UpstreamError("cannot get " + relpath + ": " + "; ".join(failures))

    def get_optional(self, relpath: str, limit: int = LIST_LIMIT, redirects: bool = True) -> Optional[bytes]:
        """A small file that may not be served (a rollout document, signed metadata): None when every
        server answered 404; any other failure (a refused body, no server answering) is an UpstreamError.
        `redirects=False`: a redirect is a failure (signed metadata comes from the PUM itself)."""
        failures, missing = [], 0
        for server in self._ordered():
            url = self.url(relpath, server)
            try:
                body = self._get_small(url, url, limit, redirects)
            except _Unusable as why:
                missing += isinstance(why, _Missing)
                failures.append(f"{url}: {why}")
                continue
            self.chosen = server
            return body
        if missing == len(failures):
            return None
        raise UpstreamError("cannot get " + relpath + ": " + "; ".join(failures))

    def _get_small(self, url: str, shown: str, limit: int, redirects: bool = True) -> bytes:
        response = self._get(url, {}, MAX_REDIRECTS if redirects else 0)
        try:
            if response.status == 404:
                raise _Missing("answered 404")
            if response.status != 200:
                raise _Unusable(f"answered {response.status}")
            body = bytearray()
            for chunk in self._chunks(response, time.monotonic() + self.download_deadline):
                body += chunk
                if len(body) > limit:
                    raise UpstreamError(f"{shown}: larger than {limit} bytes, refused")
            return bytes(body)
        finally:
            response.close()

    def download(
        self,
        relpath: str,
        dest: Path,
        md5: str,
        progress: Optional[OnBytes] = None,
    ) -> Path:
        """`relpath` to `dest` through `dest.part` (resumed with Range when present); `dest` appears only
        when its md5 is `md5`. A resumed file that fails the md5 is fetched once more from its start.
        `progress(bytes so far, total or None)` is called after each chunk written (it may sleep: MaxRate)."""
        part = dest.with_name(dest.name + ".part")
        dest.parent.mkdir(parents=True, exist_ok=True)
        signed = self.targets.get(relpath) if self.targets is not None else None
        ceiling = signed.length if signed is not None else None
        failures = []
        for server in self._ordered():
            url = self.url(relpath, server)
            try:
                digest, resumed = self._download_from(url, part, progress, ceiling)
                if digest != md5 and resumed:
                    os.unlink(str(part))
                    digest, resumed = self._download_from(url, part, progress, ceiling)
            except _Unusable as why:
                failures.append(f"{url}: {why}")
                continue
            self.chosen = server
            if digest != md5:
                _unlink(part)
                raise VerifyError(f"{url}: md5 {digest}, the product list says {md5}: refused")
            try:
                self.check_signed(relpath, part, url)
            except VerifyError:
                _unlink(part)
                raise
            os.replace(str(part), str(dest))
            return dest
        raise UpstreamError("cannot download " + relpath + ": " + "; ".join(failures))

    def check_signed(self, relpath: str, path: Path, shown: str) -> None:
        """With TrustedRoot: `path` must be the signed target `relpath` (sha256 and length), else
        VerifyError. Without it, nothing to check (the list's md5 is all there is)."""
        if self.targets is not None:
            from pum.trust.host import check_file

            self._signed(check_file, relpath, str(path), shown)

    def check_signed_data(self, relpath: str, data: bytes, shown: str) -> None:
        """`check_signed` for a file in memory (the product list, before it is parsed)."""
        if self.targets is not None:
            from pum.trust.host import check_data

            self._signed(check_data, relpath, data, shown)

    def _signed(self, check: Callable[..., None], relpath: str, what: Any, shown: str) -> None:
        from pum.formats import FormatError

        try:
            check(self.targets, relpath, what)
        except FormatError as error:
            raise VerifyError(f"{shown}: {error}: refused (TrustedRoot)") from None

    def _download_from(
        self, url: str, part: Path, progress: Optional[OnBytes] = None, ceiling: Optional[int] = None
    ) -> Tuple[str, bool]:
        """Stream to `part`, resuming what is there; the md5 of the whole file, and whether it resumed.
        `ceiling`: the signed length (TrustedRoot); a longer file is refused as it comes, not after."""
        deadline = time.monotonic() + self.download_deadline
        name = unquote(url.rpartition("/")[2])
        for _attempt in range(RESUME_ATTEMPTS):
            offset = part_offset(part)
            try:
                response = self._get(url, {"Range": f"bytes={offset}-"} if offset else {})
            except _Interrupted:
                continue
            try:
                answer = PartAnswer(
                    response.status, response.header("Content-Range"), response.header("Content-Length")
                )
                if answer.status not in (200, 206, 416):
                    raise _Unusable(f"answered {answer.status}")
                streamed = stream_to_part(
                    part,
                    offset,
                    answer,
                    self._chunks(response, deadline),
                    new_md5,
                    self._on_chunk(name, answer, progress),
                    ceiling,
                )
            except (StartAgain, _Interrupted):
                continue
            except TooLarge as why:
                raise VerifyError(f"{url}: {why} (the signed length): refused (TrustedRoot)") from None
            except UnexpectedAnswer as why:
                raise _Unusable(str(why)) from None
            finally:
                response.close()
            return streamed.digest, streamed.resumed
        raise _Unusable(f"interrupted {RESUME_ATTEMPTS} times")

    def _on_chunk(
        self, name: str, answer: PartAnswer, progress: Optional[OnBytes]
    ) -> Optional[Callable[[int, int], None]]:
        shown = self.progress
        if shown is None and progress is None:
            return None
        size = answer.content_range if answer.status == 206 else answer.content_length
        size = (size or "").rpartition("/")[2]
        total = int(size) if size.isdigit() and len(size) <= 18 else None

        def on_chunk(_size: int, received: int) -> None:
            if shown is not None:
                shown(name, received, total)
            if progress is not None:
                progress(received, total)

        return on_chunk

    def _chunks(self, response: _Response, deadline: float) -> Iterator[bytes]:
        while True:
            if time.monotonic() > deadline:
                raise _Unusable(f"took longer than DownloadDeadline={self.download_deadline:g}s")
            try:
                chunk = response.raw.read(CHUNK)
            except (OSError, http.client.HTTPException) as error:
                raise _Interrupted(_reason(error)) from None
            if not chunk:
                return
            yield chunk

    def _get(self, url: str, headers: Dict[str, str], max_redirects: int = MAX_REDIRECTS) -> _Response:
        """GET `url`, following redirects on the same server only; 5xx and connection errors: _Unusable."""
        for _hop in range(max_redirects + 1):
            response = self._request(url, headers)
            if response.status not in REDIRECTS:
                if response.status >= 500:
                    response.close()
                    raise _Unusable(f"server error {response.status}")
                encoding = (response.header("Content-Encoding") or "identity").strip().lower()
                if encoding != "identity":
                    response.close()
                    raise _Unusable(
                        f"answered with Content-Encoding {encoding[:40]!r}; proscanup asks for identity"
                    )
                return response
            location = response.header("Location") or ""
            response.close()
            target = urljoin(url, location)
            if _origin(target) != _origin(url):
                raise _Unusable(f"redirected to another server ({target[:200]}): refused")
            url = target
        raise _Unusable(f"more than {max_redirects} redirects" if max_redirects else "redirected: refused")

    def _request(self, url: str, headers: Dict[str, str]) -> _Response:
        parts = urlsplit(url)
        host = parts.hostname or ""
        connection: Optional[http.client.HTTPConnection] = None
        try:
            if parts.scheme == "https":
                connection = http.client.HTTPSConnection(
                    host, parts.port, timeout=self.connect_timeout, context=self._tls
                )
            else:
                connection = http.client.HTTPConnection(host, parts.port, timeout=self.connect_timeout)
            connection.connect()
        except (OSError, http.client.HTTPException) as error:
            if connection is not None:
                connection.close()
            raise _Unusable(f"cannot connect ({_reason(error)})") from None
        try:
            if connection.sock is not None:
                connection.sock.settimeout(self.read_timeout)
            target = parts.path + ("?" + parts.query if parts.query else "")
            connection.request("GET", target or "/", headers=dict(self.headers, **headers))
            return _Response(connection, connection.getresponse(), url)
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise _Interrupted(_reason(error)) from None


def _origin(url: str) -> Tuple[str, str, Optional[int]]:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def _reason(error: BaseException) -> str:
    if isinstance(error, socket.timeout):
        return "timed out"
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:200]


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(str(path))
