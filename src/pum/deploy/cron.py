"""The schedule of `pum run`: a cron expression checked field by field, and /etc/cron.d/pum rendered from it.

The deploy templates share `pum.deploy.render_template` and its `{{name}}` slots.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from pum.deploy import render_template
from pum.errors import ConfigError

DEFAULT_SCHEDULE = "20 * * * *"  # hourly at minute 20, the original installation guide's example
DEFAULT_RANDOM_DELAY = 300  # seconds
CRON_FILE = Path("etc/cron.d/pum")  # relative to the filesystem root

_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_NAMES = {
    "month": ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
    "day of week": ["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
}
_NICKNAMES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
}
_ITEM = re.compile(r"^(?:(?P<star>\*)|(?P<first>\w+)(?:-(?P<last>\w+))?)(?:/(?P<step>\d+))?$")


@dataclass(frozen=True)
class Schedule:
    """A 5-field cron expression; each field is the set of values it matches, or None for '*'."""

    text: str
    minute: tuple[int, ...] | None
    hour: tuple[int, ...] | None
    day_of_month: tuple[int, ...] | None
    month: tuple[int, ...] | None
    day_of_week: tuple[int, ...] | None  # 0 = Sunday


def parse_schedule(text: str) -> Schedule:
    """`minute hour day-of-month month day-of-week` (numbers, names, `*`, `a-b`, `/step`, lists) or
    @hourly, @daily, @weekly, @monthly; a ConfigError names the field that is wrong."""
    expression = _NICKNAMES.get(text.strip().lower(), text.strip())
    fields = expression.split()
    if len(fields) != 5:
        raise ConfigError(
            f"--schedule {text!r}: expected 5 fields 'minute hour day-of-month month day-of-week' "
            f"(e.g. {DEFAULT_SCHEDULE!r}), got {len(fields)}"
        )
    values = [_parse_field(text, field, *spec) for field, spec in zip(fields, _FIELDS, strict=True)]
    return Schedule(" ".join(fields), *values)


def _parse_field(text: str, field: str, name: str, low: int, high: int) -> tuple[int, ...] | None:
    if field == "*":
        return None
    matched: set[int] = set()
    for item in field.split(","):
        match = _ITEM.match(item)
        if not match:
            raise ConfigError(f"--schedule {text!r}: {name}: can't read {item!r}")
        if match["star"]:
            first, last = low, high
        else:
            first = _value(text, match["first"], name, low, high)
            last = _value(text, match["last"], name, low, high) if match["last"] else first
            if match["step"] and not match["last"]:
                last = high  # `a/n` means from a to the end, every n (cronie and Debian's cron agree)
        if first > last:
            raise ConfigError(f"--schedule {text!r}: {name}: {item!r} runs backwards")
        step = int(match["step"]) if match["step"] else 1
        if step == 0:
            raise ConfigError(f"--schedule {text!r}: {name}: a step of 0 in {item!r}")
        matched.update(range(first, last + 1, step))
    if name == "day of week" and 7 in matched:
        matched = (matched - {7}) | {0}  # both 0 and 7 are Sunday
    return tuple(sorted(matched))


def _value(text: str, word: str, name: str, low: int, high: int) -> int:
    names = _NAMES.get(name)
    if names and word.lower() in names:
        return names.index(word.lower()) + (1 if name == "month" else 0)
    if not word.isdigit():
        raise ConfigError(f"--schedule {text!r}: {name}: {word!r} is not a number")
    value = int(word)
    if not low <= value <= high:
        raise ConfigError(f"--schedule {text!r}: {name} must be {low}-{high}, got {value}")
    return value


def render_cron_file(schedule: Schedule, command: list[str], random_delay: int) -> str:
    """/etc/cron.d/pum: `command` as root at `schedule`, after a random sleep of up to `random_delay` s."""
    line = " ".join(shlex.quote(word) for word in command)
    if random_delay > 0:
        line = f"sleep $((RANDOM % {random_delay})) && {line}"
    return render_template(
        "cron.d-pum",
        {
            "schedule": schedule.text,
            "random_delay": str(random_delay),
            # cron reads a bare % as a newline (crontab(5))
            "command": line.replace("%", "\\%"),
        },
    )
