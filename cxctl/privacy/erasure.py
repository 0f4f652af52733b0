"""Personal data under the GDPR: erase a person (`forget`) and export what is stored about them
(`export-person`, subject access). Retention periods (`db prune`) are in cxctl.privacy.retention.

Erasure keeps what is needed so that nothing else changes: the contact row stays (with its id and the
non-identifying segment, country, language and role, so past scorecards and their breakdowns do not
move), numeric scores stay, and a SHA-256 hash of the address goes into `forgotten` and `suppressions`
so a later import cannot bring the person back into a campaign. Everything that identifies or
describes the person (address, names, company, external id, attributes, event details, open answers,
notes, unmatched response rows, rendered messages) is erased.

Each operation runs in one transaction; `dry_run` runs the same statements and rolls them back, so
the counts it reports are exact.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import sqlite_utils

from cxctl.core import emails
from cxctl.core.errors import UsageError
from cxctl.core.timeutil import to_db
from cxctl.store import email_hash
from cxctl.workspace.loader import Workspace

INVITATION_HEADER = "X-Cxctl-Invitation"
FORGOTTEN_MARK = "[forgotten]"
# Contact columns kept by forget and retention: alone they do not identify anyone, and scorecards are
# broken down by them. Every other column (address, names, company, external id, time zone, and any
# column added later) is erased; attributes become '{}'.
KEPT_CONTACT_COLUMNS = (
    "id",
    "language",
    "country",
    "segment",
    "role",
    "attributes",
    "created_at",
    "updated_at",
    "forgotten_at",
)
# Tables whose every text cell is searched for the address (the safety net after the targeted erasure).
_SKIP_SWEEP = {"migrations", "forgotten", "sqlite_sequence"}


class PersonNotFound(UsageError):
    """No contact has this external id: the argument is wrong (exit 2, like `plan --explain` and `preview`)."""


@dataclass
class Person:
    """Who a forget/export request designates: the matching contacts and their address, if known."""

    target: str
    contact_ids: list[int]
    email: str | None
    email_hash: str | None
    emails: list[str] = field(default_factory=list)  # every stored spelling of the address


@dataclass
class ForgetResult:
    """What `forget` erased (or would erase with dry_run): rows changed per table, files removed."""

    target: str
    email_hash: str | None
    contacts: list[int]
    already_forgotten: bool
    changes: dict[str, int]
    files: list[str]
    dry_run: bool


class _DryRun(Exception):
    """Raised inside the transaction to roll it back after counting."""


@contextmanager
def _transaction(db: sqlite_utils.Database, dry_run: bool) -> Iterator[None]:
    """One write transaction; rolled back on error, and on purpose when dry_run."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        if dry_run:
            raise _DryRun
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def changed_rows(db: sqlite_utils.Database, sql: str, params: Any = ()) -> int:
    return max(db.execute(sql, params).rowcount, 0)


# --- finding the person ---------------------------------------------------------------------------


