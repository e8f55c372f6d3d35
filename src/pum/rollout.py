"""`pum rollout PACKAGE-PATH --percent N [--hosts FILE]`: how much of the fleet installs a package now.

The vendor asked operators to spread an engine upgrade over time ("upgrading many hosts at once loads the
network and the update server"). The rollout document (formats/rollout.py) is published beside the package,
at `<package path>.rollout`, as local content through `pum import`: checked, published under the run lock
in a new release, carried by every later release until the next `pum rollout` or `pum import --remove`.
`proscanup upgrade` reads it; a host takes part when it is listed or its host id falls inside the share.
"""

import os
import tempfile
from pathlib import Path

from pum.config import Config
from pum.errors import ConfigError, StoreError
from pum.formats import FormatError
from pum.formats.productlist import safe_relative_path
from pum.formats.rollout import SUFFIX, make_rollout, render_rollout
from pum.importer import ImportOutcome, import_content
from pum.runlog import RunLog

HOSTS_LIMIT = 8 << 20


def publish_rollout(
    config: Config, package: str, percent: float, hosts_file: Path | None, log: RunLog
) -> ImportOutcome:
    try:
        path = safe_relative_path(package.strip("/"))
    except FormatError as error:
        raise StoreError(f"{package!r}: {error}") from None
    if not (config.docroot / path).is_file():
        raise StoreError(f"{path}: the served release has no such package (pum run publishes it first)")
    hosts = _read_hosts(hosts_file) if hosts_file else []
    try:
        rollout = make_rollout(path, percent, hosts)
    except FormatError as error:
        raise ConfigError(f"{hosts_file or '--percent'}: {error}") from None
    directory, _, name = path.rpartition("/")
    with tempfile.TemporaryDirectory(prefix="pum-rollout-") as staging:
        document = Path(staging, name + SUFFIX)
        document.write_bytes(render_rollout(rollout))
        os.utime(document)
        return import_content(config, Path(staging), directory or None, log)


def _read_hosts(path: Path) -> list[str]:
    """Host ids or host names, one a line; `#` starts a comment."""
    with open(path, "rb") as stream:
        data = stream.read(HOSTS_LIMIT + 1)
    if len(data) > HOSTS_LIMIT:
        raise ConfigError(f"{path}: larger than {HOSTS_LIMIT} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]
