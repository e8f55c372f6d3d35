"""TUF metadata (The Update Framework, spec 1.x) verified in pure Python: canonical JSON, RSA-PSS
signatures, and the client workflow root -> timestamp -> snapshot -> targets with its version, expiry,
rollback and threshold rules. Stdlib only and Python 3.6-clean: scanner hosts run it (proscanup).

The rules follow python-tuf's `ngclient` (tuf/ngclient/_internal/trusted_metadata_set.py) so that both
accept and refuse the same repositories; tests run the two side by side on the same files.
"""

import base64
import binascii
import contextlib
import datetime
import hashlib
import hmac
import json
import re
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from . import FormatError

# The largest metadata files we read, as ngclient's UpdaterConfig: a bound on every download.
ROOT_MAX_LENGTH = 512000
TIMESTAMP_MAX_LENGTH = 16384
SNAPSHOT_MAX_LENGTH = 2000000
TARGETS_MAX_LENGTH = 5000000
# How many new root versions one refresh follows (ngclient's max_root_rotations is 256).
MAX_ROOT_ROTATIONS = 256

_SPEC_MAJOR = "1"
_ROLES = ("root", "timestamp", "snapshot", "targets")
_EXPIRES = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_SHA256_SIZE = 32
_RSA_PSS_SHA256 = "rsassa-pss-sha256"
# DER of the AlgorithmIdentifier rsaEncryption (1.2.840.113549.1.1.1) with its NULL parameters.
_RSA_ALGORITHM = bytes.fromhex("300d06092a864886f70d0101010500")


class TargetInfo(NamedTuple):
    """What the targets role signs for one file: its length and sha256 (hex)."""

    length: int
    sha256: str


class Metadata(NamedTuple):
    """One verified-in-form metadata file: its role, version, expiry, the `signed` part and signatures."""

    role: str
    version: int
    expires: datetime.datetime
    signed: Dict[str, Any]
    signatures: Dict[str, str]  # keyid -> signature (hex)
    raw: bytes


# -- canonical JSON (securesystemslib.formats.encode_canonical, the OLPC form) ------------------------


def canonical_json(value: Any) -> bytes:
    """`value` in canonical JSON: keys sorted, no blanks, only `"` and `\\` escaped, integers only."""
    parts = []  # type: List[str]
    _canonical(value, parts)
    return "".join(parts).encode("utf-8")


def _canonical_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _canonical(value: Any, out: List[str]) -> None:
    if isinstance(value, str):
        out.append(_canonical_string(value))
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif value is None:
        out.append("null")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for position, item in enumerate(value):
            if position:
                out.append(",")
            _canonical(item, out)
        out.append("]")
    elif isinstance(value, dict):
        out.append("{")
        for position, key in enumerate(sorted(value)):
            if not isinstance(key, str):
                raise FormatError(f"canonical JSON: object keys must be strings, got {key!r}")
            if position:
                out.append(",")
            out.append(_canonical_string(key))
            out.append(":")
            _canonical(value[key], out)
        out.append("}")
    else:
        raise FormatError(f"canonical JSON cannot encode {value!r} (floats are not allowed)")


# -- RSA-PSS with SHA-256 (RFC 8017 section 9.1.2), any salt length --------------------------------


