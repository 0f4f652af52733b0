"""What a plan is made of — planned invitations, exclusions, the plan itself — and how it is recorded.

Shared by the engine, reminders, the exclusion listing and `plan --explain`, so that none of them
reaches into another's private names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from cxctl.core.errors import UsageError
from cxctl.core.timeutil import to_db
from cxctl.planning.rules import given_up_sql
from cxctl.workspace.model import Moment, SendWindow

# A reminder that could not go out within this long after it was due is dropped (never sent late).
REMINDER_GRACE = timedelta(days=7)


@dataclass(slots=True)
class PlannedInvitation:
    """One invitation or reminder the engine would create (send_at is an aware UTC datetime)."""

    contact_id: int
    moment: str
    kind: str  # "invitation" | "reminder"
    event_id: int | None
    wave: str | None
    parent_id: int | None
    send_at: datetime
    language: str
    email: str
    dedupe_key: str
    channel: str = "email"  # the first of the moment's channels the person can receive (cxctl.planning.channels)
    phone: str | None = None  # the number an SMS goes to (E.164)


@dataclass(slots=True)
class Exclusion:
    """A candidate not invited in this run, with the first rule that stopped it and the data behind it."""

    contact_id: int
    moment: str
    reason: str
    detail: str
    event_id: int | None
    wave: str | None
    kind: str = "invitation"


@dataclass
class Plan:
    """What one run decides. `counts` is exclusions by reason; `by_moment` is moment -> reason -> count."""

    now: datetime
    planned: list[PlannedInvitation]
    exclusions: list[Exclusion]
    counts: dict[str, int]
    by_moment: dict[str, dict[str, int]] = field(default_factory=dict)
    waves: dict[str, str] = field(default_factory=dict)


def check_moment(ws: Any, moment: str | None) -> None:
    """Refuse a --moment the workspace does not define, naming the ones it does."""
    if moment is not None and moment not in ws.moments:
        known = ", ".join(sorted(ws.moments)) or "none"
        raise UsageError(f"unknown moment {moment!r}: the workspace defines {known}; pass one of them to --moment")


def record_plan(db: sqlite_utils.Database, ws, plan: Plan, now: datetime) -> int:
    """Insert the planned rows as `planned` invitations with fresh signed tokens; return how many were new.

    Reminders point to their parent invitation. The dedupe key makes a second run (or an overlapping
    one) a no-op for rows already recorded — except a given-up, never-delivered invitation, which the
    plan planned again (cxctl.planning.rules.given_up_sql): that row is reopened, with its token and a
    fresh retry clock, and counts as new.
    """
    from cxctl.core.tokens import new_token

    if not plan.planned:
        return 0
    secret = ws.secret()
    stamp = to_db(now)
    rows = [
        (
            p.dedupe_key,
            new_token(secret),
            p.contact_id,
            p.moment,
            p.event_id,
            p.wave,
            p.kind,
            p.parent_id,
            p.language,
            p.email,
            p.channel,
            p.phone,
            to_db(p.send_at),
            stamp,
            stamp,
        )
        for p in plan.planned
    ]
    conn = db.conn
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN IMMEDIATE")
    try:
        before = conn.total_changes
        conn.executemany(
            "INSERT INTO invitations (dedupe_key, token, contact_id, moment, event_id, wave, kind, parent_id,"
            " language, email, channel, phone, send_at, status, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'planned', ?, ?)"
            " ON CONFLICT (dedupe_key) DO UPDATE SET status = 'planned', attempts = 0, first_tried_at = NULL,"
            " send_at = excluded.send_at, email = excluded.email, language = excluded.language,"
            " channel = excluded.channel, phone = excluded.phone,"
            " reopened = reopened + 1, updated_at = excluded.updated_at,"
            " last_error = 'planned again (never delivered) after: ' || COALESCE(last_error, '?')"
            f" WHERE {given_up_sql('invitations')}",
            rows,
        )
        inserted = conn.total_changes - before
        if own:
            conn.execute("COMMIT")
    except BaseException:
        if own:
            conn.execute("ROLLBACK")
        raise
    return inserted


def sql_modifier(delta: timedelta) -> str:
    """A datetime() modifier for SQLite."""
    return f"{int(delta.total_seconds()):+d} seconds"


def send_window_for(ws: Any, m: Moment) -> SendWindow:
    """The moment's own send window, else the rules' default."""
    return m.send_window or ws.rules.send_window


def recontact_for(ws: Any, m: Moment) -> timedelta | None:
    """The moment's own re-contact delay, else the rules' default (None: no re-contact rule)."""
    return m.recontact if m.recontact is not None else ws.rules.recontact
