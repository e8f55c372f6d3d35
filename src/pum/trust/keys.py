"""PUM's signing keys and root metadata: `pum keys init | show | rotate`.

Two RSA keys (rsassa-pss-sha256, 3072 bits): the root key, which signs only the root metadata and may live
outside the server (`--offline-root DIR`), and the online key, which signs targets, snapshot and timestamp
at every publish. Every root version ever signed is kept in `keys/root/<n>.root.json` and goes into each
release, so that a client pinned to an older root walks the chain to the newest one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from pum.config import Config
from pum.errors import ConfigError, PumError
from pum.formats import FormatError
from pum.formats.tuf_metadata import parse_metadata

if TYPE_CHECKING:
    from securesystemslib.signer import CryptoSigner

ROOT_KEY = "root.pem"
ONLINE_KEY = "online.pem"
ROOT_HISTORY = "root"
ROOT_LIFETIME = dt.timedelta(days=365)
# a root key kept online renews the root this long before it expires (an offline one: pum keys rotate)
ROOT_RENEW = dt.timedelta(days=60)
ONLINE_ROLES = ("timestamp", "snapshot", "targets")
_SCHEME = "rsassa-pss-sha256"
_KEY_BITS = 3072


def keys_dir(config: Config) -> Path:
    return config.data_dir / "keys"


def root_versions(directory: Path) -> list[tuple[int, Path]]:
    """The root metadata files of `keys/root/` (or a release's `.pum/tuf/`), oldest first."""
    found = []
    if directory.is_dir():
        for path in directory.iterdir():
            number = path.name.removesuffix(".root.json")
            if path.name.endswith(".root.json") and number.isdigit():
                found.append((int(number), path))
    return sorted(found)


class SigningKeys(NamedTuple):
    """What a publish needs: the online signer and every root version, oldest first."""

    online: CryptoSigner
    roots: list[tuple[int, bytes]]


def load_signing_keys(config: Config) -> SigningKeys | None:
    """The online key and root history, or None when `pum keys init` was never run."""
    directory = keys_dir(config)
    roots = root_versions(directory / ROOT_HISTORY)
    if not roots:
        return None
    online = _load_signer(directory / ONLINE_KEY)
    return SigningKeys(online, [(number, path.read_bytes()) for number, path in roots])


def init_keys(config: Config, offline_root: Path | None = None, now: dt.datetime | None = None) -> Path:
    """Make the root and online keys and root version 1; return the root metadata clients pin."""
    from securesystemslib.signer import CryptoSigner
    from tuf.api.metadata import Root

    directory = keys_dir(config)
    if root_versions(directory / ROOT_HISTORY):
        raise PumError(
            f"{directory}: keys exist already; 'pum keys show' prints what to pin, "
            "'pum keys rotate' makes new online keys"
        )
    now = now or dt.datetime.now(dt.UTC)
    root_key = CryptoSigner.generate_rsa(scheme=_SCHEME, size=_KEY_BITS)
    online = CryptoSigner.generate_rsa(scheme=_SCHEME, size=_KEY_BITS)
    _private_dir(directory)
    _write_private(_root_key_path(config, offline_root), root_key)
    _write_private(directory / ONLINE_KEY, online)
    root = Root(version=1, expires=now + ROOT_LIFETIME, consistent_snapshot=True)
    root.add_key(root_key.public_key, "root")
    for role in ONLINE_ROLES:
        root.add_key(online.public_key, role)
    return _write_root(directory, root, [root_key])


def rotate_keys(
    config: Config,
    offline_root: Path | None = None,
    new_root_key: bool = False,
    now: dt.datetime | None = None,
) -> Path:
    """A new online key (and with `new_root_key` a new root key): root version n+1 lists them and is
    signed by the old root key, so that a client pinned to an older root follows; return its path."""
    from securesystemslib.signer import CryptoSigner
    from tuf.api.metadata import Metadata, Root

    directory = keys_dir(config)
    history = root_versions(directory / ROOT_HISTORY)
    if not history:
        raise PumError(f"{directory}: no keys yet; run 'pum keys init' first")
    current = Metadata[Root].from_bytes(history[-1][1].read_bytes())
    old_root_key = _load_signer(_root_key_path(config, offline_root))
    if old_root_key.public_key.keyid not in current.signed.roles["root"].keyids:
        raise PumError(
            f"{_root_key_path(config, offline_root)}: not the key of root version {current.signed.version}"
        )
    root = current.signed
    online = CryptoSigner.generate_rsa(scheme=_SCHEME, size=_KEY_BITS)
    for role in ONLINE_ROLES:
        for keyid in list(root.roles[role].keyids):
            root.revoke_key(keyid, role)
        root.add_key(online.public_key, role)
    signers = [old_root_key]
    if new_root_key:
        fresh_root_key = CryptoSigner.generate_rsa(scheme=_SCHEME, size=_KEY_BITS)
        root.revoke_key(old_root_key.public_key.keyid, "root")
        root.add_key(fresh_root_key.public_key, "root")
        signers.append(fresh_root_key)
    root.version += 1
    root.expires = (now or dt.datetime.now(dt.UTC)) + ROOT_LIFETIME
    # the new online key first (beside), then the root that names it, then the switch: a crash in
    # between leaves the old key with the old root, or a root whose key is beside, named `.next`
    upcoming = directory / (ONLINE_KEY + ".next")
    upcoming.unlink(missing_ok=True)
    _write_private(upcoming, online)
    if new_root_key:
        replaced = _root_key_path(config, offline_root)
        replaced.rename(replaced.with_name(ROOT_KEY + f".{current.signed.version}.old"))
        _write_private(replaced, signers[1])
    path = _write_root(directory, root, signers)
    os.replace(upcoming, directory / ONLINE_KEY)
    return path


def root_renewal_due(config: Config, now: dt.datetime | None = None) -> str | None:
    """With the root key online, the newest root expiring within ROOT_RENEW: why it must be renewed."""
    directory = keys_dir(config)
    history = root_versions(directory / ROOT_HISTORY)
    if not history or not (directory / ROOT_KEY).exists():
        return None
    try:
        root = parse_metadata(history[-1][1].read_bytes(), "root")
    except FormatError as error:
        raise PumError(f"{history[-1][1]}: {error}") from None
    if root.expires - (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None) > ROOT_RENEW:
        return None
    return f"root metadata version {root.version} expires {root.expires:%Y-%m-%d}"


def renew_root(config: Config, now: dt.datetime | None = None) -> int | None:
    """Root version n+1 with the same keys and another year, when `root_renewal_due`; its version."""
    if root_renewal_due(config, now) is None:
        return None
    from tuf.api.metadata import Metadata, Root

    directory = keys_dir(config)
    root = Metadata[Root].from_bytes(root_versions(directory / ROOT_HISTORY)[-1][1].read_bytes()).signed
    root.version += 1
    root.expires = (now or dt.datetime.now(dt.UTC)) + ROOT_LIFETIME
    _write_root(directory, root, [_load_signer(directory / ROOT_KEY)])
    return root.version


def describe_keys(config: Config) -> list[str]:
    """`pum keys show`: what to pin (the newest root metadata, with its sha256) and where the keys are."""
    directory = keys_dir(config)
    history = root_versions(directory / ROOT_HISTORY)
    if not history:
        return [f"no keys in {directory}: releases are not signed; run 'pum keys init'"]
    number, path = history[-1]
    data = path.read_bytes()
    try:
        root = parse_metadata(data, "root")
    except FormatError as error:
        raise PumError(f"{path}: {error}") from None
    roles = root.signed["roles"]
    root_key = directory / ROOT_KEY
    return [
        f"root metadata to pin: {path} (version {number}, expires {root.signed['expires']})",
        f"  sha256 {hashlib.sha256(data).hexdigest()}",
        f"  root key {', '.join(roles['root']['keyids'])[:16]}... "
        + (f"in {root_key}" if root_key.exists() else "kept offline"),
        f"  online key {', '.join(roles['targets']['keyids'])[:16]}... in {directory / ONLINE_KEY}",
        "copy it to each sub-PUM (pum.conf trusted_root=PATH) and each host (proscan.conf TrustedRoot=PATH)",
    ]


def pin_notes(config: Config, data_dir: Path) -> list[str]:
    """What `pum install` says about signing: what to pin, or the command that makes the keys."""
    if config.mode == "mirror":
        if config.trusted_root is not None:
            return [f"releases of the upper are checked against {config.trusted_root} (trusted_root)"]
        return [
            "the upper's releases are not checked against signed metadata: set trusted_root= in pum.conf "
            "to the main PUM's root metadata ('pum keys show' there)"
        ]
    history = root_versions(data_dir / "keys" / ROOT_HISTORY)
    if not history:
        return [
            "releases are not signed yet: run 'pum keys init' (or 'pum keys init --offline-root DIR'), "
            "then pin the root metadata it names on each sub-PUM (trusted_root=) and host (TrustedRoot=)"
        ]
    data = history[-1][1].read_bytes()
    return [
        f"pin this root metadata on each sub-PUM (trusted_root=) and host (TrustedRoot=): "
        f"{keys_dir(config) / ROOT_HISTORY / history[-1][1].name} (sha256 {hashlib.sha256(data).hexdigest()})"
    ]


def _root_key_path(config: Config, offline_root: Path | None) -> Path:
    return (offline_root or keys_dir(config)) / ROOT_KEY


def _private_dir(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    (directory / ROOT_HISTORY).mkdir(exist_ok=True)


def _write_private(path: Path, signer: CryptoSigner) -> None:
    """A private key, mode 0600 from its creation on; never over an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as stream:
        stream.write(signer.private_bytes)
        stream.flush()
        os.fsync(stream.fileno())


def _load_signer(path: Path) -> CryptoSigner:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from securesystemslib.signer import CryptoSigner, SSlibKey

    try:
        private = load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: key not found (a root key kept offline is given with --offline-root DIR)"
        ) from None
    except ValueError as error:
        raise ConfigError(f"{path}: not a PEM private key: {error}") from None
    public = SSlibKey.from_crypto(private.public_key(), scheme=_SCHEME)
    return CryptoSigner(private, public)


def _write_root(directory: Path, root: Any, signers: list[CryptoSigner]) -> Path:
    from tuf.api.metadata import Metadata
    from tuf.api.serialization.json import JSONSerializer

    metadata = Metadata(root)
    for signer in signers:
        metadata.sign(signer, append=True)
    path = directory / ROOT_HISTORY / f"{metadata.signed.version}.root.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(metadata.to_bytes(JSONSerializer(compact=False)))
    os.replace(tmp, path)
    return path
