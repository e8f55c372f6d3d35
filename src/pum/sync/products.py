"""Server mode, product lists: fetch each `*.lst`, download the files whose md5 changed, verify, stage.

A list names files by paths relative to the root of the product tree, the same paths they are served at
(`ibm/power/PSHB06.lst` names `ibm/power/post_update.sh` and `ibm/packages/proscan-....tar.gz`), so an
entry never needs `..`. What this source put in a release is recorded in the release itself
(`.pum/products.json`: per list, each file's md5 and sha256), so that unchanged files are never hashed or
fetched again and files a list no longer names are removed, also when a whole list leaves `products`.

Any refused list (hostile or malformed line, md5 mismatch, missing file) raises: the run publishes nothing
and the last good release stays served, as for a refused CVD.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from pum.errors import UpstreamError, VerifyError
from pum.formats import FormatError
from pum.formats.httpdate import http_date
from pum.formats.productlist import ListEntry, parse_product_list, reserved_path_problem
from pum.formats.products_record import (
    ListedFile,
    ProductsRecord,
    parse_products_record,
    products_record_bytes,
)
from pum.net.answers import Body, Missing, NotModified
from pum.store import Staging, md5_file
from pum.store.local_area import LocalArea
from pum.sync import SyncContext
from pum.sync.fetch import Held, discard, download_kept

if TYPE_CHECKING:
    from pum.net.transport import Transport

PRODUCTS_RECORD = ".pum/products.json"
LIST_LIMIT = 4 << 20


@dataclass
class ProductList:
    """One configured list as fetched this run (or as served, when upstream answered 304)."""

    path: str
    url: str
    data: bytes
    mtime: float
    not_modified: bool
    entries: list[ListEntry]


class ProductsSource:
    def sync(self, ctx: SyncContext) -> None:
        staging = ctx.staging
        transport = ctx.transport(ctx.config.sources_of_products)
        previous = read_record(staging)
        lists = [fetch_list(ctx, transport, path) for path in ctx.config.products]
        claimed = claim_paths(lists, set(ctx.config.products))
        drop_unlisted(ctx, previous, claimed)
        known = {path: listed for files in previous.values() for path, listed in files.items()}
        # local content is laid over last and wins: upstream's copy of its paths would be fetched for nothing
        imported = set(LocalArea(ctx.config).load().entries)
        record = {}
        for product_list in lists:
            record[product_list.path] = stage_list(ctx, transport, product_list, known, imported)
        write_record(staging, record)


def fetch_list(ctx: SyncContext, transport: Transport, list_path: str) -> ProductList:
    """GET the list with If-Modified-Since of the copy we serve; 304 keeps the served copy."""
    staging = ctx.staging
    served = staging.current.files.get(list_path) if staging.current is not None else None
    headers = {"If-Modified-Since": http_date(served.mtime)} if served is not None else None
    answer = transport.get_bytes(list_path, limit=LIST_LIMIT, headers=headers)
    url = answer.url
    if isinstance(answer, Body):
        data = answer.data
        mtime, not_modified = answer.last_modified or time.time(), False
    elif isinstance(answer, NotModified) and served is not None and staging.current_dir is not None:
        ctx.log.line(f"product list {list_path}: not modified")
        data = (staging.current_dir / list_path).read_bytes()
        mtime, not_modified = float(served.mtime), True
    else:
        status = 404 if isinstance(answer, Missing) else 304
        raise UpstreamError(
            f"{url}: product list answered {status}: check 'products' in "
            f"{ctx.config.path or 'pum.conf'} and the product servers"
        )
    try:
        entries = parse_product_list(data.decode("utf-8"), list_path)
    except UnicodeDecodeError as error:
        raise VerifyError(f"{url}: not UTF-8 text ({error}); nothing of {list_path} is released") from None
    except FormatError as error:
        raise VerifyError(f"{error} (from {url}); refused: nothing of {list_path} is released") from None
    for entry in entries:
        problem = reserved_path_problem(entry.path)
        if problem:
            raise VerifyError(
                f"{list_path}:{entry.line}: {problem} (from {url}); refused: nothing of {list_path} "
                "is released"
            )
    if not not_modified:
        ctx.log.line(f"product list {list_path}: {len(entries)} files")
    return ProductList(list_path, url, data, mtime, not_modified, entries)


def claim_paths(lists: list[ProductList], list_paths: set[str]) -> dict[str, tuple[str, ListEntry]]:
    """Every path the lists name, once; two lists may share a file only with the same md5, and no path
    may be both a file and a directory."""
    claimed: dict[str, tuple[str, ListEntry]] = {}
    for product_list in lists:
        for entry in product_list.entries:
            where = f"{product_list.path}:{entry.line}"
            if entry.path in list_paths:
                raise VerifyError(
                    f"{where}: names the product list {entry.path!r} as a file; refused: nothing of "
                    f"{product_list.path} is released"
                )
            first = claimed.get(entry.path)
            if first is not None and first[1].md5 != entry.md5:
                raise VerifyError(
                    f"{where}: {entry.path!r} has md5 {entry.md5}, but {first[0]}:{first[1].line} "
                    f"says {first[1].md5}; refused: nothing of {product_list.path} is released"
                )
            claimed.setdefault(entry.path, (product_list.path, entry))
    for path, (list_path, entry) in claimed.items():
        for parent in map(str, PurePosixPath(path).parents):
            if parent in claimed:
                parent_list, parent_entry = claimed[parent]
                raise VerifyError(
                    f"{list_path}:{entry.line}: {path!r} would sit below {parent!r} "
                    f"({parent_list}:{parent_entry.line}); refused: nothing of {list_path} is released"
                )
    for list_path in list_paths:
        for parent in map(str, PurePosixPath(list_path).parents):
            if parent in claimed:
                parent_list, parent_entry = claimed[parent]
                raise VerifyError(
                    f"{parent_list}:{parent_entry.line}: {parent!r} is the directory of the product list "
                    f"{list_path!r}; refused: nothing of {parent_list} is released"
                )
    return claimed


def drop_unlisted(
    ctx: SyncContext, previous: dict[str, dict[str, ListedFile]], claimed: dict[str, tuple[str, ListEntry]]
) -> None:
    """Staging starts as a copy of the served release: remove product files no list names any more."""
    wanted = set(claimed) | set(ctx.config.products)
    owned = set(previous) | {path for files in previous.values() for path in files}
    for path in sorted(owned - wanted):
        if ctx.staging.has(path):
            ctx.staging.remove(path)
            _remove_empty_parents(ctx.staging, path)
            ctx.log.line(f"remove {path} (no longer in a product list)")


def _remove_empty_parents(staging: Staging, path: str) -> None:
    """A release has no empty directories (and a file may later take a directory's name)."""
    for parent in PurePosixPath(path).parents:
        if str(parent) == ".":
            return
        try:
            staging.path_of(str(parent)).rmdir()
        except OSError:  # not empty (or already gone): its parents are not empty either
            return


def stage_list(
    ctx: SyncContext,
    transport: Transport,
    product_list: ProductList,
    known: dict[str, ListedFile],
    imported: set[str],
) -> dict[str, ListedFile]:
    """Download and verify every changed file of one list, then stage them and the list itself."""
    staging = ctx.staging
    files: dict[str, ListedFile] = {}
    verified: list[tuple[ListEntry, Held]] = []
    for entry in product_list.entries:
        where = f"{product_list.path}:{entry.line}"
        _check_fits(staging, entry, where, product_list.path)
        if entry.path in imported:
            ctx.log.line(f"{entry.path}: provided by local content (pum import); upstream's copy not fetched")
            continue
        unchanged = _unchanged(staging, entry, known)
        if unchanged is not None:
            files[entry.path] = unchanged
            continue
        fetched = _download(ctx, transport, entry, where, product_list.path)
        verified.append((entry, fetched))
        files[entry.path] = ListedFile(entry.md5, fetched.sha256)
    for entry, fetched in verified:
        staging.put(
            entry.path,
            fetched.path,
            mtime=fetched.last_modified or time.time(),
            sha256=fetched.sha256,
            keep_source=True,
        )
        known[entry.path] = files[entry.path]
        ctx.log.line(f"download {entry.path} ({fetched.size} bytes, md5 {entry.md5} ok)")
    if not product_list.not_modified or not staging.has(product_list.path):
        current = staging.records.get(product_list.path)
        if current is None or current.sha256 != hashlib.sha256(product_list.data).hexdigest():
            staging.write_bytes(product_list.path, product_list.data, mtime=product_list.mtime)
    return files


def _check_fits(staging: Staging, entry: ListEntry, where: str, list_path: str) -> None:
    """A file may not sit where the release has a directory, or below one of its files (for instance
    another source's); among the lists themselves `claim_paths` already checked it."""
    for parent in PurePosixPath(entry.path).parents:
        name = str(parent)
        if name != "." and staging.has(name):
            raise VerifyError(
                f"{where}: {entry.path!r} would sit below the file {name!r} of this release; "
                f"refused: nothing of {list_path} is released"
            )
    if staging.path_of(entry.path).is_dir():
        raise VerifyError(
            f"{where}: {entry.path!r} is a directory in this release; refused: nothing of {list_path} "
            "is released"
        )


def _unchanged(staging: Staging, entry: ListEntry, known: dict[str, ListedFile]) -> ListedFile | None:
    """The staged copy when its md5 is the listed one: from the record, else by hashing it once."""
    record = staging.records.get(entry.path)
    if record is None:
        return None
    listed = known.get(entry.path)
    if listed is not None and listed.sha256 == record.sha256:
        return listed if listed.md5 == entry.md5 else None
    if md5_file(staging.path_of(entry.path)) == entry.md5:
        return ListedFile(entry.md5, record.sha256)
    return None


def _download(ctx: SyncContext, transport: Transport, entry: ListEntry, where: str, list_path: str) -> Held:
    """Kept as downloads/products/<md5>/<path>: a file (or .part) left by a killed run is reused or
    resumed, and only towards the same expected md5."""
    fetched = download_kept(ctx, transport, entry.path, kept_as=f"products/{entry.md5}/{entry.path}")
    if fetched is None:
        url = transport.url_for(transport.chosen or transport.servers[0], entry.path)
        raise UpstreamError(f"{url}: not found, but {where} names it; nothing of {list_path} is released")
    md5 = md5_file(fetched.path)
    if md5 != entry.md5:
        discard(fetched)
        raise VerifyError(
            f"{fetched.where}: md5 {md5}, but {where} says {entry.md5}; refused: nothing of {list_path} "
            "is released"
        )
    return fetched


def read_record(staging: Staging) -> ProductsRecord:
    """What the served release says this source put in it: list -> path -> md5, sha256."""
    if not staging.has(PRODUCTS_RECORD):
        return {}
    try:
        return parse_products_record(staging.path_of(PRODUCTS_RECORD).read_bytes())
    except FormatError as error:
        raise VerifyError(
            f"{staging.current_dir}/{PRODUCTS_RECORD}: unreadable ({error}); run 'pum verify'"
        ) from None


def write_record(staging: Staging, record: ProductsRecord) -> None:
    data = products_record_bytes(record)
    current = staging.records.get(PRODUCTS_RECORD)
    if current is not None and current.sha256 == hashlib.sha256(data).hexdigest():
        return
    staging.write_bytes(PRODUCTS_RECORD, data)
