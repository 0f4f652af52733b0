"""Scorecards broken down by a declared dimension (`dimensions:` in cxctl.yaml), read from its rollups.

Beside contact_breakdown and event_breakdown: the same counts per (value, moment, period label), read from
tables bounded by the distinct (value, moment, day, score) combinations instead of one pass over every
response. cxctl.store.dimensions builds and keeps them; the figures equal the raw breakdown's."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection

import sqlite_utils

from cxctl.results.contact_breakdown import indicator_questions
from cxctl.results.event_breakdown import EVENT_PREFIX, event_key
from cxctl.store.dimensions import built
from cxctl.workspace.loader import Workspace


def rollup_dimension(
    db: sqlite_utils.Database, groups: list[str], builtin: Collection[str], events: Collection[str]
) -> str | None:
    """The one attribute of `groups` when its rollups are built and read it as the raw breakdown would (a bare
    name the breakdown reads on the events, as no contact has it, is not the contact dimension); else None.
    Two attributes at once need their joint counts: the raw path."""
    attributes = [g for g in groups if g not in builtin]
    if len(attributes) != 1:
        return None
    name = attributes[0]
    dimension = built(db).get(name)
    if dimension is None:
        return None
    on_events = name in events
    if on_events != (dimension.source == "event"):
        return None
    if on_events and (not name.startswith(EVENT_PREFIX) or dimension.field != event_key(name)):
        return None
    return name


def _ranges(db: sqlite_utils.Database, table: str, column: str, step: str) -> list[tuple[str, str, str]] | None:
    """(label, first, last) of each period label of the scorecard's temporary table, or None when a label's
    days (hours) are not one unbroken range. `table`, `column` and `step` are constants of this module."""
    rows = db.execute(
        f"""SELECT label, MIN({column}), MAX({column}), COUNT(*),
                   CAST(round((julianday(MAX({column}) || {step}) - julianday(MIN({column}) || {step})) * ?) AS INTEGER) + 1
            FROM temp.{table} GROUP BY label""",
        [24 if column == "hour" else 1],
    ).fetchall()
    if any(count != span for _, _, _, count, span in rows):
        return None
    return [(label, first, last) for label, first, last, _, _ in rows]


def _values(table: str) -> str:
    """A CTE `v(moment, value)` of the (moment, value) keys of `table` (a constant of this module) for the
    scorecard's moments, each found by seeking the next one in the primary key, never reading every row."""
    return f"""v(moment, value) AS (
        SELECT m.moment, (SELECT MIN(value) FROM {table} WHERE dimension = :name AND moment = m.moment)
        FROM temp.sc_moments m
        UNION ALL
        SELECT v.moment, (SELECT MIN(value) FROM {table} WHERE dimension = :name AND moment = v.moment AND value > v.value)
        FROM v WHERE v.value IS NOT NULL)"""


def fetch_by_dimension(ws: Workspace, db: sqlite_utils.Database, name: str, moments: list[str]) -> dict[tuple, dict]:
    """Counts per (value, moment, label) from the rollups of dimension `name`, over the period of the
    scorecard's temporary tables (sc_days, sc_hours, sc_moments): scores, responses, sent, and the counted
    responses without invitation of the moments that take them (responses.match contact/none).

    Each period label covers a range of days (hours): its count for one (moment, value, score) is the sum of
    one range of the primary key, so nothing is sorted and each row is read once per label covering it. The
    keys themselves are found by seeking from one to the next (a few hundred), not by a pass over every row
    (at 5M that pass cost more than the sums: 0.55 s against 0.08 s for the scores)."""
    out: dict[tuple, dict] = defaultdict(lambda: {"scores": defaultdict(int), "responses": 0, "sent": 0})
    indicators = {m: indicator_questions(ws, m) for m in moments}
    free = {m for m in moments if ws.moments[m].responses.match != "invitation"}
    q = db.execute
    days = _ranges(db, "sc_days", "day", "''")
    hours = _ranges(db, "sc_hours", "hour", "':00'")
    if days is None or hours is None:
        return _fetch_joined(ws, db, name, moments)
    q("CREATE TEMP TABLE IF NOT EXISTS dim_days (label TEXT, first TEXT, last TEXT)")
    q("CREATE TEMP TABLE IF NOT EXISTS dim_hours (label TEXT, first TEXT, last TEXT)")
    q("DELETE FROM temp.dim_days")
    q("DELETE FROM temp.dim_hours")
    db.conn.executemany("INSERT INTO temp.dim_days VALUES (?, ?, ?)", days)
    db.conn.executemany("INSERT INTO temp.dim_hours VALUES (?, ?, ?)", hours)
    scores = q(
        f"""WITH RECURSIVE {_values("dim_score_rollup")},
           g(moment, value, kind, score) AS (
               SELECT v.moment, v.value, k.kind,
                      (SELECT MIN(score) FROM dim_score_rollup
                       WHERE dimension = :name AND moment = v.moment AND value = v.value AND kind = k.kind)
               FROM v, (SELECT 0 AS kind UNION ALL SELECT 1 UNION ALL SELECT 2) k WHERE v.value IS NOT NULL
               UNION ALL
               SELECT g.moment, g.value, g.kind,
                      (SELECT MIN(score) FROM dim_score_rollup WHERE dimension = :name AND moment = g.moment
                         AND value = g.value AND kind = g.kind AND score > g.score)
               FROM g WHERE g.score IS NOT NULL)
           SELECT g.value, g.moment, p.label, g.kind, g.score,
                  (SELECT SUM(r.n) FROM dim_score_rollup r WHERE r.dimension = :name AND r.moment = g.moment
                     AND r.value = g.value AND r.kind = g.kind AND r.score = g.score AND r.day BETWEEN p.first AND p.last)
           FROM g CROSS JOIN temp.dim_days p WHERE g.score IS NOT NULL""",
        {"name": name},
    ).fetchall()
    # Keys as the raw breakdown makes them (it splits on the separator of several groups).
    for value, moment_id, label, kind, score, n in scores:
        qid = indicators[moment_id][kind]
        if qid is not None and n:
            out[(*value.split("\x1f"), moment_id, label)]["scores"][(qid, score)] += n
    responses = q(
        f"""WITH RECURSIVE {_values("dim_response_rollup")}
           SELECT v.value, v.moment, p.label, SUM(r.n), SUM(r.uninvited)
           FROM v CROSS JOIN temp.dim_days p
           CROSS JOIN dim_response_rollup r ON r.dimension = :name AND r.moment = v.moment AND r.value = v.value
                AND r.day BETWEEN p.first AND p.last
           WHERE v.value IS NOT NULL
           GROUP BY 1, 2, 3""",
        {"name": name},
    ).fetchall()
    for value, moment_id, label, n, uninvited in responses:
        if not n:
            continue
        cell = out[(*value.split("\x1f"), moment_id, label)]
        cell["responses"] += n
        if moment_id in free and uninvited:
            cell["uninvited"] = cell.get("uninvited", 0) + uninvited
    sent = q(
        f"""WITH RECURSIVE {_values("dim_sent_rollup")}
           SELECT v.value, v.moment, p.label,
                  (SELECT SUM(s.n) FROM dim_sent_rollup s WHERE s.dimension = :name AND s.moment = v.moment
                     AND s.value = v.value AND s.hour BETWEEN p.first AND p.last)
           FROM v CROSS JOIN temp.dim_hours p WHERE v.value IS NOT NULL""",
        {"name": name},
    ).fetchall()
    for value, moment_id, label, n in sent:
        if n:
            out[(*value.split("\x1f"), moment_id, label)]["sent"] += n
    return out


