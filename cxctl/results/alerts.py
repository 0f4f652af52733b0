"""Telling owners: an alert when a case opens (or is given to them), and a daily digest of overdue cases,
by email through the workspace's transport and/or to Slack and Teams incoming webhooks.

`answers_stored` is the one entry point after answers land (`responses import`, the survey page):
it opens the cases and sends their alerts. Alerts are rows of the `alerts` table, planned in the same
transaction as the case, so none is lost; they are sent like invitations: each row is committed
`sending` before it goes and its outcome right after, one at a time, so a `kill -9` leaves at most one
alert in doubt — reported, never re-sent silently (settle it with --resend-in-doubt or
--accept-in-doubt). alert_key is unique per case, event, channel and recipient: once, whatever reruns.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlite_utils

from cxctl.core.emails import is_valid
from cxctl.core.errors import TransportError, UsageError
from cxctl.core.timeutil import from_db, to_db
from cxctl.delivery.lock import database_file, send_lock
from cxctl.delivery.transport import SendFailure, Transport, make_transport
from cxctl.results.alert_messages import case_text, digest_text, email_bytes, slack_payload, teams_payload
from cxctl.results.cases import ACTIVE, CaseHook, open_cases, transaction
from cxctl.results.deadlines import calendar_zone
from cxctl.results.followups import Followup, load_followups, team_language
from cxctl.workspace.loader import Workspace

MAX_ATTEMPTS = 5  # runs that try one alert before it fails for good (a webhook down for a day)
WEBHOOK_TIMEOUT = 10.0


@dataclass
class AlertReport:
    """What one delivery of alerts did."""

    planned: int = 0  # alerts planned by this call (digest)
    sent: int = 0
    failed: int = 0  # failed for good
    retry: int = 0  # failed for now, tried again by the next run
    in_doubt: int = 0  # left `sending` by a dead run: reported until settled
    in_doubt_ids: list[int] = field(default_factory=list)
    resent_in_doubt: int = 0
    accepted_in_doubt: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.retry or self.in_doubt)


def _channels(ws: Workspace, owner: str | None) -> list[tuple[str, str]]:
    """(channel, recipient) pairs that hear about a case of `owner`."""
    alerts = ws.followups.alerts
    if alerts is None:
        return []
    out = [("email", owner)] if alerts.email and owner and is_valid(owner) else []
    for hook in alerts.webhooks:
        if hook.owners is None or owner in hook.owners:
            out.append((hook.kind, hook.url_env))
    return out


def plan_case_alerts(ws: Workspace) -> CaseHook | None:
    """The hook that plans the alerts of opened or reassigned cases (None when the workspace has no
    alerts). An opened case whose answer is older than alerts.only_within gets none."""
    if ws.followups.alerts is None:
        return None
    within = ws.followups.alerts.only_within

    def plan(db: sqlite_utils.Database, cases: list[tuple[int, str | None]], event: str, now: datetime) -> None:
        stamp = to_db(now)
        rows = []
        for case_id, owner in cases:
            if event == "opened":
                submitted = db.execute("SELECT submitted_at FROM responses WHERE id = ?", [case_id]).fetchone()
                moment = from_db(submitted[0]) if submitted else None
                if moment is None or moment < now - within:
                    continue
            for channel, recipient in _channels(ws, owner):
                # One assignment is one event: its time is in the key, so a second reassignment to the same
                # person is told again, a rerun is not.
                key = f"{event}:{case_id}:{channel}:{recipient}" + (f":{stamp}" if event == "assigned" else "")
                rows.append((key, case_id, event, channel, recipient, stamp, stamp))
        db.conn.executemany(
            "INSERT OR IGNORE INTO alerts (alert_key, response_id, event, channel, recipient, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    return plan


@dataclass
class AnswersStored:
    """What `answers_stored` did: the cases opened and the alerts sent."""

    opened: list[int]
    alerts: AlertReport | None


def answers_stored(
    ws: Workspace,
    db: sqlite_utils.Database,
    now: datetime,
    *,
    response_ids: list[int] | None = None,
    transport: Transport | None = None,
    deliver: bool = True,
) -> AnswersStored:
    """An answer was stored: open the cases it calls for (of `response_ids`, or every answer without its
    case) and tell their owners at once. `deliver` False only plans the alerts (`followups alerts` sends them)."""
    opened = open_cases(ws, db, now, response_ids=response_ids, on_open=plan_case_alerts(ws))
    report = None
    if deliver and ws.followups.alerts is not None:
        report = deliver_alerts(ws, db, now, transport=transport)
    return AnswersStored(opened, report)


# --- delivery ------------------------------------------------------------------------------------


def _settle_in_doubt(db: sqlite_utils.Database, report: AlertReport, now: datetime, resend: bool, accept: bool) -> None:
    stamp = to_db(now)
    with transaction(db):
        ids = [r[0] for r in db.execute("SELECT id FROM alerts WHERE status IN ('sending', 'in_doubt') ORDER BY id")]
        db.execute("UPDATE alerts SET status = 'in_doubt', updated_at = ? WHERE status = 'sending'", [stamp])
        if resend:
            report.resent_in_doubt = db.execute(
                "UPDATE alerts SET status = 'planned', last_error = 'resent after a crash',"
                " updated_at = ? WHERE status = 'in_doubt'",
                [stamp],
            ).rowcount
        elif accept:
            report.accepted_in_doubt = db.execute(
                "UPDATE alerts SET status = 'sent', sent_at = COALESCE(sent_at, ?),"
                " last_error = 'accepted after a crash', updated_at = ?"
                " WHERE status = 'in_doubt'",
                [stamp, stamp],
            ).rowcount
    report.in_doubt_ids = [] if resend or accept else ids


def _record(
    db: sqlite_utils.Database,
    alert_id: int,
    status: str,
    now: datetime,
    error: str | None = None,
    attempts: int | None = None,
) -> None:
    with transaction(db):
        db.execute(
            "UPDATE alerts SET status = ?, last_error = ?, attempts = COALESCE(?, attempts),"
            " sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END, updated_at = ? WHERE id = ?",
            [status, error, attempts, status, to_db(now), to_db(now), alert_id],
        )


class _Sender:
    """Sends one alert at a time: email through the workspace's transport, webhooks with httpx."""

    def __init__(self, ws: Workspace, db: sqlite_utils.Database, now: datetime, transport: Transport | None):
        self.ws, self.db, self.now = ws, db, now
        self.transport = transport
        self.connection: Any = None
        self.language = team_language(ws)
        self.tz = calendar_zone(ws)
        self.client: Any = None

    def text(self, row: dict[str, Any], private: bool):
        if row["event"] == "digest":
            cases = sorted(
                load_followups(self.ws, self.db, json.loads(row["payload"]), self.now), key=lambda f: f.due_at or ""
            )
            return digest_text(cases, row["alert_key"].split(":")[1], self.language, self.tz, private)
        case = load_followups(self.ws, self.db, [row["response_id"]], self.now)[0]
        return case_text(case, row["event"], self.language, self.tz)

    def send(self, row: dict[str, Any]) -> None:
        """Hand one alert over; raise SendFailure (temporary or not) when it could not go."""
        if row["channel"] == "email":
            sender = (
                self.ws.followups.alerts.sender if self.ws.followups.alerts else None
            ) or self.ws.settings.sender.address
            data = email_bytes(
                self.text(row, True), sender, row["recipient"], row["message_id"], row["id"], self.now, self.language
            )
            if self.transport is None:
                self.transport = make_transport(self.ws)
            if self.connection is None:
                self.connection = self.transport.connect()
            asyncio.run(self._email(sender, row["recipient"], data, f"alert-{row['id']}"))
            return
        url = os.environ.get(row["recipient"])
        if not url:
            raise SendFailure(
                "temporary",
                f"the environment variable {row['recipient']} (named by followups.alerts."
                f"webhooks[].url_env) is not set: export the webhook's URL in it",
            )
        payload = (
            slack_payload(self.text(row, False)) if row["channel"] == "slack" else teams_payload(self.text(row, False))
        )
        import httpx

        if self.client is None:
            self.client = httpx.Client(timeout=WEBHOOK_TIMEOUT, follow_redirects=False)
        try:
            answer = self.client.post(url, json=payload)
        except httpx.HTTPError as exc:
            raise SendFailure("temporary", f"{row['channel']} webhook: {type(exc).__name__}") from None
        if answer.status_code >= 400:
            kind = "temporary" if answer.status_code in (408, 429) or answer.status_code >= 500 else "rejected"
            # The URL is a secret: the error names the variable, never the address.
            raise SendFailure(
                kind,
                f"{row['channel']} webhook ({row['recipient']}) answered {answer.status_code} {answer.text[:200]!r}",
                answer.status_code,
            )

    async def _email(self, sender: str, recipient: str, data: bytes, name: str) -> None:
        try:
            await self.connection.send(sender, recipient, data, name)
        finally:
            await self.connection.close()
            self.connection = None

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


