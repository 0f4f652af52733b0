"""Calendar helpers of the solicitation engine: relational waves and send windows.

Everything is computed on local wall-clock dates with zoneinfo, then converted to UTC, so a wave
boundary or a window opening stays at the same local time across daylight-saving changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cxctl.core.durations import parse_duration
from cxctl.core.timeutil import local_midnight
from cxctl.workspace.fields import WEEKDAYS
from cxctl.workspace.model import Schedule, SendWindow

# Whole-day "every: 90d" waves are counted from this Monday, so they fall on the same dates on
# every machine and every run.
WAVE_EPOCH = date(2024, 1, 1)


@dataclass(frozen=True)
class Wave:
    """One occurrence of a relational schedule: its id (e.g. `2026Q4`) and local start/end in UTC."""

    id: str
    start: datetime
    end: datetime


def zone(name: str | None, fallback: str) -> ZoneInfo:
    """The contact's time zone, or the workspace's when missing or unknown (never raises)."""
    for candidate in (name, fallback):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except Exception:
                continue
    return ZoneInfo("UTC")


def wave_for(schedule: Schedule, now: datetime, tz_name: str) -> Wave:
    """The wave of `schedule` that contains `now` (waves are in the workspace time zone)."""
    tz = ZoneInfo(tz_name)
    local = now.astimezone(tz)
    today = local.date()
    if schedule.cron is not None:
        from croniter import croniter

        # croniter on a naive local time: cron fields are wall-clock, so DST does not shift them.
        naive = local.replace(tzinfo=None)
        itr = croniter(schedule.cron, naive + timedelta(seconds=1))
        start_naive = itr.get_prev(datetime)
        end_naive = croniter(schedule.cron, start_naive).get_next(datetime)
        start = start_naive.replace(tzinfo=tz).astimezone(UTC)
        end = end_naive.replace(tzinfo=tz).astimezone(UTC)
        return Wave(start_naive.strftime("%Y-%m-%dT%H:%M"), start, end)
    every = schedule.every
    if every == "quarter":
        q = (today.month - 1) // 3
        first = date(today.year, 3 * q + 1, 1)
        nxt = date(today.year + 1, 1, 1) if q == 3 else date(today.year, 3 * q + 4, 1)
        return Wave(f"{today.year}Q{q + 1}", local_midnight(first, tz), local_midnight(nxt, tz))
    if every == "month":
        first = today.replace(day=1)
        nxt = date(today.year + 1, 1, 1) if today.month == 12 else date(today.year, today.month + 1, 1)
        return Wave(f"{today.year}-{today.month:02d}", local_midnight(first, tz), local_midnight(nxt, tz))
    if every == "week":
        first = today - timedelta(days=today.weekday())
        iso = first.isocalendar()
        return Wave(
            f"{iso.year}W{iso.week:02d}", local_midnight(first, tz), local_midnight(first + timedelta(days=7), tz)
        )
    if every == "year":
        return Wave(
            str(today.year), local_midnight(date(today.year, 1, 1), tz), local_midnight(date(today.year + 1, 1, 1), tz)
        )
    length = parse_duration(every or "")
    if length.total_seconds() % 86400 == 0:
        days = int(length.total_seconds() // 86400)
        index = (today - WAVE_EPOCH).days // days
        first = WAVE_EPOCH + timedelta(days=index * days)
        return Wave(first.isoformat(), local_midnight(first, tz), local_midnight(first + timedelta(days=days), tz))
    seconds = int(length.total_seconds())
    epoch = local_midnight(WAVE_EPOCH, tz)
    index = int((now - epoch).total_seconds()) // seconds
    start = epoch + timedelta(seconds=index * seconds)
    return Wave(start.astimezone(tz).strftime("%Y-%m-%dT%H:%M"), start, start + timedelta(seconds=seconds))


def next_opening(now: datetime, tz: ZoneInfo, window: SendWindow) -> datetime:
    """The first instant at or after `now` inside `window` in time zone `tz` (aware UTC).

    A window whose end is before its start (22:00-06:00) runs past midnight into the next day.
    Local opening times that do not exist on a DST day (02:30 in spring) resolve forward.
    """
    now = now.astimezone(UTC)
    start, end = window.bounds()
    allowed = {WEEKDAYS.index(d) for d in window.days}
    today = now.astimezone(tz).date()
    # Start from yesterday: an overnight window opened yesterday may still be open now.
    for offset in range(-1, 9):
        day = today + timedelta(days=offset)
        if day.weekday() not in allowed:
            continue
        opens = _utc(day, start, tz)
        closes = _utc(day if end > start else day + timedelta(days=1), end, tz)
        if now < closes:
            return max(now, opens)
    raise ValueError(f"send window {window.hours} on {window.days} never opens")


def _utc(day: date, at: time, tz: ZoneInfo) -> datetime:
    # fold=0 (the default) maps a wall time in the spring-forward gap one hour later (02:30 -> 03:30)
    # and an ambiguous autumn time to its first occurrence: both keep the window's intent.
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def local_day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC start and end of a local calendar day (23 or 25 hours long on DST days)."""
    return local_midnight(day, tz), local_midnight(day + timedelta(days=1), tz)
