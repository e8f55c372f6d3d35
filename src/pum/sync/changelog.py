"""Mirror mode by the upper's changelog (formats/changes.py), as devpi's replicas follow their master.

A sub that copied the upper's release S asks for `/.pum/changes/S.json` (If-Modified-Since: the changelog
it last read); 304 while the upper serves S. Otherwise the answer says what changed since S: applied to
the upper's file set kept from the last copy (`state/upper_files.json`), its result must have the
files_digest the changelog gives for the new release. Only then does the copy go on as if the whole
manifest had been read: the same checks (sha256 per file, VDF signatures, the upper's signed targets when
trusted_root is set), with only the changed files downloaded. Any doubt (no changelog, S older than it,
another server, a malformed answer, a digest that differs, no kept file set) reads the whole manifest
instead: one run-log line, never an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pum.errors import UpstreamError
from pum.formats import FormatError
from pum.formats.changes import (
    CHANGES_LIMIT,
    Changes,
    canonical_chunks,
    changes_path,
    files_digest,
    files_of_canonical,
    parse_changes,
)
from pum.formats.httpdate import http_date
from pum.formats.manifest import FileRecord, Manifest
from pum.net.answers import Body, Missing, NotModified
from pum.store.state import Validators, write_state_file

if TYPE_CHECKING:
    from pum.net.transport import Transport
    from pum.sync import SyncContext
    from pum.sync.mirror import UpperManifest

# the upper's file set of the release copied, as files_digest hashes it: its digest proves it unchanged
UPPER_FILES = "upper_files.json"


class ChangesAnswer(Body):
    """The upper's changelog answer a copy went by: its Last-Modified is that of the whole changelog of
    the release copied (every file of it has the same mtime), its ETag only that one file's."""

    __slots__ = ()


def fetch_by_changes(
    ctx: SyncContext, transport: Transport, validators: Validators, query: str
) -> UpperManifest | NotModified | None:
    """The upper's release rebuilt from what changed since the one we copied, the 304 when it still serves
    that one, or None: read the whole manifest (said in the run log)."""
    from pum.sync.mirror import UpperManifest

    serial = validators.copied_serial
    if serial is None:
        return None
    headers = {"Accept-Encoding": "gzip"}
    if validators.last_modified is not None:
        headers["If-Modified-Since"] = http_date(validators.last_modified)
    try:
        answer = transport.get_bytes(changes_path(serial) + query, limit=CHANGES_LIMIT, headers=headers)
    except UpstreamError as error:
        _fall_back(ctx, str(error))
        return None
    if str(answer.server) != validators.server:
        _fall_back(ctx, f"{answer.url}: another server than the one release {serial} was copied from")
        return None
    if isinstance(answer, NotModified):
        return answer
    if isinstance(answer, Missing):
        _fall_back(ctx, f"{answer.url}: not found (404): no changelog reaches back to release {serial}")
        return None
    try:
        changes = parse_changes(answer.data)
    except FormatError as error:
        _fall_back(ctx, f"{answer.url}: refused: {error}")
        return None
    if changes.from_serial != serial or changes.from_files != validators.files:
        _fall_back(ctx, f"{answer.url}: starts from another file set than the release {serial} we copied")
        return None
    kept = _kept_files(ctx, validators.files)
    if kept is None:
        return None
    manifest = _rebuilt(ctx, answer.url, kept, changes)
    if manifest is None:
        return None
    ctx.log.line(
        f"{answer.url}: upper release {changes.serial} by its changelog: {len(changes.set)} files new or "
        f"changed, {len(changes.removed)} removed since release {serial}"
    )
    # the bytes are applied: not kept for the rest of the copy
    fields = {name: getattr(answer, name) for name in ("url", "server", "last_modified", "etag", "headers")}
    return UpperManifest(ChangesAnswer(**fields, data=b""), manifest)


def _rebuilt(ctx: SyncContext, url: str, kept: dict[str, FileRecord], changes: Changes) -> Manifest | None:
    files = changes.applied_to(kept)
    if files_digest(files) != changes.files:
        _fall_back(
            ctx,
            f"{url}: the changes since release {changes.from_serial} do not give the file set of release "
            f"{changes.serial} (files_digest differs)",
        )
        return None
    try:
        return Manifest(serial=changes.serial, created=changes.created, files=files)
    except FormatError as error:
        _fall_back(ctx, f"{url}: refused: release {changes.serial}: {error}")
        return None


def _kept_files(ctx: SyncContext, digest: str) -> dict[str, FileRecord] | None:
    """The upper's file set kept from the copy we serve, if it is that copy's (its files_digest)."""
    path = ctx.store.state / UPPER_FILES
    try:
        return files_of_canonical(path.read_bytes(), digest)
    except OSError as error:
        _fall_back(ctx, f"{path}: unreadable ({error.strerror})")
    except FormatError as error:
        _fall_back(ctx, f"{path}: not the upper release we serve ({error})")
    return None


def _fall_back(ctx: SyncContext, reason: str) -> None:
    ctx.log.line(f"{reason}: reading the whole manifest instead")


def validators_of(fetched: Body, validators: Validators) -> Validators:
    """The validators a copy leaves for the next run: a changelog's stand for every changes file of the
    release copied, by its Last-Modified only (an ETag names one file). Kept even in the second it was
    written: the upper stamps the next release's changelog at least a second later (store/changelog.py)."""
    if isinstance(fetched, ChangesAnswer):
        return validators._replace(etag=None, last_modified=fetched.last_modified, changes=True)
    return validators


def after_copy(
    ctx: SyncContext, transport: Transport, validators: Validators, copied: Manifest
) -> Validators:
    """Once a copy is served: keep the upper's file set for the next changelog, and when the copy went by
    the whole manifest, learn whether the upper publishes a changelog (its empty `changes/<S>.json`) so
    that the next run asks for that instead."""
    _keep_files(ctx, copied)
    if validators.changes:
        return validators
    try:
        answer = transport.get_bytes(changes_path(copied.serial), limit=CHANGES_LIMIT)
    except UpstreamError as error:
        ctx.log.line(f"{error}: the next run reads the whole manifest again")
        return validators
    if not isinstance(answer, Body):
        ctx.log.line(
            f"{answer.url}: the upper publishes no changelog: the next run reads the whole manifest again"
        )
        return validators
    try:
        changes = parse_changes(answer.data)
    except FormatError as error:
        ctx.log.line(f"{answer.url}: refused: {error}: the next run reads the whole manifest again")
        return validators
    if (changes.serial, changes.files, str(answer.server)) != (
        copied.serial,
        validators.files,
        validators.server,
    ):
        return validators  # the upper published meanwhile: its manifest tells next run
    return validators._replace(etag=None, last_modified=answer.last_modified, changes=True)


def _keep_files(ctx: SyncContext, copied: Manifest) -> None:
    write_state_file(ctx.store.state / UPPER_FILES, canonical_chunks(copied.files))
