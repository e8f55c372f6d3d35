"""Everything PUM keeps on disk, one writer each: the releases it serves (`releases`) and the state
documents beside them (`state`).

`from pum.store import Store` is the interface; the modules below say how.
"""

from pum.store.releases import (
    CRITICAL,
    LAYOUT_GENERATION,
    MANIFEST_PATH,
    Staging,
    Store,
    changes_behind_our_back,
    foreign_files,
    md5_file,
    sha256_file,
)
from pum.store.state import LastRun

__all__ = [
    "CRITICAL",
    "LastRun",
    "LAYOUT_GENERATION",
    "MANIFEST_PATH",
    "Staging",
    "Store",
    "changes_behind_our_back",
    "foreign_files",
    "md5_file",
    "sha256_file",
]
