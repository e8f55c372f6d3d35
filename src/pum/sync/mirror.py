"""Mirror mode: copy an upper PUM's release by its manifest, moving only the files whose sha256 differs.

One conditional GET of `/.pum/manifest.json` (If-None-Match / If-Modified-Since): 304 leaves the served
release as it is. Otherwise each file the upper lists is hard-linked from our release when we hold it
already, else fetched: small files that are no VDF with their requests pipelined (net/pipeline.py),
checked in memory and written straight into the staging tree; the others downloaded (resumable, kept
across a killed run). Each is checked against the manifest's sha256 and by server mode's rules
(sync/vdfcheck.py: VDF names only at the root, each by its own signature, no downgrade), and staged with
the upper's mtime: the same names, mtimes and `dns.txt` as the upper. An upper without a manifest is
crawled by its index pages (crawl.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, overload

from pum.clock import utc_stamp
from pum.errors import PumError, UpstreamError, VerifyError
from pum.formats import FormatError
from pum.formats.changes import files_digest as files_digest  # bundle.py takes it from here
from pum.formats.httpdate import http_date, parse_http_date
from pum.formats.manifest import FileRecord, Manifest, parse_manifest
from pum.formats.paths import is_hidden, url_path
from pum.net.answers import Body, Missing, NotModified
from pum.store import MANIFEST_PATH
from pum.store.state import Lag, MirrorState, Validators
from pum.sync.fetch import (
    Held,
    accepted,
    accepted_file,
    discard,
    download_kept,
    recheck_carried_signs,
    refuse_vdf_names,
    signs_last,
)

if TYPE_CHECKING:
    from pum.net.transport import Transport
    from pum.sync import SyncContext

MANIFEST_LIMIT = 64 << 20
# the upper may publish while we copy: a file then 404s or differs; we re-read its manifest and start over
COPY_ATTEMPTS = 3


_COPIED_FROM = re.compile(
    r"^mirror of (?P<upper>\S+) release (?P<serial>\d+) \((?P<created>[^)]*)\), "
    r"files sha256:(?P<files>[0-9a-f]{64})$"
)


class CopiedFrom(NamedTuple):
    """The upper release a mirror-mode release copies. Written as the release manifest's `source`, it is
    how a later run knows whether the upper's remembered ETag / Last-Modified still describe what we serve
    (not after a rollback, a failed run, or a release built from another upper's files)."""

    upper: str
    serial: int
    created: str
    files: str  # files_digest() of the upper's manifest

    def text(self) -> str:
        return f"mirror of {self.upper} release {self.serial} ({self.created}), files sha256:{self.files}"

    @classmethod
    def of(cls, manifest: Manifest | None) -> CopiedFrom | None:
        match = _COPIED_FROM.match(manifest.source) if manifest is not None else None
        if not match:
            return None
        return cls(match["upper"], int(match["serial"]), match["created"], match["files"])


class MirrorSource:
    def __init__(self) -> None:
        self.copied: Manifest | None = None  # the upper's release this run copied

    def sync(self, ctx: SyncContext) -> None:
        state = ctx.store.mirror_state(ctx.log.line)
        transport = ctx.transport()
        validators, serving = served_validators(ctx, state)
        from pum.trust.upper import served_unchecked

        if served_unchecked(ctx):
            validators = None  # trusted_root was set since: check and carry the upper's release now
        query = fleet_query(serving)
        answer: UpperManifest | NotModified | Missing | None = None
        if validators is not None and validators.changes:
            from pum.sync.changelog import fetch_by_changes

            answer = fetch_by_changes(ctx, transport, validators, query)
            validators = None if answer is None else validators
        if answer is None:
            answer = fetch_manifest(transport, validators, query, lambda: _served_files(ctx))
        if isinstance(answer, UpperManifest):
            self.copied = copy_by_manifest(ctx, transport, answer.answer, answer.manifest)
        elif isinstance(answer, NotModified) and validators and state is not None:
            keep_current(ctx, state, validators, answer)
        elif isinstance(answer, NotModified):
            raise UpstreamError(f"{answer.url}: answered 304 Not Modified to a request without validators")
        else:
            from pum.sync.crawl import crawl_upper
            from pum.trust.upper import refuse_unsigned_crawl

            refuse_unsigned_crawl(ctx, answer.url)
            ctx.log.line(f"{answer.url}: not found (404): copying the upper server by its index pages")
            crawl_upper(ctx, transport, state)

    def published(self, ctx: SyncContext, serial: int | None) -> None:
        """After the cycle: the release served now holds the upper's files this run copied; the validators
        say which release that is, so that the next run's 304 reads nothing."""
        state = ctx.store.mirror_state(ctx.log.line)
        served = ctx.store.current_dir()
        if self.copied is None or state is None or state.validators is None or served is None:
            return
        if served.name.isdigit():
            from pum.sync.changelog import after_copy

            remembered = state.validators._replace(release=int(served.name), copied_serial=self.copied.serial)
            remembered = after_copy(ctx, ctx.transport(), remembered, self.copied)
            ctx.store.write_mirror_state(state._replace(validators=remembered))


class UpperManifest(NamedTuple):
    """The upper's manifest, parsed, and the answer that brought it (its server, URL, validators)."""

    answer: Body
    manifest: Manifest


def served_validators(ctx: SyncContext, state: MirrorState | None) -> tuple[Validators | None, int]:
    """The remembered validators if they describe the file set we serve, else None; and the upper's
    release we serve (0: none).

    Once a run found them to (`release`), the served release's serial, a readlink, says so: releases are
    immutable. Else the served manifest's `source` is compared with them, and the release remembered."""
    served = ctx.store.current_dir()
    validators = state.validators if state is not None else None
    if served is None or not served.name.isdigit() or ctx.repairing:
        return None, 0  # `pum repair` asks for the whole manifest: some files we serve are not the upper's
    if validators is not None and validators.release == int(served.name):
        return validators, validators.copied_serial or 0
    ours = CopiedFrom.of(ctx.store.current_manifest())
    if not (ours and validators and validators.files == ours.files):
        return None, ours.serial if ours else 0
    return validators._replace(release=int(served.name), copied_serial=ours.serial), ours.serial


def fleet_query(serving: int) -> str:
    """`?serial=<upper release we serve>&name=<host>`: how the upper's fleet view sees this sub-PUM
    (its access log keeps the query; see pum.fleet)."""
    import socket

    name = "".join(c for c in socket.gethostname().split(".")[0] if c.isalnum() or c in "._-")[:64]
    return f"?serial={serving}&name={name or 'pum'}"


def _served_files(ctx: SyncContext) -> Mapping[str, FileRecord]:
    """The records of the release we serve, read when the staging tree begins (a copy begins it anyway)."""
    current = ctx.staging.current
    return current.files if current is not None else {}


def fetch_manifest(
    transport: Transport,
    validators: Validators | None,
    query: str = "",
    served: Callable[[], Mapping[str, FileRecord]] | None = None,
) -> UpperManifest | NotModified | Missing:
    """The upper's manifest on 200, else the 304 or 404 answer.

    On a 200, `served()` gives the records we serve: the upper's equal ones are the same objects (at
    100,000 files, one set of records instead of two).

    Validators go with the request only when they describe what we serve; a 304 from another server than
    the one that gave them proves nothing, so that answer is asked again without them."""
    # the manifest is ~130 bytes a file: compressed on the wire where the server can
    headers = {"Accept-Encoding": "gzip"}
    if validators:
        if validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators.last_modified:
            headers["If-Modified-Since"] = http_date(validators.last_modified)
    answer = transport.get_bytes(MANIFEST_PATH + query, limit=MANIFEST_LIMIT, headers=headers)
    if isinstance(answer, NotModified) and validators and str(answer.server) != validators.server:
        return fetch_manifest(transport, None, query, served)
    if not isinstance(answer, Body):
        return answer
    try:
        manifest = parse_manifest(answer.data, served() if served is not None else None)
    except FormatError as error:
        raise VerifyError(f"{answer.url}: not a PUM release manifest: {error}") from None
    # the body is ~150 bytes a file, and the copy needs only the records parsed from it
    return UpperManifest(answer.without_data(), manifest)


def keep_current(ctx: SyncContext, state: MirrorState, validators: Validators, answer: NotModified) -> None:
    """The upper's 304: no staging tree is begun, no served file read. Local content, if any, begins one
    from the served release later."""
    ctx.log.line(f"{answer.url}: not modified (304): we serve the upper's release")
    ctx.from_current = True
    ctx.log.line("files checked 0, fetched 0, bytes 0")
    ctx.store.write_mirror_state(state._replace(validators=validators, checked=utc_stamp(), lag=_lag(0, 0)))


class _UpperMoved(Exception):
    """The upper published another release while we copied: copy that one instead."""

    def __init__(self, fetched: Body, manifest: Manifest) -> None:
        super().__init__(f"the upper server published release {manifest.serial} meanwhile")
        self.fetched, self.manifest = fetched, manifest


def copy_by_manifest(ctx: SyncContext, transport: Transport, fetched: Body, manifest: Manifest) -> Manifest:
    """Copy the upper's release (or the one it publishes meanwhile); returns its manifest."""
    ours = CopiedFrom.of(ctx.staging.current)
    for _attempt in range(COPY_ATTEMPTS):
        try:
            copy_release(ctx, transport, fetched, manifest)
        except _UpperMoved as moved:
            ctx.log.line(f"{moved}: copying it instead")
            for relpath in list(ctx.staging.paths()):
                ctx.staging.remove(relpath)
            fetched, manifest = moved.fetched, moved.manifest
            continue
        except PumError:
            _save_state(ctx, fetched, manifest, ours, copied=False)
            raise
        _save_state(ctx, fetched, manifest, ours, copied=True)
        return manifest
    _save_state(ctx, fetched, manifest, ours, copied=False)
    raise UpstreamError(
        f"{fetched.url}: the upper server published {COPY_ATTEMPTS} releases while we copied; "
        "the next run tries again"
    )


def copy_release(ctx: SyncContext, transport: Transport, fetched: Body, manifest: Manifest) -> None:
    staging, log = ctx.staging, ctx.log
    copied = CopiedFrom(str(fetched.server), manifest.serial, manifest.created, files_digest(manifest.files))
    log.line(f"upper release {manifest.serial} ({manifest.created}): {len(manifest.files)} files")
    files = {relpath: record for relpath, record in manifest.files.items() if not is_hidden(relpath)}
    if len(files) < len(manifest.files):
        log.line(
            f"not copied: {', '.join(sorted(set(manifest.files) - set(files)))} "
            "(dot-files are each PUM's own records, never served)"
        )
    if not files:
        raise VerifyError(f"{fetched.url}: lists no files; an empty release is not copied")
    refuse_vdf_names(fetched.url, files)
    from pum.trust.upper import check_upper_release

    check_upper_release(
        ctx, transport, fetched.url, files, manifest.files, lambda: _recheck(transport, manifest)
    )
    staging.source = copied.text()
    held = staging.current.files if staging.current is not None else {}
    held_by_content = _ByContent(held)
    received, count, carried = ctx.bytes_received, 0, []
    # `.sign` files after everything else: each is checked over the staged file it signs
    ordered = signs_last(files)
    for group in (
        [p for p in ordered if not p.endswith(".sign")],
        [p for p in ordered if p.endswith(".sign")],
    ):
        wanted = []
        for relpath in group:
            record = files[relpath]
            if held.get(relpath) == record:
                staging.link_from_current(relpath)
                carried.append(relpath)
            elif (same := held_by_content.path_of(record)) is not None:
                _reuse_held(ctx, relpath, same, record)
                carried.append(relpath)
            else:
                wanted.append(relpath)
        wanted, pipelined = _copy_small_files(ctx, transport, wanted, files)
        count += pipelined
        if not wanted:
            continue
        from pum.sync.parallel import fetch_in_parallel  # threads: not imported by a 304 run

        jobs = _Downloads(partial(_download, ctx, fetched, manifest), wanted, files)
        for relpath, got in zip(wanted, fetch_in_parallel(ctx, transport, jobs), strict=True):
            accepted(ctx, got, relpath)
            record = files[relpath]
            staging.put(
                relpath, got.path, mtime=record.mtime, sha256=got.sha256, keep_source=True, known=record
            )
            log.line(f"download {relpath} ({got.size} bytes)")
            count += 1
    recheck_carried_signs(ctx, carried, lambda relpath: transport.url_for(fetched.server, url_path(relpath)))
    log.line(f"files checked {len(files)}, fetched {count}, bytes {ctx.bytes_received - received}")


def _copy_small_files(
    ctx: SyncContext, transport: Transport, wanted: list[str], files: Mapping[str, FileRecord]
) -> tuple[list[str], int]:
    """The small files of `wanted` that are no VDF, their requests pipelined (net/pipeline.py), each
    checked in memory against its record (size and sha256) and written straight into the staging tree.
    Returns the files left to fetch the ordinary way (large, VDF, or not taken pipelined: an unusual
    answer, or bytes that are not the manifest's, which the ordinary path fetches again and refuses with
    its URL if they still differ) and how many were staged."""
    from pum.formats.productlist import is_vdf_name
    from pum.net.pipeline import SMALL_FILE, pipelined

    small = [p for p in wanted if files[p].size <= SMALL_FILE and not is_vdf_name(p)]
    if len(small) < 2:  # one request gains nothing from a pipeline
        return wanted, 0
    taken = set(small)
    ordinary = [p for p in wanted if p not in taken]
    staging, staged = ctx.staging, 0
    for relpath, body in pipelined(transport, small, lambda relpath: files[relpath].size):
        record = files[relpath]
        if body is None or hashlib.sha256(body).hexdigest() != record.sha256:
            ordinary.append(relpath)
            continue
        staging.put_verified_bytes(relpath, body, record)
        staged += 1
    return ordinary, staged


class _ByContent:
    """The path of a file we hold with a record's sha256 and size (another name, or moved), indexed on
    first use: a first copy, or one where every file keeps its name, never builds the index."""

    def __init__(self, held: Mapping[str, FileRecord]) -> None:
        self._held = held
        self._index: dict[tuple[str, int], str] | None = None

    def path_of(self, record: FileRecord) -> str | None:
        if not self._held:
            return None
        if self._index is None:
            self._index = {(held.sha256, held.size): path for path, held in self._held.items()}
        return self._index.get((record.sha256, record.size))


class _Downloads(Sequence[Callable[["Transport"], Held]]):
    """The download job of each path, made when fetch_in_parallel comes to it (a list of 100,000 jobs
    held ~16 MB for the whole copy)."""

    def __init__(
        self,
        download: Callable[[str, FileRecord, Transport], Held],
        wanted: list[str],
        files: Mapping[str, FileRecord],
    ) -> None:
        self._download, self._wanted, self._files = download, wanted, files

    def __len__(self) -> int:
        return len(self._wanted)

    @overload
    def __getitem__(self, index: int) -> Callable[[Transport], Held]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Callable[[Transport], Held]]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        relpath = self._wanted[index]
        return partial(self._download, relpath, self._files[relpath])


