"""Operational indicators from events, to read beside the survey scores of the same journey:
the median and 90th percentile of the time between two event types (e.g. order_placed →
order_delivered), and the number of events of one type per period (e.g. complaints)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import sqlite_utils

from cxctl.core.errors import UsageError, did_you_mean
from cxctl.core.timeutil import from_db, local_day_range
from cxctl.results.scorecard import TIME_DIMENSIONS, period_label
from cxctl.workspace.loader import Workspace


@dataclass
class DurationRow:
    period: str
    n: int
    median_hours: float | None
    p90_hours: float | None


@dataclass
class CountRow:
    period: str
    count: int


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks (the usual spreadsheet PERCENTILE)."""
    if not sorted_values:
        return None
    position = (len(sorted_values) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def _check(by: str) -> None:
    if by not in TIME_DIMENSIONS:
        raise UsageError(f"invalid --by {by!r}: use week, month or quarter")


def unknown_types(ws: Workspace, db: sqlite_utils.Database, *types: str) -> list[str]:
    """A warning for each event type that no stored event has and no moment triggers on: a typo, most
    likely, which would otherwise read as 'none happened' (an empty table or zero counts)."""
    triggers = {m.trigger.event for m in ws.moments.values() if m.trigger is not None}
    warnings = []
    for event_type in dict.fromkeys(types):
        if event_type in triggers or db.execute("SELECT 1 FROM events WHERE type = ? LIMIT 1", [event_type]).fetchone():
            continue
        known = sorted(triggers | {r[0] for r in db.execute("SELECT DISTINCT type FROM events")})
        warnings.append(
            f"no event of type {event_type!r} in the store{did_you_mean(event_type, known)}; "
            f"the types known are {', '.join(known) or 'none yet (import events first)'}"
        )
    return warnings


def _period(ws: Workspace, column: str, since: str | None, until: str | None) -> tuple[str, list[str]]:
    """SQL conditions (on one of our own column names) and parameters for inclusive local days
    `since`..`until`: the periods are the workspace's calendar, the store is in UTC."""
    start, end = local_day_range(since, until, ws.settings.timezone)
    where, params = "", []
    if start:
        where, params = f" AND {column} >= ?", [start]
    if end:
        where, params = where + f" AND {column} < ?", [*params, end]
    return where, params


def durations(
    ws: Workspace,
    db: sqlite_utils.Database,
    start_type: str,
    end_type: str,
    by: str = "month",
    since: str | None = None,
    until: str | None = None,
) -> list[DurationRow]:
    """For each `end_type` event, the time since the same contact's latest `start_type` event before it;
    median and p90 per period of the end event (workspace time zone)."""
    _check(by)
    where, params = _period(ws, "e.occurred_at", since, until)
    sql = f"""SELECT e.occurred_at, (SELECT MAX(s.occurred_at) FROM events s WHERE s.contact_id = e.contact_id
                                      AND s.type = ? AND s.occurred_at <= e.occurred_at)
              FROM events e WHERE e.type = ?{where}"""
    local = ZoneInfo(ws.settings.timezone)
    groups: dict[str, list[float]] = defaultdict(list)
    for end, start in db.execute(sql, [start_type, end_type, *params]).fetchall():
        if start is None:
            continue
        end_at, start_at = from_db(end), from_db(start)
        assert end_at is not None and start_at is not None, "occurred_at is NOT NULL; start was checked above"
        hours = (end_at - start_at).total_seconds() / 3600
        groups[period_label(end_at.astimezone(local).date(), by)].append(hours)
    rows = []
    for period in sorted(groups):
        values = sorted(groups[period])
        rows.append(DurationRow(period, len(values), percentile(values, 0.5), percentile(values, 0.9)))
    return rows


def explain_no_durations(
    ws: Workspace,
    db: sqlite_utils.Database,
    start_type: str,
    end_type: str,
    since: str | None = None,
    until: str | None = None,
) -> str:
    """Why `durations` found nothing, with what to do: no END event in the period, or no START before them —
    most often START and END given the other way round."""
    where, params = _period(ws, "e.occurred_at", since, until)
    period = " in that period" if since or until else ""
    ends = db.execute(f"SELECT COUNT(*) FROM events e WHERE e.type = ?{where}", [end_type, *params]).fetchone()[0]
    if not ends:
        return f"no duration: no {end_type} event{period} (the clock stops at {end_type}, the second type)"
    after = db.execute(
        f"""SELECT COUNT(*) FROM events e WHERE e.type = ?{where} AND EXISTS (SELECT 1 FROM events s
                           WHERE s.contact_id = e.contact_id AND s.type = ? AND s.occurred_at > e.occurred_at)""",
        [end_type, *params, start_type],
    ).fetchone()[0]
    if after:
        return (
            f"no duration: {after} of the {ends} {end_type} event(s){period} come before the same person's "
            f"{start_type}, none after it — START and END look swapped: try "
            f"`cxctl ops duration {end_type} {start_type}`"
        )
    return (
        f"no duration: none of the {ends} {end_type} event(s){period} has a {start_type} event of the same "
        f"person before it (durations pair the two events by contact)"
    )


def counts(
    ws: Workspace,
    db: sqlite_utils.Database,
    event_type: str,
    by: str = "month",
    since: str | None = None,
    until: str | None = None,
) -> list[CountRow]:
    """Number of `event_type` events per period (workspace time zone)."""
    _check(by)
    where, params = _period(ws, "occurred_at", since, until)
    local = ZoneInfo(ws.settings.timezone)
    tally: dict[str, int] = defaultdict(int)
    for (occurred,) in db.execute(
        f"SELECT occurred_at FROM events WHERE type = ?{where}", [event_type, *params]
    ).fetchall():
        occurred_at = from_db(occurred)
        assert occurred_at is not None, "events.occurred_at is NOT NULL"
        tally[period_label(occurred_at.astimezone(local).date(), by)] += 1
    return [CountRow(p, tally[p]) for p in sorted(tally)]


@dataclass
class OpsIndicator:
    """One operational indicator shown beside a scorecard: `START..END` durations or a `TYPE` count."""

    spec: str
    kind: str  # duration | count
    rows: list

    @property
    def types(self) -> tuple[str, ...]:
        """The event types it reads: START and END of a duration, or the counted TYPE (not in its JSON)."""
        return tuple(t.strip() for t in self.spec.split("..")) if self.kind == "duration" else (self.spec,)


def beside_scorecard(
    ws: Workspace, db: sqlite_utils.Database, specs: list[str], by: str, since: str, until: str
) -> list[OpsIndicator]:
    """The operational indicators named by `specs` (`order_placed..order_delivered` for a duration, `complaint`
    for a count) over the scorecard's own period and granularity, so both read side by side."""
    out = []
    for spec in specs:
        spec = spec.strip()
        if ".." in spec:
            start, _, end = spec.partition("..")
            if not start.strip() or not end.strip():
                raise UsageError(
                    f"invalid --ops {spec!r}: write START..END (e.g. order_placed..order_delivered) or one event type"
                )
            out.append(OpsIndicator(spec, "duration", durations(ws, db, start.strip(), end.strip(), by, since, until)))
        elif spec:
            out.append(OpsIndicator(spec, "count", counts(ws, db, spec, by, since, until)))
        else:
            raise UsageError("empty --ops: write START..END (e.g. order_placed..order_delivered) or one event type")
    return out
