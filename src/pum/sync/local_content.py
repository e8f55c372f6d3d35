"""Local content (`pum import`) laid over every release, after the other sources, so that a release never
loses it; and the checks of product lists brought as local content. The area on disk is
`pum.store.local_area`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pum.errors import StoreError
from pum.formats import FormatError
from pum.formats.productlist import parse_product_list, reserved_path_problem
from pum.store import Staging, changes_behind_our_back, md5_file
from pum.store.local_area import LocalArea, LocalContent
from pum.sync import SyncContext


@dataclass(frozen=True)
class Overlaid:
    """What laying one local file over the staged release did: `added` (the release had no such path),
    `replaced` (it had another file there: old md5 given) or `unchanged`."""

    path: str
    outcome: str
    md5: str
    old_md5: str | None = None


def overlay_local_content(staging: Staging, content: LocalContent, where: str) -> list[Overlaid]:
    """Lay the local content over the staged release: local files win over any file of the same path, but
    never a VDF file. `where` names the local content in messages (the index, or the archive)."""
    damaged = changes_behind_our_back(content.tree, {p: e.record() for p, e in content.entries.items()})
    if damaged:
        raise StoreError(
            f"local content changed since it was imported: {content.tree}/{damaged[0]}; "
            "import it again ('pum import') or take it out ('pum import --remove PATH')"
        )
    directories = {parent for path in staging.paths() for parent in parent_dirs(path)}
    outcomes = []
    for relpath, entry in content.entries.items():
        reason = reserved_path_problem(relpath)
        if reason:
            raise StoreError(f"{where}: local content {relpath!r} refused: {reason}")
        if relpath in directories:
            raise StoreError(
                f"{where}: local file {relpath!r} would replace the directory {relpath}/ of the release"
            )
        clash = next((parent for parent in parent_dirs(relpath) if staging.has(parent)), None)
        if clash is not None:
            raise StoreError(
                f"{where}: local file {relpath!r} needs {clash}/ to be a directory, "
                f"but the release has a file {clash!r}"
            )
        old = staging.records.get(relpath)
        if old is not None and old.sha256 == entry.sha256 and old.mtime == entry.mtime:
            outcomes.append(Overlaid(relpath, "unchanged", entry.md5))
            continue
        old_md5 = None
        if old is not None and old.sha256 != entry.sha256:
            old_md5 = md5_file(staging.path_of(relpath))
        staging.put(
            relpath, content.path_of(relpath), mtime=entry.mtime, sha256=entry.sha256, keep_source=True
        )
        if old is None:
            outcomes.append(Overlaid(relpath, "added", entry.md5))
        elif old_md5 is None:
            outcomes.append(Overlaid(relpath, "unchanged", entry.md5))
        else:
            outcomes.append(Overlaid(relpath, "replaced", entry.md5, old_md5))
    return outcomes


def list_problems(staging: Staging, content: LocalContent) -> list[str]:
    """Product lists brought as local content (`*.lst`, md5sum format, paths from the tree's root) checked
    against the staged release: every file they name must be there with that md5."""
    problems: list[str] = []
    for relpath in content.entries:
        if not relpath.endswith(".lst"):
            continue
        try:
            text = content.path_of(relpath).read_bytes().decode("utf-8")
            listed = parse_product_list(text, relpath)
        except UnicodeDecodeError as error:
            problems.append(f"{relpath}: not UTF-8 text ({error})")
            continue
        except FormatError as error:
            problems.append(str(error))
            continue
        for item in listed:
            if not staging.has(item.path):
                problems.append(f"{relpath}:{item.line}: {item.path} is listed but not there")
                continue
            got = _staged_md5(staging, content, item.path)
            if got != item.md5:
                problems.append(f"{relpath}:{item.line}: {item.path} has md5 {got}, the list says {item.md5}")
    return problems


def stale_upstream_lists(staging: Staging, content: LocalContent, replaced: list[str]) -> list[str]:
    """Lists that did not come with the local content but name a file it replaced: clients would refuse
    that file until the operator brings a matching list too."""
    if not replaced:
        return []
    warnings = []
    for relpath in staging.paths():
        if not relpath.endswith(".lst") or relpath in content.entries:
            continue
        try:
            listed = parse_product_list(staging.path_of(relpath).read_bytes().decode("utf-8"), relpath)
        except (UnicodeDecodeError, FormatError) as error:
            warnings.append(f"{relpath}: cannot be read to compare with local content: {error}")
            continue
        for item in listed:
            if item.path in replaced and item.md5 != content.entries[item.path].md5:
                warnings.append(
                    f"{relpath}:{item.line} names {item.path} with md5 {item.md5} but local content "
                    f"replaced it (md5 {content.entries[item.path].md5}): clients will refuse it until a "
                    "matching list is imported too"
                )
    return warnings


def _staged_md5(staging: Staging, content: LocalContent, relpath: str) -> str:
    entry = content.entries.get(relpath)
    if entry is not None and staging.records[relpath].sha256 == entry.sha256:
        return entry.md5
    return md5_file(staging.path_of(relpath))


def parent_dirs(relpath: str) -> list[str]:
    """`a/b/c` -> [`a`, `a/b`]."""
    parts = relpath.split("/")
    return ["/".join(parts[:n]) for n in range(1, len(parts))]


class LocalContentSource:
    """Runs last in both modes: whatever the other sources staged, the local content is laid over it."""

    def __init__(self, content: LocalContent | None = None) -> None:
        self.content = content
        self.outcomes: list[Overlaid] = []

    def sync(self, ctx: SyncContext) -> None:
        area = LocalArea(ctx.config)
        content = self.content if self.content is not None else area.load()
        if not content.entries:
            return
        self.outcomes = overlay_local_content(ctx.staging, content, str(area.index))
        replaced = [o for o in self.outcomes if o.outcome == "replaced"]
        for item in replaced:
            ctx.log.line(f"local content replaces {item.path} (md5 {item.old_md5} -> {item.md5})")
        added = sum(1 for o in self.outcomes if o.outcome == "added")
        files = f"{len(content.entries)} file{'' if len(content.entries) == 1 else 's'}"
        ctx.log.line(f"local content: {files} ({added} added, {len(replaced)} replaced)")
        if self.content is None:
            # In a run a stale list is logged, not fatal: the VDF must still go out. `pum import` refuses.
            for problem in list_problems(ctx.staging, content):
                ctx.log.line(f"WARNING: local list {problem}")
            for warning in stale_upstream_lists(ctx.staging, content, [o.path for o in replaced]):
                ctx.log.line(f"WARNING: {warning}")
