"""Follow-up cases: every answer someone should call back (a detractor, a dissatisfied or high-effort
customer) opens a case with an owner and a due date (cxctl.results.deadlines), which then moves
open → contacted → resolved, or to unreachable or no_action. Each change is recorded in
followup_history with who made it and when.

A case is identified by the id of the response that opened it, as follow-ups always were, so
`cxctl followups done 42` keeps working: it resolves case 42 with its note as the outcome.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import sqlite_utils

from cxctl.core.errors import UsageError
from cxctl.core.timeutil import from_db, to_db
from cxctl.results.deadlines import CaseFacts, add_working_time, assign, calendar_zone
from cxctl.workspace.loader import Workspace

ACTIVE = ("open", "contacted", "unreachable")
CLOSED = ("resolved", "no_action")
STATES = ACTIVE + CLOSED
# action → (states it may start from, the state it leads to; None keeps the state)
MOVES: dict[str, tuple[tuple[str, ...], str | None]] = {
    "assign": (ACTIVE, None),
    "contact": (ACTIVE, "contacted"),
    "unreachable": (ACTIVE, "unreachable"),
    "resolve": (ACTIVE + ("resolved",), "resolved"),  # resolving again replaces the outcome (`done` did so)
    "no_action": (ACTIVE + ("no_action",), "no_action"),
    "note": (STATES, None),
}
SYSTEM = "cxctl"  # `by` of the changes cxctl makes itself (opening a case)
# Hook run inside the transaction that opens cases or changes an owner: cxctl.results.alerts plans the
# alerts there, so a case and its alerts are committed together or not at all.
CaseHook = Callable[[sqlite_utils.Database, list[tuple[int, str | None]], str, datetime], None]


def case_flags(ws: Workspace, moment: str) -> dict[str, tuple[str, float]]:
    """question id → (category, threshold): an answer at or below the threshold needs a call-back."""
    out = {}
    for qid in ws.moments[moment].questions:
        q = ws.questions[qid]
        if q.type == "nps":
            out[qid] = ("detractor", 6.0)
        elif q.type == "csat" and q.min is not None:
            out[qid] = ("dissatisfied", q.min + 1.0)
        elif q.type == "ces" and q.min is not None:
            out[qid] = ("high_effort", q.min + 2.0)
    return out


def followup_sql(ws: Workspace, moments: list[str]) -> tuple[str | None, list]:
    """The query of the ids of responses that need a call-back (one definition, for the list, the cases
    and the changes); None when no moment asks a scored question."""
    conditions, params = [], []
    for m in moments:
        for qid, (_, threshold) in case_flags(ws, m).items():
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


@contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[None]:
    """One write transaction, or the caller's when one is open already."""
    if db.conn.in_transaction:
        yield
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _rules_need(ws: Workspace) -> tuple[bool, bool]:
    """Whether some owner rule tests the contact (its columns or attributes), and whether one tests the event:
    only then are they part of what makes two cases alike."""
    contact = event = False
    for rule in ws.followups.owners:
        when = rule.when
        contact = (
            contact
            or bool(when.contact)
            or any(getattr(when, key) is not None for key in ("segment", "country", "language", "company", "role"))
        )
        event = event or bool(when.event)
    return contact, event


def _facts_of(moment: str, categories: list[str], facts: str) -> CaseFacts:
    """The CaseFacts of a group of alike cases, from the moment, the categories and the facts text of
    `open_cases` (empty when no rule tests the contact or the event)."""
    contact: dict = {}
    attributes: dict = {}
    event: dict | None = None
    if facts:
        segment, country, language, company, role, cattrs, eattrs, has_event, tested = json.loads(facts)
        if tested & 1:
            contact = {"segment": segment, "country": country, "language": language, "company": company, "role": role}
            attributes = json.loads(cattrs or "{}")
        if tested & 2:
            event = json.loads(eattrs or "{}") if has_event else None
    return CaseFacts(moment, categories, contact, attributes, event)


