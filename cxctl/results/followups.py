"""Closing the loop: the cases to call back (detractors, dissatisfied, high effort), with their state,
owner and due date, the customer's score, the reasons they chose, their comment, the contact and the
attributes of the event that triggered the survey. The cases themselves live in cxctl.results.cases.

A follow-up is identified by its response id; `done` records the call-back and its note.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlite_utils

from cxctl.core.errors import UsageError
from cxctl.core.timeutil import local_day_range, utcnow
from cxctl.results.cases import (
    ACTIVE,
    CLOSED,
    STATES,
    SYSTEM,
    CaseHook,
    case_flags,
    change_case,
    followup_sql,
    open_cases,
    overdue,
)
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
    """What the customer chose in the moment's choice questions (the NPS+ "why"), with the labels in the
    team's language: [{question, id, label}]. `reasons` says why they are a follow-up (detractor…)."""
    status: str = "open"
    """open, contacted, unreachable, resolved or no_action."""
    owner: str | None = None
    due_at: str | None = None
    """UTC; the deadline for the first contact, in the team's working time."""
    overdue: bool = False
    opened_at: str | None = None
    first_contact_at: str | None = None
    outcome: str | None = None
    closed_at: str | None = None


@dataclass
class FollowupList:
    items: list[Followup] = field(default_factory=list)


def team_language(ws: Workspace) -> str:
    """The language the team reads labels in: followups.language, else the workspace's default language."""
    return ws.followups.language or ws.settings.default_language


def list_followups(
    ws: Workspace,
    db: sqlite_utils.Database,
    *,
    since: str | None = None,
    moment: str | None = None,
    include_done: bool = False,
    now: datetime | None = None,
    states: list[str] | None = None,
    owner: str | None = None,
    overdue_only: bool = False,
    on_open: CaseHook | None = None,
) -> FollowupList:
    """The follow-up cases: counted responses with a low NPS (≤ 6), CSAT (bottom two) or CES (≤ 3 on 1–7).

    Cases not opened yet (answers stored by an older cxctl) are opened first, with their owners and due
    dates (`on_open`: cxctl.results.alerts plans their alerts). Active cases (open, contacted, unreachable) come first, overdue ones at the top, then by due
    date; closed ones (resolved, no_action) only with `include_done` or when `states` names them.
    Forgotten people (`cxctl forget`) are left out: their answers still count, but nobody is left to call.
    """
    if moment is not None and moment not in ws.moments:
        raise UsageError(f"unknown moment {moment!r}: use one of {', '.join(ws.moments)}")
    unknown = [s for s in states or [] if s not in STATES]
    if unknown:
        raise UsageError(f"unknown state {unknown[0]!r}: use one of {', '.join(STATES)}")
    now = now or utcnow()
    open_cases(ws, db, now, on_open=on_open)
    sql, params = followup_sql(ws, [moment] if moment else list(ws.moments))
    if sql is None:
        return FollowupList()
    start, _ = local_day_range(since, None, ws.settings.timezone)
    if start:
        sql += " AND r.submitted_at >= ?"
        params.append(start)
    wanted = set(states or (STATES if include_done else ACTIVE))
    ids = [row[0] for row in db.execute(sql, params).fetchall()]
    items = [
        f
        for f in load_followups(ws, db, ids, now)
        if f.status in wanted and (owner is None or (f.owner or "") == owner) and (f.overdue or not overdue_only)
    ]
    items.sort(
        key=lambda f: (f.status in CLOSED, not f.overdue, f.due_at is None, f.due_at or "", f.submitted_at, f.id)
    )
    return FollowupList(items)


def load_followups(ws: Workspace, db: sqlite_utils.Database, ids: list[int], now: datetime) -> list[Followup]:
    """The follow-ups of these response ids, with their case, answers and event (in no particular order)."""
    language = team_language(ws)
    items = []
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start : chunk_start + 500]
        marks = ",".join("?" * len(chunk))
        rows = db.execute(
            f"""SELECT r.id, r.submitted_at, r.moment, c.external_id, c.first_name, c.last_name, c.email,
                                  c.segment, c.company, c.role, e.type, e.occurred_at, e.attributes, f.status, f.note,
                                  f.owner, f.due_at, f.opened_at, f.first_contact_at, f.outcome, f.done_at
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
            case_owner,
            due_at,
            opened_at,
            first_contact,
            outcome,
            done_at,
        ) in rows:
            status = "resolved" if fstatus == "done" else (fstatus or "open")
            flags = case_flags(ws, m) if m in ws.moments else {}
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
                        {"question": qid, "id": choice, "label": choice_label(ws, qid, choice, language)}
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
                    status in CLOSED,
                    note,
                    chosen,
                    status,
                    case_owner,
                    due_at,
                    overdue(due_at, status, now),
                    opened_at,
                    first_contact,
                    outcome,
                    done_at,
                )
            )
    return items


def mark_done(
    ws: Workspace, db: sqlite_utils.Database, response_id: int, note: str | None, now: datetime, by: str = SYSTEM
) -> dict:
    """`followups done ID --note`, as before cases: resolve the case with the note as its outcome (a second
    call replaces it). Returns what was recorded."""
    change = change_case(ws, db, response_id, "resolve", now, by, note=note, outcome=note)
    return {"id": response_id, "status": "done", "note": note, "done_at": change.at, "replaced": change.replaced}


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
    """The follow-up conditions of `followup_sql`, read from the response row's score columns where they
    hold the very answer (one question of the type in the moment), so that a report on millions of
    responses walks the covering index instead of joining every answer; the answers elsewhere."""
    conditions, params = [], []
    for m in moments:
        flags = case_flags(ws, m)
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
                AND NOT EXISTS (SELECT 1 FROM followups f WHERE f.response_id = r.id
                                AND f.status IN ('done', 'resolved', 'no_action'))"""
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
