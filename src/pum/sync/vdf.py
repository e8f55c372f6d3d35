"""Server mode, virus databases: learn versions, fetch missing CDIFFs and new CVDs, verify, stage."""

from __future__ import annotations

import functools
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from pum.errors import PumError, UpstreamError, VerifyError
from pum.formats import FormatError
from pum.formats.cdiff import verify_cdiff
from pum.formats.cvd import CvdHeader, parse_cvd_header
from pum.formats.version_record import VersionRecord, parse_version_record
from pum.net.answers import Missing, NotModified
from pum.sync import SyncContext
from pum.sync.fetch import Held, accepted, discard, download_kept, verified, verified_cvd

if TYPE_CHECKING:
    from pum.net.transport import Transport

VERSION_FILE = "dns.txt"
_CDIFF_NAME = re.compile(r"^(?P<db>[a-z0-9_]+)-(?P<n>\d+)\.cdiff(?P<sign>\.sign)?$")
_CVD_SIGN_NAME = re.compile(r"^(?P<db>[a-z0-9_]+)-(?P<n>\d+)\.cvd\.sign$")


class UpstreamVersions(NamedTuple):
    record: VersionRecord | None
    versions: dict[str, int]


class VdfSource:
    def __init__(self) -> None:
        # `pum repair`: served files changed by hand with no intact copy kept; fetched and verified again
        self.refetch: frozenset[str] = frozenset()

    def sync(self, ctx: SyncContext) -> None:
        staging = ctx.staging
        upstream = learn_versions(ctx)
        staging.source = "server"
        for db in ctx.config.databases:
            # what the staging tree holds: the served release, less what `pum repair` found changed
            old = served_version(staging.dir, db)
            current = upstream.versions[db]
            ctx.log.line(f"{db} old: {old if old is not None else '-'} current: {current}")
            if old is not None and current < old:
                if not ctx.allow_downgrade:
                    ctx.log.line(f"{db}: upstream is behind ({current} < {old}), keeping {old}")
                    continue
                ctx.log.line(
                    f"{db}: upstream is behind ({current} < {old}), taking {current} (--allow-downgrade)"
                )
            if current != old:
                fetch_database(ctx, ctx.transport(), db, old, current)
        for name in sorted(self.refetch):  # a patch before its .sign, which is checked against it
            if not staging.has(name):
                fetch_again(ctx, ctx.transport(), name)
        drop_expired_cdiffs(ctx)
        write_version_file(ctx, upstream)


def fetch_again(ctx: SyncContext, transport: Transport, name: str) -> None:
    """A patch or signature of the served release, fetched and verified again (`pum repair`); a CVD and
    dns.txt need nothing here: a CVD not held is fetched as on a first run, dns.txt is written anew."""
    if name.endswith(".sign"):
        sign = download_kept(ctx, transport, name)
        if sign is not None:  # a 404 is normal for older mirrors
            _stage_sign(ctx, name, sign)
        return
    match = _CDIFF_NAME.match(name)
    if match is None:
        return
    fetched = download_kept(ctx, transport, name)
    if fetched is None:
        ctx.log.line(f"{name}: not on update server; clients below it download the whole {match['db']}.cvd")
        return
    verified(fetched, functools.partial(verify_cdiff, expected_version=int(match["n"])))
    _stage(ctx, name, fetched)


