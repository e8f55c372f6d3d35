"""proscanup.pyz in every release is this PUM's own build, built again only when what it is built from
changed: `<state>/proscanup.pyz.sha256` remembers the last archive's sha256 and the digest of its sources."""

from __future__ import annotations

import hashlib

import pytest

from pum import client_bundle
from pum.client_bundle import PYZ_PATH, build_client_bytes
from pum.config import load_config
from pum.store.state import CLIENT_KNOWN


@pytest.fixture
def archives_built(monkeypatch):
    built: list[bytes] = []
    archive = client_bundle._archive

    def counted(entries):
        built.append(data := archive(entries))
        return data

    monkeypatch.setattr(client_bundle, "_archive", counted)
    return built


def served_pyz(conf) -> bytes:
    return (load_config(str(conf)).docroot / PYZ_PATH).read_bytes()


def test_a_publishing_run_with_the_same_sources_links_the_served_archive_without_building_it(
    upstream_tree, upstream, pum_conf, pum, archives_built
):
    conf = pum_conf()
    upstream_tree.publish(1)
    assert pum("--config", conf, "run").code == 0
    assert len(archives_built) == 1
    upstream_tree.publish(2)
    assert pum("--config", conf, "run").code == 0
    assert len(archives_built) == 1
    assert served_pyz(conf) == build_client_bytes()


@pytest.mark.parametrize(
    "line",
    [
        "0" * 64 + " built from " + "0" * 64 + "\n",  # built from other sources
        "damaged\n",
        "",
    ],
)
def test_an_archive_remembered_for_other_sources_or_a_damaged_line_is_built_again(
    upstream_tree, upstream, pum_conf, pum, archives_built, line
):
    conf = pum_conf()
    upstream_tree.publish(1)
    assert pum("--config", conf, "run").code == 0
    known = load_config(str(conf)).state_dir / CLIENT_KNOWN
    known.write_text(line)
    upstream_tree.publish(2)
    assert pum("--config", conf, "run").code == 0
    assert len(archives_built) == 2
    assert served_pyz(conf) == build_client_bytes()
    sha256 = hashlib.sha256(build_client_bytes()).hexdigest()
    assert known.read_text().startswith(f"{sha256} built from ")


def test_a_remembered_sha256_the_served_release_does_not_have_is_built_not_trusted(
    upstream_tree, upstream, pum_conf, pum, archives_built
):
    conf = pum_conf()
    upstream_tree.publish(1)
    assert pum("--config", conf, "run").code == 0
    known = load_config(str(conf)).state_dir / CLIENT_KNOWN
    _sha256, _, built_from = known.read_text().partition(" built from ")
    known.write_text("f" * 64 + " built from " + built_from)
    upstream_tree.publish(2)
    assert pum("--config", conf, "run").code == 0
    assert len(archives_built) == 2
    assert served_pyz(conf) == build_client_bytes()