def open_cases(
    ws: Workspace,
    db: sqlite_utils.Database,
    now: datetime,
    *,
    response_ids: list[int] | None = None,
    on_open: CaseHook | None = None,
    everything: bool = False,
) -> list[int]:
    """Open a case for every response that needs a call-back and has none yet (of `response_ids`, or all);
    return the ids opened, in id order. Owner and due date come from the `followups:` rules; `on_open`
    receives [(id, owner)] inside the same transaction.

    Without `response_ids` only the responses not checked yet are read (issue 18: a daily import of 1,000
    rows must not read a store of millions): those above the highest id the last check saw, and those an
    import changed since (`case_pending`, filled by `settle`). Nothing else can start to need a call-back, as
    no other write raises a status or lowers a score. The whole store is read when the thresholds changed
    since (a question became csat…), when the store was never checked, or with `everything`.

    Set-based (an import opens a case for every detractor: 127,344 at 200,000 rows): SQL gathers the cases
    with their categories and the facts the rules test; the rules run once per group of alike cases
    (same moment, categories and tested facts), the due date once per deadline; SQL writes the rows."""
    flags = [
        (m, qid, category, threshold) for m in ws.moments for qid, (category, threshold) in case_flags(ws, m).items()
    ]
    if response_ids is None:
        return _open_unchecked(ws, db, now, flags, on_open, everything)
    if not flags:
        return []
    return _open(
        ws,
        db,
        now,
        flags,
        on_open,
        [
            (
                "responses r JOIN answers a ON a.response_id = r.id",
                " AND r.id IN (SELECT value FROM json_each(?))",
                [json.dumps(response_ids)],
            )
        ],
    )


def _open_unchecked(
    ws: Workspace,
    db: sqlite_utils.Database,
    now: datetime,
    flags: list[tuple[str, str, str, float]],
    on_open: CaseHook | None,
    everything: bool,
) -> list[int]:
    """`open_cases` of the responses not checked yet (all when the thresholds changed), then record the check:
    in the same transaction, so a crash leaves the mark where the cases are."""
    signature = json.dumps(sorted(flags))
    with transaction(db):
        mark = db.execute("SELECT flags, through FROM case_scan WHERE id = 1").fetchone()
        top = db.execute("SELECT COALESCE(MAX(id), 0) FROM responses").fetchone()[0]
        opened: list[int] = []
        if flags:
            # All cases: the answers first, read in key order, come grouped by response (no sort for the GROUP BY).
            scan = "answers a CROSS JOIN responses r ON r.id = a.response_id"
            if everything or mark is None or mark[0] != signature:
                parts: list[tuple[str, str, list]] = [(scan, "", [])]
            else:
                parts = [
                    (scan, " AND a.response_id > ?", [mark[1]]),
                    (
                        "case_pending p CROSS JOIN responses r ON r.id = p.response_id JOIN answers a ON a.response_id = r.id",
                        " AND r.id <= ?",
                        [mark[1]],
                    ),
                ]
            opened = _open(ws, db, now, flags, on_open, parts)
        db.execute(
            "INSERT INTO case_scan (id, flags, through) VALUES (1, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET flags = excluded.flags, through = excluded.through",
            [signature, top],
        )
        db.execute("DELETE FROM case_pending")
    return opened


