"""`pum deploy apache|nginx`: where the config goes, what it says, and how to reload the server."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from pum.deploy.web import detect_flavor, reload_command, render_web_config, write_web_config
from pum.errors import ConfigError

CONFIG = SimpleNamespace(docroot=Path("/var/www/pum"), data_dir=Path("/var/lib/pum"), status_allow=())


@pytest.mark.parametrize(
    "server, flavor, path",
    [
        ("apache", "debian", "etc/apache2/conf-available/pum.conf"),
        ("apache", "rhel", "etc/httpd/conf.d/pum.conf"),
        ("nginx", "debian", "etc/nginx/conf.d/pum.conf"),
        ("nginx", "rhel", "etc/nginx/conf.d/pum.conf"),
    ],
)
def test_config_goes_where_the_distribution_reads_it(tmp_path, server, flavor, path):
    written = write_web_config(CONFIG, server, 8000, tmp_path, flavor)
    assert written == [tmp_path / path]
    assert "/var/www/pum" in written[0].read_text()
    assert written[0].stat().st_mode & 0o777 == 0o644


def test_apache_listens_on_the_chosen_port_like_the_original_guide():
    text = render_web_config("apache", Path("/var/www/pum"), 8000)
    assert "\nListen 8000\n" in text
    assert "<VirtualHost *:8000>" in text
    assert 'DocumentRoot "/var/www/pum"' in text
    assert "Options FollowSymLinks" in text and "Indexes" not in text.split("Options", 1)[1].split("\n")[0]


def test_apache_on_a_stock_port_adds_no_second_listen():
    text = render_web_config("apache", Path("/var/www/pum"), 80)
    assert "\nListen " not in text and "<VirtualHost *:80>" in text


def test_nginx_listens_on_the_chosen_port():
    text = render_web_config("nginx", Path("/var/www/pum"), 8123)
    assert "listen 8123;" in text and "root /var/www/pum;" in text
    assert "if_modified_since before;" in text


def test_the_default_port_is_8000(tmp_path):
    written = write_web_config(CONFIG, "nginx", None, tmp_path, "debian")
    assert "listen 8000;" in written[0].read_text()


def test_the_rhel_apache_config_explains_selinux_labels():
    assert "semanage fcontext" in render_web_config("apache", Path("/var/www/pum"), 8000, "rhel")
    assert "semanage" not in render_web_config("apache", Path("/var/www/pum"), 8000, "debian")


def test_reload_commands():
    assert (
        reload_command("apache", "debian")
        == "a2enconf pum && apache2ctl configtest && systemctl reload apache2"
    )
    assert reload_command("apache", "rhel") == "apachectl configtest && systemctl reload httpd"
    assert reload_command("nginx", "rhel") == "nginx -t && systemctl reload nginx"


def test_flavor_is_detected_from_etc(tmp_path):
    (tmp_path / "etc").mkdir()
    with pytest.raises(ConfigError, match="--flavor"):
        detect_flavor(tmp_path)
    (tmp_path / "etc" / "redhat-release").write_text("Rocky Linux release 9\n")
    assert detect_flavor(tmp_path) == "rhel"
    written = write_web_config(CONFIG, "apache", 8000, tmp_path)
    assert written == [tmp_path / "etc/httpd/conf.d/pum.conf"]


@pytest.mark.parametrize(
    "server, flavor, port, docroot",
    [
        ("lighttpd", "debian", 8000, "/var/www/pum"),
        ("apache", "suse", 8000, "/var/www/pum"),
        ("nginx", "debian", 0, "/var/www/pum"),
        ("nginx", "debian", 70000, "/var/www/pum"),
        ("nginx", "debian", 8000, "relative/pum"),
        ("nginx", "debian", 8000, "/var/www/my pum"),
        ("apache", "debian", 8000, '/var/www/"pum'),
    ],
)
def test_bad_requests_are_config_errors(server, flavor, port, docroot):
    with pytest.raises(ConfigError):
        render_web_config(server, Path(docroot), port, flavor)


def test_a_written_file_replaces_the_old_one_whole(tmp_path):
    write_web_config(CONFIG, "nginx", 8000, tmp_path, "debian")
    written = write_web_config(CONFIG, "nginx", 8001, tmp_path, "debian")
    assert "listen 8001;" in written[0].read_text()
    assert [p.name for p in written[0].parent.iterdir()] == ["pum.conf"]
