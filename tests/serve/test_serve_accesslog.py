"""The access log: Apache "combined" lines, daily rotation with `log_generation` generations."""

from __future__ import annotations

import datetime as dt
import os
import re
import time

from pum.serve.accesslog import AccessLog, combined_line, escape, log_time

from .backends import parse_access_log

APACHE_COMBINED = re.compile(
    r"^\S+ - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "
    r'"[^"]*" \d{3} (\d+|-) "[^"]*" "[^"]*"\n$'
)


def test_a_line_is_in_apache_combined_format():
    line = combined_line(
        "127.0.0.1", log_time(1624412045), "GET /test.cvd HTTP/1.1", 206, 512, "", "ClamAV/1.4.6"
    )
    assert APACHE_COMBINED.match(line), line
    assert '"GET /test.cvd HTTP/1.1" 206 512 "-" "ClamAV/1.4.6"' in line


def test_no_body_is_logged_as_a_dash_like_apache():
    assert '" 304 - "' in combined_line("::1", log_time(0), "GET / HTTP/1.1", 304, 0, "", "")


def test_quotes_and_control_bytes_are_escaped():
    assert escape('a"b\\c\x01\xe9') == 'a\\"b\\\\c\\x01\\xe9'
    assert escape("ClamAV/1.4.6 (OS: linux-gnu)") == "ClamAV/1.4.6 (OS: linux-gnu)"
    line = combined_line("1.2.3.4", log_time(0), 'GET /"x HTTP/1.1', 404, 9, "", 'evil" agent')
    assert len(parse_access_log(line)) == 1


def test_lines_are_buffered_until_flushed(tmp_path):
    log = AccessLog(tmp_path / "access.log")
    assert log.write("one\n") is True
    assert log.write("two\n") is False
    assert (tmp_path / "access.log").read_text() == ""
    log.flush()
    assert (tmp_path / "access.log").read_text() == "one\ntwo\n"
    log.close()


def _age(path, days: int) -> None:
    when = time.time() - days * 86400
    os.utime(path, (when, when))


def test_a_log_from_an_earlier_day_is_rotated_when_opened(tmp_path):
    path = tmp_path / "access.log"
    path.write_text("yesterday\n")
    _age(path, 1)
    AccessLog(path, rotate=True, generations=3).close()
    assert (tmp_path / "access.log.1").read_text() == "yesterday\n"
    assert path.read_text() == ""


def test_rotation_keeps_log_generation_files(tmp_path):
    path = tmp_path / "access.log"
    for day in range(5, 0, -1):
        path.write_text(f"day -{day}\n")
        _age(path, day)
        AccessLog(path, rotate=True, generations=3).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "access.log",
        "access.log.1",
        "access.log.2",
        "access.log.3",
    ]
    assert (tmp_path / "access.log.1").read_text() == "day -1\n"
    assert (tmp_path / "access.log.3").read_text() == "day -3\n"


def test_no_rotation_when_log_rotate_is_off(tmp_path):
    path = tmp_path / "access.log"
    path.write_text("old\n")
    _age(path, 2)
    AccessLog(path, rotate=False).close()
    assert not (tmp_path / "access.log.1").exists()


def test_lines_of_the_day_before_land_in_the_rotated_file_at_midnight(tmp_path, monkeypatch):
    path = tmp_path / "access.log"
    log = AccessLog(path, rotate=True, generations=2)
    log.write("before midnight\n")
    log.flush()
    log.write("still yesterday's, buffered\n")
    _age(path, 1)
    tomorrow = dt.date.today() + dt.timedelta(days=1)

    class Tomorrow(dt.date):
        @classmethod
        def today(cls):
            return tomorrow

    monkeypatch.setattr("pum.serve.accesslog.dt.date", Tomorrow)
    log.flush()
    log.write("after midnight\n")
    log.close()
    assert (tmp_path / "access.log.1").read_text() == "before midnight\nstill yesterday's, buffered\n"
    assert path.read_text() == "after midnight\n"
