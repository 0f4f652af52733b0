"""Closed-loop figures beside the scores: did the team call back in time, how fast, and does it show in
what those customers say next?

- contacted within deadline: of the cases opened in the period whose deadline has passed or that were
  reached, the share first contacted by their due date (cases still inside their deadline wait);
- median hours to the first contact, for the cases reached;
- NPS of the customers who answered again after a resolved case, against every other answer of the
  period (shown when both exist; small n: read the n beside it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from statistics import median
from zoneinfo import ZoneInfo

import sqlite_utils

from cxctl.core.timeutil import from_db, local_midnight, to_db
from cxctl.results.stats import Nps
from cxctl.store.dimensions import built
from cxctl.workspace.loader import Workspace


@dataclass
class ClosedLoop:
    cases: int  # opened in the period
    with_deadline: int  # of them, decided: reached, or past their due date
    contacted_in_time: int
    contacted_in_time_share: float | None  # %
    median_hours_to_contact: float | None
    contacted: int
    resurveyed_nps: float | None  # NPS of answers given after the person's case was resolved
    resurveyed_n: int
    others_nps: float | None  # NPS of the period's other answers
    others_n: int


def _nps(promoters: int, passives: int, detractors: int) -> float | None:
    if not promoters + passives + detractors:
        return None
    score = Nps(promoters, passives, detractors).score
    return None if score is None else round(score, 1)


def closed_loop_figures(
    ws: Workspace, db: sqlite_utils.Database, since: date, until: date, now: datetime, moment: str | None = None
) -> ClosedLoop:
    """The figures for the cases opened (and the answers given) between `since` and `until`, inclusive
    local days of the workspace."""
    tz = ZoneInfo(ws.settings.timezone)
    start, end = to_db(local_midnight(since, tz)), to_db(local_midnight(date.fromordinal(until.toordinal() + 1), tz))
    rows = db.execute(
        """SELECT f.opened_at, f.due_at, f.first_contact_at FROM followups f JOIN responses r ON r.id = f.response_id
                         WHERE f.opened_at >= ? AND f.opened_at < ? AND (? IS NULL OR r.moment = ?)""",
        [start, end, moment, moment],
    ).fetchall()
    in_time = decided = 0
    hours = []
    for opened, due, first in rows:
        if first:
            opened_at, first_at = from_db(opened), from_db(first)
            if opened_at and first_at:
                hours.append((first_at - opened_at).total_seconds() / 3600)
        due_at = from_db(due)
        if due_at is None:
            continue
        if first and first <= due:
            in_time += 1
            decided += 1
        elif first or due_at < now:
            decided += 1
    counts = _nps_counts(db, since, until, moment)
    resurveyed, others = counts[:3], counts[3:]
    return ClosedLoop(
        len(rows),
        decided,
        in_time,
        round(100 * in_time / decided, 1) if decided else None,
        round(median(hours), 1) if hours else None,
        len(hours),
        _nps(*resurveyed),
        sum(resurveyed),
        _nps(*others),
        sum(others),
    )


_BUCKETS = """COALESCE(SUM(CASE WHEN after AND s >= 9 THEN n END), 0),
              COALESCE(SUM(CASE WHEN after AND s BETWEEN 7 AND 8 THEN n END), 0),
              COALESCE(SUM(CASE WHEN after AND s <= 6 THEN n END), 0),
              COALESCE(SUM(CASE WHEN NOT after AND s >= 9 THEN n END), 0),
              COALESCE(SUM(CASE WHEN NOT after AND s BETWEEN 7 AND 8 THEN n END), 0),
              COALESCE(SUM(CASE WHEN NOT after AND s <= 6 THEN n END), 0)"""


def _nps_counts(db: sqlite_utils.Database, since: date, until: date, moment: str | None) -> tuple[int, ...]:
    """Promoters, passives, detractors among the counted NPS answers of the period given after the person's
    case was resolved, then among the others; the period is the responses' local `day`, as for the scores.

    Counted in SQL, one row back. With no resolved case every answer is an "other": the counts come from the
    NPS rollup of a declared dimension when there is one (all values together: every counted response, a few
    hundred thousand rows whatever their number), else from the covering index on (status, moment, day,
    score_nps). Only a resolved case needs each answer's contact and time (the table's rows)."""
    days = [since.isoformat(), until.isoformat()]
    resolved = db.execute("SELECT EXISTS (SELECT 1 FROM followups WHERE status = 'resolved')").fetchone()[0]
    if not resolved:
        dimension = next(iter(sorted(built(db))), None)
        if dimension is not None:
            return db.execute(
                f"""SELECT {_BUCKETS} FROM (SELECT score AS s, 0 AS after, n FROM dim_score_rollup
                    WHERE dimension = ? AND kind = 0 AND day BETWEEN ? AND ? AND (? IS NULL OR moment = ?))""",
                [dimension, *days, moment, moment],
            ).fetchone()
        return db.execute(
            f"""SELECT {_BUCKETS} FROM (SELECT r.score_nps AS s, 0 AS after, 1 AS n FROM responses r
                WHERE r.status = 'counted' AND r.score_nps IS NOT NULL AND r.day BETWEEN ? AND ?
                  AND (? IS NULL OR r.moment = ?))""",
            [*days, moment, moment],
        ).fetchone()
    return db.execute(
        f"""SELECT {_BUCKETS}
            FROM (SELECT r.score_nps AS s, 1 AS n,
                         EXISTS (SELECT 1 FROM followups f JOIN responses o ON o.id = f.response_id
                                 WHERE o.contact_id = r.contact_id AND f.status = 'resolved'
                                   AND f.done_at IS NOT NULL AND f.done_at < r.submitted_at) AS after
                  FROM responses r WHERE r.status = 'counted' AND r.score_nps IS NOT NULL AND r.day BETWEEN ? AND ?
                    AND (? IS NULL OR r.moment = ?))""",
        [*days, moment, moment],
    ).fetchone()
