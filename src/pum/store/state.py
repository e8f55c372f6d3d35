"""The state documents under `<data_dir>/state/` (`last_run.json`, `cooldown.json`, `mirror.json`): small
frozen types with their JSON, written atomically, read back checked. (`proscanup.pyz.sha256` there is
pum.client_bundle's: a line it writes and reads itself.)

A state file is a record, not a release: a damaged one (a crash mid-write on a filesystem that lies, a hand
edit, a value no run writes) is reported, moved aside as `<name>.corrupt` and read as absent. It never stops
a run or `pum status`.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

LAST_RUN = "last_run.json"
HOLD = "hold"
COOL_DOWNS = "cooldown.json"
MIRROR_STATE = "mirror.json"
CLIENT_KNOWN = "proscanup.pyz.sha256"  # the last proscanup.pyz built and from what (pum.client_bundle)

Report = Callable[[str], None]
T = TypeVar("T")


class DamagedState(ValueError):
    """A state document that is not what PUM writes."""


def write_document(path: Path, document: Mapping[str, Any]) -> None:
    text = json.dumps(document, indent=1, sort_keys=True, allow_nan=False) + "\n"
    write_state_file(path, [text.encode()])


def write_state_file(path: Path, chunks: Iterable[bytes]) -> None:
    """Replace the state file at `path` by `chunks` at once (written beside it, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as out:
        out.writelines(chunks)
    os.replace(tmp, path)


def read_document(path: Path, parse: Callable[[dict[str, Any]], T], report: Report | None = None) -> T | None:
    """The document at `path` through `parse` (which raises ValueError/TypeError/KeyError on anything it does
    not expect); None when absent. A damaged one is reported, moved aside and read as absent."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        _damaged(path, str(error), report)
        return None
    try:
        document = json.loads(text, parse_constant=_no_constant)
        if not isinstance(document, dict):
            raise DamagedState("not a JSON object")
        return parse(document)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        _damaged(path, str(error), report)
        return None


def _no_constant(name: str) -> float:
    raise DamagedState(f"{name} is not a value PUM writes")


def _damaged(path: Path, reason: str, report: Report | None) -> None:
    aside = path.with_name(f"{path.name}.corrupt")
    try:
        os.replace(path, aside)
        reset = f"moved to {aside.name} and reset"
    except OSError as error:
        reset = f"cannot be moved aside ({error.strerror}); ignored"
    if report is not None:
        report(f"state file {path} is damaged ({reason}): {reset}")


def _string(value: object, name: str, optional: bool = False) -> Any:
    if (value is None and optional) or isinstance(value, str):
        return value
    raise DamagedState(f"{name}: expected text, got {value!r}")


def _count(value: object, name: str, optional: bool = False) -> Any:
    if (value is None and optional) or (
        isinstance(value, int) and not isinstance(value, bool) and value >= 0
    ):
        return value
    raise DamagedState(f"{name}: expected a whole number, got {value!r}")


def _seconds(value: object, name: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise DamagedState(f"{name}: expected seconds, got {value!r}")


class LastRun(NamedTuple):
    """`last_run.json`: how the last cycle ended (`pum status` and the status page show it)."""

    result: str  # "ok" or "error"
    started: str
    finished: str
    error: str | None
    upstream: str | None
    serial: int | None
    requests: int | None = None
    bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        document = self._asdict()
        if self.result != "ok":  # a failed run counts no traffic: the document keeps its old shape
            del document["requests"], document["bytes"]
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> LastRun:
        if document.get("result") not in ("ok", "error"):
            raise DamagedState(f"result: expected ok or error, got {document.get('result')!r}")
        return cls(
            result=document["result"],
            started=_string(document["started"], "started"),
            finished=_string(document["finished"], "finished"),
            error=_string(document.get("error"), "error", optional=True),
            upstream=_string(document.get("upstream"), "upstream", optional=True),
            serial=_count(document.get("serial"), "serial", optional=True),
            requests=_count(document.get("requests"), "requests", optional=True),
            bytes=_count(document.get("bytes"), "bytes", optional=True),
        )


_HOLD_SINCE = re.compile(r"^(?P<reason>.*) \(since (?P<since>[^()]*)\)$", re.S)
HOLD_LIMIT = 4096  # a hold file is one line; more is not read


class Hold(NamedTuple):
    """`state/hold`: publishing is held (`pum hold`, `pum rollback`); one line an operator can read and
    write: `<reason> (since <local time>)`."""

    reason: str
    since: str | None

    def text(self) -> str:
        return f"{self.reason} (since {self.since})" if self.since else self.reason

    @classmethod
    def from_text(cls, text: str) -> Hold:
        """Any text is a hold (an operator may `touch` or write the file by hand)."""
        text = text.strip()
        match = _HOLD_SINCE.match(text)
        if match:
            return cls(match["reason"].strip() or "held", match["since"])
        return cls(text or "held", None)


class CoolDown(NamedTuple):
    """One server that told us to go away (403, 429), until when and why."""

    until: float  # seconds since the epoch
    reason: str


def cool_downs_from_json(document: dict[str, Any]) -> dict[str, CoolDown]:
    found = {}
    for server, entry in document.items():
        if not isinstance(entry, dict):
            raise DamagedState(f"{server}: expected an object, got {entry!r}")
        found[_string(server, "server")] = CoolDown(
            until=_seconds(entry["until"], f"{server}.until"), reason=_string(entry["reason"], "reason")
        )
    return found


def cool_downs_to_json(entries: Mapping[str, CoolDown]) -> dict[str, Any]:
    return {server: entry._asdict() for server, entry in sorted(entries.items())}


class Validators(NamedTuple):
    """What the upper's manifest answer carried, to ask it "changed since?" next run: only while we serve
    the file set (`files`, a files_digest) they describe, and only of the server that gave them."""

    server: str
    etag: str | None
    last_modified: float | None
    files: str
    # our release serving that file set, once a run found it so: later runs compare its serial with the
    # served one (a readlink) instead of parsing the served manifest (releases are immutable)
    release: int | None = None
    # the upper's release we copied them from (`?serial=` of the fleet query)
    copied_serial: int | None = None
    # the Last-Modified of the upper's changelog of that release (sync/changelog.py), not the manifest's:
    # the next run asks for `.pum/changes/<copied_serial>.json`
    changes: bool = False


class IndexFile(NamedTuple):
    """A file copied by index pages: its validators as the server gave them, and what we hold."""

    etag: str | None
    last_modified: float | None
    size: int
    sha256: str


class Lag(NamedTuple):
    """How far behind the upper we are: `behind` for people, the numbers for metrics."""

    behind: str
    behind_releases: int | None
    behind_seconds: int | None


class BundleSeen(NamedTuple):
    """The last bundle a closed network's PUM took (`pum export` on the connected side)."""

    path: str
    from_serial: int | None
    to_serial: int
    exported: str


class MirrorState(NamedTuple):
    """`mirror.json` (mirror mode): the upper, its newest release as last seen, how far behind we are, and
    what the next run's conditional requests need (manifest validators, or per-file ones for index pages)."""

    mode: str  # "manifest", "index pages" or "bundle"
    upper: str
    upper_url: str
    upper_serial: int | None
    upper_created: str | None
    checked: str
    lag: Lag
    validators: Validators | None = None
    index_files: Mapping[str, IndexFile] | None = None
    bundle: BundleSeen | None = None

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "mode": self.mode,
            "upper": self.upper,
            "upper_url": self.upper_url,
            "upper_serial": self.upper_serial,
            "upper_created": self.upper_created,
            "checked": self.checked,
            **self.lag._asdict(),
        }
        if self.validators is not None:
            document["validators"] = self.validators._asdict()
        if self.bundle is not None:
            document["bundle"] = self.bundle._asdict()
        if self.index_files is not None:
            document["index_files"] = {
                path: entry._asdict() for path, entry in sorted(self.index_files.items())
            }
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> MirrorState:
        validators = document.get("validators")
        index_files = document.get("index_files")
        bundle = document.get("bundle")
        return cls(
            mode=_string(document["mode"], "mode"),
            upper=_string(document["upper"], "upper"),
            upper_url=_string(document["upper_url"], "upper_url"),
            upper_serial=_count(document.get("upper_serial"), "upper_serial", optional=True),
            upper_created=_string(document.get("upper_created"), "upper_created", optional=True),
            checked=_string(document["checked"], "checked"),
            lag=Lag(
                behind=_string(document["behind"], "behind"),
                behind_releases=_number(document.get("behind_releases"), "behind_releases"),
                behind_seconds=_number(document.get("behind_seconds"), "behind_seconds"),
            ),
            validators=None if validators is None else _validators(validators),
            index_files=None if index_files is None else _index_files(index_files),
            bundle=None if bundle is None else _bundle_seen(bundle),
        )


