"""A sub-PUM checks its upper's release with python-tuf's client (`tuf.ngclient`) against the root pinned
in pum.conf (`trusted_root=`) before staging anything, and carries the upper's signed metadata unchanged,
so that hosts below verify end to end against the main's root (the sub holds no keys).

The trusted metadata is kept in `state/tuf-upper/` between runs: that is what refuses a replayed older
release (rollback) as well as expired metadata (freeze).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from pum.errors import ConfigError, VerifyError
from pum.formats.manifest import FileRecord
from pum.net.answers import Body, NotModified
from pum.trust import TUF_DIR

if TYPE_CHECKING:
    from tuf.ngclient import Updater
    from tuf.ngclient.fetcher import FetcherInterface

    from pum.net.transport import Transport
    from pum.sync import SyncContext

STATE_DIR = "tuf-upper"
# ngclient asks for metadata by URL; these stand for the upper's /.pum/tuf/, whichever server answers
_BASE = "pum-upper://upper/" + TUF_DIR + "/"


def refuse_unsigned_crawl(ctx: SyncContext, url: str) -> None:
    """An upper without a manifest is no PUM, so nothing it serves is signed."""
    if ctx.config.trusted_root is not None:
        raise VerifyError(
            f"{url}: not found, and copying by index pages carries no signed metadata; trusted_root is "
            "set, so only a signed PUM release is copied"
        )


def served_unchecked(ctx: SyncContext) -> bool:
    """trusted_root is set, but what we serve carries no signed metadata (copied before it was set)."""
    current = ctx.store.current_dir()
    return (
        ctx.config.trusted_root is not None
        and current is not None
        and not (current / TUF_DIR / "timestamp.json").exists()
    )


def check_upper_release(
    ctx: SyncContext,
    transport: Transport,
    manifest_url: str,
    files: Mapping[str, FileRecord],
    upper_files: Mapping[str, FileRecord],
    recheck: Callable[[], None],
) -> None:
    """Refuse the upper's release unless its signed targets name every file to copy with the manifest's
    sha256 and length; then stage its metadata. `recheck` raises when the upper published meanwhile.

    Without trusted_root the upper is not checked and no metadata is carried (hosts pinned to the main's
    root then refuse this sub's releases: the run log says so)."""
    if ctx.config.trusted_root is None:
        ctx.log.line("trusted_root is not set: the upper's signed metadata is neither checked nor carried")
        return
    where = manifest_url.removesuffix("manifest.json") + "tuf/"
    check_signed_release(ctx, _transport_fetcher(transport), where, manifest_url, files, upper_files, recheck)


def check_bundle_release(
    ctx: SyncContext,
    where: str,
    carried: Callable[[str], bytes | None],
    files: Mapping[str, FileRecord],
    upper_files: Mapping[str, FileRecord],
) -> None:
    """A bundle's release (sync/bundle.py), checked as an upper's: `carried(name)` gives the bundle's
    `.pum/tuf/<name>`, else None; metadata the bundle did not carry (root versions we hold) comes from
    the served release. Without trusted_root nothing is checked or carried (logged)."""
    if ctx.config.trusted_root is None:
        ctx.log.line("trusted_root is not set: the bundle's signed metadata is neither checked nor carried")
        return
    served = ctx.staging.current_dir

    def fetch(name: str) -> bytes | None:
        data = carried(name)
        if data is None and served is not None and "/" not in name:
            try:
                data = (served / TUF_DIR / name).read_bytes()
            except OSError:
                data = None
        return data

    check_signed_release(ctx, _bytes_fetcher(fetch), f"{where}: {TUF_DIR}/", where, files, upper_files, None)


def check_signed_release(
    ctx: SyncContext,
    fetcher: FetcherInterface,
    where: str,
    refused_where: str,
    files: Mapping[str, FileRecord],
    upper_files: Mapping[str, FileRecord],
    recheck: Callable[[], None] | None,
) -> None:
    """Every file to copy must be a signed target with the manifest's sha256 and length; then the
    verified metadata is staged as is."""
    updater = _refreshed_updater(ctx, fetcher, where)
    wrong = []
    for relpath, record in sorted(files.items()):
        info = updater.get_targetinfo(relpath)
        if info is None:
            wrong.append(f"{relpath}: not in the signed targets")
        elif info.length != record.size or info.hashes.get("sha256") != record.sha256:
            wrong.append(
                f"{relpath}: manifest sha256 {record.sha256} ({record.size} bytes) differs from the signed "
                f"{info.hashes.get('sha256')} ({info.length} bytes)"
            )
    if wrong:
        if recheck is not None:
            recheck()
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        raise VerifyError(f"{refused_where}: refused: {wrong[0]}{more}; the last good release stays served")
    _stage_metadata(ctx, upper_files)


def _refreshed_updater(ctx: SyncContext, fetcher: FetcherInterface, where: str) -> Updater:
    # imported here: a run answered 304 by the upper never needs python-tuf (about 0.2 s to import)
    from tuf.ngclient import Updater
    from tuf.ngclient.config import UpdaterConfig

    assert ctx.config.trusted_root is not None
    try:
        pinned = ctx.config.trusted_root.read_bytes()
    except OSError as error:
        raise ConfigError(f"trusted_root {ctx.config.trusted_root}: {error.strerror}") from None
    state = ctx.store.state / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    updater = Updater(
        str(state),
        _BASE,
        fetcher=fetcher,
        config=UpdaterConfig(prefix_targets_with_hash=False),
        bootstrap=pinned,
    )
    try:
        updater.refresh()
    except Exception as error:  # noqa: BLE001 - ngclient's RepositoryError/DownloadError and their kin
        raise VerifyError(
            f"{where}: refused by the signed metadata check: {type(error).__name__}: {error}; "
            "the last good release stays served"
        ) from None
    return updater


def _stage_metadata(ctx: SyncContext, upper_files: Mapping[str, FileRecord]) -> None:
    """The metadata ngclient verified and kept in `state/tuf-upper/`, byte for byte, under the names the
    upper serves it at; with the upper's mtimes, so that copying the same upper release builds the same
    tree."""
    from pum.formats.tuf_metadata import parse_metadata  # here: every mirror run imports this module
    from pum.trust.keys import root_versions

    staging = ctx.staging
    for relpath in [path for path in staging.records if path.startswith(TUF_DIR + "/")]:
        staging.remove(relpath)
    state = ctx.store.state / STATE_DIR
    kept = {
        role: (state / f"{role}.json").read_bytes() for role in ("root", "timestamp", "snapshot", "targets")
    }
    version = {role: parse_metadata(data, role).version for role, data in kept.items()}
    files = {
        "timestamp.json": kept["timestamp"],
        f"{version['snapshot']}.snapshot.json": kept["snapshot"],
        f"{version['targets']}.targets.json": kept["targets"],
    }
    for number, path in root_versions(state / "root_history"):
        if number <= version["root"]:  # higher ones would be left from a root pinned before
            files[f"{number}.root.json"] = path.read_bytes()
    for name, data in files.items():
        relpath = f"{TUF_DIR}/{name}"
        record = upper_files.get(relpath)
        staging.write_bytes(relpath, data, mtime=record.mtime if record else None)


def _bytes_fetcher(fetch: Callable[[str], bytes | None]) -> FetcherInterface:
    """ngclient's downloads from files at hand (a bundle): None is a 404."""
    from tuf.api.exceptions import DownloadHTTPError
    from tuf.ngclient.fetcher import FetcherInterface

    class BytesFetcher(FetcherInterface):
        def _fetch(self, url: str) -> Iterator[bytes]:
            data = fetch(url[len(_BASE) :]) if url.startswith(_BASE) else None
            if data is None:
                raise DownloadHTTPError(f"{url}: not carried", 404)
            return iter([data])

    return BytesFetcher()


def _transport_fetcher(transport: Transport) -> FetcherInterface:
    """ngclient's downloads over our Transport (failover, proxy, TLS and timeouts of pum.conf)."""
    from tuf.api.exceptions import DownloadHTTPError
    from tuf.ngclient.fetcher import FetcherInterface

    class TransportFetcher(FetcherInterface):
        def _fetch(self, url: str) -> Iterator[bytes]:
            if not url.startswith(_BASE):
                raise DownloadHTTPError(f"{url}: outside the upper's {TUF_DIR}/", 404)
            answer = transport.get_bytes(TUF_DIR + "/" + url[len(_BASE) :])
            if not isinstance(answer, Body):
                status = 304 if isinstance(answer, NotModified) else 404
                raise DownloadHTTPError(f"{answer.url}: answered {status}", status)
            return iter([answer.data])

    return TransportFetcher()
