"""`proscanup`: one update of a scanner host, in the original order.

1. the product list (its request carries the fleet report); changed modules replaced, all or none;
   `post_update.sh` fetched when absent;
2. the virus databases by freshclam (run even when step 1 failed: the VDF matters most);
3. `post_update.sh` executed, when step 1 downloaded it and ReloadApplication=yes;
4. proscanup.pyz replaced by the PUM's when they differ (SelfUpdate=yes; last: agent/selfupdate.py),
   asked of the PUM that answered step 1 (none answered: not asked).

Every step's failure is reported; the first decides the exit status (so a failed self-update decides it
only when steps 1-3 went well). The run's result is kept for the next run's fleet report.
"""

import contextlib
from typing import List, Optional

from pum.agent.freshclam import update_vdf
from pum.agent.host_state import (
    LastRun,
    installed_modules_digest,
    read_last_run,
    report_query,
    write_last_run,
)
from pum.agent.journal import Journal, recover
from pum.agent.listing import Plan, Say, fetch_plan
from pum.agent.modules import update_modules
from pum.agent.nested import RunSlot
from pum.agent.postupdate import execute_post_update, fetch_post_update
from pum.agent.proscan_conf import AgentConfig
from pum.agent.pum_client import Progress, UpdateClient
from pum.errors import ConfigError, PumError, StoreError, VerifyError


def client_for(config: AgentConfig, progress: Optional[Progress] = None) -> UpdateClient:
    client = UpdateClient(
        config.servers,
        config.protocol,
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        user_agent=config.user_agent,
        ca_file=config.ca_file,
        download_deadline=config.download_deadline,
    )
    client.progress = progress
    return client


def check_signed_metadata(client: UpdateClient, config: AgentConfig, say: Say) -> None:
    """With TrustedRoot: refresh the PUM's signed metadata from the pinned root (once per run) and keep its
    targets in `client`, which then checks the product list and every file against them."""
    if config.trusted_root is None:
        say("Files are checked by MD5 only (legacy): no TrustedRoot in proscan.conf")
        return
    from pum.formats import FormatError
    from pum.trust import TUF_DIR
    from pum.trust.host import verified_targets

    if not config.trusted_root.is_file():
        raise ConfigError(f"TrustedRoot {config.trusted_root}: no such file (the root metadata to pin)")

    def fetch(name: str, max_length: int) -> Optional[bytes]:
        return client.get_optional(f"{TUF_DIR}/{name}", max_length, redirects=False)

    try:
        targets = verified_targets(fetch, str(config.trusted_root), str(config.state_dir / "tuf"))
    except FormatError as error:
        raise VerifyError(f"{client.url(TUF_DIR + '/')}: signed metadata refused: {error}") from None
    client.targets = dict(targets)
    say(f"Signed metadata checked against TrustedRoot {config.trusted_root}: {len(targets)} files signed")


def run_update(
    config: AgentConfig, say: Say, show: Say, report: Say, progress: Optional[Progress] = None
) -> List[PumError]:
    """Steps 1-3; returns the failures (each already passed to `report`)."""
    failures: List[PumError] = []
    failed_steps: List[str] = []

    def failed(step: str, error: PumError) -> None:
        failures.append(error)
        failed_steps.append(step)
        report(str(error))

    with RunSlot(config.state_dir), client_for(config, progress) as client:
        downloaded_post_update = False
        plan: Optional[Plan] = None
        step = "recover"
        try:
            recover(Journal(config.state_dir), say)  # an upgrade killed mid-install is undone first
            step = "list"
            check_signed_metadata(client, config, say)
            plan = fetch_plan(client, config, say, report_query(config))
            step = "modules"
            update_modules(client, plan.modules, say)
            step = "post_update"
            downloaded_post_update = fetch_post_update(client, config, plan.post_update, say)
        except PumError as error:
            failed(step, error)
        except OSError as error:
            failed(step, _local_error(step, error))
        servers = [client.chosen] if client.chosen else []
        servers += [server for server in config.servers if server not in servers]
        try:
            update_vdf(config, servers, say, show)
        except PumError as error:
            failed("vdf", error)
        except OSError as error:
            failed("vdf", _local_error("vdf", error))
        if downloaded_post_update:
            try:
                execute_post_update(config, say, show)
            except PumError as error:
                failed("post_update", error)
            except OSError as error:
                failed("post_update", _local_error("post_update", error))
        if config.self_update and client.chosen is not None:  # no PUM answered: nothing to ask
            from pum.agent.selfupdate import self_update

            try:
                self_update(client, say)
            except PumError as error:
                failed("selfupdate", error)
            except OSError as error:
                failed("selfupdate", _local_error("selfupdate", error))
        if config.report_state:
            _keep_result(config, plan, failed_steps)
    return failures


def _local_error(step: str, error: OSError) -> StoreError:
    """A local file that could not be read or written (a full disk): this step fails, the next ones run."""
    where = f"{error.filename}: " if error.filename else ""
    return StoreError(f"{step} step: {where}{error.strerror or error}; the steps after it still run")


def _keep_result(config: AgentConfig, plan: Optional[Plan], failed_steps: List[str]) -> None:
    last = "failed:" + failed_steps[0] if failed_steps else "ok"
    # the report is a courtesy to the PUM's fleet view; a state directory we cannot write fails nothing
    with contextlib.suppress(OSError):
        modules = installed_modules_digest(plan.modules) if plan else read_last_run(config.state_dir).modules
        write_last_run(config.state_dir, LastRun(modules, last))
