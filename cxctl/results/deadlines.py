"""Who owns a follow-up case and by when the customer must be called: the `followups:` rules applied to
one case, and deadlines counted in the working time of the team's calendar (days, hours, public
holidays, closed days), so 48 h opened on a Friday evening does not fall due on Sunday."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from cxctl.core.errors import CxError
from cxctl.workspace.fields import WEEKDAYS
from cxctl.workspace.followup_model import FollowupSettings, OwnerWhen, WorkCalendar, holiday_calendar
from cxctl.workspace.loader import Workspace

SEARCH_DAYS = 5 * 366  # a calendar with no working day in five years is a mistake, not a deadline


@dataclass
class CaseFacts:
    """What owner rules may test about one case."""

    moment: str
    categories: list[str]
    contact: dict[str, Any] = field(default_factory=dict)  # segment, country, language, company, role
    contact_attributes: dict[str, Any] = field(default_factory=dict)
    event_attributes: dict[str, Any] | None = None  # None: no event behind the survey (relational)


@dataclass
class Assignment:
    owner: str | None
    rule: str  # owners[2], default_owner or none: which setting chose the owner, shown in the history
    deadline: timedelta | None


def _texts(value: Any) -> set[str]:
    """A filter's values as the lower-case texts they match (as audiences do: `true` matches 1 and true)."""
    out: set[str] = set()
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, bool):
            out |= {"1", "true"} if v else {"0", "false"}
        elif isinstance(v, float) and v.is_integer():
            out |= {str(int(v)), str(v)}
        else:
            out.add(str(v).lower())
    return out


def _holds(value: Any, wanted: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).lower() in _texts(wanted)


def matches(ws: Workspace, when: OwnerWhen, facts: CaseFacts) -> bool:
    """True when every condition of `when` holds for the case."""
    moment = ws.moments.get(facts.moment)
    if when.moment is not None and facts.moment not in when.moment:
        return False
    if when.journey is not None and (moment is None or moment.journey not in when.journey):
        return False
    if when.stage is not None and (moment is None or moment.stage not in when.stage):
        return False
    if when.category is not None and not set(when.category) & set(facts.categories):
        return False
    for key in ("segment", "country", "company", "role"):
        wanted = getattr(when, key)
        if wanted is not None and not _holds(facts.contact.get(key), wanted):
            return False
    if when.language is not None:
        spoken = (facts.contact.get("language") or "").lower()
        if spoken not in _texts(when.language) and spoken.split("-")[0] not in _texts(when.language):
            return False
    if any(not _holds(facts.contact_attributes.get(k, facts.contact.get(k)), v) for k, v in when.contact.items()):
        return False
    if when.event:
        if facts.event_attributes is None:
            return False
        if any(not _holds(facts.event_attributes.get(k), v) for k, v in when.event.items()):
            return False
    return True


def assign(ws: Workspace, facts: CaseFacts) -> Assignment:
    """The owner and deadline of a new case: the first matching rule, else the default owner; the rule's
    deadline, else the shortest deadline of the case's categories (None: no deadline)."""
    settings: FollowupSettings = ws.followups
    category_deadlines = [settings.deadlines[c] for c in facts.categories if c in settings.deadlines]
    default = min(category_deadlines) if category_deadlines else None
    for i, rule in enumerate(settings.owners):
        if matches(ws, rule.when, facts):
            return Assignment(rule.owner, f"owners[{i}]", rule.deadline if rule.deadline is not None else default)
    if settings.default_owner:
        return Assignment(settings.default_owner, "default_owner", default)
    return Assignment(None, "none", default)


def _bounds(calendar: WorkCalendar) -> tuple[time, time | None]:
    """Opening and closing times of a working day; closing None means midnight at the day's end (24:00)."""

    def parse(hhmm: str) -> time | None:
        h, m = (int(x) for x in hhmm.split(":"))
        return None if h == 24 else time(h, m)

    start, end = calendar.hours.split("-")
    return parse(start) or time(0), parse(end)


def _window(day: date, calendar: WorkCalendar, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """A working day's hours as UTC instants. Computed in UTC because Python subtracts two times of one
    zone on the wall clock: across a DST change that counts an hour that never was, or misses one."""
    opens, closes = _bounds(calendar)
    begin = datetime.combine(day, opens, tzinfo=tz).astimezone(UTC)
    if closes is None:
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    else:
        end = datetime.combine(day, closes, tzinfo=tz).astimezone(UTC)
    return begin, end


@lru_cache(maxsize=64)
def _holidays(code: str, year: int) -> frozenset[date]:
    return frozenset(holiday_calendar(code, year))


def is_working_day(calendar: WorkCalendar, day: date) -> bool:
    if WEEKDAYS[day.weekday()] not in calendar.days or day in calendar.closed:
        return False
    return not (calendar.holidays and day in _holidays(calendar.holidays, day.year))


def calendar_zone(ws: Workspace) -> ZoneInfo:
    return ZoneInfo(ws.followups.calendar.timezone or ws.settings.timezone)


def add_working_time(start: datetime, amount: timedelta, calendar: WorkCalendar, tz: ZoneInfo) -> datetime:
    """The UTC instant at which `amount` of working time has passed since `start`. Raises CxError when the
    calendar has no working hour in five years (every day closed)."""
    now = start.astimezone(UTC)
    remaining = amount
    day = start.astimezone(tz).date()
    for _ in range(SEARCH_DAYS):
        if is_working_day(calendar, day):
            day_open, day_close = _window(day, calendar, tz)
            begin = max(day_open, now)
            if begin < day_close:
                available = day_close - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
        day += timedelta(days=1)
    raise CxError(
        "followups.calendar has no working hour in the next five years (days, holidays, closed): give it working days"
    )


def working_time_between(start: datetime, end: datetime, calendar: WorkCalendar, tz: ZoneInfo) -> timedelta:
    """Working time from `start` to `end` (zero when end is not after start): the time an owner had."""
    if end <= start:
        return timedelta(0)
    first, last = start.astimezone(UTC), end.astimezone(UTC)
    total = timedelta(0)
    day = first.astimezone(tz).date()
    while day <= last.astimezone(tz).date():
        if is_working_day(calendar, day):
            day_open, day_close = _window(day, calendar, tz)
            begin, finish = max(day_open, first), min(day_close, last)
            if finish > begin:
                total += finish - begin
        day += timedelta(days=1)
    return total
