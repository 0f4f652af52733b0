"""Times: stored in SQLite as UTC text `YYYY-MM-DD HH:MM:SS` (SQLite's own format, so SQL can compare
and do arithmetic with datetime()); every command that depends on the clock takes `--now`."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from cxctl.errors import UsageError

DB_FORMAT = "%Y-%m-%d %H:%M:%S"


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def to_db(moment: datetime) -> str:
    """Aware datetime -> UTC text for the store."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to the store; attach a time zone first")
    return moment.astimezone(timezone.utc).strftime(DB_FORMAT)


def from_db(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.strptime(text[:19], DB_FORMAT).replace(tzinfo=timezone.utc)


def parse_now(text: str | None, default_tz: str = "UTC") -> datetime:
    """`--now` value: ISO 8601 (`2026-11-22T09:00`, with or without offset, or a bare date); naive
    times are read in `default_tz`. None means the real clock."""
    if text is None:
        return utcnow()
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"invalid --now {text!r}: use ISO 8601, e.g. 2026-11-22T09:00 or 2026-11-22T09:00+01:00") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(default_tz))
    return value.astimezone(timezone.utc)
