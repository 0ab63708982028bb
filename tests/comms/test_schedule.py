"""Windows, quiet hours and local days: wall-clock rules that survive midnight and DST."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kap.comms import schedule
from kap.comms.schedule import Rules

BERLIN = Rules(timezone="Europe/Berlin", quiet_start="22:00", quiet_end="07:00", digest_weekday=0, digest_hour=9)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(("now", "quiet"), [
    (utc(2027, 1, 4, 20, 59), False),  # 21:59 Berlin
    (utc(2027, 1, 4, 21, 0), True),    # 22:00 Berlin: quiet starts
    (utc(2027, 1, 4, 23, 30), True),   # 00:30 next day: across midnight
    (utc(2027, 1, 5, 5, 59), True),    # 06:59
    (utc(2027, 1, 5, 6, 0), False),    # 07:00: quiet ends
])
def test_quiet_hours_wrap_past_midnight(now: datetime, quiet: bool) -> None:
    assert schedule.in_quiet_hours(now, BERLIN) is quiet


def test_quiet_hours_end_is_the_next_morning_when_quiet_starts_in_the_evening() -> None:
    assert schedule.quiet_hours_end(utc(2027, 1, 4, 22, 0), BERLIN) == utc(2027, 1, 5, 6, 0)
    assert schedule.quiet_hours_end(utc(2027, 1, 5, 1, 0), BERLIN) == utc(2027, 1, 5, 6, 0)


def test_quiet_hours_end_follows_the_wall_clock_across_the_spring_dst_change() -> None:
    # 27 March 2027 23:00 CET; the clocks go forward that night, so 07:00 CEST is 05:00 UTC.
    assert schedule.quiet_hours_end(utc(2027, 3, 27, 22, 0), BERLIN) == utc(2027, 3, 28, 5, 0)


def test_quiet_hours_end_follows_the_wall_clock_across_the_autumn_dst_change() -> None:
    # 30 October 2027 23:00 CEST; the clocks go back that night, so 07:00 CET is 06:00 UTC.
    assert schedule.quiet_hours_end(utc(2027, 10, 30, 21, 0), BERLIN) == utc(2027, 10, 31, 6, 0)


def test_quiet_hours_inside_one_day_and_switched_off() -> None:
    lunch = Rules(quiet_start="12:00", quiet_end="13:00")
    assert schedule.in_quiet_hours(utc(2027, 1, 4, 12, 30), lunch)
    assert not schedule.in_quiet_hours(utc(2027, 1, 4, 13, 0), lunch)
    assert not schedule.in_quiet_hours(utc(2027, 1, 4, 3, 0), Rules(quiet_start=None, quiet_end=None))


def test_window_is_the_weekday_and_hour_in_the_project_timezone() -> None:
    # Monday 4 January 2027, 09:00 in Berlin is 08:00 UTC.
    assert schedule.window_at_or_before(utc(2027, 1, 4, 8, 0), BERLIN) == utc(2027, 1, 4, 8, 0)
    assert schedule.window_at_or_before(utc(2027, 1, 4, 7, 59), BERLIN) == utc(2026, 12, 28, 8, 0)
    assert schedule.window_at_or_before(utc(2027, 1, 7, 12, 0), BERLIN) == utc(2027, 1, 4, 8, 0)
    assert schedule.next_window_after(utc(2027, 1, 4, 8, 0), BERLIN) == utc(2027, 1, 11, 8, 0)


def test_window_keeps_its_local_hour_after_a_dst_change() -> None:
    # Monday 22 March 09:00 CET = 08:00 UTC; Monday 29 March 09:00 CEST = 07:00 UTC.
    assert schedule.next_window_after(utc(2027, 3, 22, 8, 0), BERLIN) == utc(2027, 3, 29, 7, 0)


def test_window_week_is_the_iso_week_of_the_local_date() -> None:
    late = Rules(timezone="Pacific/Auckland", digest_weekday=0, digest_hour=6)
    start = schedule.window_at_or_before(utc(2027, 1, 4, 0, 0), late)  # Monday 4 Jan 13:00 in Auckland
    assert schedule.window_week(start, late) == "2027-W01"
    assert start == utc(2027, 1, 3, 17, 0)  # Monday 06:00 NZDT is Sunday 17:00 UTC


def test_cap_defers_to_the_next_local_day_then_past_quiet_hours() -> None:
    no_quiet = Rules(timezone="Europe/Berlin", quiet_start=None, quiet_end=None)
    assert schedule.next_open_time(utc(2027, 1, 4, 12, 0), no_quiet, cap_reached=True) == utc(2027, 1, 4, 23, 0)
    assert schedule.next_open_time(utc(2027, 1, 4, 12, 0), BERLIN, cap_reached=True) == utc(2027, 1, 5, 6, 0)


@pytest.mark.parametrize("value", ["7:00", "24:00", "12:60", "ab:cd", "1200", ""])
def test_bad_clock_values_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="must be"):
        schedule.parse_hhmm(value)
