"""Retention: `cxctl db prune` erases the personal data that has outlived the periods declared under
`workspace.retention` (responses, events, invitations, contacts_inactive), as of `now`.

Scores are kept, so scorecards do not change; inactive contacts are anonymised like `forget` but not
blocked. One transaction per run; dry_run runs the same statements and rolls them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlite_utils

from cxctl.core.durations import format_duration
from cxctl.core.timeutil import to_db
from cxctl.privacy.erasure import (
    changed_rows,
    erase_contacts,
    free_and_fixed_questions,
    invitation_keys,
    load_contact_ids,
    message_files,
    transaction,
)
from cxctl.workspace.loader import Workspace


@dataclass
class PruneRule:
    """One retention rule applied: its period, the cut-off date and rows changed per table."""

    name: str
    period: str | None
    cutoff: str | None
    changes: dict[str, int]


@dataclass
class PruneResult:
    rules: list[PruneRule]
    files: list[str]
    dry_run: bool

    @property
    def total(self) -> int:
        return sum(sum(rule.changes.values()) for rule in self.rules) + len(self.files)


def prune(ws: Workspace, db: sqlite_utils.Database, now: datetime, *, dry_run: bool = False) -> PruneResult:
    """Apply `workspace.retention` as of `now`: erase the personal data that has outlived its period.

    - responses: free-text answers, follow-up notes and quarantined rows older than the period are
      erased (scores are kept, so scorecards do not change);
    - events: details (attributes) are erased; events no invitation refers to are deleted;
    - invitations: the address and error text of invitations sent (or planned) before the cut-off are
      erased, and their rendered messages deleted;
    - contacts_inactive: contacts with no update, event, invitation or response since the cut-off are
      anonymised like `forget`, without blocking them (they may be imported again later).
    A rule without a period is skipped.
    """
    retention = ws.settings.retention
    rules: list[PruneRule] = []
    free, fixed = free_and_fixed_questions(ws)
    keys: set[str] = set()
    with transaction(db, dry_run) as box:

        def cutoff_of(period) -> str | None:
            return to_db(now - period) if period is not None else None

        def rule(name: str, period) -> tuple[PruneRule, str | None]:
            item = PruneRule(name, format_duration(period) if period is not None else None, cutoff_of(period), {})
            rules.append(item)
            return item, item.cutoff

        item, cutoff = rule("responses", retention.responses)
        if cutoff:
            old = "SELECT id FROM responses WHERE submitted_at < ?"
            free_marks = ",".join("?" * len(free)) or "NULL"
            fixed_marks = ",".join("?" * len(fixed)) or "NULL"
            item.changes["answers"] = changed_rows(
                db,
                f"UPDATE answers SET value_text = NULL WHERE value_text IS NOT NULL AND response_id IN ({old}) "
                f"AND (question IN ({free_marks}) OR (question NOT IN ({fixed_marks}) AND value_num IS NULL))",
                [cutoff, *free, *fixed],
            )
            item.changes["followups"] = changed_rows(
                db,
                f"UPDATE followups SET note = NULL, outcome = NULL WHERE (note IS NOT NULL OR outcome IS NOT NULL) "
                f"AND response_id IN ({old})",
                [cutoff],
            ) + changed_rows(
                db,
                f"UPDATE followup_history SET note = NULL WHERE note IS NOT NULL AND response_id IN ({old})",
                [cutoff],
            )
            item.changes["quarantine"] = changed_rows(db, "DELETE FROM quarantine WHERE imported_at < ?", [cutoff])

        item, cutoff = rule("events", retention.events)
        if cutoff:
            item.changes["events deleted"] = changed_rows(
                db,
                "DELETE FROM events WHERE occurred_at < ? AND id NOT IN (SELECT event_id FROM invitations WHERE event_id IS NOT NULL)",
                [cutoff],
            )
            item.changes["events erased"] = changed_rows(
                db, "UPDATE events SET attributes = '{}' WHERE occurred_at < ? AND attributes != '{}'", [cutoff]
            )

        item, cutoff = rule("invitations", retention.invitations)
        if cutoff:
            for inv_id, token, message_id in db.execute(
                "SELECT id, token, message_id FROM invitations WHERE COALESCE(sent_at, send_at) < ?", [cutoff]
            ):
                keys.update(str(v).strip("<>") for v in (inv_id, token, message_id) if v)
            item.changes["invitations"] = changed_rows(
                db,
                "UPDATE invitations SET email = NULL, last_error = NULL "
                "WHERE COALESCE(sent_at, send_at) < ? AND (email IS NOT NULL OR last_error IS NOT NULL)",
                [cutoff],
            )

        item, cutoff = rule("contacts_inactive", retention.contacts_inactive)
        if cutoff:
            inactive = [
                r[0]
                for r in db.execute(
                    """
                    SELECT c.id FROM contacts c
                    WHERE c.forgotten_at IS NULL AND c.updated_at < :cutoff
                      AND NOT EXISTS (SELECT 1 FROM events e WHERE e.contact_id = c.id AND e.occurred_at >= :cutoff)
                      AND NOT EXISTS (SELECT 1 FROM invitations i WHERE i.contact_id = c.id AND i.send_at >= :cutoff)
                      AND NOT EXISTS (SELECT 1 FROM responses r WHERE r.contact_id = c.id AND r.submitted_at >= :cutoff)
                    """,
                    {"cutoff": cutoff},
                )
            ]
            if inactive:
                load_contact_ids(db, inactive)
                keys |= invitation_keys(db)
                item.changes.update(erase_contacts(db, ws, now))
            else:
                item.changes["contacts"] = 0
        box.append(keys)
    files = message_files(ws.outbox_dir, keys)
    if not dry_run:
        for path in files:
            path.unlink(missing_ok=True)
    return PruneResult(rules, [str(p) for p in files], dry_run)