def _fetch_joined(ws: Workspace, db: sqlite_utils.Database, name: str, moments: list[str]) -> dict[tuple, dict]:
    """The same counts through a join with the days and hours of each label (a label that is not one range)."""
    out: dict[tuple, dict] = defaultdict(lambda: {"scores": defaultdict(int), "responses": 0, "sent": 0})
    indicators = {m: indicator_questions(ws, m) for m in moments}
    free = {m for m in moments if ws.moments[m].responses.match != "invitation"}
    q = db.execute
    # The rollups drive the loops (CROSS JOIN fixes the order): moment, then the primary key's day range.
    span = q("SELECT MIN(day), MAX(day) FROM temp.sc_days").fetchone()
    scores = q(
        """SELECT r.value, r.moment, d.label, r.kind, r.score, SUM(r.n) FROM temp.sc_moments m
               CROSS JOIN dim_score_rollup r ON r.dimension = ? AND r.moment = m.moment AND r.day BETWEEN ? AND ?
               CROSS JOIN temp.sc_days d ON d.day = r.day WHERE r.n <> 0 GROUP BY 1, 2, 3, 4, 5""",
        [name, *span],
    ).fetchall()
    # Keys as the raw breakdown makes them (it splits on the separator of several groups).
    for value, moment_id, label, kind, score, n in scores:
        qid = indicators[moment_id][kind]
        if qid is not None:
            out[(*value.split("\x1f"), moment_id, label)]["scores"][(qid, score)] += n
    responses = q(
        """SELECT r.value, r.moment, d.label, SUM(r.n), SUM(r.uninvited) FROM temp.sc_moments m
               CROSS JOIN dim_response_rollup r ON r.dimension = ? AND r.moment = m.moment AND r.day BETWEEN ? AND ?
               CROSS JOIN temp.sc_days d ON d.day = r.day WHERE r.n <> 0 GROUP BY 1, 2, 3""",
        [name, *span],
    ).fetchall()
    for value, moment_id, label, n, uninvited in responses:
        cell = out[(*value.split("\x1f"), moment_id, label)]
        cell["responses"] += n
        if moment_id in free and uninvited:
            cell["uninvited"] = cell.get("uninvited", 0) + uninvited
    hours = q("SELECT MIN(hour), MAX(hour) FROM temp.sc_hours").fetchone()
    sent = q(
        """SELECT s.value, s.moment, h.label, SUM(s.n) FROM temp.sc_moments m
               CROSS JOIN dim_sent_rollup s ON s.dimension = ? AND s.moment = m.moment AND s.hour BETWEEN ? AND ?
               CROSS JOIN temp.sc_hours h ON h.hour = s.hour WHERE s.n <> 0 GROUP BY 1, 2, 3""",
        [name, *hours],
    ).fetchall()
    for value, moment_id, label, n in sent:
        out[(*value.split("\x1f"), moment_id, label)]["sent"] += n
    return out