def _open(
    ws: Workspace,
    db: sqlite_utils.Database,
    now: datetime,
    flags: list[tuple[str, str, str, float]],
    on_open: CaseHook | None,
    parts: list[tuple[str, str, list]],
) -> list[int]:
    """Open the cases of the responses `parts` find: (tables, extra condition, its parameters), each read
    into the same set of cases."""
    names = sorted({category for _, _, category, _ in flags})
    contact, event = _rules_need(ws)
    facts, joins = "''", ""
    if contact or event:
        # Only what a rule tests tells cases apart, so alike cases share one evaluation of the rules.
        facts = (
            "json_array(c.segment, c.country, c.language, c.company, c.role, c.attributes, e.attributes,"
            f" e.id IS NOT NULL, {int(contact) | 2 * int(event)})"
        )
        joins = " LEFT JOIN invitations i ON i.id = r.invitation_id LEFT JOIN events e ON e.id = i.event_id"
    stamp = to_db(now)
    tz = calendar_zone(ws)
    q = db.execute
    with transaction(db):
        q(
            "CREATE TEMP TABLE IF NOT EXISTS case_flag (moment TEXT, question TEXT, bit INTEGER, threshold REAL, PRIMARY KEY (moment, question))"
        )
        q("DELETE FROM temp.case_flag")
        db.conn.executemany(
            "INSERT INTO temp.case_flag VALUES (?, ?, ?, ?)",
            [(m, qid, 1 << names.index(category), threshold) for m, qid, category, threshold in flags],
        )
        q(
            "CREATE TEMP TABLE IF NOT EXISTS case_open (response_id INTEGER PRIMARY KEY, moment TEXT, mask INTEGER, facts TEXT)"
        )
        q("DELETE FROM temp.case_open")
        # The categories as a bit mask: the sum of the distinct bits of the answers at or below their threshold.
        # A forgotten person's answers stay in the scores, anonymous; there is nobody left to call back (as followup_sql).
        for tables, wanted, params in parts:
            q(
                f"""INSERT OR IGNORE INTO temp.case_open (response_id, moment, mask, facts)
                    SELECT r.id, r.moment, SUM(DISTINCT f.bit), {facts}
                    FROM {tables}
                    JOIN temp.case_flag f ON f.moment = r.moment AND f.question = a.question AND a.value_num <= f.threshold
                    LEFT JOIN contacts c ON c.id = r.contact_id{joins}
                    WHERE r.status = 'counted' AND (c.id IS NULL OR c.forgotten_at IS NULL)
                      AND NOT EXISTS (SELECT 1 FROM followups x WHERE x.response_id = r.id){wanted}
                    GROUP BY r.id""",
                params,
            )
        q(
            "CREATE TEMP TABLE IF NOT EXISTS case_assign (moment TEXT, mask INTEGER, facts TEXT, categories TEXT,"
            " owner TEXT, owner_rule TEXT, due_at TEXT, PRIMARY KEY (moment, mask, facts))"
        )
        q("DELETE FROM temp.case_assign")
        due_by_deadline: dict = {}
        groups = []
        for moment, mask, facts_text in q("SELECT DISTINCT moment, mask, facts FROM temp.case_open").fetchall():
            categories = [name for i, name in enumerate(names) if mask & (1 << i)]
            chosen = assign(ws, _facts_of(moment, categories, facts_text))
            if chosen.deadline not in due_by_deadline:
                due_by_deadline[chosen.deadline] = (
                    to_db(add_working_time(now, chosen.deadline, ws.followups.calendar, tz))
                    if chosen.deadline is not None
                    else None
                )
            groups.append(
                (
                    moment,
                    mask,
                    facts_text,
                    json.dumps(categories),
                    chosen.owner,
                    chosen.rule,
                    due_by_deadline[chosen.deadline],
                )
            )
        db.conn.executemany("INSERT INTO temp.case_assign VALUES (?, ?, ?, ?, ?, ?, ?)", groups)
        joined = "FROM temp.case_open o JOIN temp.case_assign g ON g.moment = o.moment AND g.mask = o.mask AND g.facts = o.facts"
        q(
            f"""INSERT INTO followups (response_id, status, categories, owner, owner_rule, due_at, opened_at, updated_at, updated_by)
                SELECT o.response_id, 'open', g.categories, g.owner, g.owner_rule, g.due_at, ?, ?, '{SYSTEM}'
                {joined} ORDER BY o.response_id""",
            [stamp, stamp],
        )
        q(
            f"""INSERT INTO followup_history (response_id, at, by, action, to_status, owner, due_at, note)
                SELECT o.response_id, ?, '{SYSTEM}', 'opened', 'open', g.owner, g.due_at, 'owner from ' || g.owner_rule
                {joined} ORDER BY o.response_id""",
            [stamp],
        )
        opened: list[tuple[int, str | None]] = q(
            f"SELECT o.response_id, g.owner {joined} ORDER BY o.response_id"
        ).fetchall()
        if opened and on_open is not None:
            on_open(db, opened, "opened", now)
    return [rid for rid, _ in opened]


@dataclass
class CaseChange:
    """What one `followups assign|contact|resolve|done` did."""

    id: int
    action: str
    status: str
    previous_status: str
    owner: str | None
    due_at: str | None
    note: str | None
    outcome: str | None
    at: str
    by: str
    replaced: bool = False  # a resolved case resolved again: its outcome was replaced


