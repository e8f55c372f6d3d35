"""Fixtures of the chain-of-trust suite: signing keys made once per session (RSA 3072 is slow to make),
a main PUM's release store signed with them, and the two TUF clients run side by side."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pum.config import Config
from pum.store import Store
from pum.trust.keys import init_keys


@pytest.fixture(scope="session")
def keys_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data_dir/keys made by `init_keys`, copied into each test's repository."""
    data = tmp_path_factory.mktemp("keys")
    init_keys(Config(docroot=data / "www", data_dir=data))
    return data / "keys"


@pytest.fixture(scope="session")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keys of somebody else: a repository signed with them must be refused."""
    data = tmp_path_factory.mktemp("other-keys")
    init_keys(Config(docroot=data / "www", data_dir=data))
    return data / "keys"


class Repository:
    """A main PUM's store with keys: publish(files) makes a signed release, as `pum run` does."""

    def __init__(self, base: Path, keys: Path | None) -> None:
        self.config = Config(docroot=base / "www", data_dir=base / "data", keep_releases=20)
        self.store = Store(self.config)
        if keys is not None:
            shutil.copytree(keys, self.config.data_dir / "keys")

    @property
    def docroot(self) -> Path:
        return self.config.docroot

    @property
    def keys(self) -> Path:
        return self.config.data_dir / "keys"

    def root_path(self, version: int = 1) -> Path:
        return self.keys / "root" / f"{version}.root.json"

    def publish(self, files: dict[str, bytes | None]) -> int:
        staging = self.store.begin()
        staging.start_from_current()
        for relpath, data in files.items():
            if data is None:
                staging.remove(relpath)
            else:
                staging.write_bytes(relpath, data)
        serial = self.store.publish(staging)
        shutil.rmtree(self.store.staging_root)
        return serial


@pytest.fixture
def repository(tmp_path: Path, keys_template: Path) -> Repository:
    return Repository(tmp_path / "main", keys_template)
