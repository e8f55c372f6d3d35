"""`proscanup`: one update of a scanner host, in the original order.

1. the product list; changed modules replaced atomically; `post_update.sh` fetched when absent;
2. the virus databases by freshclam (run even when step 1 failed: the VDF matters most);
3. `post_update.sh` executed, when step 1 downloaded it and ReloadApplication=yes.

Every step's failure is reported; the first decides the exit status.
"""

from __future__ import annotations

from pum.agent.config import AgentConfig
from pum.agent.http import UpdateClient
from pum.agent.journal import Journal, recover
from pum.agent.listing import Say, fetch_plan
from pum.agent.modules import update_modules
from pum.agent.nested import RunSlot
from pum.agent.postupdate import execute_post_update, fetch_post_update
from pum.agent.vdf import update_vdf
from pum.errors import PumError


def client_for(config: AgentConfig) -> UpdateClient:
    return UpdateClient(
        config.servers,
        config.protocol,
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        user_agent=config.user_agent,
    )


def run_update(config: AgentConfig, say: Say, show: Say, report: Say) -> list[PumError]:
    """Steps 1-3; returns the failures (each already passed to `report`)."""
    failures: list[PumError] = []

    def failed(error: PumError) -> None:
        failures.append(error)
        report(str(error))

    with RunSlot(config.state_dir), client_for(config) as client:
        downloaded_post_update = False
        try:
            recover(Journal(config.state_dir), say)  # an upgrade killed mid-install is undone first
            plan = fetch_plan(client, config, say)
            update_modules(client, plan.modules, say)
            downloaded_post_update = fetch_post_update(client, config, plan.post_update, say)
        except PumError as error:
            failed(error)
        servers = [client.chosen] if client.chosen else []
        servers += [server for server in config.servers if server not in servers]
        try:
            update_vdf(config, servers, say, show)
        except PumError as error:
            failed(error)
        if downloaded_post_update:
            try:
                execute_post_update(config, say, show)
            except PumError as error:
                failed(error)
    return failures