def change_case(
    ws: Workspace,
    db: sqlite_utils.Database,
    case_id: int,
    action: str,
    now: datetime,
    by: str,
    *,
    note: str | None = None,
    owner: str | None = None,
    outcome: str | None = None,
    on_assign: CaseHook | None = None,
) -> CaseChange:
    """Apply one action to case `case_id` and record it; raise UsageError for an ID that is not a follow-up
    or a move its state does not allow (the message says which moves it does)."""
    if action not in MOVES:
        raise UsageError(f"unknown action {action!r}: use one of {', '.join(MOVES)}")
    _check_is_followup(ws, db, case_id)
    open_cases(ws, db, now, response_ids=[case_id])
    allowed, target = MOVES[action]
    stamp = to_db(now)
    with transaction(db):
        row = db.execute(
            "SELECT status, owner, due_at, first_contact_at, outcome FROM followups WHERE response_id = ?", [case_id]
        ).fetchone()
        status = "resolved" if row[0] == "done" else row[0]  # a row written by an older cxctl
        if status not in allowed:
            possible = [a for a, (starts, _) in MOVES.items() if status in starts]
            raise UsageError(
                f"case {case_id} is {status}: it cannot be {_past(action)}; what it can still take: "
                f"{', '.join(possible) or 'nothing'} (see `cxctl followups show {case_id}`)"
            )
        new_status = target or status
        new_owner = owner if action == "assign" else row[1]
        first_contact = row[3] or (stamp if new_status in ("contacted", "resolved") else None)
        new_outcome = outcome if action in ("resolve", "no_action") else row[4]
        db.execute(
            """UPDATE followups SET status = ?, owner = ?, owner_rule = CASE WHEN ? THEN 'assigned' ELSE owner_rule END,
                          first_contact_at = ?, outcome = ?, note = COALESCE(?, note),
                          done_at = CASE WHEN ? IN ('resolved', 'no_action') THEN ? ELSE NULL END,
                          updated_at = ?, updated_by = ? WHERE response_id = ?""",
            [
                new_status,
                new_owner,
                action == "assign",
                first_contact,
                new_outcome,
                note,
                new_status,
                stamp,
                stamp,
                by,
                case_id,
            ],
        )
        db.execute(
            "INSERT INTO followup_history (response_id, at, by, action, from_status, to_status, owner, due_at, note)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [case_id, stamp, by, action, status, new_status, new_owner, row[2], note or new_outcome],
        )
        if action == "assign" and on_assign is not None and new_owner != row[1]:
            on_assign(db, [(case_id, new_owner)], "assigned", now)
    return CaseChange(
        case_id,
        action,
        new_status,
        status,
        new_owner,
        row[2],
        note,
        new_outcome,
        stamp,
        by,
        replaced=status == new_status == "resolved" and action == "resolve",
    )


def _past(action: str) -> str:
    return {
        "assign": "assigned",
        "contact": "marked contacted",
        "unreachable": "marked unreachable",
        "resolve": "resolved",
        "no_action": "closed with no action",
        "note": "noted",
    }[action]


def _check_is_followup(ws: Workspace, db: sqlite_utils.Database, response_id: int) -> None:
    """Only a response `cxctl followups` lists (or listed) is a case, so a mistyped ID cannot file a
    call-back against a promoter."""
    if db.execute("SELECT 1 FROM followups WHERE response_id = ?", [response_id]).fetchone():
        return
    moment = db.execute("SELECT moment FROM responses WHERE id = ?", [response_id]).fetchone()
    if moment is None:
        raise UsageError(f"no response {response_id}: take the ID from `cxctl followups`")
    sql, params = followup_sql(ws, [moment[0]] if moment[0] in ws.moments else [])
    if sql is None or db.execute(sql + " AND r.id = ?", [*params, response_id]).fetchone() is None:
        raise UsageError(
            f"response {response_id} is not a follow-up (no detractor, dissatisfied or high-effort "
            f"answer, or the person was forgotten): take the ID from `cxctl followups`"
        )


@dataclass
class HistoryEntry:
    at: str
    by: str | None
    action: str
    from_status: str | None
    to_status: str | None
    owner: str | None
    due_at: str | None
    note: str | None


def case_history(db: sqlite_utils.Database, case_id: int) -> list[HistoryEntry]:
    """Every recorded change of a case, oldest first."""
    return [
        HistoryEntry(*row)
        for row in db.execute(
            "SELECT at, by, action, from_status, to_status, owner, due_at, note FROM followup_history"
            " WHERE response_id = ? ORDER BY id",
            [case_id],
        ).fetchall()
    ]


def overdue(due_at: str | None, status: str, now: datetime) -> bool:
    """Past its due date and nobody reached the customer yet (an unreachable customer is still owed a call)."""
    due = from_db(due_at)
    return due is not None and status in ("open", "unreachable") and due < now
