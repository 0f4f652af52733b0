"""`cxctl bounces import`: bounces and spam complaints that arrive after the SMTP session.

Each message of the mailbox is read once: an abuse feedback report (ARF, RFC 5965) is a complaint; any
other message goes to flufl.bounce, which knows delivery status notifications (RFC 3464) and the
common non-standard bounce formats (Exim, Postfix, qmail, Microsoft, Yahoo…), and splits permanent
from temporary failures. What it does not recognise (an auto-reply, a person's answer) is left alone.

A report is tied to its invitation by the `X-Cxctl-Invitation` header of the returned original, else
by its Message-ID (cxctl stores it before sending), else by the address. Then: a hard bounce marks the
invitation bounced and suppresses the address; soft bounces are counted and suppress after
deliverability.soft_bounce_limit; a complaint suppresses the address and cancels every planned
invitation of the person, all moments. Idempotent: a report is recorded once per address.
"""

from __future__ import annotations

import email
import email.message
import email.utils
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from email.parser import HeaderParser
from typing import Any
from zoneinfo import ZoneInfo

import sqlite_utils

from cxctl.core.emails import normalise
from cxctl.core.timeutil import to_db
from cxctl.delivery.mailboxes import Source
from cxctl.store import email_hash
from cxctl.workspace.loader import Workspace

NOT_COMPLAINTS = ("not-spam",)  # ARF feedback types that do not complain (RFC 6650 lists the others)


@dataclass
class Report:
    """What one message says: kind hard | soft | complaint | none, for which addresses, about which message."""

    key: str
    kind: str
    recipients: list[str]
    invitation: int | None = None
    original_message_id: str | None = None
    diagnostic: str | None = None


