"""Events import: what happened to whom and when (order_delivered, ticket_closed…), the triggers of
transactional and in-the-moment surveys.

A row names its contact by external id or email, its type (`--type` for every row; else a type
column, else the mapping's `event_type`; written like `Order delivered` it is stored as
`order_delivered`), its time and any other
columns as attributes. Times: ISO 8601 with an offset as given; naive times and dates in the workspace
time zone; dd/mm/yyyy read day first unless `--date-format` says otherwise; stored in UTC.

Each event has a key: `<type>:<id>` when the file has an id column, else a digest of the normalised
row (contact, type, UTC time, attributes). Keys are unique, so re-importing a file adds nothing.
Rows are staged in a TEMP table and resolved to contacts set-based, like contacts imports.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import sqlite_utils

from cxctl.audience import values
from cxctl.audience.contacts import (
    FORGOTTEN,
    ImportLog,
    ImportResult,
    import_transaction,
    open_input,
    pick_mapping,
    previous_import,
    readable_rows,
)
from cxctl.core import emails
from cxctl.core.csvnames import normalise_header
from cxctl.core.errors import UsageError
from cxctl.core.timeutil import to_db
from cxctl.workspace.loader import Workspace
from cxctl.workspace.presets import resolve

CHUNK = 20_000


def import_events(
    ws: Workspace | None,
    db: sqlite_utils.Database,
    path: Path | str,
    now: datetime,
    *,
    event_type: str | None = None,
    create_contacts: bool = False,
    mapping_id: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    date_format: str | None = None,
    decimal_comma: bool | None = None,
    dry_run: bool = False,
) -> ImportResult:
    """Import an events file; unknown contacts are rejected (or created from the email with create_contacts)."""
    path = Path(path)
    mapping = pick_mapping(ws, mapping_id, "events")
    zone = ws.settings.timezone if ws else "UTC"
    with open_input(path, mapping, encoding, delimiter) as table:
        resolved = resolve(table.header, table.keys, "events", mapping)
        if decimal_comma is not None:
            resolved.decimal_comma = decimal_comma
        date_format = date_format or resolved.date_format
        fixed_type = event_type or resolved.event_type
        idx = {name: resolved.field_index(name) for name in ("event_id", "external_id", "email", "type", "occurred_at")}
        if idx["external_id"] is None and idx["email"] is None:
            raise UsageError(
                f"{path}: no column names the contact (columns: {', '.join(table.header)}): add an external id "
                f"or email column, or declare a mapping with --mapping"
            )
        if idx["occurred_at"] is None:
            raise UsageError(
                f"{path}: no date column (columns: {', '.join(table.header)}): name it 'date' or 'occurred_at', "
                f"or map it in a mapping (--mapping)"
            )
        if idx["type"] is None and not fixed_type:
            raise UsageError(f"{path}: no event type column: give --type, e.g. --type order_delivered")
        result = ImportResult(
            str(path),
            "events",
            table.sha256,
            table.encoding,
            table.delimiter,
            None,
            resolved.describe(),
            dry_run=dry_run,
            previously_imported=previous_import(db, "events", table.sha256),
        )
        if fixed_type:
            result.columns["(--type)"] = fixed_type
        # The id column stays an attribute too: templates and filters want the order or ticket number.
        attributes = [
            (c.name if c.target == "attribute" else table.keys[c.index], c.index)
            for c in resolved.columns
            if c.target == "attribute" or (c.target == "field" and c.name == "event_id")
        ]
        comma = resolved.decimal_comma
        sized = [(name, index) for name, index in idx.items() if index is not None]
        type_map = resolved.values.get("type", {})
        forgotten = {r[0] for r in db.execute("SELECT email_hash FROM forgotten")}
        log = ImportLog(path, table.header, dry_run)
        day_first = 0
        dst: dict[str, list[str]] = {"ambiguous": [], "skipped": []}

        def convert(fields: list[str]) -> tuple:
            nonlocal day_first

            def get(name: str) -> str:
                index = idx[name]
                return fields[index].strip() if index is not None else ""

            for name, index in sized:
                values.check_length(fields[index], f"column {table.header[index]!r} ({name})", values.FIELD_LIMIT)
            external_id, raw_email = get("external_id"), get("email")
            email = email_hash = None
            if raw_email:
                email = emails.normalise(raw_email)
                email_hash = hashlib.sha256(email.lower().encode()).hexdigest()
                if email_hash in forgotten:
                    raise ValueError(FORGOTTEN)
            elif not external_id:
                raise ValueError("no contact: fill the external id or the email")
            kind = event_type or get("type") or resolved.event_type
            if not kind:
                raise ValueError("no event type: fill the type column or give --type")
            kind = normalise_header(type_map.get(kind.lower(), kind))
            moment, was_day_first = values.timestamp(get("occurred_at"), zone, date_format)
            day_first += was_day_first
            reading = values.dst_reading(moment)
            if reading:
                dst[reading].append(get("occurred_at"))
            occurred = to_db(moment)
            attrs = {
                k: values.check_length(fields[i].strip(), f"column {table.header[i]!r}", values.ATTRIBUTE_LIMIT)
                for k, i in attributes
                if fields[i].strip()
            }
            if comma:
                attrs = {k: values.decimal_comma(v) for k, v in attrs.items()}
            attrs_json = json.dumps(attrs, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
            event_id = get("event_id")
            if event_id:
                key = f"{kind}:{event_id}"
            else:
                who = external_id or "@" + (email_hash or "")
                key = (
                    kind
                    + ":"
                    + hashlib.sha256("\x1f".join((who, kind, occurred, attrs_json)).encode()).hexdigest()[:32]
                )
            return (key, external_id or None, email, email_hash, kind, occurred, attrs_json)

        try:
            with import_transaction(db, log, result, now, dry_run):
                db.execute("DROP TABLE IF EXISTS temp.stage_events")
                db.execute(
                    "CREATE TEMP TABLE stage_events (k TEXT PRIMARY KEY, rn INTEGER NOT NULL, external_id TEXT, email TEXT, "
                    "email_hash TEXT, type TEXT, occurred_at TEXT, attributes TEXT, raw TEXT, contact_id INTEGER)"
                )
                # An event happens once: of two rows with the same key, the first is kept.
                sql = (
                    "INSERT OR IGNORE INTO stage_events (k, rn, external_id, email, email_hash, type, occurred_at, attributes, raw) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                )
                batch, staged = [], 0
                for number, fields in readable_rows(table, result, log):
                    try:
                        row = convert(fields)
                    except ValueError as exc:
                        log.reject(number, fields, str(exc))
                        continue
                    batch.append((row[0], number, *row[1:], json.dumps(fields, ensure_ascii=False)))
                    if len(batch) >= CHUNK:
                        db.conn.executemany(sql, batch)
                        staged, batch = staged + len(batch), []
                if batch:
                    db.conn.executemany(sql, batch)
                    staged += len(batch)
                result.footer = table.footer
                kept = db.execute("SELECT COUNT(*) FROM stage_events").fetchone()[0]
                result.duplicates = staged - kept
                _resolve_contacts(db)
                if create_contacts:
                    result.created_contacts = _create_contacts(db, now)
                    _resolve_contacts(db)
                for number, raw, external_id, email in db.execute(
                    "SELECT rn, raw, external_id, email FROM stage_events WHERE contact_id IS NULL ORDER BY rn"
                ).fetchall():
                    who = " / ".join(x for x in (f"external id {external_id}" if external_id else "", email or "") if x)
                    fix = "import the contact first" + (
                        "" if create_contacts or not email else ", or use --create-contacts"
                    )
                    log.reject(number, json.loads(raw), f"unknown contact ({who}): {fix}")
                resolved_count = db.execute(
                    "SELECT COUNT(*) FROM stage_events WHERE contact_id IS NOT NULL"
                ).fetchone()[0]
                cur = db.execute(
                    "INSERT OR IGNORE INTO events (event_key, contact_id, type, occurred_at, attributes, source, imported_at) "
                    "SELECT k, contact_id, type, occurred_at, attributes, ?, ? FROM stage_events WHERE contact_id IS NOT NULL ORDER BY rn",
                    [path.name, to_db(now)],
                )
                result.inserted = cur.rowcount
                result.unchanged = resolved_count - result.inserted
                if dst["ambiguous"]:
                    result.notes.append(
                        f"{len(dst['ambiguous'])} local time(s) happen twice at the autumn clock change "
                        f"(e.g. {dst['ambiguous'][0]!r}): read as the first, summer-time one; give an "
                        f"offset (+01:00) in the file to say otherwise"
                    )
                if dst["skipped"]:
                    result.notes.append(
                        f"{len(dst['skipped'])} local time(s) do not exist at the spring clock change "
                        f"(e.g. {dst['skipped'][0]!r}): read one hour later"
                    )
                if day_first:
                    result.notes.append(
                        f"{day_first} date(s) read day first (dd/mm/yyyy); if the file is month-first, "
                        f"import it again with --date-format %m/%d/%Y"
                    )
        finally:
            db.execute("DROP TABLE IF EXISTS temp.stage_events")
    return result


def _resolve_contacts(db: sqlite_utils.Database) -> None:
    """Contact of each staged event: by external id, then by email (the oldest contact with it)."""
    db.execute(
        "UPDATE stage_events SET contact_id = c.id FROM contacts c "
        "WHERE stage_events.contact_id IS NULL AND stage_events.external_id IS NOT NULL AND c.external_id = stage_events.external_id"
    )
    db.execute(
        "UPDATE stage_events SET contact_id = m.id FROM "
        "(SELECT email_hash, MIN(id) AS id FROM contacts WHERE email_hash IS NOT NULL GROUP BY email_hash) m "
        "WHERE stage_events.contact_id IS NULL AND stage_events.email_hash = m.email_hash"
    )


def _create_contacts(db: sqlite_utils.Database, now: datetime) -> int:
    """Create a contact for each unresolved person that has an email (one per external id, else per address)."""
    stamp = to_db(now)
    cur = db.execute(
        "INSERT INTO contacts (external_id, email, email_hash, created_at, updated_at) "
        "SELECT external_id, email, email_hash, ?, ? FROM stage_events "
        "WHERE contact_id IS NULL AND email IS NOT NULL AND rn IN "
        "(SELECT MIN(rn) FROM stage_events WHERE contact_id IS NULL AND email IS NOT NULL GROUP BY COALESCE(external_id, email_hash)) "
        "ORDER BY rn",
        [stamp, stamp],
    )
    return cur.rowcount
