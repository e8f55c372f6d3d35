"""Step 3: the post-update protocol, as the original updater had it.

`post_update.sh` is downloaded only when the server lists it and there is no local copy
(`<install>/bin/post_update.sh`); it is executed only in the run that downloaded it, and only when
`ReloadApplication=yes`. No download, no execution: turning ReloadApplication on later does not run an
old script, and deleting the local copy makes the next run download and execute it again. A failed or
killed script keeps its local copy (delete it to run it again).
"""

import os
from typing import Optional

from pum.agent.command import CommandError, run_command, script_argv
from pum.agent.listing import POST_UPDATE, Say
from pum.agent.nested import child_failures
from pum.agent.proscan_conf import AgentConfig
from pum.agent.pum_client import UpdateClient
from pum.formats.productlist import ListEntry


def fetch_post_update(
    client: UpdateClient, config: AgentConfig, entry: Optional[ListEntry], say: Say
) -> bool:
    """Download the script when it is listed and absent locally; True when it was downloaded now."""
    local = config.post_update_path
    if entry is None:
        say("No post-update file on the server")
        return False
    if local.exists():
        say(f"Post-update file {local} is already here: not downloaded")
        return False
    say("Downloading Post-update file, Please wait...")
    client.download(entry.path, local, entry.md5)
    os.chmod(str(local), 0o755)
    say(f"Success: Get post update file [md5sum {entry.md5}]")
    return True


def execute_post_update(config: AgentConfig, say: Say, show: Say) -> None:
    local = config.post_update_path
    if not config.reload_application:
        say(f"ReloadApplication=no: {POST_UPDATE} not executed")
        return
    say(f"{POST_UPDATE} executing...")
    say("-----")
    finished = run_command(script_argv(local), timeout=config.command_timeout, show=show, cwd=local.parent)
    say("-----")
    if finished.timed_out:
        raise CommandError(
            f"{local}: killed after CommandTimeout={config.command_timeout:g}s; "
            "delete it to download and run it again"
        )
    if finished.returncode != 0:
        raise CommandError(f"{local}: exited {finished.returncode}; delete it to download and run it again")
    nested = child_failures(config.state_dir)
    if nested:
        raise CommandError(f"{local}: exited 0, but the proscanup it ran failed: {nested[0]}")
    say(f"{POST_UPDATE} execute successfully")