def find_person(db: sqlite_utils.Database, target: str) -> Person:
    """Resolve an external id or an email address to the contacts it designates.

    An address designates every contact with that address (one person may have several CRM ids);
    an external id designates its contact and every other contact with the same address.
    Raises UsageError for an invalid address, PersonNotFound for an unknown external id.
    """
    target = (target or "").strip()
    if not target:
        raise UsageError("no contact given: pass an external id or an email address, e.g. `cxctl forget C-1042`")
    email: str | None = None
    # Some CRMs use the address as the external id: an exact external id match wins.
    by_external_id = [r[0] for r in db.execute("SELECT id FROM contacts WHERE external_id = ?", [target]).fetchall()]
    if "@" in target and not by_external_id:
        try:
            email = emails.normalise(target)
        except ValueError as exc:
            raise UsageError(f"{exc}: pass the address as stored, e.g. jean.dupont@example.com") from None
        ids = []
    else:
        ids = by_external_id
        if not ids:
            raise PersonNotFound(
                f"no contact has the external id {target!r}: check the id, or pass the email address "
                "(a forgotten contact has no external id any more)"
            )
        row = db.execute("SELECT email FROM contacts WHERE id = ? AND email IS NOT NULL", [ids[0]]).fetchone()
        if row and emails.is_valid(row[0]):
            email = emails.normalise(row[0])
    hashed = email_hash(email) if email else None
    if email:
        more = db.execute(
            "SELECT id FROM contacts WHERE email_hash = ? OR lower(email) = lower(?)", [hashed, email]
        ).fetchall()
        ids = sorted(set(ids) | {r[0] for r in more})
    spellings = {email} if email else set()
    if ids:
        marks = ",".join("?" * len(ids))
        for (stored,) in db.execute(
            f"SELECT DISTINCT email FROM contacts WHERE id IN ({marks}) AND email IS NOT NULL", ids
        ):
            spellings.add(stored)
        for (stored,) in db.execute(
            f"SELECT DISTINCT email FROM invitations WHERE contact_id IN ({marks}) AND email IS NOT NULL", ids
        ):
            spellings.add(stored)
    return Person(target, ids, email, hashed, sorted(s for s in spellings if s))


# --- erasing ----------------------------------------------------------------------------------------


def free_and_fixed_questions(ws: Workspace | None) -> tuple[list[str], list[str]]:
    """(free-text question ids, fixed-answer question ids) of the workspace."""
    if ws is None:
        return [], []
    free = [qid for qid, q in ws.questions.items() if q.type == "open"]
    fixed = [qid for qid, q in ws.questions.items() if q.type != "open"]
    return free, fixed


def load_contact_ids(db: sqlite_utils.Database, ids: list[int]) -> None:
    """Put the contact ids in a temp table so every statement is one set-based UPDATE."""
    db.execute("CREATE TEMP TABLE IF NOT EXISTS _privacy_ids (id INTEGER PRIMARY KEY)")
    db.execute("DELETE FROM _privacy_ids")
    db.conn.executemany("INSERT OR IGNORE INTO _privacy_ids (id) VALUES (?)", [(i,) for i in ids])


