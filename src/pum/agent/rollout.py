"""Whether this host takes part in an upgrade now: the rollout document `pum rollout` publishes beside the
package (`<package path>.rollout`, see formats/rollout.py) and this host's id.

No document: every host takes part. The host id is a UUID4 kept in `<StateDir>/host_id` (one line, made
at the first need by agent/host_state.py; the fleet report sends the same id). Python 3.6-clean.
"""

import socket
from pathlib import Path
from typing import Callable, Optional

from pum.agent.host_state import host_id
from pum.errors import VerifyError
from pum.formats import FormatError
from pum.formats.rollout import SUFFIX, host_share, parse_rollout, takes_part

DOCUMENT_LIMIT = 8 << 20

GetOptional = Callable[[str, int], Optional[bytes]]  # relpath, limit -> body, or None when not served


def in_rollout(
    get_optional: GetOptional, state_dir: Path, package_path: str, say: Callable[[str], None]
) -> bool:
    relpath = package_path + SUFFIX
    document = get_optional(relpath, DOCUMENT_LIMIT)
    if document is None:
        return True
    try:
        rollout = parse_rollout(document, package_path)
    except FormatError as error:
        raise VerifyError(f"{relpath}: rollout document refused: {error}") from None
    me = host_id(state_dir)
    if takes_part(rollout, me, socket.gethostname()):
        say(f"This host ({me}) takes part in the rollout of {package_path} ({rollout.percent:g}% of hosts)")
        return True
    say(
        f"Not upgraded now: the rollout of {package_path} is at {rollout.percent:g}% of hosts and this host "
        f"({me}) comes at {host_share(package_path, me):.1f}%"
    )
    return False
