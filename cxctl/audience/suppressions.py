"""Suppressions: addresses that are never invited — opt-outs, hard bounces, complaints, do-not-contact.

Keyed by the email hash (`cxctl.store.email_hash` of the normalised address), so a suppression
outlives the contact and any later import: imports only ever add suppressions, and only
`cxctl suppress remove` takes one away. The planner excludes every contact whose email hash is here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlite_utils

from cxctl.audience import values
from cxctl.audience.contacts import ImportLog, ImportResult, import_transaction, previous_import, readable_rows
from cxctl.audience.csvio import open_csv
from cxctl.core import emails
from cxctl.core.errors import UsageError
from cxctl.core.timeutil import to_db
from cxctl.store import email_hash
from cxctl.workspace.presets import AUTO_CONTACTS

REASONS = ("opt_out", "bounce", "complaint", "do_not_contact")
REASON_WORDS = {
    "opt_out": (
        "opt_out",
        "optout",
        "opt-out",
        "unsubscribe",
        "unsubscribed",
        "desinscription",
        "désinscription",
        "desabonnement",
        "désabonnement",
        "desinscrit",
        "désinscrit",
        "stop",
    ),
    "bounce": ("bounce", "bounced", "hard_bounce", "hard bounce", "hardbounce", "npai", "invalid", "rebond"),
    "complaint": ("complaint", "spam", "abuse", "plainte", "signalement"),
    "do_not_contact": ("do_not_contact", "do not contact", "dnc", "ne pas contacter", "blacklist", "liste rouge"),
}
_REASON_BY_WORD = {w: r for r, words in REASON_WORDS.items() for w in words}
REASON_COLUMNS = ("reason", "raison", "motif", "type", "status", "statut")
DATE_COLUMNS = ("date", "created_at", "unsubscribed_at", "date_desinscription", "suppressed_at", "timestamp")
NOTE_COLUMNS = ("note", "comment", "commentaire", "notes")


@dataclass
class Suppression:
    """One suppressed address (the address may be empty after `db prune` erased it; the hash stays)."""

    email: str | None
    reason: str
    source: str | None
    note: str | None
    created_at: str


@dataclass
class SuppressOutcome:
    """Result of `suppress add` / `suppress remove`."""

    email: str
    changed: bool
    reason: str | None


def check_reason(reason: str) -> str:
    value = _REASON_BY_WORD.get(reason.strip().lower())
    if value is None:
        raise UsageError(f"unknown suppression reason {reason!r}: use one of {', '.join(REASONS)}")
    return value


def _address(email: str) -> str:
    try:
        return emails.normalise(email)
    except ValueError as exc:
        raise UsageError(f"{exc}: give a valid address, e.g. jeanne.martin@example.fr") from None


def add(
    db: sqlite_utils.Database, email: str, reason: str, now: datetime, note: str | None = None, source: str = "manual"
) -> SuppressOutcome:
    """Suppress an address; an already suppressed address keeps its first reason and date."""
    address, reason = _address(email), check_reason(reason)
    cur = db.execute(
        "INSERT OR IGNORE INTO suppressions (email_hash, email, reason, source, note, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        [email_hash(address), address, reason, source, note, to_db(now)],
    )
    if cur.rowcount:
        return SuppressOutcome(address, True, reason)
    existing = db.execute("SELECT reason FROM suppressions WHERE email_hash = ?", [email_hash(address)]).fetchone()
    return SuppressOutcome(address, False, existing[0])


def remove(db: sqlite_utils.Database, email: str) -> SuppressOutcome:
    """Lift a suppression (only on the person's own request: an opt-out is theirs to withdraw)."""
    address = _address(email)
    row = db.execute("SELECT reason FROM suppressions WHERE email_hash = ?", [email_hash(address)]).fetchone()
    if row is None:
        return SuppressOutcome(address, False, None)
    db.execute("DELETE FROM suppressions WHERE email_hash = ?", [email_hash(address)])
    return SuppressOutcome(address, True, row[0])


def is_suppressed(db: sqlite_utils.Database, email: str) -> bool:
    return (
        db.execute("SELECT 1 FROM suppressions WHERE email_hash = ?", [email_hash(emails.normalise(email))]).fetchone()
        is not None
    )


def list_suppressions(db: sqlite_utils.Database, reason: str | None = None) -> list[Suppression]:
    """All suppressions, newest first; `reason` filters."""
    sql = "SELECT email, reason, source, note, created_at FROM suppressions"
    params: list[str] = []
    if reason:
        sql += " WHERE reason = ?"
        params.append(check_reason(reason))
    sql += " ORDER BY created_at DESC, id DESC"
    return [Suppression(*row) for row in db.execute(sql, params).fetchall()]


def import_suppressions(
    db: sqlite_utils.Database,
    path: Path | str,
    now: datetime,
    *,
    reason: str = "opt_out",
    encoding: str | None = None,
    delimiter: str | None = None,
    time_zone: str = "UTC",
    dry_run: bool = False,
) -> ImportResult:
    """Import a list of addresses (an email column; optional reason, date and note columns).

    `inserted` counts new suppressions, `unchanged` addresses already suppressed."""
    path = Path(path)
    default_reason = check_reason(reason)
    with open_csv(path, encoding, delimiter) as table:
        keys = table.keys
        email_index = next(
            (i for i, k in enumerate(keys) if AUTO_CONTACTS.get(k) == "email"), 0 if len(keys) == 1 else None
        )
        if email_index is None:
            raise UsageError(
                f"{path}: no email column (columns: {', '.join(table.header)}): name it 'email' or 'courriel'"
            )
        find = lambda names: next((i for i, k in enumerate(keys) if k in names), None)  # noqa: E731
        reason_index, date_index, note_index = find(REASON_COLUMNS), find(DATE_COLUMNS), find(NOTE_COLUMNS)
        result = ImportResult(
            str(path),
            "suppressions",
            table.sha256,
            table.encoding,
            table.delimiter,
            None,
            {table.header[email_index]: "email"},
            dry_run=dry_run,
            previously_imported=previous_import(db, "suppressions", table.sha256),
        )
        log = ImportLog(path, table.header, dry_run)
        seen: set[str] = set()
        with import_transaction(db, log, result, now, dry_run):
            for number, fields in readable_rows(table, result, log):
                try:
                    address = emails.normalise(fields[email_index])
                    why: str | None = default_reason
                    if reason_index is not None and fields[reason_index].strip():
                        why = _REASON_BY_WORD.get(fields[reason_index].strip().lower())
                        if why is None:
                            raise ValueError(
                                f"unknown reason {fields[reason_index]!r}: use one of {', '.join(REASONS)}"
                            )
                    if note_index is not None:
                        values.check_length(
                            fields[note_index].strip(),
                            f"column {table.header[note_index]!r} (note)",
                            values.ATTRIBUTE_LIMIT,
                        )
                    stamp = to_db(now)
                    if date_index is not None and fields[date_index].strip():
                        stamp = to_db(values.timestamp(fields[date_index], time_zone)[0])
                except ValueError as exc:
                    log.reject(number, fields, str(exc))
                    continue
                key = email_hash(address)
                if key in seen:
                    result.duplicates += 1
                    continue
                seen.add(key)
                note = fields[note_index].strip() or None if note_index is not None else None
                cur = db.execute(
                    "INSERT OR IGNORE INTO suppressions (email_hash, email, reason, source, note, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    [key, address, why, "import", note or path.name, stamp],
                )
                if cur.rowcount:
                    result.inserted += 1
                else:
                    result.unchanged += 1
            result.footer = table.footer
    return result
