"""The two TUF clients run on the same served tree: PUM's pure verifier (hosts) and python-tuf's ngclient
(sub-PUMs). Each keeps its own state directory, as a host and a sub would."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient import Updater
from tuf.ngclient.config import UpdaterConfig
from tuf.ngclient.fetcher import FetcherInterface

from pum.formats import FormatError
from pum.trust import TUF_DIR
from pum.trust.host import verified_targets

Targets = dict[str, tuple[int, str]]
_BASE = "http://pum.invalid/.pum/tuf/"


def tuf_files(docroot: Path) -> Path:
    return docroot / TUF_DIR


def pure_client(docroot: Path, root: Path, state: Path, now: dt.datetime | None = None) -> Targets:
    def fetch(name: str, max_length: int) -> bytes | None:
        path = tuf_files(docroot) / name
        if not path.is_file():
            return None
        data = path.read_bytes()
        if len(data) > max_length:
            raise FormatError(f"{name}: more than {max_length} bytes")
        return data

    found = verified_targets(fetch, str(root), str(state), now)
    return {path: (info.length, info.sha256) for path, info in found.items()}


class _DirFetcher(FetcherInterface):
    def __init__(self, docroot: Path) -> None:
        self.docroot = docroot

    def _fetch(self, url: str) -> Iterator[bytes]:
        path = tuf_files(self.docroot) / url.removeprefix(_BASE)
        if not path.is_file():
            raise DownloadHTTPError(f"{url}: not found", 404)
        return iter([path.read_bytes()])


def ngclient(docroot: Path, root: Path, state: Path) -> Targets:
    state.mkdir(parents=True, exist_ok=True)
    updater = Updater(
        str(state),
        _BASE,
        fetcher=_DirFetcher(docroot),
        config=UpdaterConfig(prefix_targets_with_hash=False),
        bootstrap=root.read_bytes(),
    )
    updater.refresh()
    targets = updater._trusted_set.targets.targets
    return {path: (info.length, info.hashes["sha256"]) for path, info in targets.items()}


class Verdict:
    """Both clients' answer on one tree: the same targets, or both refused (each with its reason)."""

    def __init__(self, docroot: Path, root: Path, states: Path) -> None:
        self.pure: Targets | Exception
        self.ng: Targets | Exception
        try:
            self.pure = pure_client(docroot, root, states / "pure")
        except (FormatError, OSError) as error:
            self.pure = error
        try:
            self.ng = ngclient(docroot, root, states / "ngclient")
        except Exception as error:  # noqa: BLE001 - every refusal of ngclient counts
            self.ng = error

    @property
    def accepted(self) -> Targets:
        assert not isinstance(self.pure, Exception), f"pure verifier refused: {self.pure}"
        assert not isinstance(self.ng, Exception), f"ngclient refused: {self.ng!r}"
        assert self.pure == self.ng
        return self.pure

    def refused(self) -> str:
        """Both refused: the pure verifier's reason (asserting ngclient refused too)."""
        assert isinstance(self.pure, Exception), f"pure verifier accepted: {self.pure}"
        assert isinstance(self.ng, Exception), f"ngclient accepted: {self.ng}"
        return str(self.pure)


def check(docroot: Path, root: Path, states: Path) -> Verdict:
    return Verdict(docroot, root, states)
