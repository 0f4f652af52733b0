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


def fetch_by_dimension(ws: Workspace, db: sqlite_utils.Database, name: str, moments: list[str]) -> dict[tuple, dict]:
    """Counts per (value, moment, label) from the rollups of dimension `name`, over the period of the
    scorecard's temporary tables (sc_days, sc_hours, sc_moments): scores, responses, sent, and the counted
    responses without invitation of the moments that take them (responses.match contact/none)."""
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
