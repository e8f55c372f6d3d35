"""`<data_dir>/local/`, the local content area (`pum import`): a second atomic store beside the releases.

The area holds `index.json` (per file: size, sha256, md5, mtime, when it was imported; and which tree is
current) and `trees/<n>/`, the files themselves. An import or a removal builds tree n+1 beside tree n (hard
links for what stays) and switches by rewriting the index atomically: a failed or killed import leaves the
area as it was. Release files are hard links of the tree files, so local content costs its bytes once.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from pum.config import Config
from pum.errors import StoreError
from pum.formats import FormatError
from pum.formats.manifest import FileRecord
from pum.formats.productlist import safe_relative_path

AREA_GENERATION = 1


@dataclass(frozen=True)
class LocalEntry:
    """One imported file as the index records it."""

    size: int
    sha256: str
    md5: str
    mtime: int
    imported: str  # ISO 8601 UTC

    def record(self) -> FileRecord:
        return FileRecord(size=self.size, sha256=self.sha256, mtime=self.mtime)


@dataclass(frozen=True)
class LocalContent:
    """One state of the local content: the tree holding the files and the index entries describing them."""

    tree: Path
    entries: Mapping[str, LocalEntry]

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", MappingProxyType(dict(sorted(self.entries.items()))))

    def path_of(self, relpath: str) -> Path:
        return self.tree / relpath


class LocalArea:
    """`<data_dir>/local/`: reads the committed local content, builds the next tree, commits it."""

    def __init__(self, config: Config) -> None:
        self.index = config.local_index
        self.root = self.index.parent
        self.trees = self.root / "trees"

    def load(self) -> LocalContent:
        try:
            document = json.loads(self.index.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return LocalContent(self.trees / "0", {})
        except (ValueError, UnicodeDecodeError) as error:
            raise StoreError(f"{self.index}: not a local content index: {error}") from None
        try:
            if document.get("generation", AREA_GENERATION) > AREA_GENERATION:
                raise StoreError(f"{self.index}: generation {document['generation']} is newer than this PUM")
            tree = str(int(document["tree"]))
            entries = {}
            for relpath, value in document["files"].items():
                if safe_relative_path(relpath) != relpath:
                    raise FormatError(f"path {relpath!r} is not canonical")
                entries[relpath] = LocalEntry(**value)
                entries[relpath].record()  # validates size, sha256, mtime
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise StoreError(f"{self.index}: damaged local content index: {error}") from None
        return LocalContent(self.trees / tree, entries)

    def new_tree(self, keep: LocalContent, drop: set[str]) -> Path:
        """Tree n+1 with hard links to every file of `keep` except `drop`; leftovers of killed imports go."""
        self.trees.mkdir(parents=True, exist_ok=True)
        for leftover in self.trees.iterdir():
            if leftover != keep.tree:
                shutil.rmtree(leftover)
        tree = self.trees / str(int(keep.tree.name) + 1)
        tree.mkdir()
        for relpath in keep.entries:
            if relpath not in drop:
                target = tree / relpath
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(keep.path_of(relpath), target)
        return tree

    def commit(self, content: LocalContent, previous: LocalContent) -> None:
        document = {
            "generation": AREA_GENERATION,
            "tree": content.tree.name,
            "files": {
                relpath: {
                    "size": e.size,
                    "sha256": e.sha256,
                    "md5": e.md5,
                    "mtime": e.mtime,
                    "imported": e.imported,
                }
                for relpath, e in content.entries.items()
            },
        }
        tmp = self.root / ".index.json.tmp"
        with open(tmp, "w", encoding="utf-8") as stream:
            stream.write(json.dumps(document, indent=1, sort_keys=True) + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, self.index)
        if previous.tree != content.tree:
            shutil.rmtree(previous.tree, ignore_errors=True)

    def discard(self, content: LocalContent, previous: LocalContent) -> None:
        if content.tree != previous.tree:
            shutil.rmtree(content.tree, ignore_errors=True)
