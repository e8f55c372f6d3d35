"""systemd units: pum-run.service + pum-run.timer (the schedule) and pum-serve.service (`pum serve`)."""

from __future__ import annotations

import re
from pathlib import Path

from pum.deploy import render_template
from pum.deploy.cron import Schedule

UNIT_DIR = Path("etc/systemd/system")  # relative to the filesystem root
RUN_SERVICE = "pum-run.service"
RUN_TIMER = "pum-run.timer"
SERVE_SERVICE = "pum-serve.service"
_DAY_NAMES = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


def systemd_running() -> bool:
    """What sd_booted(3) tests: this directory exists only while systemd is the init system."""
    return Path("/run/systemd/system").is_dir()


def exec_line(command: list[str]) -> str:
    """A command line for ExecStart=: systemd's own quoting, with `%` and `$` escaped (systemd.service(5))."""
    words = []
    for word in command:
        escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
        words.append(f'"{escaped}"' if re.search(r"[\s\"'\\;]", word) or not word else escaped)
    return " ".join(words)


def on_calendar(schedule: Schedule) -> list[str]:
    """OnCalendar= lines for a cron schedule (systemd.time(7)).

    cron runs a job when the day of month OR the day of week matches if both are restricted; a timer
    matches all of its fields, so that case becomes two OnCalendar= lines, which a timer ORs.
    """
    if schedule.day_of_month is not None and schedule.day_of_week is not None:
        return [_calendar(schedule, days_of_week=False), _calendar(schedule, days_of_month=False)]
    return [_calendar(schedule)]


def _calendar(schedule: Schedule, days_of_month: bool = True, days_of_week: bool = True) -> str:
    date = f"*-{_part(schedule.month)}-{_part(schedule.day_of_month if days_of_month else None)}"
    time = f"{_part(schedule.hour)}:{_part(schedule.minute)}:00"
    if days_of_week and schedule.day_of_week is not None:
        return f"{','.join(_DAY_NAMES[day] for day in schedule.day_of_week)} {date} {time}"
    return f"{date} {time}"


def _part(values: tuple[int, ...] | None) -> str:
    return "*" if values is None else ",".join(f"{value:02d}" for value in values)


def render_run_service(command: list[str]) -> str:
    """`command` is how to call pum with its --config, e.g. ["/usr/local/bin/pum", "--config", PATH]."""
    return render_template(RUN_SERVICE, {"exec": exec_line(command)})


def render_run_timer(schedule: Schedule, random_delay: int) -> str:
    lines = "\n".join(f"OnCalendar={line}" for line in on_calendar(schedule))
    return render_template(
        RUN_TIMER, {"schedule": schedule.text, "on_calendar": lines, "random_delay": str(random_delay)}
    )


def render_serve_service(command: list[str]) -> str:
    return render_template(SERVE_SERVICE, {"exec": exec_line(command)})
