"""Mirror mode without a manifest: copy an upper server through its index pages, as `wget -m -np` did.

For an old PUM behind Apache (or nginx) with directory listings. Every index page under the base path is
read (they carry no validators); links are followed only when they stay under that path on the same
server. A file is fetched only when the server says it changed since the copy we hold: If-None-Match /
If-Modified-Since from its ETag and Last-Modified as remembered in state/mirror.json; 304 -> hard link.
"""

from __future__ import annotations

import os
import time
from html.parser import HTMLParser
from typing import TYPE_CHECKING
from urllib.parse import unquote, urljoin, urlsplit

from pum.clock import utc_stamp
from pum.errors import UpstreamError, VerifyError
from pum.formats import FormatError
from pum.formats.paths import is_hidden, url_path
from pum.formats.productlist import safe_relative_path
from pum.net.answers import Body, Downloaded, Missing, NotModified
from pum.store import sha256_file
from pum.store.state import IndexFile, Lag, MirrorState
from pum.sync.fetch import Held, accepted, recheck_carried_signs, refuse_vdf_names, signs_last

if TYPE_CHECKING:
    from pum.net.transport import Transport
    from pum.sync import SyncContext

# bounds: a listing that links to itself in ever new ways must not keep a run busy forever
MAX_PAGES = 10_000
MAX_FILES = 200_000
MAX_DEPTH = 32
PAGE_LIMIT = 8 << 20


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(value for name, value in attrs if name == "href" and value)


def index_links(page: str, page_url: str, base_url: str) -> tuple[list[str], list[str]]:
    """The files and directories an index page links to, as canonical paths relative to `base_url`.

    Dropped: other hosts and schemes, anything outside the base path (the parent directory link),
    queries (Apache's sort links `?C=N;O=D`), fragments, `.`/`..` and other unsafe names, `%2F`,
    dot-files (`.htaccess`; PUM's own `.pum/`).
    """
    anchors = _Anchors()
    anchors.feed(page)
    anchors.close()
    base = urlsplit(base_url)
    files: list[str] = []
    directories: list[str] = []
    for href in anchors.hrefs:
        target = urlsplit(urljoin(page_url, href))
        if target.query or (target.scheme, target.netloc) != (base.scheme, base.netloc):
            continue
        if not target.path.startswith(base.path) or "%2f" in target.path.lower():
            continue
        raw = target.path[len(base.path) :]
        relpath = unquote(raw.removesuffix("/"))
        if not relpath:
            continue
        try:
            if safe_relative_path(relpath) != relpath or is_hidden(relpath):
                continue
        except FormatError:
            continue
        (directories if raw.endswith("/") else files).append(relpath)
    return files, directories


def list_tree(transport: Transport) -> list[str]:
    """Every file the index pages under the base path link to, breadth first."""
    server = transport.chosen or transport.servers[0]
    base_url = transport.url_for(server, "")
    pending, seen, files, known = [""], {""}, [], set()
    pages = 0
    while pending:
        directory = pending.pop(0)
        pages += 1
        if pages > MAX_PAGES:
            raise UpstreamError(f"{base_url}: more than {MAX_PAGES} index pages; is this a mirror tree?")
        answer = transport.get_bytes(url_path(directory + "/") if directory else "", limit=PAGE_LIMIT)
        if not isinstance(answer, Body):
            raise UpstreamError(
                f"{answer.url}: answered {404 if isinstance(answer, Missing) else 304}: the upper server has "
                "no release manifest and no index page to crawl (is it a PUM? does it list directories?)"
            )
        if "html" not in answer.headers.get("content-type", "text/html"):
            raise UpstreamError(f"{answer.url}: not an index page ({answer.headers['content-type']})")
        links, directories = index_links(answer.data.decode("utf-8", errors="replace"), answer.url, base_url)
        for relpath in directories:
            if relpath not in seen and relpath.count("/") < MAX_DEPTH:
                seen.add(relpath)
                pending.append(relpath)
        for relpath in links:
            if relpath not in known:
                known.add(relpath)
                files.append(relpath)
        if len(files) > MAX_FILES:
            raise UpstreamError(f"{base_url}: index pages list more than {MAX_FILES} files")
    return sorted(files)