def learn_versions(ctx: SyncContext) -> UpstreamVersions:
    """DNS TXT first (when dns_resolve=yes), then the version file, then 512-byte CVD header probes."""
    config, log = ctx.config, ctx.log
    record: VersionRecord | None = None
    if config.dns_resolve:
        try:
            from pum.net.dns import lookup_txt  # sockets only when DNS is asked

            text = lookup_txt(config.dns_record, config.nameservers, config.connect_timeout)
            record = _parse_record(text, f"DNS TXT {config.dns_record}")
        except PumError as error:
            log.line(f"{error}: trying the version file {VERSION_FILE}")
    if record is None:
        record = fetch_version_file(ctx, ctx.transport())
    versions: dict[str, int] = {}
    if record is not None:
        log.line(f"Version: {record.format()}")
        carried = record.database_versions()
        log.line("FIELDS " + " ".join(f"{db}={v}" for db, v in carried.items()))
        versions = {db: carried[db] for db in config.databases if db in carried}
    for db in config.databases:
        if db not in versions:
            versions[db] = probe_header(ctx.transport(), db).version
            log.line(f"{db}: version {versions[db]} read from the {db}.cvd header")
    return UpstreamVersions(record, versions)


def fetch_version_file(ctx: SyncContext, transport: Transport) -> VersionRecord | None:
    try:
        answer = transport.get_bytes(VERSION_FILE, limit=4096)
    except UpstreamError as error:
        ctx.log.line(f"{error}: reading CVD headers")
        return None
    if isinstance(answer, Missing | NotModified):
        ctx.log.line(
            f"no version file {VERSION_FILE} on update server ({_status(answer)}): reading CVD headers"
        )
        return None
    try:
        return _parse_record(answer.data.decode("ascii", errors="replace"), answer.url)
    except VerifyError as error:
        ctx.log.line(f"{error}: reading CVD headers")
        return None


def _parse_record(text: str, where: str) -> VersionRecord:
    try:
        return parse_version_record(text)
    except FormatError as error:
        raise VerifyError(f"{where}: not a version record: {error}") from None


def probe_header(transport: Transport, db: str) -> CvdHeader:
    # freshclam does the same 512-byte read for DatabaseMirror without DNS (libfreshclam.c remote_cvdhead)
    answer = transport.get_bytes(f"{db}.cvd", byte_range=(0, 511))
    if isinstance(answer, Missing | NotModified):
        raise UpstreamError(f"{answer.url}: answered {_status(answer)}, cannot learn the version of {db}")
    try:
        return parse_cvd_header(answer.data)
    except FormatError as error:
        raise VerifyError(f"{answer.url}: bad CVD header: {error}") from None


def _status(answer: Missing | NotModified) -> int:
    return 404 if isinstance(answer, Missing) else 304


def served_header(release_dir: Path | None, db: str) -> CvdHeader | None:
    if release_dir is None:
        return None
    try:
        with open(release_dir / f"{db}.cvd", "rb") as stream:
            return parse_cvd_header(stream.read(512))
    except (FileNotFoundError, FormatError):
        return None


def served_version(release_dir: Path | None, db: str) -> int | None:
    header = served_header(release_dir, db)
    return header.version if header else None


def fetch_database(ctx: SyncContext, transport: Transport, db: str, old: int | None, current: int) -> None:
    """The new CVD first, then its patches from the newest down. The CVD's own signed header confirms the
    version before any patch is asked for, so a forged version record (daily=1000000000) costs one refused
    download, not a request per missing number."""
    fetch_cvd(ctx, transport, db, current)
    fetch_cdiffs(ctx, transport, db, old, current)