def _reuse_held(ctx: SyncContext, relpath: str, held_path: str, record: FileRecord) -> None:
    """A file we hold under this or another name: linked when its mtime is the upper's too, else copied
    (a hard link shares the mtime, and the release it comes from is immutable)."""
    staging = ctx.staging
    assert staging.current is not None and staging.current_dir is not None
    source = staging.current_dir / held_path
    if held_path != relpath:
        try:
            accepted_file(ctx, source, relpath)
        except FormatError as error:
            raise VerifyError(f"our {held_path} as the upper's {relpath}: refused: {error}") from None
    if staging.current.files[held_path].mtime == record.mtime:
        staging.put(relpath, source, mtime=record.mtime, sha256=record.sha256, keep_source=True, known=record)
        return
    copy = ctx.store.downloads / ".copies" / relpath
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, copy)
    staging.put(relpath, copy, mtime=record.mtime, sha256=record.sha256, known=record)
    ctx.log.line(f"copy {relpath} from our {held_path} (same content, the upper's mtime)")


def _download(
    ctx: SyncContext,
    manifest_answer: Body,
    manifest: Manifest,
    relpath: str,
    record: FileRecord,
    transport: Transport,
) -> Held:
    """The upper's file in the download area with the manifest's sha256 and size (a worker's job)."""
    dest = ctx.store.downloads / relpath
    for _attempt in range(2):
        left_by_earlier_run = dest.exists() or dest.with_name(dest.name + ".part").exists()
        got = download_kept(ctx, transport, url_path(relpath), kept_as=relpath, expected_size=record.size)
        if got is None:
            _recheck(transport, manifest)
            raise UpstreamError(
                f"{transport.url_for(manifest_answer.server, url_path(relpath))}: not found (404), though "
                f"the upper's release {manifest.serial} lists it"
            )
        if got.sha256 == record.sha256 and got.size == record.size:
            return got
        discard(got)
        if left_by_earlier_run:
            # a download kept or resumed from an earlier run: the upper may have changed since
            ctx.log.line(
                f"{relpath}: the copy an earlier run left is not the upper's file; fetching it again"
            )
            continue
        _recheck(transport, manifest)
        raise VerifyError(
            f"{got.where}: refused: sha256 {got.sha256} ({got.size} bytes) differs from the upper's "
            f"manifest (sha256 {record.sha256}, {record.size} bytes); the last good release stays served"
        )
    raise AssertionError("unreachable: the second attempt starts from nothing")