def erase_contacts(db: sqlite_utils.Database, ws: Workspace | None, now: datetime) -> dict[str, int]:
    """Erase the personal data of the contacts in _privacy_ids; keep ids, categories and scores."""
    stamp = to_db(now)
    free, fixed = free_and_fixed_questions(ws)
    changes: dict[str, int] = {}
    # Opt-outs stay honoured through their hash; the address and note written with them go.
    changes["suppressions"] = changed_rows(
        db,
        "UPDATE suppressions SET email = NULL, note = NULL WHERE (email IS NOT NULL OR note IS NOT NULL) AND email_hash IN "
        "(SELECT email_hash FROM contacts WHERE id IN (SELECT id FROM _privacy_ids) AND email_hash IS NOT NULL)",
    )
    # The same for numbers: an SMS STOP stays honoured through the number's hash (issue 16).
    changes["suppressions"] += changed_rows(
        db,
        "UPDATE sms_suppressions SET phone = NULL, note = NULL WHERE (phone IS NOT NULL OR note IS NOT NULL) AND phone_hash IN "
        "(SELECT phone_hash FROM contacts WHERE id IN (SELECT id FROM _privacy_ids) AND phone_hash IS NOT NULL)",
    )
    erased = [c.name for c in db["contacts"].columns if c.name not in KEPT_CONTACT_COLUMNS and not c.notnull]
    nulls = ", ".join(f"[{name}] = NULL" for name in erased)
    changes["contacts"] = changed_rows(
        db,
        f"UPDATE contacts SET {nulls}, attributes = '{{}}', updated_at = ?, forgotten_at = COALESCE(forgotten_at, ?) "
        "WHERE id IN (SELECT id FROM _privacy_ids)",
        [stamp, stamp],
    )
    # The event key is often an order or ticket number: replaced by a random unique key, unlinkable.
    changes["events"] = changed_rows(
        db,
        "UPDATE events SET attributes = '{}', event_key = 'forgotten:' || hex(randomblob(12)) || ':' || id "
        "WHERE contact_id IN (SELECT id FROM _privacy_ids) AND (attributes != '{}' OR event_key NOT LIKE 'forgotten:%')",
    )
    changes["invitations"] = changed_rows(
        db,
        "UPDATE invitations SET email = NULL, phone = NULL, last_error = NULL "
        "WHERE contact_id IN (SELECT id FROM _privacy_ids) AND (email IS NOT NULL OR phone IS NOT NULL OR last_error IS NOT NULL)",
    )
    person_responses = (
        "SELECT id FROM responses WHERE contact_id IN (SELECT id FROM _privacy_ids) "
        "OR invitation_id IN (SELECT id FROM invitations WHERE contact_id IN (SELECT id FROM _privacy_ids))"
    )
    # Free text: open questions, and any text answer to a question the workspace does not declare as
    # fixed-answer (choice ids and scores are kept: they are the anonymised part of the response).
    free_marks = ",".join("?" * len(free)) or "NULL"
    fixed_marks = ",".join("?" * len(fixed)) or "NULL"
    changes["answers"] = changed_rows(
        db,
        f"UPDATE answers SET value_text = NULL WHERE value_text IS NOT NULL AND response_id IN ({person_responses}) "
        f"AND (question IN ({free_marks}) OR (question NOT IN ({fixed_marks}) AND value_num IS NULL))",
        [*free, *fixed],
    )
    # The call-back notes and outcomes may quote the person: cleared with the case's history notes.
    changes["followups"] = changed_rows(
        db,
        f"UPDATE followups SET note = NULL, outcome = NULL WHERE (note IS NOT NULL OR outcome IS NOT NULL) "
        f"AND response_id IN ({person_responses})",
    ) + changed_rows(
        db, f"UPDATE followup_history SET note = NULL WHERE note IS NOT NULL AND response_id IN ({person_responses})"
    )
    return changes