def _original_headers(message: email.message.Message) -> email.message.Message | None:
    """The headers of the returned original: a message/rfc822 part, a text/rfc822-headers part, or (old Exim
    and qmail bounces) the copy quoted in the text after the first header line cxctl always writes."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], email.message.Message):
                return payload[0]
        if kind == "text/rfc822-headers":
            return HeaderParser().parsestr(_text(part))
    for part in message.walk():
        if part.get_content_maintype() == "text":
            text = _text(part)
            for marker in ("\nX-Cxctl-Invitation:", "\nMessage-ID:", "\nMessage-Id:"):
                start = text.find(marker)
                if start >= 0:
                    block = text[text.rfind("\n\n", 0, start) + 2 :]
                    return HeaderParser().parsestr(block.lstrip())
    return None


def _text(part: email.message.Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        text = payload.decode(part.get_content_charset() or "utf-8", errors="replace")
    else:
        text = str(part.get_payload())
    return text.replace("\r\n", "\n")  # an IMAP server hands messages over with CRLF line ends


def _diagnostic(message: email.message.Message) -> str | None:
    """The first per-recipient Status and Diagnostic-Code of a DSN (RFC 3464), for the record."""
    for part in message.walk():
        if part.get_content_type() == "message/delivery-status":
            for block in part.get_payload() or []:
                if isinstance(block, email.message.Message) and (block.get("Status") or block.get("Diagnostic-Code")):
                    text = " ".join(x for x in (block.get("Status"), block.get("Diagnostic-Code")) if x)
                    return " ".join(text.split())[:500]
    return None


def _feedback(message: email.message.Message) -> email.message.Message | None:
    """The machine-readable part of an ARF report (multipart/report; report-type=feedback-report)."""
    if message.get_content_type() != "multipart/report" or message.get_param("report-type") != "feedback-report":
        return None
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], email.message.Message):
                return payload[0]
            return HeaderParser().parsestr(_text(part))
    return None


def _addresses(values: Any) -> list[str]:
    out = []
    for value in values:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        address = email.utils.parseaddr(text.split(";", 1)[-1])[1] or text
        try:
            out.append(normalise(address))
        except ValueError:
            continue
    return sorted(set(out))


def read_report(raw: bytes) -> Report:
    """Classify one message; never raises on a malformed message (it is then kind none)."""
    from flufl.bounce import all_failures

    message = email.message_from_bytes(raw)
    key = (message.get("Message-ID") or "").strip() or "sha256:" + hashlib.sha256(raw).hexdigest()
    original = _original_headers(message)
    invitation_header = (original.get("X-Cxctl-Invitation") if original is not None else None) or ""
    invitation = int(invitation_header) if invitation_header.strip().isdigit() else None
    original_id = original.get("Message-ID") if original is not None else None
    feedback = _feedback(message)
    if feedback is not None:
        if (feedback.get("Feedback-Type") or "abuse").strip().lower() in NOT_COMPLAINTS:
            return Report(key, "none", [])
        recipients = _addresses(
            feedback.get_all("Original-Rcpt-To")
            or ([original.get("To")] if original is not None and original.get("To") else [])
        )
        return Report(
            key, "complaint", recipients, invitation, original_id, f"feedback-type {feedback.get('Feedback-Type')}"
        )
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector choking on a broken message: the message is left for a person
        return Report(key, "none", [])
    if permanent:
        return Report(key, "hard", _addresses(permanent), invitation, original_id, _diagnostic(message))
    if temporary:
        return Report(key, "soft", _addresses(temporary), invitation, original_id, _diagnostic(message))
    return Report(key, "none", [])


@dataclass
class BounceImport:
    """What one `cxctl bounces import` did."""

    source: str
    read: int = 0
    hard: int = 0
    soft: int = 0
    complaints: int = 0
    not_bounces: int = 0  # auto-replies and the like: left in the mailbox
    already_imported: int = 0
    unmatched: int = 0  # a bounce for an address no contact or invitation has
    suppressed: int = 0
    cancelled: int = 0  # planned invitations cancelled after a complaint
    moved: int = 0
    matched_by: dict[str, int] = field(default_factory=dict)


def _invitation(db: sqlite_utils.Database, report: Report, hashed: str) -> tuple[tuple | None, str | None]:
    """(id, moment, sent_at, address hash) of the invitation the report is about, and how it was found."""
    query = (
        "SELECT i.id, i.moment, COALESCE(i.sent_at, i.send_at), COALESCE(c.email_hash, ?) FROM invitations i"
        " JOIN contacts c ON c.id = i.contact_id WHERE "
    )
    if report.invitation is not None:
        found = db.execute(query + "i.id = ?", [hashed, report.invitation]).fetchone()
        # The header is only trusted when the address agrees: a forged report cannot suppress someone else.
        if found is not None and found[3] == hashed:
            return found, "header"
    if report.original_message_id:
        found = db.execute(query + "i.message_id = ?", [hashed, report.original_message_id.strip()]).fetchone()
        if found is not None and found[3] == hashed:
            return found, "message_id"
    found = db.execute(
        query + "c.email_hash = ? AND i.status IN ('sent', 'bounced') ORDER BY i.sent_at DESC LIMIT 1", [hashed, hashed]
    ).fetchone()
    return (found, "address") if found is not None else (None, None)


def import_bounces(
    ws: Workspace,
    db: sqlite_utils.Database,
    source: Source,
    now: datetime,
    *,
    move_to: str | None = None,
    name: str | None = None,
) -> BounceImport:
    """Read every message of `source`, record the bounces and complaints, apply them; move the processed
    messages (bounces, complaints, already imported) to `move_to` when given."""
    result = BounceImport(name or source.name)
    processed: list[str] = []
    stamp = to_db(now)
    local = ZoneInfo(ws.settings.timezone)
    limit = ws.deliverability.soft_bounce_limit
    for key, raw in source.messages():
        result.read += 1
        report = read_report(raw)
        if report.kind == "none" or not report.recipients:
            result.not_bounces += 1
            continue
        processed.append(key)
        db.execute("BEGIN IMMEDIATE")
        try:
            for address in report.recipients:
                _apply(db, report, address, result, stamp, local, limit)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    if move_to and processed:
        result.moved = source.move(processed, move_to)
    return result


def _apply(
    db: sqlite_utils.Database,
    report: Report,
    address: str,
    result: BounceImport,
    stamp: str,
    local: ZoneInfo,
    limit: int,
) -> None:
    hashed = email_hash(address)
    found, how = _invitation(db, report, hashed)
    known = found is not None or db.execute("SELECT 1 FROM contacts WHERE email_hash = ?", [hashed]).fetchone()
    sent_day = None
    if found is not None and found[2]:
        from cxctl.core.timeutil import from_db

        sent = from_db(found[2])
        sent_day = sent.astimezone(local).date().isoformat() if sent else None
    inserted = db.execute(
        "INSERT OR IGNORE INTO bounces (report_key, email_hash, kind, invitation_id, moment, sent_day,"
        " matched_by, diagnostic, source, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            report.key,
            hashed,
            report.kind,
            found[0] if found else None,
            found[1] if found else None,
            sent_day,
            how,
            report.diagnostic,
            result.source,
            stamp,
        ],
    ).rowcount
    if not inserted:
        result.already_imported += 1
        return
    setattr(
        result,
        {"hard": "hard", "soft": "soft", "complaint": "complaints"}[report.kind],
        getattr(result, {"hard": "hard", "soft": "soft", "complaint": "complaints"}[report.kind]) + 1,
    )
    if how:
        result.matched_by[how] = result.matched_by.get(how, 0) + 1
    if not known:
        result.unmatched += 1
        return
    note = f"{report.kind} bounce" if report.kind != "complaint" else "spam complaint"
    if report.kind == "hard" and found is not None:
        db.execute(
            "UPDATE invitations SET status = 'bounced', last_error = ?, updated_at = ? WHERE id = ? AND status = 'sent'",
            [f"late bounce: {report.diagnostic or 'permanent failure'}", stamp, found[0]],
        )
    suppress = report.kind in ("hard", "complaint")
    if report.kind == "soft":
        count = db.execute("SELECT COUNT(*) FROM bounces WHERE email_hash = ? AND kind = 'soft'", [hashed]).fetchone()[
            0
        ]
        suppress, note = count >= limit, f"{count} soft bounces (deliverability.soft_bounce_limit: {limit})"
    if suppress:
        result.suppressed += db.execute(
            "INSERT OR IGNORE INTO suppressions (email_hash, email, reason, source, note, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [
                hashed,
                address,
                "complaint" if report.kind == "complaint" else "bounce",
                "bounces import",
                f"{note}, invitation {found[0] if found else '?'}",
                stamp,
            ],
        ).rowcount
    if report.kind == "complaint":
        # A complaint is about the sender, not one survey: every moment stops for this person.
        result.cancelled += db.execute(
            "UPDATE invitations SET status = 'cancelled', last_error = 'spam complaint', updated_at = ?"
            " WHERE contact_id IN (SELECT id FROM contacts WHERE email_hash = ?)"
            " AND (status = 'planned' OR (status = 'failed' AND next_attempt_at IS NOT NULL))",
            [stamp, hashed],
        ).rowcount
