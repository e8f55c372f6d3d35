"""The rollout document: a share of the fleet by a stable hash of each host id, plus named hosts."""

import contextlib
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pum.formats import FormatError
from pum.formats.rollout import make_rollout, parse_rollout, render_rollout, takes_part

PACKAGE = "ibm/packages/ProScan_for_IBM_AIX-6.0.7.tar.gz"
HOSTS = [str(uuid.UUID(int=n * 7919 + 1, version=4)) for n in range(20)]


def part_of(percent: float) -> list[str]:
    rollout = make_rollout(PACKAGE, percent, [])
    return [h for h in HOSTS if takes_part(rollout, h, "scanner")]


def test_zero_percent_takes_no_host_and_hundred_takes_all():
    assert part_of(0) == []
    assert part_of(100) == HOSTS


def test_fifty_percent_is_a_fixed_subset_of_about_half():
    chosen = part_of(50)
    assert chosen == part_of(50)
    assert 5 <= len(chosen) <= 15
    assert set(part_of(25)) <= set(chosen) <= set(part_of(75))


def test_a_listed_host_takes_part_at_zero_percent():
    rollout = make_rollout(PACKAGE, 0, [HOSTS[3], "scanner07"])
    assert takes_part(rollout, HOSTS[3], "other")
    assert takes_part(rollout, HOSTS[4], "scanner07")
    assert not takes_part(rollout, HOSTS[4], "scanner08")


def test_document_round_trips():
    rollout = make_rollout(PACKAGE, 12.5, ["scanner07"])
    assert parse_rollout(render_rollout(rollout), PACKAGE) == rollout


@pytest.mark.parametrize(
    "document",
    [
        b"not json",
        b'{"generation": 1, "package": "other.tar.gz", "percent": 5}',
        b'{"generation": 1, "package": "%s", "percent": 101}' % PACKAGE.encode(),
        b'{"generation": 1, "package": "%s", "percent": NaN}' % PACKAGE.encode(),
        b'{"generation": 1, "package": "%s", "percent": true}' % PACKAGE.encode(),
        b'{"generation": 1, "package": "%s", "percent": 5, "hosts": ["a b"]}' % PACKAGE.encode(),
        b'{"generation": 2, "package": "%s", "percent": 5}' % PACKAGE.encode(),
    ],
)
def test_a_bad_document_is_refused(document):
    with pytest.raises(FormatError):
        parse_rollout(document, PACKAGE)


@given(st.binary(max_size=300))
def test_any_bytes_give_a_rollout_or_format_error(data):
    with contextlib.suppress(FormatError):
        parse_rollout(data, PACKAGE)