def _recheck(transport: Transport, manifest: Manifest) -> None:
    """A file that is not what the manifest says: corrupt, or the upper published meanwhile? Its manifest
    now tells: another file set -> _UpperMoved; the same one -> the caller refuses the file."""
    answer = fetch_manifest(transport, None)
    if isinstance(answer, UpperManifest) and files_digest(answer.manifest.files) != files_digest(
        manifest.files
    ):
        raise _UpperMoved(answer.answer, answer.manifest)


def _save_state(
    ctx: SyncContext, fetched: Body, manifest: Manifest, ours: CopiedFrom | None, copied: bool
) -> None:
    """state/mirror.json: the upper, its newest release as last seen, how far behind we are, and the
    validators of its manifest for the next run's conditional request."""
    upper = str(fetched.server)
    digest = files_digest(manifest.files)
    if copied or (ours is not None and ours.files == digest):
        lag = _lag(0, 0)
    elif ours is None:
        lag = Lag("everything (nothing copied yet)", None, None)
    else:
        releases = manifest.serial - ours.serial if ours.upper == upper else None
        lag = _lag(releases, _seconds_between(ours.created, manifest.created))
    from pum.sync.changelog import validators_of

    ctx.store.write_mirror_state(
        MirrorState(
            mode="manifest",
            upper=upper,
            upper_url=fetched.url,
            upper_serial=manifest.serial,
            upper_created=manifest.created,
            checked=utc_stamp(),
            lag=lag,
            validators=validators_of(
                fetched, Validators(upper, fetched.etag, _trusted_last_modified(fetched), digest)
            ),
        )
    )


