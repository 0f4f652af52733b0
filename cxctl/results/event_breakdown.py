"""Scorecards broken down by an attribute of the event behind each answer (the claim's nature, the
order's carrier): for transactional moments, the breakdown teams want.

Split from the scorecard for size, beside contact_breakdown: the scorecard decides what to count, this
module says which dimensions are event attributes and counts the answers and invitations per value."""

from __future__ import annotations

from collections import defaultdict

import sqlite_utils

from cxctl.results.contact_breakdown import indicator_questions
from cxctl.workspace.loader import Workspace

EVENT_PREFIX = "event."


def json_path(name: str) -> str:
    return '$."' + name.replace('"', '""') + '"'


def event_dimensions(db: sqlite_utils.Database, groups: list[str], builtin: tuple[str, ...]) -> set[str]:
    """The dimensions read from the attributes of the event behind each response (the claim's `nature`, the
    order's `canal`): `event.X`, or a bare name (not one of `builtin`) that no contact has and some event has."""
    out = set()
    for g in groups:
        if g in builtin:
            continue
        if g.startswith(EVENT_PREFIX):
            out.add(g)
            continue
        on_contacts = db.execute(
            "SELECT EXISTS (SELECT 1 FROM contacts WHERE json_extract(attributes, ?) IS NOT NULL)", [json_path(g)]
        ).fetchone()[0]
        if (
            not on_contacts
            and db.execute(
                "SELECT EXISTS (SELECT 1 FROM events WHERE json_extract(attributes, ?) IS NOT NULL)", [json_path(g)]
            ).fetchone()[0]
        ):
            out.add(g)
    return out


def event_key(g: str) -> str:
    return g[len(EVENT_PREFIX) :] if g.startswith(EVENT_PREFIX) else g


def fetch_by_event(
    ws: Workspace, db: sqlite_utils.Database, exprs: list[str], params: list, moments: list[str]
) -> dict[tuple, dict]:
    """Breakdown by an attribute of the event behind each answer (the claim's nature): each counted response
    is joined to its invitation's event, each sent invitation to its event. A plain join over the period
    (temp.sc_days, temp.sc_hours): slower than the rollups, as fast as the data is small."""
    group = "CAST(" + " || char(31) || ".join(exprs) + " AS TEXT)"
    out: dict[tuple, dict] = defaultdict(lambda: {"scores": defaultdict(int), "responses": 0, "sent": 0})
    indicators = {m: indicator_questions(ws, m) for m in moments}
    rows = db.execute(
        f"""SELECT {group}, r.moment, d.label, r.score_nps, r.score_csat, r.score_ces, COUNT(*)
                          FROM responses r JOIN temp.sc_days d ON d.day = r.day
                          LEFT JOIN contacts c ON c.id = r.contact_id
                          LEFT JOIN invitations i ON i.id = r.invitation_id LEFT JOIN events e ON e.id = i.event_id
                          WHERE r.status = 'counted' AND r.moment IN (SELECT moment FROM temp.sc_moments)
                          GROUP BY 1, 2, 3, 4, 5, 6""",
        params,
    ).fetchall()
    for value, moment_id, label, nps, csat, ces, n in rows:
        cell = out[tuple(str(value).split("\x1f")) + (moment_id, label)]
        cell["responses"] += n
        for qid, score in zip(indicators[moment_id], (nps, csat, ces), strict=True):
            if qid is not None and score is not None:
                cell["scores"][(qid, score)] += n
    sent = db.execute(
        f"""SELECT {group}, i.moment, h.label, COUNT(*) FROM invitations i
                          JOIN temp.sc_hours h ON h.hour = substr(COALESCE(i.sent_at, i.send_at), 1, 13)
                          LEFT JOIN contacts c ON c.id = i.contact_id LEFT JOIN events e ON e.id = i.event_id
                          WHERE i.status = 'sent' AND i.kind = 'invitation' AND i.moment IN (SELECT moment FROM temp.sc_moments)
                          GROUP BY 1, 2, 3""",
        params,
    ).fetchall()
    for value, moment_id, label, n in sent:
        out[tuple(str(value).split("\x1f")) + (moment_id, label)]["sent"] += n
    return out
