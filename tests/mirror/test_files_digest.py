"""files_digest: the digest a sub remembers (state/mirror.json, the served manifest's `source`) of the
upper's file set; an upgraded PUM must compute the same one, or its next run copies everything again."""

import hashlib
import json

from pum.formats.manifest import FileRecord
from pum.sync.mirror import files_digest


def test_files_digest_is_the_sha256_of_the_sorted_compact_json_of_the_file_set() -> None:
    files = {
        f"d{n % 3}/{name}-{n}.bin": FileRecord(n, f"{n:064x}", 1_700_000_000 + n)
        for n, name in enumerate(["plain", "ファイル", 'quote"', "back\\slash", "tab\t"] * 700)
    }
    canonical = {path: [r.size, r.sha256, r.mtime] for path, r in sorted(files.items())}
    expected = hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()
    assert files_digest(files) == expected
    assert files_digest({}) == hashlib.sha256(b"{}").hexdigest()