def fetch_cvd(ctx: SyncContext, transport: Transport, db: str, current: int) -> None:
    """The CVD and its `.sign` at once (one request more than the CVD alone when the version record is
    forged); the `.sign` is checked only after the CVD it signs is verified and staged."""
    staging = ctx.staging
    name, sign_name = f"{db}.cvd", f"{db}-{current}.cvd.sign"
    # kept under its version: a CVD left by a failed run is reused only for the same version
    jobs = [
        functools.partial(_download_kept_job, ctx, name, f"{db}-{current}.cvd"),
        functools.partial(_download_kept_job, ctx, sign_name, None),
    ]
    from pum.sync.parallel import fetch_in_parallel  # threads: a run with nothing new never imports them

    fetched, sign = fetch_in_parallel(ctx, transport, jobs)
    if fetched is None:
        raise UpstreamError(
            f"{transport.url_for(transport.chosen or transport.servers[0], name)}: not found "
            f"(version record says {db} is at {current})"
        )
    header = verified_cvd(fetched, db)
    if header.version != current:
        discard(fetched)
        raise VerifyError(
            f"{fetched.where}: holds version {header.version}, expected {current}: "
            "the update server is not in step; the next run tries again"
        )
    # CVD mtime = build time: freshclam's If-Modified-Since is the build time of its copy (libfreshclam.c)
    staging.put(name, fetched.path, mtime=header.build_time, sha256=fetched.sha256, keep_source=True)
    ctx.log.line(f"download {name} (version {current}, {fetched.size} bytes)")
    for relpath in list(staging.paths()):
        match = _CVD_SIGN_NAME.match(relpath)
        if match and match["db"] == db and int(match["n"]) != current:
            staging.remove(relpath)
    # detached signatures (ClamAV >= 1.5) where upstream has them; a 404 is normal for older mirrors
    if sign is not None:
        _stage_sign(ctx, sign_name, sign)


def fetch_cdiffs(ctx: SyncContext, transport: Transport, db: str, old: int | None, current: int) -> None:
    """Patches `current` down to `old + 1`, at most `max_cdiffs`. A first run (nothing served: a new PUM,
    or data_dir reset) fetches history too, at most `initial_cdiffs` and only what `retention_period`
    keeps, so that clients already behind get patches instead of the whole CVD. The walk stops at the
    first patch upstream lacks: freshclam walks patches one by one, so none below a gap is ever used."""
    from pum.sync.parallel import fetch_in_parallel  # threads: a run with nothing new never imports them

    config, staging = ctx.config, ctx.staging
    limit = config.max_cdiffs if old is not None else config.initial_cdiffs
    lowest = max((old or 0) + 1, current - limit + 1, 1)
    oldest_kept = time.time() - config.retention_period * 86400
    numbers = [n for n in range(current, lowest - 1, -1) if not staging.has(f"{db}-{n}.cdiff")]
    # every patch and its `.sign` asked for in one stream from the newest down, `max_parallel` at a time
    # (fetch_in_parallel's sliding window): each is checked and staged in the walk's order as it arrives,
    # while the next ones download, so the checks' CPU overlaps the network; a gap stops the walk with
    # at most the window in flight, and what was not yet asked for is never asked
    jobs = [
        functools.partial(_download_kept_job, ctx, f"{db}-{number}.cdiff{suffix}", None)
        for number in numbers
        for suffix in ("", ".sign")
    ]
    results = fetch_in_parallel(ctx, transport, jobs)
    try:
        for number, fetched, sign in zip(numbers, results, results, strict=True):
            name = f"{db}-{number}.cdiff"
            if fetched is None:
                if old is not None:
                    ctx.log.line(
                        f"{name}: not on update server; clients below it download the whole {db}.cvd"
                    )
                return
            verified(fetched, functools.partial(verify_cdiff, expected_version=number))
            _stage(ctx, name, fetched)
            if sign is not None:
                _stage_sign(ctx, f"{name}.sign", sign)
            if old is None and staging.records[name].mtime < oldest_kept:
                return  # older patches are past retention_period too
    finally:
        close = getattr(results, "close", None)  # a generator: cancels the downloads not yet started
        if close is not None:
            close()
    if lowest > (old or 0) + 1:
        what = "max_cdiffs" if old is not None else "initial_cdiffs"
        ctx.log.line(
            f"{db}: patches fetched down to {lowest} ({what}={limit}); clients further behind download "
            f"the whole {db}.cvd"
        )


def _download_kept_job(ctx: SyncContext, name: str, kept_as: str | None, transport: Transport) -> Held | None:
    """`download_kept` as a worker's job: the file in the download area, None where upstream lacks it."""
    return download_kept(ctx, transport, name, kept_as=kept_as)


