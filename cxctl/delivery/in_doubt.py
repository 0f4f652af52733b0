"""Messages in doubt after a crash, settled one by one: by id, or from the relay's own evidence.

A run that dies (`kill -9`, power cut) leaves `sending` the messages it had handed to the server
without recording the answer: at most `smtp.concurrency` of them (cxctl.delivery.send). The next run marks
them `in_doubt`; they stay so, reported by every run, until each is settled:

- by id: `send --accept-in-doubt 744,745` (they arrived: sent) and `--resend-in-doubt 746` (they did
  not: planned again), or `all`;
- from evidence (`cxctl reconcile`): a message whose stored Message-ID is in the relay log or in a
  mailbox that got a BCC/journal copy arrived; one that is absent did not, provided the evidence covers
  the crash — it holds a message handed over in the same or an earlier run *and* one from a later run.
  Otherwise it stays in doubt (or `--assume-complete` says the evidence is the whole story).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import sqlite_utils

from cxctl.core.errors import UsageError
from cxctl.core.timeutil import to_db
from cxctl.delivery.evidence import Evidence, bare, gather
from cxctl.delivery.lock import database_file, send_lock

Selection = Literal["all"] | frozenset[int] | None

_DOUBT_REASON = "the run sending it stopped before the server answered: it may or may not have been delivered"


def parse_ids(text: str | None, option: str) -> Selection:
    """`744,745` → those ids; `all` → every message in doubt; None → none."""
    if text is None:
        return None
    if text.strip().lower() == "all":
        return "all"
    ids: set[int] = set()
    for part in text.replace(" ", ",").split(","):
        if not part:
            continue
        if not part.isdigit():
            raise UsageError(
                f"{option} {text!r}: {part!r} is not an invitation id: give ids separated by commas "
                f"(e.g. {option} 744,745) or `all`"
            )
        ids.add(int(part))
    if not ids:
        raise UsageError(f"{option} needs invitation ids (e.g. {option} 744,745) or `all`")
    return frozenset(ids)


def mark_dead_runs(db: sqlite_utils.Database, now: datetime) -> None:
    """Rows left `sending` belong to a dead run (the caller holds the send lock): in doubt from now on.
    Call inside a transaction."""
    db.execute(
        "UPDATE invitations SET status = 'in_doubt', updated_at = ?, last_error = ? WHERE status = 'sending'",
        [to_db(now), _DOUBT_REASON],
    )
    db.execute("UPDATE send_runs SET finished_at = ? WHERE finished_at IS NULL", [to_db(now)])


def in_doubt_ids(db: sqlite_utils.Database, moment: str | None = None) -> list[int]:
    return [
        r[0]
        for r in db.execute(
            "SELECT id FROM invitations WHERE status IN ('sending', 'in_doubt') AND (? IS NULL OR moment = ?) ORDER BY id",
            [moment, moment],
        ).fetchall()
    ]


def _chosen(selection: Selection, doubtful: set[int], option: str) -> set[int]:
    if selection is None:
        return set()
    if selection == "all":
        return set(doubtful)
    unknown = sorted(set(selection) - doubtful)
    if unknown:
        listed = ", ".join(str(i) for i in sorted(doubtful)[:20]) or "none"
        raise UsageError(
            f"{option}: invitation(s) {', '.join(map(str, unknown))} are not in doubt (in doubt: {listed}): "
            f"give ids from that list"
        )
    return set(selection)


def accept(db: sqlite_utils.Database, ids: set[int], now: datetime, note: str) -> int:
    """They arrived: count them as sent (inside the caller's transaction)."""
    cursor = db.execute(
        "UPDATE invitations SET status = 'sent', sent_at = COALESCE(sent_at, send_at), next_attempt_at = NULL, "
        "updated_at = ?, last_error = ? WHERE status = 'in_doubt' AND id IN (SELECT value FROM json_each(?))",
        [to_db(now), note, json.dumps(sorted(ids))],
    )
    return cursor.rowcount


def resend(db: sqlite_utils.Database, ids: set[int], now: datetime, note: str) -> int:
    """They did not arrive: planned again, sent by the next `cxctl send` (inside the caller's transaction)."""
    cursor = db.execute(
        "UPDATE invitations SET status = 'planned', updated_at = ?, last_error = ? "
        "WHERE status = 'in_doubt' AND id IN (SELECT value FROM json_each(?))",
        [to_db(now), note, json.dumps(sorted(ids))],
    )
    return cursor.rowcount


def settle_by_id(
    db: sqlite_utils.Database, now: datetime, resend_ids: Selection, accept_ids: Selection, moment: str | None = None
) -> tuple[int, int]:
    """Mark dead runs' rows in doubt, then settle the chosen ones; (resent, accepted). The caller holds
    the send lock. Raises UsageError for an id not in doubt or chosen both ways."""
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        mark_dead_runs(db, now)
        doubtful = set(in_doubt_ids(db, moment))
        to_resend = _chosen(resend_ids, doubtful, "--resend-in-doubt")
        to_accept = _chosen(accept_ids, doubtful, "--accept-in-doubt")
        both = sorted(to_resend & to_accept)
        if both:
            raise UsageError(
                f"invitation(s) {', '.join(map(str, both))} given to both --resend-in-doubt and "
                f"--accept-in-doubt: each either arrived (accept) or did not (resend); pick one"
            )
        resent = resend(db, to_resend, now, "in doubt after a crash; sent again (--resend-in-doubt)")
        accepted = accept(db, to_accept, now, "in doubt after a crash; accepted as delivered (--accept-in-doubt)")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return resent, accepted


@dataclass
class Decision:
    invitation: int
    message_id: str | None
    verdict: str  # delivered | not_delivered | undecided
    why: str


@dataclass
class ReconcileReport:
    """What `cxctl reconcile` decided for each message in doubt, from which evidence."""

    sources: list[str]
    accepted_ids: int  # Message-IDs in the evidence
    decisions: list[Decision] = field(default_factory=list)
    applied: bool = False

    def count(self, verdict: str) -> int:
        return sum(d.verdict == verdict for d in self.decisions)

    @property
    def delivered(self) -> int:
        return self.count("delivered")

    @property
    def not_delivered(self) -> int:
        return self.count("not_delivered")

    @property
    def undecided(self) -> int:
        return self.count("undecided")

    @property
    def ok(self) -> bool:
        return self.undecided == 0


def decide(
    db: sqlite_utils.Database, evidence: Evidence, assume_complete: bool = False, moment: str | None = None
) -> list[Decision]:
    """Each message in doubt: delivered when its Message-ID is in the evidence; not delivered when it is
    absent and the evidence covers its run's crash (a message of that run or an earlier one is in it,
    and one of a later run); undecided otherwise."""
    found_runs = [
        r[0]
        for r in db.execute(
            "SELECT run_id FROM invitations WHERE run_id IS NOT NULL AND message_id IS NOT NULL "
            "AND status NOT IN ('sending', 'in_doubt') "
            "AND substr(message_id, 2, length(message_id) - 2) IN (SELECT value FROM json_each(?))",
            [json.dumps(list(evidence.accepted))],
        ).fetchall()
    ]
    earliest, latest = (min(found_runs), max(found_runs)) if found_runs else (None, None)
    decisions = []
    for invitation_id, message_id, run_id in db.execute(
        "SELECT id, message_id, run_id FROM invitations WHERE status IN ('sending', 'in_doubt') "
        "AND (? IS NULL OR moment = ?) ORDER BY id",
        [moment, moment],
    ).fetchall():
        if message_id and bare(message_id) in evidence.accepted:
            decisions.append(
                Decision(
                    invitation_id,
                    message_id,
                    "delivered",
                    f"{message_id} accepted: {evidence.accepted[bare(message_id)]}",
                )
            )
        elif message_id is None:
            decisions.append(
                Decision(
                    invitation_id,
                    None,
                    "undecided",
                    "no Message-ID was stored before it was sent (a run older than cxctl's settling): settle it by id",
                )
            )
        elif run_id is not None and earliest is not None and earliest <= run_id < latest:
            decisions.append(
                Decision(
                    invitation_id,
                    message_id,
                    "not_delivered",
                    f"{message_id} absent, and the evidence covers run {run_id} (messages of runs "
                    f"{earliest} to {latest} are in it)",
                )
            )
        elif assume_complete:
            decisions.append(
                Decision(invitation_id, message_id, "not_delivered", f"{message_id} absent (--assume-complete)")
            )
        else:
            decisions.append(
                Decision(
                    invitation_id,
                    message_id,
                    "undecided",
                    f"{message_id} absent, but the evidence does not show it covers run {run_id}'s "
                    f"crash (it needs a message sent before the crash and one sent after: run "
                    f"`cxctl send` once, then give a log that spans both; or --assume-complete)",
                )
            )
    return decisions


def reconcile(
    db: sqlite_utils.Database,
    now: datetime,
    relay_logs: list[Path],
    mailboxes: list[Path],
    *,
    assume_complete: bool = False,
    dry_run: bool = False,
    moment: str | None = None,
    wait: bool = False,
) -> ReconcileReport:
    """`cxctl reconcile`: read the evidence, decide each message in doubt, and (unless dry_run) settle the
    decided ones — delivered → sent, not delivered → planned (the next `cxctl send` sends them)."""
    evidence = gather(relay_logs, mailboxes)
    report = ReconcileReport(evidence.sources, len(evidence.accepted))
    with send_lock(database_file(db), wait):
        conn = db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if not dry_run:
                mark_dead_runs(db, now)
            report.decisions = decide(db, evidence, assume_complete, moment)
            if not dry_run:
                accept(
                    db,
                    {d.invitation for d in report.decisions if d.verdict == "delivered"},
                    now,
                    "in doubt after a crash; found in the relay's evidence (cxctl reconcile)",
                )
                resend(
                    db,
                    {d.invitation for d in report.decisions if d.verdict == "not_delivered"},
                    now,
                    "in doubt after a crash; absent from the relay's evidence: sent again (cxctl reconcile)",
                )
                report.applied = True
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return report
