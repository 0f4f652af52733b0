"""Times: stored in SQLite as UTC text `YYYY-MM-DD HH:MM:SS` (SQLite's own format, so SQL can compare
and do arithmetic with datetime()); every command that depends on the clock takes `--now`."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cxctl.core.errors import UsageError

DB_FORMAT = "%Y-%m-%d %H:%M:%S"


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def to_db(moment: datetime) -> str:
    """Aware datetime -> UTC text for the store."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to the store; attach a time zone first")
    return moment.astimezone(UTC).strftime(DB_FORMAT)


def from_db(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.strptime(text[:19], DB_FORMAT).replace(tzinfo=UTC)


def parse_now(text: str | None, default_tz: str = "UTC") -> datetime:
    """`--now` value: ISO 8601 (`2026-11-22T09:00`, with or without offset, or a bare date); naive
    times are read in `default_tz`. None means the real clock."""
    if text is None:
        return utcnow()
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"invalid --now {text!r}: use ISO 8601, e.g. 2026-11-22T09:00 or 2026-11-22T09:00+01:00"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(default_tz))
    return value.astimezone(UTC)


def parse_day(text: str | None, option: str) -> date | None:
    """A `--since`/`--until` day: ISO only (`2026-01-31`; a datetime's day is taken), never guessed —
    `01/10/2026` is the 1st of October in Paris and the 10th of January in Boston."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError:
        raise UsageError(f"invalid {option} {text!r}: use an ISO date, e.g. 2026-01-31") from None


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant at which `day` starts in `tz` (days, waves and --since/--until are the workspace's
    calendar days; the store holds UTC)."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def local_day_range(since: str | None, until: str | None, tz_name: str) -> tuple[str | None, str | None]:
    """`--since`/`--until` (inclusive local days) as UTC bounds [start, end) for SQL comparisons."""
    first, last = parse_day(since, "--since"), parse_day(until, "--until")
    if first and last and first > last:
        raise UsageError(f"--since {first} is after --until {last}: swap them")
    tz = ZoneInfo(tz_name)
    return (
        to_db(local_midnight(first, tz)) if first else None,
        to_db(local_midnight(last + timedelta(days=1), tz)) if last else None,
    )


MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def nonexistent_date(text: str, year: int, month: int, day: int) -> str | None:
    """Why `day/month/year` (as read from `text`) is not a calendar day — `31/11/2026` does not exist, as
    November has 30 days — or None when it is one (or when the month itself is not a month).
    Issue 12: "unreadable date … expected the declared format" hid that the date was written, just impossible."""
    if not 1 <= month <= 12 or day < 1:
        return None
    try:
        date(year, month, day)
        return None
    except ValueError:
        pass
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return (
        f"the date {text.strip()!r} does not exist: {MONTH_NAMES[month - 1]} {year} has {last} days; "
        f"fix the day in the file"
    )
