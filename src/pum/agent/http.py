"""proscanup's HTTP to its PUM: server failover, timeouts, resumed downloads checked against a list's md5.

Not `pum.net.transport.Transport`: that one carries upstream etiquette a client of its own PUM must not
have (403/429 put a server on a persisted 24-hour cool-down under the PUM's data_dir; it logs to the run
log and needs a pum.conf). A scanner host only needs "the first PUM that answers", a time limit on every
request, and resume.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from pum.config import Server
from pum.errors import UpstreamError, VerifyError
from pum.net.transport import content_range_start, short_reason

RESUME_ATTEMPTS = 3


class _Unusable(Exception):
    """This server cannot answer now: try the next one."""


class UpdateClient:
    def __init__(
        self,
        servers: tuple[Server, ...],
        protocol: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        user_agent: str,
    ) -> None:
        self.servers = servers
        self.protocol = protocol
        self.chosen: Server | None = None
        self._client = httpx.Client(
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            headers={"User-Agent": user_agent, "Accept-Encoding": "identity"},
            follow_redirects=True,
            trust_env=False,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> UpdateClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, relpath: str, server: Server | None = None) -> str:
        server = server or self.chosen or self.servers[0]
        return server.base_url(self.protocol) + relpath

    def _ordered(self) -> list[Server]:
        return ([self.chosen] if self.chosen else []) + [s for s in self.servers if s != self.chosen]

    def get_bytes(self, relpath: str, limit: int = 4 << 20) -> bytes:
        """A small file (a product list) in memory, from the first server that has it."""
        failures = []
        for server in self._ordered():
            url = self.url(relpath, server)
            try:
                with self._get(url, {}) as response:
                    if response.status_code != 200:
                        raise _Unusable(f"answered {response.status_code}")
                    body = bytearray()
                    for chunk in response.iter_bytes(65536):
                        body += chunk
                        if len(body) > limit:
                            raise UpstreamError(f"{url}: larger than {limit} bytes, refused")
            except _Unusable as why:
                failures.append(f"{url}: {why}")
                continue
            self.chosen = server
            return bytes(body)
        raise UpstreamError("cannot get " + relpath + ": " + "; ".join(failures))

    def download(
        self, relpath: str, dest: Path, md5: str, progress: Callable[[int, int | None], None] | None = None
    ) -> Path:
        """`relpath` to `dest` through `dest.part` (resumed with Range when present); `dest` appears only
        when its md5 is `md5`. A resumed file that fails the md5 is fetched once more from its start.
        `progress(bytes so far, total or None)` is called after each chunk written (it may sleep: MaxRate)."""
        part = dest.with_name(dest.name + ".part")
        dest.parent.mkdir(parents=True, exist_ok=True)
        failures = []
        for server in self._ordered():
            url = self.url(relpath, server)
            try:
                digest, resumed = self._download_from(url, part, progress)
                if digest != md5 and resumed:
                    part.unlink()
                    digest, resumed = self._download_from(url, part, progress)
            except _Unusable as why:
                failures.append(f"{url}: {why}")
                continue
            self.chosen = server
            if digest != md5:
                part.unlink(missing_ok=True)
                raise VerifyError(f"{url}: md5 {digest}, the product list says {md5}: refused")
            os.replace(part, dest)
            return dest
        raise UpstreamError("cannot download " + relpath + ": " + "; ".join(failures))

    def _download_from(
        self, url: str, part: Path, progress: Callable[[int, int | None], None] | None = None
    ) -> tuple[str, bool]:
        """Stream to `part`, resuming what is there; the md5 of the whole file, and whether it resumed."""
        resumed = False
        for _attempt in range(RESUME_ATTEMPTS):
            offset = part.stat().st_size if part.exists() else 0
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            digest = hashlib.md5(usedforsecurity=False)
            try:
                with self._get(url, headers) as response:
                    if response.status_code == 416 and offset:
                        part.unlink()
                        continue
                    if response.status_code == 206 and offset and content_range_start(response) != offset:
                        part.unlink()  # not the continuation we asked for: start again
                        continue
                    if response.status_code == 206 and offset:
                        resumed = True
                        with open(part, "rb") as done:
                            for chunk in iter(lambda: done.read(1 << 20), b""):
                                digest.update(chunk)
                        mode = "ab"
                    elif response.status_code == 200:
                        mode = "wb"
                    else:
                        raise _Unusable(f"answered {response.status_code}")
                    expected = response.headers.get("Content-Length")
                    start = offset if mode == "ab" else 0
                    total = start + int(expected) if expected is not None and expected.isdigit() else None
                    received = 0
                    with open(part, mode) as out:
                        for chunk in response.iter_raw():
                            out.write(chunk)
                            digest.update(chunk)
                            received += len(chunk)
                            if progress is not None:
                                progress(start + received, total)
                        out.flush()
                        os.fsync(out.fileno())
                    if expected is not None and expected.isdigit() and received != int(expected):
                        continue
            except _Interrupted:
                continue
            return digest.hexdigest(), resumed
        raise _Unusable(f"interrupted {RESUME_ATTEMPTS} times")

    @contextmanager
    def _get(self, url: str, headers: dict[str, str]) -> Iterator[httpx.Response]:
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                if response.status_code >= 500:
                    raise _Unusable(f"server error {response.status_code}")
                yield response
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise _Unusable(f"cannot connect ({short_reason(error)})") from None
        except (httpx.TransportError, httpx.StreamError) as error:
            raise _Interrupted(short_reason(error)) from None


class _Interrupted(_Unusable):
    """The body stopped coming: resume from what we have."""
