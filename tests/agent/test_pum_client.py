"""proscanup's HTTP limits: a per-file deadline, identity encoding only, a bounded product list."""

from __future__ import annotations

from products.tree import POWER_LIST

from agent.conftest import MODULE
from pum.errors import ExitStatus


def test_a_file_that_trickles_past_download_deadline_is_given_up(static_pum, host, proscanup):
    _tree, server = static_pum
    server.fault(MODULE, slow=2.0)
    h = host(UpdateServer=server.address, VdfCommand="true", DownloadDeadline=1)
    result = proscanup("--config", h.conf)
    assert result.code == ExitStatus.UPSTREAM, result
    assert "took longer than DownloadDeadline=1s" in result.err
    assert not (h.install / "bin" / "proscand").exists()


def test_a_compressed_answer_is_refused(static_pum, host, proscanup):
    _tree, server = static_pum
    server.fault(POWER_LIST, status=200, headers={"Content-Encoding": "gzip"})
    h = host(UpdateServer=server.address, VdfCommand="true")
    result = proscanup("--config", h.conf)
    assert result.code == ExitStatus.UPSTREAM, result
    assert "Content-Encoding 'gzip'; proscanup asks for identity" in result.err


def test_a_product_list_larger_than_4_mib_is_refused(static_pum, host, proscanup):
    tree, server = static_pum
    tree.put(POWER_LIST, b"#" * (4 << 20) + b"\n" * 2)
    h = host(UpdateServer=server.address, VdfCommand="true")
    result = proscanup("--config", h.conf)
    assert result.code == ExitStatus.UPSTREAM, result
    assert "larger than 4194304 bytes, refused" in result.err


def test_every_request_asks_for_identity_and_names_proscanup(static_pum, host, proscanup):
    _tree, server = static_pum
    h = host(UpdateServer=server.address, VdfCommand="true")
    assert proscanup("--config", h.conf).code == 0
    assert {r.headers.get("Accept-Encoding") for r in server.requests} == {"identity"}
    assert all(r.headers.get("User-Agent", "").startswith("proscanup/") for r in server.requests)


def test_names_with_blanks_hashes_and_non_ascii_are_fetched(static_pum, host, proscanup):
    tree, server = static_pum
    odd = ["ibm/power/lib/module one.bin", "ibm/power/lib/a#b?.so", "ibm/power/share/モジュール.dat"]
    for path in odd:
        tree.put(path, path.encode())
    tree.write_list(POWER_LIST, [MODULE, *odd])
    h = host(UpdateServer=server.address, VdfCommand="true")
    result = proscanup("--config", h.conf)
    assert result.code == 0, result
    for path in odd:
        assert (h.install / path.removeprefix("ibm/power/")).read_bytes() == path.encode()
