"""Everything PUM keeps on disk: the releases it serves (`releases`), one writer each.

`from pum.store import Store` is the interface; the modules below say how.
"""

from pum.store.releases import (
    LAYOUT_GENERATION,
    MANIFEST_PATH,
    Staging,
    Store,
    changes_behind_our_back,
    foreign_files,
    md5_file,
    sha256_file,
)

__all__ = [
    "LAYOUT_GENERATION",
    "MANIFEST_PATH",
    "Staging",
    "Store",
    "changes_behind_our_back",
    "foreign_files",
    "md5_file",
    "sha256_file",
]