def _sweep_text(db: sqlite_utils.Database, needles: list[str]) -> int:
    """Replace every remaining occurrence of the address in any text cell of any table.

    The safety net for columns cxctl adds later or that hold raw input (error messages, JSON):
    matched case-insensitively with LIKE, replaced in Python, written back by rowid.
    """
    needles = [n for n in needles if n and len(n) >= 3]
    if not needles:
        return 0
    pattern = re.compile("|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True)), re.IGNORECASE)
    changed = 0
    for table in db.table_names():
        if table in _SKIP_SWEEP or table.startswith("_"):
            continue
        # WITHOUT ROWID tables (e.g. answers) are addressed by their primary key instead of rowid.
        keys = db.table(table).pks  # a table, not a view: the name comes from table_names()
        key_list = ", ".join(f"[{k}]" for k in keys)
        key_where = " AND ".join(f"[{k}] = ?" for k in keys)
        columns = [c.name for c in db[table].columns if c.type.upper() in ("TEXT", "") or "CHAR" in c.type.upper()]
        for column in columns:
            where = " OR ".join(f"[{column}] LIKE ? ESCAPE '\\'" for _ in needles)
            params = ["%" + n.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for n in needles]
            rows = db.execute(f"SELECT {key_list}, [{column}] FROM [{table}] WHERE {where}", params).fetchall()
            for *key, value in rows:
                if isinstance(value, str):
                    db.execute(
                        f"UPDATE [{table}] SET [{column}] = ? WHERE {key_where}",
                        [pattern.sub(FORGOTTEN_MARK, value), *key],
                    )
                    changed += 1
    return changed


def invitation_keys(db: sqlite_utils.Database) -> set[str]:
    """Ids and tokens of the invitations of the contacts in _privacy_ids (how messages name them), and the
    label of their previews (`cxctl preview --contact`)."""
    from cxctl.delivery.render import PREVIEW_KEY

    keys: set[str] = set()
    for inv_id, token, message_id in db.execute(
        "SELECT id, token, message_id FROM invitations WHERE contact_id IN (SELECT id FROM _privacy_ids)"
    ):
        keys.update(str(v).strip("<>") for v in (inv_id, token, message_id) if v)
    keys.update(f"{PREVIEW_KEY}{contact_id}" for (contact_id,) in db.execute("SELECT id FROM _privacy_ids"))
    return keys


def message_files(folder: Path, keys: set[str]) -> list[Path]:
    """The rendered messages (.eml) in `folder` whose X-Cxctl-Invitation header is one of `keys`, with the
    .html written beside a preview."""
    if not keys or not folder.is_dir():
        return []
    parser = BytesHeaderParser()
    found = []
    for path in sorted(folder.rglob("*.eml")):
        try:
            with path.open("rb") as handle:
                headers = parser.parse(handle)
        except OSError:
            continue
        value = headers.get(INVITATION_HEADER)
        if value is not None and str(value).strip().strip("<>") in keys:
            found.append(path)
            if path.with_suffix(".html").is_file():
                found.append(path.with_suffix(".html"))
    return found


def forget(
    ws: Workspace | None, db: sqlite_utils.Database, target: str, now: datetime, *, dry_run: bool = False
) -> ForgetResult:
    """Erase a person's personal data everywhere, keep their scores anonymised, block re-import.

    `target` is an external id or an email address. Returns what changed (or would, with dry_run).
    The rendered messages are deleted after the database commit, so a failed commit loses nothing.
    """
    person = find_person(db, target)
    stamp = to_db(now)
    already = (
        bool(person.email_hash)
        and db.execute("SELECT 1 FROM forgotten WHERE email_hash = ?", [person.email_hash]).fetchone() is not None
    )
    with transaction(db, dry_run) as box:
        load_contact_ids(db, person.contact_ids)
        keys = invitation_keys(db)
        changes = erase_contacts(db, ws, now)
        # Unmatched response rows and import rejects may hold anything the person wrote: deleted.
        needles = [*person.emails, *(k for k in keys if "." in k)]
        quarantined = 0
        for needle in needles:
            quarantined += changed_rows(db, "DELETE FROM quarantine WHERE instr(lower(raw), lower(?)) > 0", [needle])
        changes["quarantine"] = quarantined
        if person.email_hash:
            changes["suppressions"] += changed_rows(
                db,
                "UPDATE suppressions SET email = NULL, note = NULL WHERE email_hash = ? AND (email IS NOT NULL OR note IS NOT NULL)",
                [person.email_hash],
            )
            changes["suppressions"] += changed_rows(
                db,
                "INSERT OR IGNORE INTO suppressions (email_hash, email, reason, source, note, created_at) "
                "VALUES (?, NULL, 'do_not_contact', 'forget', NULL, ?)",
                [person.email_hash, stamp],
            )
            changes["forgotten"] = changed_rows(
                db,
                "INSERT OR IGNORE INTO forgotten (email_hash, forgotten_at) VALUES (?, ?)",
                [person.email_hash, stamp],
            )
        changes["other"] = _sweep_text(db, person.emails)
        box.append(changes)
        box.append(keys)
    changes, keys = box
    files = message_files(ws.outbox_dir, keys) if ws is not None else []
    if not dry_run:
        for path in files:
            path.unlink(missing_ok=True)
    return ForgetResult(
        target=person.target if "@" not in person.target else (person.email or person.target),
        email_hash=person.email_hash,
        contacts=person.contact_ids,
        already_forgotten=already,
        changes=changes,
        files=[str(p) for p in files],
        dry_run=dry_run,
    )


@contextmanager
def transaction(db: sqlite_utils.Database, dry_run: bool) -> Iterator[list]:
    """One erasing transaction; yields a list the body fills with what it counted.

    secure_delete makes SQLite overwrite freed content with zeros (many builds leave it off), and the
    checkpoint after the commit moves the scrubbed pages into the database file and empties the WAL,
    so the erased values do not linger in either file. The dry-run rollback is swallowed here.
    """
    box: list = []
    db.execute("PRAGMA secure_delete = ON")
    try:
        with _transaction(db, dry_run):
            yield box
    except _DryRun:
        return
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


# --- subject access ---------------------------------------------------------------------------------


def _rows(db: sqlite_utils.Database, sql: str, params: Any = ()) -> list[dict[str, Any]]:
    cursor = db.execute(sql, params)
    names = [d[0] for d in cursor.description]
    out = []
    for row in cursor.fetchall():
        item = dict(zip(names, row, strict=True))
        for key in ("attributes",):
            if isinstance(item.get(key), str):
                with contextlib.suppress(ValueError):
                    item[key] = json.loads(item[key])
        out.append(item)
    return out


def export_person(db: sqlite_utils.Database, target: str, now: datetime) -> dict[str, Any]:
    """Everything stored about a person, as plain data (GDPR subject access).

    Invitation tokens are left out: they are credentials (a link answers or unsubscribes in the
    person's name), not information about them.
    """
    person = find_person(db, target)
    ids = person.contact_ids
    marks = ",".join("?" * len(ids)) or "NULL"
    invitation_columns = (
        "id, moment, kind, wave, event_id, parent_id, language, email, send_at, status, attempts, "
        "last_error, message_id, sent_at, created_at, updated_at"
    )
    responses = _rows(
        db,
        f"SELECT * FROM responses WHERE contact_id IN ({marks}) OR invitation_id IN "
        f"(SELECT id FROM invitations WHERE contact_id IN ({marks})) ORDER BY submitted_at, id",
        [*ids, *ids],
    )
    for response in responses:
        response["answers"] = _rows(
            db,
            "SELECT question, value_num, value_text FROM answers WHERE response_id = ? ORDER BY question",
            [response["id"]],
        )
        response["followup"] = next(
            iter(_rows(db, "SELECT status, note, done_at FROM followups WHERE response_id = ?", [response["id"]])), None
        )
        response["followup"] = next(
            iter(
                _rows(
                    db,
                    "SELECT status, note, done_at, owner, due_at, opened_at, first_contact_at, "
                    "outcome FROM followups WHERE response_id = ?",
                    [response["id"]],
                )
            ),
            None,
        )
        if response["followup"] is not None:
            response["followup"]["history"] = _rows(
                db,
                "SELECT at, by, action, from_status, to_status, owner, note FROM "
                "followup_history WHERE response_id = ? ORDER BY id",
                [response["id"]],
            )
    quarantine = []
    for spelling in person.emails:
        quarantine += _rows(db, "SELECT * FROM quarantine WHERE instr(lower(raw), lower(?)) > 0", [spelling])
    hashed = person.email_hash
    return {
        "request": {"target": target, "email": person.email, "email_hash": hashed, "exported_at": to_db(now) + "Z"},
        "contacts": _rows(db, f"SELECT * FROM contacts WHERE id IN ({marks}) ORDER BY id", ids),
        "events": _rows(db, f"SELECT * FROM events WHERE contact_id IN ({marks}) ORDER BY occurred_at, id", ids),
        "invitations": _rows(
            db, f"SELECT {invitation_columns} FROM invitations WHERE contact_id IN ({marks}) ORDER BY send_at, id", ids
        ),
        "responses": responses,
        "suppressions": _rows(
            db, "SELECT email, reason, source, note, created_at FROM suppressions WHERE email_hash = ?", [hashed]
        )
        if hashed
        else [],
        "quarantine": list({row["id"]: row for row in quarantine}.values()),
        "forgotten": _rows(db, "SELECT forgotten_at FROM forgotten WHERE email_hash = ?", [hashed]) if hashed else [],
    }


def is_forgotten(db: sqlite_utils.Database, email: str) -> bool:
    """True when this address was erased by `forget` (imports and the plan must not bring it back)."""
    return (
        db.execute("SELECT 1 FROM forgotten WHERE email_hash = ?", [email_hash(emails.normalise(email))]).fetchone()
        is not None
    )
