"""The package download's pace: MaxRate sleeps the download down to its rate; a progress line with size
and ETA on a terminal, nothing under cron. A fake clock: no wall-clock time is asserted."""

import io

from pum.agent.pace import Pace


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += seconds


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_max_rate_holds_the_download_to_its_rate():
    clock = Clock()
    pace = Pace("package.tar.gz", 1000, stream=io.StringIO(), clock=clock, sleep=clock.sleep)
    for done in range(0, 10_001, 500):
        pace(done, 10_000)
    assert clock.now == 10.0  # 10,000 bytes at 1,000 bytes/s


def test_no_max_rate_never_sleeps():
    clock = Clock()
    pace = Pace("package.tar.gz", 0, stream=io.StringIO(), clock=clock, sleep=clock.sleep)
    for done in range(0, 10_001, 500):
        pace(done, 10_000)
    assert clock.slept == 0


def test_a_resumed_download_is_paced_from_where_it_resumed():
    clock = Clock()
    pace = Pace("package.tar.gz", 1000, stream=io.StringIO(), clock=clock, sleep=clock.sleep)
    pace(5_000, 10_000)
    pace(6_000, 10_000)
    assert clock.now == 1.0


def test_progress_line_with_size_and_eta_on_a_terminal_only():
    clock = Clock()
    terminal = Terminal()
    pace = Pace("package.tar.gz", 1 << 20, stream=terminal, clock=clock, sleep=clock.sleep)
    pace(0, 4 << 20)
    pace(1 << 20, 4 << 20)
    pace.finish()
    shown = terminal.getvalue()
    assert "package.tar.gz: 1.0 MB of 4.0 MB (25%), ETA 0:00:03" in shown
    assert shown.endswith("\n")
    cron = io.StringIO()
    quiet = Pace("package.tar.gz", 0, stream=cron, clock=clock, sleep=clock.sleep)
    quiet(1 << 20, 4 << 20)
    quiet.finish()
    assert cron.getvalue() == ""
