"""Recording what a delivery run did: the outcome of each message and the next rows marked `sending`, in
one transaction (split from cxctl.delivery.send, whose loop calls it). Shared by both channels: a bounced
address is suppressed for email, a refused number for SMS only.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import Any

import sqlite_utils

from cxctl.audience.phones import phone_hash
from cxctl.core.timeutil import to_db
from cxctl.delivery.outcomes import Outcome, Prepared, SendReport
from cxctl.delivery.retries import next_try
from cxctl.store import email_hash


class OutcomeRecorder:
    """The recording half of a delivery run (a mixin of cxctl.delivery.send's run): it reads the run's db,
    channel, limits, report, skip counts, run id and clock."""

    db: sqlite_utils.Database
    channel: str
    limits: Any  # SmtpSettings or SmsSettings: retry schedule and attempts
    report: SendReport
    skipped: Counter[str]
    bounced_now: set[str]
    run_id: int | None

    def clock(self) -> datetime:
        raise NotImplementedError

    def record(self, finished: list[Outcome], starting: list[Prepared]) -> list[Prepared]:
        """One transaction: the outcomes of finished messages, then the next rows marked `sending`.
        Returns the rows actually marked (a row changed by someone else is left alone)."""
        if not finished and not starting:
            return []
        stamp = to_db(self.clock())
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            sent = [o for o in finished if o.result == "sent"]
            for outcome in sent:
                self.report.sent += 1
                self.report.reminders += outcome.item.kind == "reminder"
            conn.executemany(
                "UPDATE invitations SET status = 'sent', sent_at = ?, message_id = ?, attempts = ?, last_error = NULL, "
                "next_attempt_at = NULL, provider_ref = COALESCE(?, provider_ref), updated_at = ? WHERE id = ?",
                [
                    (to_db(o.at or self.clock()), o.item.message_id, o.item.prev_attempts + 1, o.ref, stamp, o.item.id)
                    for o in sent
                ],
            )
            for outcome in finished:
                if outcome.result != "sent":
                    self.record_one(outcome, stamp)
            before = conn.total_changes
            # The Message-ID is stored before the message goes: the relay's log or a journal copy can then
            # say whether a message in doubt after a crash arrived (cxctl.delivery.in_doubt.reconcile).
            conn.executemany(
                "UPDATE invitations SET status = 'sending', message_id = ?, run_id = ?, "
                "first_tried_at = COALESCE(first_tried_at, ?), updated_at = ? WHERE id = ? AND status = ?",
                [(item.message_id, self.run_id, stamp, stamp, item.id, item.prev_status) for item in starting],
            )
            marked = starting
            if conn.total_changes - before != len(starting):  # a row changed under us: send only those we marked
                ids = {
                    r[0]
                    for r in conn.execute(
                        "SELECT id FROM invitations WHERE status = 'sending' AND id IN (SELECT value FROM json_each(?))",
                        [json.dumps([item.id for item in starting])],
                    )
                }
                marked = [item for item in starting if item.id in ids]
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return marked

    def record_one(self, outcome: Outcome, stamp: str) -> None:
        db, result, report = self.db, outcome.result, self.report
        item = outcome.item
        if result.startswith("skip:"):
            reason = result[5:]
            self.skipped[reason] += 1
            if outcome.error:  # the new status
                db.execute(
                    "UPDATE invitations SET status = ?, last_error = ?, next_attempt_at = NULL, updated_at = ? "
                    "WHERE id = ?",
                    [outcome.error, reason, stamp, item["id"]],
                )
            if reason == "needs_smtputf8":
                self.report.failed += 1
                self.error(
                    item["id"],
                    "failed",
                    "the address has a non-ASCII local part and the server is not declared "
                    "to accept SMTPUTF8 (smtp.smtputf8: false): correct the address, or set smtp.smtputf8: true "
                    "if the server supports it, then `cxctl send --retry-failed`",
                )
            return
        item_id = item.id if isinstance(item, Prepared) else item["id"]
        prev_attempts = item.prev_attempts if isinstance(item, Prepared) else item["attempts"]
        # Quick retries within this run are one attempt: the cross-run budget is counted in runs.
        attempts = prev_attempts + (1 if outcome.tries else 0)
        if result == "untried":
            db.execute(
                "UPDATE invitations SET status = ?, updated_at = ? WHERE id = ?", [item.prev_status, stamp, item_id]
            )
            self.skipped["not_tried"] += 1
        elif result == "bounce":
            report.bounced += 1
            self.bounced_now.add(item.address)
            db.execute(
                "UPDATE invitations SET status = 'bounced', attempts = ?, last_error = ?, updated_at = ? WHERE id = ?",
                [attempts, outcome.error, stamp, item_id],
            )
            if self.channel == "sms":  # a refused number: no more SMS to it; its email is untouched
                db.execute(
                    "INSERT OR IGNORE INTO sms_suppressions (phone_hash, phone, reason, source, note, created_at) "
                    "VALUES (?, ?, ?, 'send', ?, ?)",
                    [
                        phone_hash(item.address),
                        item.address,
                        outcome.reason or "bounce",
                        f"invitation {item_id}: {outcome.error}",
                        stamp,
                    ],
                )
            else:
                db.execute(
                    "INSERT OR IGNORE INTO suppressions (email_hash, email, reason, source, note, created_at) "
                    "VALUES (?, ?, 'bounce', 'send', ?, ?)",
                    [email_hash(item.address), item.address, f"invitation {item_id}: {outcome.error}", stamp],
                )
            self.error(item_id, "bounced", outcome.error)
        else:  # temporary or rejected: failed, retried later unless permanent or out of attempts
            report.failed += 1
            retry_at = (
                next_try(
                    self.limits, attempts, getattr(item, "first_tried_at", None), self.clock(), outcome.retry_after
                )
                if result == "temporary"
                else None
            )
            next_at = to_db(retry_at) if retry_at else None
            db.execute(
                "UPDATE invitations SET status = 'failed', attempts = ?, next_attempt_at = ?, last_error = ?, "
                "updated_at = ? WHERE id = ?",
                [attempts, next_at, outcome.error, stamp, item_id],
            )
            self.error(item_id, "failed", outcome.error, next_at)

    def error(self, item_id: int, status: str, error: str | None, next_at: str | None = None) -> None:
        if len(self.report.errors) < 50:
            self.report.errors.append(
                {"invitation": item_id, "status": status, "error": error, "next_attempt_at": next_at}
            )
