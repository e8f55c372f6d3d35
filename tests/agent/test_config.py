"""proscan.conf: proscanup reads [update.options] and names file:line for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from pum.agent.proscan_conf import parse_agent_config
from pum.errors import ConfigError, ExitStatus

GOOD = """[scanner]
Threads = 4

[update.options]
UpdateServer = pum1.example.com:8080, pum2.example.com
ProductList = ibm/power/PSHB06.lst
CommandTimeout = 120
ReloadApplication = yes
"""


def test_defaults_and_the_scanners_own_sections_left_alone() -> None:
    config = parse_agent_config(GOOD, Path("proscan.conf"))
    assert [str(s) for s in config.servers] == ["pum1.example.com:8080", "pum2.example.com"]
    assert config.product_list == "ibm/power/PSHB06.lst"
    assert config.install_dir == Path("/opt/proscan")
    assert config.database_dir == Path("/opt/proscan/var/clamav")
    assert config.version_file == Path("/opt/proscan/VERSION")
    assert config.command_timeout == 120 and config.reload_application is True
    assert config.upgrade_free_space == ((Path("/usr/lib"), 700),)
    assert config.engine_dir == Path("/usr/lib/clamav") and config.max_rate == 0


def test_reload_application_is_off_unless_set() -> None:
    text = GOOD.replace("ReloadApplication = yes\n", "")
    assert parse_agent_config(text, Path("proscan.conf")).reload_application is False


def test_install_dir_moves_the_defaults_below_it() -> None:
    config = parse_agent_config(GOOD + "InstallDir = /srv/proscan\n", Path("p.conf"))
    assert config.database_dir == Path("/srv/proscan/var/clamav")
    assert config.version_file == Path("/srv/proscan/VERSION")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("CommandTimout = 5", "p.conf:9: unknown option 'CommandTimout' in [update.options] (did you mean"),
        ("ReloadApplication2 = maybe", "p.conf:9: unknown option"),
        ("UpgradeFreeSpace = /usr/lib:lots", "p.conf:9: bad value for UpgradeFreeSpace"),
        ("UpgradeFreeSpace = usr/lib:700", "p.conf:9: bad value for UpgradeFreeSpace"),
        ("MaxRate = 1e9", "p.conf:9: bad value for MaxRate"),
        ("InstallDir = relative/dir", "p.conf:9: bad value for InstallDir"),
        ("Databases = Main", "p.conf:9: bad value for Databases"),
    ],
)
def test_mistakes_name_the_file_and_line(line: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_agent_config(GOOD + line + "\n", Path("p.conf"))
    assert message in str(caught.value)


def test_bad_value_of_a_known_option_names_its_line() -> None:
    text = GOOD.replace("ReloadApplication = yes", "ReloadApplication = maybe")
    with pytest.raises(ConfigError, match=r"p.conf:8: bad value for ReloadApplication"):
        parse_agent_config(text, Path("p.conf"))


def test_hostile_product_list_path_is_refused() -> None:
    text = GOOD.replace("ibm/power/PSHB06.lst", "../../etc/PSHB06.lst")
    with pytest.raises(ConfigError, match=r"p.conf:6: bad value for ProductList"):
        parse_agent_config(text, Path("p.conf"))


def test_missing_section_and_required_options_are_named() -> None:
    with pytest.raises(ConfigError, match=r"no \[update.options\] section"):
        parse_agent_config("[scanner]\nThreads = 4\n", Path("p.conf"))
    with pytest.raises(ConfigError, match=r"needs ProductList"):
        parse_agent_config("[update.options]\nUpdateServer = pum\n", Path("p.conf"))


def test_missing_config_file_exits_with_the_config_status(proscanup, tmp_path: Path) -> None:
    result = proscanup("--config", tmp_path / "nowhere.conf")
    assert result.code == ExitStatus.CONFIG
    assert "nowhere.conf: no such configuration file" in result.err


@pytest.mark.parametrize(
    ("encode", "encoding"),
    [(lambda t: b"\xef\xbb\xbf" + t.encode(), "utf-8 with BOM"), (lambda t: t.encode("cp932"), "cp932")],
)
def test_proscan_conf_saved_on_a_japanese_windows_desktop_loads(tmp_path, encode, encoding):
    from pum.agent.proscan_conf import load_agent_config

    path = tmp_path / "proscan.conf"
    path.write_bytes(encode("# スキャナーの設定\n" + GOOD))
    config = load_agent_config(path)
    assert config.encoding == encoding
    assert config.product_list == "ibm/power/PSHB06.lst"
