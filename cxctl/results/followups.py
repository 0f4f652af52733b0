"""Closing the loop: the answers someone should call back (detractors, dissatisfied, high effort),
with the comment, the contact, the moment and the attributes of the event that triggered the survey.

A follow-up is identified by its response id; `done` records the call-back and its note.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlite_utils

from cxctl.core.errors import UsageError
from cxctl.core.timeutil import local_day_range, to_db
from cxctl.results.verbatims import CHOICE_TYPES, choice_label, chosen_ids
from cxctl.workspace.loader import Workspace


@dataclass
class Followup:
    id: int
    submitted_at: str
    moment: str
    reasons: list[str]
    scores: dict[str, float]
    comment: str
    contact: dict[str, str | None]
    event: dict | None
    done: bool = False
    note: str | None = None
    chosen_reasons: list[dict[str, str]] = field(default_factory=list)
    """What the customer chose in the moment's choice questions (the NPS+ "why"), with the labels:
    [{question, id, label}]. `reasons` says why they are a follow-up (detractor, dissatisfied…)."""


@dataclass
class FollowupList:
    items: list[Followup] = field(default_factory=list)


def _flags(ws: Workspace, moment: str) -> dict[str, tuple[str, float]]:
    """question id → (reason, threshold): at or below the threshold needs a call-back."""
    out: dict[str, tuple[str, float]] = {}
    for qid in ws.moments[moment].questions:
        q = ws.questions[qid]
        if q.type == "nps":
            out[qid] = ("detractor", 6)
        elif q.type == "csat":
            assert q.min is not None, "Question._scale gives CSAT its default min"
            out[qid] = ("dissatisfied", q.min + 1)
        elif q.type == "ces":
            assert q.min is not None, "Question._scale gives CES its default min"
            out[qid] = ("high_effort", q.min + 2)
    return out


def _followup_sql(ws: Workspace, moments: list[str]) -> tuple[str | None, list]:
    """The query of the ids of responses that need a call-back (one definition, for the list and for
    `done`); None when no moment asks a scored question."""
    conditions, params = [], []
    for m in moments:
        for qid, (_, threshold) in _flags(ws, m).items():
            conditions.append("(r.moment = ? AND a.question = ? AND a.value_num <= ?)")
            params += [m, qid, threshold]
    if not conditions:
        return None, []
    # A forgotten person's answers stay in the scores, anonymous; there is nobody left to call back.
    return (
        f"""SELECT DISTINCT r.id FROM responses r JOIN answers a ON a.response_id = r.id
                WHERE r.status = 'counted' AND ({" OR ".join(conditions)})
                  AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.id = r.contact_id AND c.forgotten_at IS NOT NULL)""",
        params,
    )


def list_followups(
    ws: Workspace,
    db: sqlite_utils.Database,
    *,
    since: str | None = None,
    moment: str | None = None,
    include_done: bool = False,
) -> FollowupList:
    """Counted responses with a low NPS (≤ 6), CSAT (bottom two) or CES (≤ 3 on 1–7), oldest first.

    Forgotten people (`cxctl forget`) are left out: their answers still count, but nobody is left to call.
    """
    if moment is not None and moment not in ws.moments:
        raise UsageError(f"unknown moment {moment!r}: use one of {', '.join(ws.moments)}")
    sql, params = _followup_sql(ws, [moment] if moment else list(ws.moments))
    if sql is None:
        return FollowupList()
    start, _ = local_day_range(since, None, ws.settings.timezone)
    if start:
        sql += " AND r.submitted_at >= ?"
        params.append(start)
    ids = [row[0] for row in db.execute(sql, params).fetchall()]
    if not include_done and ids:
        done = {row[0] for row in db.execute("SELECT response_id FROM followups WHERE status = 'done'").fetchall()}
        ids = [i for i in ids if i not in done]
    items = []
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start : chunk_start + 500]
        marks = ",".join("?" * len(chunk))
        rows = db.execute(
            f"""SELECT r.id, r.submitted_at, r.moment, c.external_id, c.first_name, c.last_name, c.email,
                                  c.segment, c.company, c.role, e.type, e.occurred_at, e.attributes, f.status, f.note
                              FROM responses r LEFT JOIN contacts c ON c.id = r.contact_id
                              LEFT JOIN invitations i ON i.id = r.invitation_id LEFT JOIN events e ON e.id = i.event_id
                              LEFT JOIN followups f ON f.response_id = r.id WHERE r.id IN ({marks})""",
            chunk,
        ).fetchall()
        answers: dict[int, list] = {}
        for rid, qid, num, text in db.execute(
            f"SELECT response_id, question, value_num, value_text FROM answers WHERE response_id IN ({marks})", chunk
        ).fetchall():
            answers.setdefault(rid, []).append((qid, num, text))
        for (
            rid,
            submitted,
            m,
            ext,
            first,
            last,
            email,
            segment,
            company,
            role,
            etype,
            eat,
            eattrs,
            fstatus,
            note,
        ) in rows:
            flags = _flags(ws, m)
            reasons, scores, comments, chosen = [], {}, [], []
            for qid, num, text in answers.get(rid, []):
                if num is not None:
                    scores[qid] = num
                    if qid in flags and num <= flags[qid][1]:
                        reasons.append(flags[qid][0])
                elif text and ws.questions.get(qid) and ws.questions[qid].type == "open":
                    comments.append(text)
                elif text and ws.questions.get(qid) and ws.questions[qid].type in CHOICE_TYPES:
                    chosen += [
                        {"question": qid, "id": choice, "label": choice_label(ws, qid, choice)}
                        for choice in chosen_ids(text)
                    ]
            event = (
                None if etype is None else {"type": etype, "occurred_at": eat, "attributes": json.loads(eattrs or "{}")}
            )
            items.append(
                Followup(
                    rid,
                    submitted,
                    m,
                    sorted(set(reasons)),
                    scores,
                    " / ".join(comments),
                    {
                        "external_id": ext,
                        "first_name": first,
                        "last_name": last,
                        "email": email,
                        "segment": segment,
                        "company": company,
                        "role": role,
                    },
                    event,
                    fstatus == "done",
                    note,
                    chosen,
                )
            )
    items.sort(key=lambda f: (f.submitted_at, f.id))
    return FollowupList(items)


def mark_done(ws: Workspace, db: sqlite_utils.Database, response_id: int, note: str | None, now: datetime) -> dict:
    """Record that follow-up `response_id` was done; a second call replaces the note. Only a response
    `cxctl followups` lists (or listed: done ones stay follow-ups) is accepted, so a mistyped ID
    cannot file a call-back against a promoter. Returns what was recorded."""
    moment = db.execute("SELECT moment FROM responses WHERE id = ?", [response_id]).fetchone()
    if moment is None:
        raise UsageError(f"no response {response_id}: take the ID from `cxctl followups`")
    sql, params = _followup_sql(ws, [moment[0]] if moment[0] in ws.moments else [])
    if sql is None or db.execute(sql + " AND r.id = ?", [*params, response_id]).fetchone() is None:
        raise UsageError(
            f"response {response_id} is not a follow-up (no detractor, dissatisfied or high-effort "
            f"answer, or the person was forgotten): take the ID from `cxctl followups`"
        )
    replaced = db.execute("SELECT 1 FROM followups WHERE response_id = ?", [response_id]).fetchone() is not None
    done_at = to_db(now)
    db.execute(
        """INSERT INTO followups (response_id, status, note, done_at) VALUES (?, 'done', ?, ?)
                  ON CONFLICT (response_id) DO UPDATE SET status = 'done', note = excluded.note, done_at = excluded.done_at""",
        [response_id, note, done_at],
    )
    return {"id": response_id, "status": "done", "note": note, "done_at": done_at, "replaced": replaced}


AGE_BUCKETS = ((0, 2, "0-2"), (3, 7, "3-7"), (8, 30, "8-30"), (31, None, "31+"))


@dataclass
class OpenFollowup:
    id: int
    moment: str
    submitted_at: str
    age_days: int


@dataclass
class FollowupAges:
    """Open follow-ups of a period: how many per moment and age bucket (days), and the oldest ones."""

    total: int
    by_moment: dict[str, dict[str, int]] = field(default_factory=dict)
    oldest: list[OpenFollowup] = field(default_factory=list)


SCORE_COLUMNS = {"nps": "r.score_nps", "csat": "r.score_csat", "ces": "r.score_ces"}


def _ages_conditions(ws: Workspace, moments: list[str]) -> tuple[list[str], list]:
    """The follow-up conditions of `_followup_sql`, read from the response row's score columns where they
    hold the very answer (one question of the type in the moment), so that a report on millions of
    responses walks the covering index instead of joining every answer; the answers elsewhere."""
    conditions, params = [], []
    for m in moments:
        flags = _flags(ws, m)
        types = [ws.questions[qid].type for qid in flags]
        for qid, (_, threshold) in flags.items():
            if types.count(ws.questions[qid].type) == 1:
                conditions.append(f"(r.moment = ? AND {SCORE_COLUMNS[ws.questions[qid].type]} <= ?)")
                params += [m, threshold]
            else:
                conditions.append(
                    "(r.moment = ? AND EXISTS (SELECT 1 FROM answers a WHERE a.response_id = r.id "
                    "AND a.question = ? AND a.value_num <= ?))"
                )
                params += [m, qid, threshold]
    return conditions, params


def open_followup_ages(
    ws: Workspace,
    db: sqlite_utils.Database,
    now: datetime,
    since: str,
    until: str,
    moments: list[str],
    oldest: int = 15,
) -> FollowupAges:
    """The follow-ups not done yet among the responses of local days `since`..`until` (the same
    definition as `cxctl followups`), counted by age in calendar days at `now`, without names: the
    report that shows them is shared beyond the people who call back."""
    conditions, params = _ages_conditions(ws, moments)
    result = FollowupAges(0, {m: {label: 0 for *_, label in AGE_BUCKETS} for m in moments})
    if not conditions:
        return result
    marks = ",".join("?" * len(moments))
    # Everything read from the covering index of responses (status, moment, day, scores, contact): the age
    # counts in local calendar days, and the few forgotten people are one list looked up, not a join.
    where = f"""FROM responses r WHERE r.status = 'counted' AND r.moment IN ({marks}) AND r.day BETWEEN ? AND ?
                AND ({" OR ".join(conditions)})
                AND COALESCE(r.contact_id, 0) NOT IN (SELECT id FROM contacts WHERE forgotten_at IS NOT NULL)
                AND NOT EXISTS (SELECT 1 FROM followups f WHERE f.response_id = r.id AND f.status = 'done')"""
    bound = [*moments, since, until, *params]
    age = "MAX(0, CAST(julianday(?) - julianday(r.day) AS INTEGER))"
    today = now.astimezone(ZoneInfo(ws.settings.timezone)).date().isoformat()
    for moment, days, n in db.execute(
        f"SELECT r.moment, {age}, COUNT(*) {where} GROUP BY 1, 2", [today, *bound]
    ).fetchall():
        label = next(name for low, high, name in AGE_BUCKETS if days >= low and (high is None or days <= high))
        result.by_moment[moment][label] += n
        result.total += n
    result.oldest = [
        OpenFollowup(*row)
        for row in db.execute(
            f"SELECT r.id, r.moment, r.submitted_at, {age} {where} ORDER BY r.day, r.id LIMIT ?",
            [today, *bound, oldest],
        ).fetchall()
    ]
    return result