def deliver_alerts(
    ws: Workspace,
    db: sqlite_utils.Database,
    now: datetime,
    *,
    transport: Transport | None = None,
    resend_in_doubt: bool = False,
    accept_in_doubt: bool = False,
    wait: bool = True,
    report: AlertReport | None = None,
) -> AlertReport:
    """Send every planned alert, one at a time, under the alerts lock (LockedError when another run has it
    and not `wait`). Rows left `sending` by a dead run become in_doubt and stay so until settled."""
    if resend_in_doubt and accept_in_doubt:
        raise UsageError("--resend-in-doubt and --accept-in-doubt contradict each other: keep one")
    report = report or AlertReport()
    with send_lock(database_file(db), wait, purpose="alerts"):
        _settle_in_doubt(db, report, now, resend_in_doubt, accept_in_doubt)
        sender = _Sender(ws, db, now, transport)
        try:
            after = 0
            while True:
                cursor = db.execute(
                    "SELECT * FROM alerts WHERE status = 'planned' AND id > ? ORDER BY id LIMIT 1", [after]
                )
                found = cursor.fetchone()
                if found is None:
                    break
                row = dict(zip([d[0] for d in cursor.description], found, strict=True))
                after = row["id"]
                row["message_id"] = row["message_id"] or _message_id(ws, row["id"])
                with transaction(db):  # committed before it goes: after a crash, this row is in doubt
                    db.execute(
                        "UPDATE alerts SET status = 'sending', message_id = ?, attempts = attempts + 1, updated_at = ?"
                        " WHERE id = ?",
                        [row["message_id"], to_db(now), row["id"]],
                    )
                try:
                    sender.send(row)
                except TransportError:  # login refused, outbox unwritable: it did not go, and nothing else can
                    _record(db, row["id"], "planned", now, "not sent: the transport refused to start")
                    raise
                except SendFailure as failure:
                    final = failure.kind != "temporary" or row["attempts"] + 1 >= MAX_ATTEMPTS
                    _record(db, row["id"], "failed" if final else "planned", now, str(failure))
                    if final:
                        report.failed += 1
                    else:
                        report.retry += 1
                    if len(report.errors) < 50:
                        report.errors.append(
                            {"alert": row["id"], "channel": row["channel"], "error": str(failure), "retry": not final}
                        )
                    continue
                _record(db, row["id"], "sent", now)
                report.sent += 1
        finally:
            sender.close()
    report.in_doubt = db.execute("SELECT COUNT(*) FROM alerts WHERE status = 'in_doubt'").fetchone()[0]
    return report


