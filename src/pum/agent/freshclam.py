"""Step 2: the virus databases, by freshclam against the PUM (or the operator's own VdfCommand).

The built-in command runs freshclam with a config proscanup writes: every PUM as a `DatabaseMirror`
(the one that answered first), `DNSDatabaseInfo no` and `--no-dns`, so freshclam reads versions from the
512-byte CVD headers the PUM serves and asks nothing of clamav.net. `VdfCommand` replaces it, like the
original `proscan_avupdate.sh --update-host=H --update-port=P`, with `{host}`, `{port}`, `{url}`,
`{database_dir}` and `{config}` filled in.
"""

import os
import pwd
import shlex
from pathlib import Path
from typing import List

from pum.agent.command import CommandError, run_command
from pum.agent.listing import Say
from pum.agent.proscan_conf import AgentConfig
from pum.common.servers import Server

FRESHCLAM_CONF = "freshclam.conf"


def freshclam_config_text(config: AgentConfig, servers: List[Server]) -> str:
    owner = pwd.getpwuid(os.geteuid()).pw_name  # freshclam drops to DatabaseOwner when run as root
    mirrors = "".join(
        f"DatabaseMirror {server.base_url(config.protocol).rstrip('/')}\n" for server in servers
    )
    return (
        "# written by proscanup on every run; edit proscan.conf [update.options] instead\n"
        f"DatabaseDirectory {config.database_dir}\n"
        f"DatabaseOwner {owner}\n"
        f"{mirrors}"
        "DNSDatabaseInfo no\n"
        "ScriptedUpdates yes\n"
        f"ConnectTimeout {int(config.connect_timeout)}\n"
        f"ReceiveTimeout {int(config.read_timeout)}\n"
    )


def write_freshclam_config(config: AgentConfig, servers: List[Server]) -> Path:
    path = config.state_dir / FRESHCLAM_CONF
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(freshclam_config_text(config, servers))
    os.replace(str(tmp), str(path))
    return path


def vdf_command(config: AgentConfig, servers: List[Server]) -> List[str]:
    conf = write_freshclam_config(config, servers)
    first = servers[0]
    default_port = 443 if config.protocol == "https" else 80
    fields = {
        "{host}": first.host,
        "{port}": str(first.port or default_port),
        "{url}": first.base_url(config.protocol),
        "{database_dir}": str(config.database_dir),
        "{config}": str(conf),
    }
    if config.vdf_command:
        argv = shlex.split(config.vdf_command)
        for index, arg in enumerate(argv):
            for name, value in fields.items():
                arg = arg.replace(name, value)
            argv[index] = arg
        return argv
    argv = [
        config.freshclam,
        f"--config-file={conf}",
        f"--datadir={config.database_dir}",
        "--no-dns",
        "--stdout",
    ]
    return argv + [f"--update-db={db}" for db in config.databases]


def update_vdf(config: AgentConfig, servers: List[Server], say: Say, show: Say) -> None:
    config.database_dir.mkdir(parents=True, exist_ok=True)
    argv = vdf_command(config, servers)
    say("ClamAV update ....")
    say("-----")
    env = None
    if config.ca_file is not None:  # freshclam's libcurl takes a CA bundle from the environment
        env = dict(os.environ, CURL_CA_BUNDLE=str(config.ca_file))
    finished = run_command(argv, timeout=config.command_timeout, show=show, env=env)
    say("-----")
    if finished.timed_out:
        raise CommandError(
            f"ClamAV update ({argv[0]}) killed after CommandTimeout={config.command_timeout:g}s",
        )
    if finished.returncode != 0:
        tail = finished.output[-1] if finished.output else "no output"
        raise CommandError(f"ClamAV update ({argv[0]}) exited {finished.returncode}: {tail}")
    say("ClamAV update successfully")