def _stage_sign(ctx: SyncContext, name: str, fetched: Held) -> None:
    """Checked against the file it signs (staged before it) and ClamAV's pinned roots."""
    accepted(ctx, fetched, name)
    _stage(ctx, name, fetched)


def _stage(ctx: SyncContext, name: str, fetched: Held) -> None:
    """A verified download into the release, dated as upstream dates it (retention counts from there)."""
    mtime = fetched.last_modified or time.time()
    ctx.staging.put(name, fetched.path, mtime=mtime, sha256=fetched.sha256, keep_source=True)
    ctx.log.line(f"download {name} ({fetched.size} bytes)")


def drop_expired_cdiffs(ctx: SyncContext) -> None:
    """Drop CDIFFs (and their .sign) past `retention_period` days, and any below a gap: freshclam walks
    the patches one by one from its version and falls back to the whole CVD at the first missing one."""
    staging, config = ctx.staging, ctx.config
    limit = time.time() - config.retention_period * 86400
    by_db: dict[str, dict[int, list[str]]] = {}
    for relpath in staging.paths():
        match = _CDIFF_NAME.match(relpath)
        if match:
            by_db.setdefault(match["db"], {}).setdefault(int(match["n"]), []).append(relpath)
    for db, numbers in by_db.items():
        current = served_version(staging.dir, db)
        keep: set[int] = set()
        number = current
        while number is not None and number in numbers:
            cdiff = f"{db}-{number}.cdiff"
            if cdiff not in numbers[number] or staging.records[cdiff].mtime < limit:
                break
            keep.add(number)
            number -= 1
        for number, relpaths in numbers.items():
            if number not in keep:
                for relpath in relpaths:
                    staging.remove(relpath)
                    if relpath.endswith(".cdiff"):
                        ctx.log.line(
                            f"remove {relpath} (older than {config.retention_period} days or unusable)"
                        )


def write_version_file(ctx: SyncContext, upstream: UpstreamVersions) -> None:
    """dns.txt in every release: the record as upstream published it, with the versions actually served."""
    staging = ctx.staging
    served = {db: served_version(staging.dir, db) for db in ctx.config.databases}
    record = upstream.record
    if record is None:
        # no record upstream: make one from what we serve, stable across runs so that an unchanged
        # upstream never produces a new release
        headers = [served_header(staging.dir, db) for db in served]
        build_times = [header.build_time for header in headers if header is not None]
        record = VersionRecord(
            engine="0.0.0",
            main=0,
            daily=0,
            time=max(build_times, default=0),
            warn=1,
            flevel=0,
            safebrowsing=0,
            bytecode=0,
        )

    record = _not_older_than_served(ctx, record)

    def version_of(db: str, recorded: int) -> int:
        version = served.get(db)
        return version if version is not None else recorded

    record = record._replace(
        main=version_of("main", record.main),
        daily=version_of("daily", record.daily),
        bytecode=version_of("bytecode", record.bytecode),
    )
    text = record.format() + "\n"
    previous = staging.path_of(VERSION_FILE)
    if staging.has(VERSION_FILE) and previous.read_text() == text:
        return
    staging.write_bytes(VERSION_FILE, text.encode(), mtime=record.time)


def _not_older_than_served(ctx: SyncContext, record: VersionRecord) -> VersionRecord:
    """Upstream going backwards (a mirror restored from an old copy, a stale node behind a balancer) must
    not publish a dns.txt older than the one served: freshclam takes a record time going back for a
    stale mirror. Ours stays unless the operator asked for the downgrade."""
    staging = ctx.staging
    if not staging.has(VERSION_FILE) or ctx.allow_downgrade:
        return record
    try:
        served = parse_version_record(staging.path_of(VERSION_FILE).read_text("ascii", errors="replace"))
    except (OSError, FormatError):
        return record
    if record.time >= served.time:
        return record
    ctx.log.line(
        f"{VERSION_FILE}: upstream's record time {record.time} is older than ours {served.time}, keeping ours"
    )
    return served