def _lag(releases: int | None, seconds: int | None) -> Lag:
    if releases == 0 or (releases is None and seconds == 0):
        text = "0 releases"
    else:
        parts = []
        if releases is not None and releases < 0:
            parts.append(f"none: the upper serves an older release ({-releases} back; rolled back?)")
        elif releases is not None:
            parts.append(f"{releases} release{'' if releases == 1 else 's'}")
        if seconds is not None:
            parts.append(_duration(seconds))
        text = ", ".join(parts) or "?"
    return Lag(text, releases, seconds)


def lag_now(state: dict[str, Any], served: Manifest | None) -> dict[str, Any]:
    """The `behind` fields of state/mirror.json for the release served now (`pum status` asks after a
    rollback or a failed run, when the last run's figures describe another release)."""
    ours = CopiedFrom.of(served)
    upper_serial = state.get("upper_serial")
    if ours is None or not isinstance(upper_serial, int):
        return {}
    if ours.files == (state.get("validators") or {}).get("files"):
        return _lag(0, 0)._asdict()
    releases = upper_serial - ours.serial if ours.upper == state.get("upper") else None
    return _lag(releases, _seconds_between(ours.created, str(state.get("upper_created", ""))))._asdict()


def _duration(seconds: int) -> str:
    hours, rest = divmod(abs(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _seconds_between(earlier: str, later: str) -> int | None:
    try:
        return int((dt.datetime.fromisoformat(later) - dt.datetime.fromisoformat(earlier)).total_seconds())
    except ValueError:
        return None


def _trusted_last_modified(fetched: Body) -> float | None:
    """A Last-Modified in the same second as the answer may be followed by another change in that
    second, which If-Modified-Since (whole seconds) cannot see (RFC 9110 8.8.2.2): not remembered then."""
    modified = fetched.last_modified
    if modified is None:
        return None
    answered = parse_http_date(fetched.headers.get("date")) or time.time()
    return modified if answered - modified >= 1 else None