def crawl_upper(ctx: SyncContext, transport: Transport, state: MirrorState | None) -> None:
    staging, log = ctx.staging, ctx.log
    files = list_tree(transport)
    server = str(transport.chosen or transport.servers[0])
    if not files:
        raise VerifyError(
            f"{transport.url_for(transport.chosen or transport.servers[0], '')}: its index pages list no "
            "files; an empty release is not copied"
        )
    server_used = transport.chosen or transport.servers[0]
    refuse_vdf_names(transport.url_for(server_used, ""), files)
    remembered = (state.index_files or {}) if state is not None and state.upper == server else {}
    entries: dict[str, IndexFile] = {}
    received, count, carried = transport.bytes_received, 0, []
    for relpath in signs_last(files):
        entries[relpath], fetched = _copy_listed(ctx, transport, relpath, remembered.get(relpath))
        count += fetched
        if not fetched:
            carried.append(relpath)
    recheck_carried_signs(ctx, carried, lambda relpath: transport.url_for(server_used, url_path(relpath)))
    if not staging.has("dns.txt"):
        from pum.sync.vdf import UpstreamVersions, write_version_file

        log.line("no dns.txt on the upper server: writing one from the CVD headers")
        write_version_file(ctx, UpstreamVersions(None, {}))
    staging.source = f"mirror of {server} (index pages)"
    log.line(f"files checked {len(files)}, fetched {count}, bytes {transport.bytes_received - received}")
    ctx.store.write_mirror_state(
        MirrorState(
            mode="index pages",
            upper=server,
            upper_url=transport.url_for(transport.chosen or transport.servers[0], ""),
            upper_serial=None,
            upper_created=None,
            checked=utc_stamp(),
            lag=Lag("nothing at the last copy by index pages", None, 0),
            index_files=entries,
        )
    )


def _copy_listed(
    ctx: SyncContext, transport: Transport, relpath: str, remembered: IndexFile | None
) -> tuple[IndexFile, int]:
    """One listed file into staging: (what to remember of it, 1 if fetched else 0)."""
    staging = ctx.staging
    mine = staging.current.files.get(relpath) if staging.current is not None else None
    dest = ctx.store.downloads / relpath
    kept = dest.exists() and not dest.with_name(dest.name + ".part").exists()
    usable = remembered if (mine and remembered and remembered.sha256 == mine.sha256) else None
    got: Downloaded | NotModified | Missing
    if kept:
        # fetched by an interrupted run, its mtime the server's Last-Modified: still the server's file?
        got = transport.download(url_path(relpath), dest, if_modified_since=dest.stat().st_mtime)
        if isinstance(got, NotModified):  # yes: the server said so for this URL
            mtime = int(dest.stat().st_mtime)
            got = Downloaded(
                url=got.url,
                server=got.server,
                last_modified=mtime,
                etag=got.etag,
                headers=got.headers,
                path=dest,
                size=dest.stat().st_size,
                sha256=sha256_file(dest),
            )
    elif usable:
        got = transport.download(
            url_path(relpath),
            dest,
            if_modified_since=usable.last_modified,
            etag=usable.etag,
        )
        if isinstance(got, NotModified):
            staging.link_from_current(relpath)
            return usable, 0
    else:
        got = transport.download(url_path(relpath), dest)
    if not isinstance(got, Downloaded):
        raise UpstreamError(f"{got.url}: not found (404), though its index page lists it")
    return _stage(ctx, got, relpath), 1


def _stage(ctx: SyncContext, got: Downloaded, relpath: str) -> IndexFile:
    if got.last_modified:
        os.utime(got.path, (got.last_modified, got.last_modified))
    header = accepted(ctx, Held.downloaded(got), relpath)
    # a CVD's mtime is its build time, as in every PUM release: freshclam's If-Modified-Since is that time
    mtime = header.build_time if header is not None else (got.last_modified or time.time())
    ctx.staging.put(relpath, got.path, mtime=mtime, sha256=got.sha256, keep_source=True)
    ctx.log.line(f"download {relpath} ({got.size} bytes)")
    return IndexFile(got.etag, got.last_modified, got.size, got.sha256)