def _number(value: object, name: str) -> Any:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise DamagedState(f"{name}: expected a whole number, got {value!r}")


def _moment(value: object, name: str) -> float | None:
    return None if value is None else _seconds(value, name)


def _bundle_seen(document: object) -> BundleSeen:
    if not isinstance(document, dict):
        raise DamagedState(f"bundle: expected an object, got {document!r}")
    return BundleSeen(
        path=_string(document.get("path"), "bundle.path"),
        from_serial=_count(document.get("from_serial"), "bundle.from_serial", optional=True),
        to_serial=_count(document.get("to_serial"), "bundle.to_serial"),
        exported=_string(document.get("exported"), "bundle.exported"),
    )


def _validators(document: object) -> Validators:
    if not isinstance(document, dict):
        raise DamagedState(f"validators: expected an object, got {document!r}")
    return Validators(
        server=_string(document["server"], "validators.server"),
        etag=_string(document.get("etag"), "validators.etag", optional=True),
        last_modified=_moment(document.get("last_modified"), "validators.last_modified"),
        files=_string(document["files"], "validators.files"),
        release=_count(document.get("release"), "validators.release", optional=True),
        copied_serial=_count(document.get("copied_serial"), "validators.copied_serial", optional=True),
        changes=_flag(document.get("changes", False), "validators.changes"),
    )


def _flag(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    raise DamagedState(f"{name}: expected true or false, got {value!r}")


def _index_files(document: object) -> dict[str, IndexFile]:
    if not isinstance(document, dict):
        raise DamagedState(f"index_files: expected an object, got {document!r}")
    found = {}
    for path, entry in document.items():
        if not isinstance(entry, dict):
            raise DamagedState(f"index_files.{path}: expected an object, got {entry!r}")
        found[path] = IndexFile(
            etag=_string(entry.get("etag"), f"{path}.etag", optional=True),
            last_modified=_moment(entry.get("last_modified"), f"{path}.last_modified"),
            size=_count(entry["size"], f"{path}.size"),
            sha256=_string(entry["sha256"], f"{path}.sha256"),
        )
    return found
