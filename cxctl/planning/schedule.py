"""Calendar helpers of the solicitation engine: relational waves and send windows.

Everything is computed on local wall-clock dates with zoneinfo, then converted to UTC, so a wave
boundary or a window opening stays at the same local time across daylight-saving changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from cxctl.core.durations import parse_duration
from cxctl.core.timeutil import local_midnight
from cxctl.workspace.channels import SmsHours
from cxctl.workspace.fields import WEEKDAYS
from cxctl.workspace.followup_model import holiday_countries
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


@lru_cache(maxsize=4096)
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


# --- SMS hours (issue 16) -----------------------------------------------------------------------

SMS_LOOKAHEAD_DAYS = 45  # a window of two days a week behind a string of holidays still opens within this


@lru_cache(maxsize=256)
def _holidays(region: str, year: int) -> frozenset[date]:
    import holidays

    try:
        return frozenset(holidays.country_holidays(region, years=year))
    except NotImplementedError:  # a region the library does not know: no holiday rather than no SMS ever
        return frozenset()


@lru_cache(maxsize=1024)
def holiday_region(country: str | None, default_region: str) -> str:
    """The calendar of public holidays for a contact: their country's when known, else the default region's."""
    code = (country or "").strip().upper()
    return code if code and code in holiday_countries() else default_region


def is_holiday(day: date, region: str) -> bool:
    return day in _holidays(region, day.year)


def sms_allowed_at(when: datetime, tz: ZoneInfo, hours: SmsHours, region: str) -> bool:
    """True when an SMS may go out at `when` (the person's local day and hour; holidays of `region`)."""
    local = when.astimezone(tz)
    start, end = hours.bounds()
    if WEEKDAYS[local.weekday()] not in hours.days:
        return False
    if not hours.public_holidays and is_holiday(local.date(), region):
        return False
    return start <= local.time().replace(tzinfo=None) < end


def next_sms_opening(now: datetime, tz: ZoneInfo, window: SendWindow, hours: SmsHours, region: str) -> datetime:
    """The first instant at or after `now` inside both the send window and the SMS hours (no Sunday, no
    public holiday of `region` unless allowed), in time zone `tz`, as aware UTC.

    Both are lists of intervals over the coming days; the answer is the start of the first overlap that
    has not ended (or `now` itself inside one)."""
    now = now.astimezone(UTC)
    today = now.astimezone(tz).date()
    w_start, w_end = window.bounds()
    w_days = {WEEKDAYS.index(d) for d in window.days}
    s_start, s_end = hours.bounds()
    s_days = {WEEKDAYS.index(d) for d in hours.days}
    windows: list[tuple[datetime, datetime]] = []
    smses: list[tuple[datetime, datetime]] = []
    for offset in range(-1, SMS_LOOKAHEAD_DAYS):
        day = today + timedelta(days=offset)
        if day.weekday() in w_days:
            windows.append(
                (_utc(day, w_start, tz), _utc(day if w_end > w_start else day + timedelta(days=1), w_end, tz))
            )
        if day.weekday() in s_days and (hours.public_holidays or not is_holiday(day, region)):
            smses.append((_utc(day, s_start, tz), _utc(day, s_end, tz)))
    i = j = 0
    while i < len(windows) and j < len(smses):
        start = max(windows[i][0], smses[j][0], now)
        end = min(windows[i][1], smses[j][1])
        if start < end:
            return start
        if windows[i][1] <= smses[j][1]:
            i += 1
        else:
            j += 1
    raise ValueError(
        f"no time within {SMS_LOOKAHEAD_DAYS} days is both in the send window {window.hours} on "
        f"{','.join(window.days)} and in the SMS hours {hours.hours} on {','.join(hours.days)}"
    )
