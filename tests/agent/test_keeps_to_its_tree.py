"""proscanup keeps to its tree and its PUM: static_pum list entries, redirects elsewhere, and https with a
private CA (#11 item 4)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from products.tree import POWER_LIST
from upstream import Upstream

from agent.conftest import MODULE
from pum.agent.listing import classify
from pum.agent.proscan_conf import parse_agent_config
from pum.errors import ExitStatus, VerifyError
from pum.formats.productlist import ListEntry

MD5 = "d41d8cd98f00b204e9800998ecf8427e"


@pytest.mark.parametrize(
    "aim",
    [
        "ibm/power/.ssh/authorized_keys",
        "ibm/power/VERSION",
        "ibm/power/var/clamav/daily.cvd",
        "ibm/power/dns.txt",
    ],
)
def test_a_list_entry_aiming_outside_the_modules_is_refused(static_pum, host, proscanup, aim):
    tree, server = static_pum
    tree.put(aim, "ssh-ed25519 AAAA attacker\n")
    tree.write_list(POWER_LIST, [MODULE, aim])
    h = host(UpdateServer=server.address, VdfCommand="true")
    result = proscanup("--config", h.conf)
    assert result.code == ExitStatus.VERIFY, result
    assert f"entry '{aim}' refused" in result.err
    relative = aim.removeprefix("ibm/power/")
    assert not (h.install / relative).exists()
    assert not (h.install / "bin" / "proscand").exists()  # the whole list is refused


def _config(tmp_path: Path):
    text = (
        "[update.options]\nUpdateServer = pum\nProductList = ibm/power/PSHB06.lst\n"
        f"InstallDir = {tmp_path}/opt\nStateDir = {tmp_path}/opt/state\n"
    )
    return parse_agent_config(text, tmp_path / "p.conf")


@pytest.mark.parametrize("relative", ["state/host_id", "var/clamav/bytecode.ign2", ".profile"])
def test_modules_may_not_write_into_the_state_or_database_directories_or_dot_files(tmp_path, relative):
    with pytest.raises(VerifyError, match="refused"):
        classify(_config(tmp_path), [ListEntry(MD5, f"ibm/power/{relative}", 1)])


def test_a_symbolic_link_leading_out_of_the_install_directory_is_refused(tmp_path):
    config = _config(tmp_path)
    config.install_dir.mkdir(parents=True)
    (config.install_dir / "etc").symlink_to("/etc")
    with pytest.raises(VerifyError, match="symbolic link"):
        classify(config, [ListEntry(MD5, "ibm/power/etc/cron.d/x", 1)])


def test_a_redirect_to_another_server_is_refused(static_pum, host, proscanup):
    tree, server = static_pum
    elsewhere = Upstream(tree.root).start()
    try:
        server.fault(POWER_LIST, status=302, headers={"Location": elsewhere.url(POWER_LIST)})
        h = host(UpdateServer=server.address, VdfCommand="true")
        result = proscanup("--config", h.conf)
        assert result.code == ExitStatus.UPSTREAM, result
        assert "redirected to another server" in result.err
        assert elsewhere.requests == []
    finally:
        elsewhere.stop()


def test_a_redirect_on_the_same_server_is_followed(static_pum, host, proscanup):
    tree, server = static_pum
    tree.put("moved/PSHB06.lst", tree.read(POWER_LIST))
    server.fault(POWER_LIST, status=301, headers={"Location": "/moved/PSHB06.lst"})
    h = host(UpdateServer=server.address, VdfCommand="true")
    assert proscanup("--config", h.conf).code == 0
    assert (h.install / "bin" / "proscand").exists()


@pytest.fixture
def tls_pum(static_pum, tmp_path):
    import trustme  # in the test extras: missing is a failure, not a skip

    tree, _plain = static_pum
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    server = Upstream(tree.root, tls=context).start()
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    yield server, ca_file
    server.stop()


def test_https_with_the_pums_ca_file_works(tls_pum, host, proscanup):
    server, ca_file = tls_pum
    h = host(UpdateServer=server.address, Protocol="https", CAFile=ca_file, VdfCommand="true")
    result = proscanup("--config", h.conf)
    assert result.code == 0, result
    assert (h.install / "bin" / "proscand").exists()


def test_https_with_an_unknown_certificate_is_refused(tls_pum, host, proscanup):
    server, _ca_file = tls_pum
    h = host(UpdateServer=server.address, Protocol="https", VdfCommand="true")
    result = proscanup("--config", h.conf)
    assert result.code == ExitStatus.UPSTREAM, result
    assert "certificate" in result.err.lower()
    assert not (h.install / "bin" / "proscand").exists()


def test_freshclam_trusts_the_pums_ca_file_too(site, host, proscanup, tmp_path):
    import trustme

    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    server = Upstream(site.conf.parent / "www" / "pum", tls=context).start()
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    try:
        h = host(UpdateServer=server.address, Protocol="https", CAFile=ca_file)
        result = proscanup("--config", h.conf, "-V")
    finally:
        server.stop()
    assert result.code == 0, result
    assert (h.databases / "test.cvd").exists() or (h.databases / "test.cld").exists()