def _der_item(data: bytes, offset: int, tag: int) -> Tuple[bytes, int]:
    """The contents of the DER item with `tag` at `offset`, and the offset after it."""
    if offset + 2 > len(data) or data[offset] != tag:
        raise FormatError(f"public key: expected DER tag 0x{tag:02x} at byte {offset}")
    length = data[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or start + count > len(data):
            raise FormatError(f"public key: bad DER length at byte {offset + 1}")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    end = start + length
    if end > len(data):
        raise FormatError(f"public key: DER item at byte {offset} runs past the end")
    return data[start:end], end


def rsa_public_key(pem: str) -> Tuple[int, int]:
    """(modulus, exponent) of a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) holding an RSA key."""
    lines = pem.strip().splitlines()
    if len(lines) < 3 or lines[0] != "-----BEGIN PUBLIC KEY-----" or lines[-1] != "-----END PUBLIC KEY-----":
        raise FormatError("public key: expected a PEM 'PUBLIC KEY' block")
    try:
        der = base64.b64decode("".join(lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        raise FormatError("public key: the PEM body is not base-64") from None
    spki, end = _der_item(der, 0, 0x30)
    if end != len(der):
        raise FormatError("public key: bytes after the key")
    algorithm_end = len(_RSA_ALGORITHM)
    if spki[:algorithm_end] != _RSA_ALGORITHM:
        raise FormatError("public key: not an RSA key (rsaEncryption)")
    bits, _ = _der_item(spki, algorithm_end, 0x03)
    if not bits or bits[0] != 0:
        raise FormatError("public key: the key's BIT STRING has unused bits")
    sequence, _ = _der_item(bits, 1, 0x30)
    modulus_bytes, after = _der_item(sequence, 0, 0x02)
    exponent_bytes, _ = _der_item(sequence, after, 0x02)
    modulus = int.from_bytes(modulus_bytes, "big")
    exponent = int.from_bytes(exponent_bytes, "big")
    if modulus.bit_length() < 2048 or exponent < 3 or exponent % 2 == 0:
        raise FormatError("public key: RSA modulus under 2048 bits or a bad exponent")
    return modulus, exponent


def _mgf1_sha256(seed: bytes, length: int) -> bytes:
    rounds = -(-length // _SHA256_SIZE)
    stream = b"".join(hashlib.sha256(seed + counter.to_bytes(4, "big")).digest() for counter in range(rounds))
    return stream[:length]


def rsa_pss_sha256_ok(modulus: int, exponent: int, message: bytes, signature: bytes) -> bool:
    """Does `signature` sign `message` under RSASSA-PSS, SHA-256, MGF1-SHA-256, any salt length?"""
    size = (modulus.bit_length() + 7) // 8
    if len(signature) != size:
        return False
    number = int.from_bytes(signature, "big")
    if number >= modulus:
        return False
    encoded_bits = modulus.bit_length() - 1
    encoded_length = (encoded_bits + 7) // 8
    opened = pow(number, exponent, modulus)
    if opened.bit_length() > 8 * encoded_length:
        return False
    encoded = opened.to_bytes(encoded_length, "big")
    if encoded_length < _SHA256_SIZE + 2 or encoded[-1] != 0xBC:
        return False
    masked = encoded[: encoded_length - _SHA256_SIZE - 1]
    signed_hash = encoded[encoded_length - _SHA256_SIZE - 1 : -1]
    unused_bits = 8 * encoded_length - encoded_bits
    if unused_bits and masked[0] >> (8 - unused_bits):
        return False
    block = bytearray(a ^ b for a, b in zip(masked, _mgf1_sha256(signed_hash, len(masked))))
    block[0] &= 0xFF >> unused_bits
    separator = 0
    while separator < len(block) and block[separator] == 0:
        separator += 1
    if separator == len(block) or block[separator] != 1:
        return False
    salt = bytes(block[separator + 1 :])
    expected = hashlib.sha256(bytes(8) + hashlib.sha256(message).digest() + salt).digest()
    return hmac.compare_digest(expected, signed_hash)


# -- metadata files ---------------------------------------------------------------------------------


def _no_duplicate_keys(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    result = {}  # type: Dict[str, Any]
    for key, value in pairs:
        if key in result:
            raise FormatError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_float(text: str) -> Any:
    raise FormatError(f"number {text} is not an integer")


def _field(mapping: Dict[str, Any], key: str, kind: Any, where: str) -> Any:
    value = mapping.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FormatError(f"{where}: '{key}' missing or of the wrong type")
    return value


def parse_metadata(data: bytes, role: str) -> Metadata:
    """A metadata file of `role` in form (not yet its signatures): JSON, `_type`, spec version, version,
    expiry; any other role, a float, a duplicate key or a duplicate signature is refused."""
    name = f"{role}.json"
    try:
        document = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicate_keys,
            parse_float=_no_float,
            parse_constant=_no_float,
        )
    except (UnicodeDecodeError, ValueError) as error:
        raise FormatError(f"{name}: not JSON: {error}") from None
    if not isinstance(document, dict):
        raise FormatError(f"{name}: expected a JSON object")
    signed = _field(document, "signed", dict, name)
    signature_list = _field(document, "signatures", list, name)
    if signed.get("_type") != role:
        raise FormatError("{}: _type is {!r}, expected {!r}".format(name, signed.get("_type"), role))
    spec = _field(signed, "spec_version", str, name)
    if spec.split(".")[0] != _SPEC_MAJOR:
        raise FormatError(f"{name}: spec_version {spec} is not 1.x")
    version = _field(signed, "version", int, name)
    if version <= 0:
        raise FormatError(f"{name}: version must be above 0, got {version}")
    expires_text = _field(signed, "expires", str, name)
    if not _EXPIRES.match(expires_text):
        raise FormatError(f"{name}: expires {expires_text!r} is not YYYY-MM-DDTHH:MM:SSZ")
    try:
        expires = datetime.datetime.strptime(expires_text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise FormatError(f"{name}: expires {expires_text!r} is not a date") from None
    signatures = {}  # type: Dict[str, str]
    for entry in signature_list:
        if not isinstance(entry, dict):
            raise FormatError(f"{name}: a signature is not an object")
        keyid = _field(entry, "keyid", str, name)
        if keyid in signatures:
            raise FormatError(f"{name}: two signatures by key {keyid}")
        signatures[keyid] = _field(entry, "sig", str, name)
    return Metadata(role, version, expires, signed, signatures, data)


def _role_keys(root: Metadata, role: str) -> Tuple[List[str], int]:
    roles = _field(root.signed, "roles", dict, "root.json")
    entry = roles.get(role)
    if not isinstance(entry, dict):
        raise FormatError(f"root.json: no role {role!r}")
    keyids = _field(entry, "keyids", list, "root.json role " + role)
    threshold = _field(entry, "threshold", int, "root.json role " + role)
    if threshold < 1:
        raise FormatError(f"root.json: role {role} has threshold {threshold}, must be 1 or more")
    return [keyid for keyid in keyids if isinstance(keyid, str)], threshold


def _signature_ok(key: Any, message: bytes, signature_hex: str) -> bool:
    if not isinstance(key, dict) or key.get("keytype") != "rsa" or key.get("scheme") != _RSA_PSS_SHA256:
        return False  # a key type we do not verify counts for nothing, as in ngclient
    keyval = key.get("keyval")
    public = keyval.get("public") if isinstance(keyval, dict) else None
    if not isinstance(public, str):
        return False
    try:
        signature = bytes.fromhex(signature_hex)
        modulus, exponent = rsa_public_key(public)
    except (ValueError, FormatError):
        return False
    return rsa_pss_sha256_ok(modulus, exponent, message, signature)


def verify_signatures(root: Metadata, role: str, metadata: Metadata) -> None:
    """Refuse `metadata` unless `threshold` distinct keys that `root` gives `role` signed it."""
    keyids, threshold = _role_keys(root, role)
    keys = _field(root.signed, "keys", dict, "root.json")
    message = canonical_json(metadata.signed)
    valid = 0
    for keyid in sorted(set(keyids)):
        signature = metadata.signatures.get(keyid)
        if signature is not None and _signature_ok(keys.get(keyid), message, signature):
            valid += 1
    if valid < threshold:
        raise FormatError(
            f"{metadata.role}.json version {metadata.version}: {valid} valid signature(s) of role {role}, "
            f"threshold {threshold}"
        )


def _meta_entry(metadata: Metadata, name: str) -> Dict[str, Any]:
    where = f"{metadata.role}.json"
    meta = _field(metadata.signed, "meta", dict, where)
    entry = meta.get(name)
    if not isinstance(entry, dict):
        raise FormatError(f"{where}: meta has no {name}")
    _field(entry, "version", int, where + " meta " + name)
    return entry


def _check_meta_file(entry: Dict[str, Any], data: bytes, name: str) -> None:
    """The length and hashes a parent role gives for a metadata file, when it gives them."""
    length = entry.get("length")
    if length is not None and length != len(data):
        raise FormatError(f"{name}: {len(data)} bytes, expected {length}")
    hashes = entry.get("hashes")
    if hashes is not None:
        if not isinstance(hashes, dict) or not hashes:
            raise FormatError(f"{name}: bad hashes in its parent's meta")
        for algorithm, expected in hashes.items():
            if algorithm != "sha256":
                raise FormatError(f"{name}: unsupported hash {algorithm}")
            if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), str(expected)):
                raise FormatError(f"{name}: sha256 differs from its parent's meta")


# -- the trusted set: ngclient's TrustedMetadataSet rules -----------------------------------------


class TrustedSet:
    """The metadata trusted so far, each file checked against the one before it: root first."""

    def __init__(self, root_data: bytes, now: datetime.datetime) -> None:
        self.now = now
        self.root = parse_metadata(root_data, "root")
        verify_signatures(self.root, "root", self.root)
        self.timestamp = None  # type: Optional[Metadata]
        self.snapshot = None  # type: Optional[Metadata]
        self.targets = None  # type: Optional[Metadata]

    def _expired(self, metadata: Metadata) -> bool:
        return metadata.expires <= self.now

    def update_root(self, data: bytes) -> Metadata:
        """The next root version: signed by the trusted root's keys and by its own, version + 1."""
        if self.timestamp is not None:
            raise FormatError("root.json cannot change after timestamp.json was loaded")
        new_root = parse_metadata(data, "root")
        verify_signatures(self.root, "root", new_root)
        if new_root.version != self.root.version + 1:
            raise FormatError(f"root.json: version {new_root.version}, expected {self.root.version + 1}")
        verify_signatures(new_root, "root", new_root)
        self.root = new_root
        return new_root

    def update_timestamp(self, data: bytes) -> bool:
        """Load a timestamp; False when it has the version already trusted (kept, not replaced).

        A timestamp in time order is trusted even when expired (as the reference against rollback) and
        only then refused as expired."""
        if self.snapshot is not None:
            raise FormatError("timestamp.json cannot change after snapshot.json was loaded")
        if self._expired(self.root):
            raise FormatError(f"root.json version {self.root.version} expired {self.root.expires}")
        new = parse_metadata(data, "timestamp")
        verify_signatures(self.root, "timestamp", new)
        new_snapshot_version = _meta_entry(new, "snapshot.json")["version"]
        if self.timestamp is not None:
            if new.version < self.timestamp.version:
                raise FormatError(
                    f"rollback: timestamp.json version {new.version} is older than the trusted version "
                    f"{self.timestamp.version}"
                )
            if new.version == self.timestamp.version:
                return False
            trusted_snapshot_version = _meta_entry(self.timestamp, "snapshot.json")["version"]
            if new_snapshot_version < trusted_snapshot_version:
                raise FormatError(
                    f"rollback: timestamp.json names snapshot version {new_snapshot_version}, older than the "
                    f"trusted {trusted_snapshot_version}"
                )
        self.timestamp = new
        self._check_final_timestamp()
        return True

    def _check_final_timestamp(self) -> None:
        assert self.timestamp is not None
        if self._expired(self.timestamp):
            raise FormatError(
                f"freeze: timestamp.json version {self.timestamp.version} expired {self.timestamp.expires}"
            )

    def update_snapshot(self, data: bytes, trusted: bool = False) -> None:
        """Load a snapshot named by the timestamp; `trusted` (a stored copy) skips its length and hash."""
        if self.timestamp is None:
            raise FormatError("snapshot.json before timestamp.json")
        if self.targets is not None:
            raise FormatError("snapshot.json cannot change after targets.json was loaded")
        self._check_final_timestamp()
        snapshot_meta = _meta_entry(self.timestamp, "snapshot.json")
        if not trusted:
            _check_meta_file(snapshot_meta, data, "snapshot.json")
        new = parse_metadata(data, "snapshot")
        verify_signatures(self.root, "snapshot", new)
        if self.snapshot is not None:
            trusted_meta = _field(self.snapshot.signed, "meta", dict, "snapshot.json")
            new_meta = _field(new.signed, "meta", dict, "snapshot.json")
            for name, entry in trusted_meta.items():
                if name not in new_meta:
                    raise FormatError(f"rollback: snapshot.json no longer lists {name}")
                new_entry = _meta_entry(new, name)
                if isinstance(entry, dict) and new_entry["version"] < entry.get("version", 0):
                    raise FormatError(
                        "rollback: snapshot.json names {} version {}, older than the trusted {}".format(
                            name, new_entry["version"], entry.get("version")
                        )
                    )
        self.snapshot = new
        self._check_final_snapshot()

    def _check_final_snapshot(self) -> None:
        assert self.snapshot is not None and self.timestamp is not None
        if self._expired(self.snapshot):
            raise FormatError(
                f"freeze: snapshot.json version {self.snapshot.version} expired {self.snapshot.expires}"
            )
        expected = _meta_entry(self.timestamp, "snapshot.json")["version"]
        if self.snapshot.version != expected:
            raise FormatError(
                f"mix-and-match: snapshot.json version {self.snapshot.version}, timestamp.json names "
                f"version {expected}"
            )

    def update_targets(self, data: bytes, trusted: bool = False) -> None:
        """Load the top-level targets named by the snapshot."""
        if self.snapshot is None:
            raise FormatError("targets.json before snapshot.json")
        self._check_final_snapshot()
        targets_meta = _meta_entry(self.snapshot, "targets.json")
        if not trusted:
            _check_meta_file(targets_meta, data, "targets.json")
        new = parse_metadata(data, "targets")
        verify_signatures(self.root, "targets", new)
        if new.version != targets_meta["version"]:
            raise FormatError(
                "mix-and-match: targets.json version {}, snapshot.json names version {}".format(
                    new.version, targets_meta["version"]
                )
            )
        if self._expired(new):
            raise FormatError(f"freeze: targets.json version {new.version} expired {new.expires}")
        self.targets = new


def target_files(targets: Metadata) -> Dict[str, TargetInfo]:
    """Every file the targets role signs, with its length and sha256; one without sha256 is refused."""
    listed = _field(targets.signed, "targets", dict, "targets.json")
    result = {}  # type: Dict[str, TargetInfo]
    for path, entry in listed.items():
        where = f"targets.json: {path}"
        if not isinstance(entry, dict):
            raise FormatError(where + ": not an object")
        length = _field(entry, "length", int, where)
        hashes = _field(entry, "hashes", dict, where)
        sha256 = hashes.get("sha256")
        if length < 0 or not isinstance(sha256, str) or not re.match(r"^[0-9a-f]{64}$", sha256):
            raise FormatError(where + ": needs a length and a sha256")
        result[path] = TargetInfo(length, sha256)
    return result


# -- the client workflow --------------------------------------------------------------------------

# fetch(name, max_length) -> the bytes of `<name>` under the repository's metadata URL, None when the
# server has no such file (404); it must not return more than max_length bytes.
Fetch = Callable[[str, int], Optional[bytes]]


class Refreshed(NamedTuple):
    """The outcome of one refresh: the signed targets, and the files to keep for the next refresh."""

    targets: Dict[str, TargetInfo]
    to_store: Dict[str, bytes]  # "root.json", "<n>.root.json", "timestamp.json", "snapshot.json", ...


def _fetch_bounded(fetch: Fetch, name: str, max_length: int) -> Optional[bytes]:
    data = fetch(name, max_length)
    if data is not None and len(data) > max_length:
        raise FormatError(f"{name}: more than {max_length} bytes")
    return data


def _stored(stored: Dict[str, bytes], name: str) -> Optional[bytes]:
    return stored.get(name)


_MAX_LENGTH = {"snapshot": SNAPSHOT_MAX_LENGTH, "targets": TARGETS_MAX_LENGTH}


def _load_named(
    fetch: Fetch,
    stored: Dict[str, bytes],
    to_store: Dict[str, bytes],
    parent: Metadata,
    role: str,
    update: Callable[[bytes, bool], None],
    consistent: bool,
) -> None:
    """Snapshot or targets: the stored copy when it is still the one `parent` names (as ngclient does),
    else the version `parent` names, fetched as `<version>.<role>.json` under consistent snapshots."""
    local = _stored(stored, role + ".json")
    if local is not None:
        try:
            update(local, True)
            return
        except FormatError:
            pass  # a stored copy loaded but not current stays the reference against rollback
    entry = _meta_entry(parent, role + ".json")
    name = "{}.{}.json".format(entry["version"], role) if consistent else role + ".json"
    length = entry.get("length")
    data = _fetch_bounded(
        fetch, name, length if isinstance(length, int) and length > 0 else _MAX_LENGTH[role]
    )
    if data is None:
        raise FormatError(f"{name}: not found, though {parent.role}.json names it")
    update(data, False)
    to_store[role + ".json"] = data


def refresh(fetch: Fetch, trusted_root: bytes, stored: Dict[str, bytes], now: datetime.datetime) -> Refreshed:
    """TUF's client workflow (spec 5.3-5.6) from the pinned root: `stored` holds what an earlier refresh
    kept (as named in `Refreshed.to_store`); consistent snapshots name snapshot and targets by version."""
    trusted = TrustedSet(trusted_root, now)
    to_store = {}  # type: Dict[str, bytes]
    for version in range(trusted.root.version + 1, trusted.root.version + 1 + MAX_ROOT_ROTATIONS):
        name = f"{version}.root.json"
        data = _stored(stored, name)
        if data is not None:
            try:
                trusted.update_root(data)
                continue
            except FormatError:
                pass
        data = _fetch_bounded(fetch, name, ROOT_MAX_LENGTH)
        if data is None:
            break
        trusted.update_root(data)
        to_store[name] = data
    consistent = trusted.root.signed.get("consistent_snapshot") is True

    local = _stored(stored, "timestamp.json")
    if local is not None:
        # an expired copy still serves as the reference against rollback: TrustedSet keeps it loaded
        with contextlib.suppress(FormatError):
            trusted.update_timestamp(local)
    data = _fetch_bounded(fetch, "timestamp.json", TIMESTAMP_MAX_LENGTH)
    if data is None:
        raise FormatError("timestamp.json: not found: the repository is not signed")
    if trusted.update_timestamp(data):
        to_store["timestamp.json"] = data
    assert trusted.timestamp is not None

    _load_named(fetch, stored, to_store, trusted.timestamp, "snapshot", trusted.update_snapshot, consistent)
    assert trusted.snapshot is not None
    _load_named(fetch, stored, to_store, trusted.snapshot, "targets", trusted.update_targets, consistent)
    assert trusted.targets is not None
    if "root.json" not in stored or trusted.root.raw != stored["root.json"]:
        to_store["root.json"] = trusted.root.raw
    return Refreshed(target_files(trusted.targets), to_store)
