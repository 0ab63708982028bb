"""Wall-clock arithmetic for digests: weekly windows, quiet hours and local days.

Everything takes an aware UTC instant and a project's `Rules`, and answers in UTC.
Local times are built from a date and a wall-clock time in the project's zone, so
a DST change moves the UTC instant, never the wall-clock hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WINDOW_LENGTH = timedelta(hours=1)


@dataclass(frozen=True)
class Rules:
    """The scheduling part of a project's comms settings."""

    timezone: str = "UTC"
    quiet_start: str | None = "22:00"
    quiet_end: str | None = "07:00"
    daily_cap: int = 20
    digest_weekday: int = 0
    digest_hour: int = 9
    digest_enabled: bool = True

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def parse_hhmm(value: str) -> time:
    """Parse 'HH:MM' (24-hour) into a time; raise ValueError otherwise."""
    hours, sep, minutes = value.partition(":")
    if not sep or len(hours) != 2 or len(minutes) != 2 or not (hours + minutes).isdigit():
        raise ValueError("must be HH:MM")
    parsed = time(int(hours), int(minutes)) if int(hours) < 24 and int(minutes) < 60 else None
    if parsed is None:
        raise ValueError("must be a time between 00:00 and 23:59")
    return parsed


def at_local(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a wall-clock time on a local date (gaps resolve forward)."""
    local = datetime.combine(day, clock, tzinfo=zone)
    return local.astimezone(UTC)


def local_now(now: datetime, rules: Rules) -> datetime:
    return now.astimezone(rules.zone)


def iso_week(day: date) -> str:
    """The ISO week a local date falls in, as '2026-W48'."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def window_at_or_before(now: datetime, rules: Rules) -> datetime:
    """The start (UTC) of the latest digest window that has begun by `now`."""
    local = local_now(now, rules)
    day = local.date() - timedelta(days=(local.weekday() - rules.digest_weekday) % 7)
    start = at_local(day, time(rules.digest_hour), rules.zone)
    if start > now:
        start = at_local(day - timedelta(days=7), time(rules.digest_hour), rules.zone)
    return start


def next_window_after(now: datetime, rules: Rules) -> datetime:
    """The start (UTC) of the first digest window that begins after `now`."""
    last = window_at_or_before(now, rules)
    local_day = last.astimezone(rules.zone).date()
    return at_local(local_day + timedelta(days=7), time(rules.digest_hour), rules.zone)


def window_week(start: datetime, rules: Rules) -> str:
    """The idempotency week of a window: the ISO week of its local date."""
    return iso_week(start.astimezone(rules.zone).date())


def in_quiet_hours(now: datetime, rules: Rules) -> bool:
    """Whether `now` falls inside the project's quiet hours (the window may wrap midnight)."""
    if not rules.quiet_start or not rules.quiet_end:
        return False
    start, end = parse_hhmm(rules.quiet_start), parse_hhmm(rules.quiet_end)
    clock = local_now(now, rules).time().replace(tzinfo=None)
    if start == end:
        return False
    if start < end:
        return start <= clock < end
    return clock >= start or clock < end


def quiet_hours_end(now: datetime, rules: Rules) -> datetime:
    """When the quiet hours that contain `now` end (UTC); `now` itself when not quiet."""
    if not in_quiet_hours(now, rules):
        return now
    assert rules.quiet_end is not None
    end = parse_hhmm(rules.quiet_end)
    local = local_now(now, rules)
    day = local.date() if local.time().replace(tzinfo=None) < end else local.date() + timedelta(days=1)
    return at_local(day, end, rules.zone)


def local_day_bounds(now: datetime, rules: Rules) -> tuple[datetime, datetime]:
    """The UTC start and end of the project's local day that contains `now`."""
    day = local_now(now, rules).date()
    return at_local(day, time(0), rules.zone), at_local(day + timedelta(days=1), time(0), rules.zone)


def next_open_time(now: datetime, rules: Rules, *, cap_reached: bool) -> datetime:
    """The first moment at or after `now` when a message may go out (next day when capped)."""
    moment = local_day_bounds(now, rules)[1] if cap_reached else now
    return quiet_hours_end(moment, rules)