def _message_id(ws: Workspace, alert_id: int) -> str:
    import secrets

    domain = ws.settings.sender.address.rpartition("@")[2] or "cxctl.invalid"
    return f"<alert.{alert_id}.{secrets.token_hex(6)}@{domain}>"


# --- the digest ----------------------------------------------------------------------------------


@dataclass
class Digest:
    """`followups digest`: the overdue cases per owner on one day, and what was sent."""

    day: str
    overdue: dict[str, list[int]]
    report: AlertReport


def digest(
    ws: Workspace,
    db: sqlite_utils.Database,
    now: datetime,
    *,
    transport: Transport | None = None,
    dry_run: bool = False,
) -> Digest:
    """Plan one digest per owner (email) and per webhook of the cases overdue at `now`, at most once per
    local day (a second cron run that day sends nothing), then send every planned alert."""
    from cxctl.results.followups import list_followups

    day = now.astimezone(calendar_zone(ws)).date().isoformat()
    cases = list_followups(ws, db, now=now, overdue_only=True, states=list(ACTIVE), on_open=plan_case_alerts(ws)).items
    by_owner: dict[str, list[Followup]] = {}
    for case in cases:
        by_owner.setdefault(case.owner or "", []).append(case)
    report = AlertReport()
    overdue = {owner: [c.id for c in items] for owner, items in by_owner.items()}
    if dry_run or ws.followups.alerts is None:
        return Digest(day, overdue, report)
    stamp = to_db(now)
    rows = []
    for owner, items in by_owner.items():
        if ws.followups.alerts.email and owner and is_valid(owner):
            rows.append((f"digest:{day}:email:{owner}", "email", owner, json.dumps([c.id for c in items])))
    for hook in ws.followups.alerts.webhooks:
        chosen = [c.id for c in cases if hook.owners is None or c.owner in hook.owners]
        if chosen:
            rows.append((f"digest:{day}:{hook.kind}:{hook.url_env}", hook.kind, hook.url_env, json.dumps(chosen)))
    with transaction(db):
        before = db.conn.total_changes
        db.conn.executemany(
            "INSERT OR IGNORE INTO alerts (alert_key, event, channel, recipient, payload, created_at, updated_at)"
            " VALUES (?, 'digest', ?, ?, ?, ?, ?)",
            [(*r, stamp, stamp) for r in rows],
        )
        report.planned = db.conn.total_changes - before
    deliver_alerts(ws, db, now, transport=transport, report=report)
    return Digest(day, overdue, report)
