"""Contacts import: CRM and spreadsheet exports → the `contacts` table, losing nothing.

The bulk path streams the file (cxctl.csvio), checks and normalises each row with a converter
generated for the file's columns (cxctl.contact_rows), and stages the good rows in a TEMP table with
`executemany`, in chunks; the merge into `contacts` is then a few set-based statements. Rows are
merged by external id, then by email:

- within a file, rows with the same external id (or, without one, the same email) are duplicates:
  the last row wins; a row without external id whose email belongs to a row with one is merged into
  that row;
- across imports, a row matches the contact with its external id; failing that (or without an id),
  the contact with its email (a row with an id only adopts a contact that has none);
- `row_hash` (a digest of the row's used cells and of the mapping) tells unchanged contacts from
  updated ones, so a re-import of the same file writes nothing; an unchanged row with an external id
  is recognised before it is even converted. Columns absent from the file leave the contact's values
  untouched; an empty cell clears the field (or removes the attribute), except the email, which an
  import never erases.

Forgotten people (their email hash is in `forgotten`, see `cxctl forget`) are rejected with the
reason "forgotten (GDPR erasure)". Opt-out columns (the preset's, and `rules.suppression_sources`)
add the address to `suppressions`; later imports never remove a suppression.
"""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import sqlite_utils

from cxctl.campaign import Mapping
from cxctl.csvio import CsvTable, RejectsWriter, open_csv
from cxctl.errors import UsageError
from cxctl.loader import Workspace, did_you_mean
from cxctl.contact_rows import FORGOTTEN, build_converter  # noqa: F401  (FORGOTTEN: the reject reason, for callers)
from cxctl.presets import resolve
from cxctl.timeutil import to_db

CHUNK = 20_000
REJECTS_SHOWN = 20


@dataclass
class ImportResult:
    """What an import did (or, with dry_run, would do)."""

    file: str
    kind: str
    sha256: str
    encoding: str
    delimiter: str
    preset: str | None
    columns: dict[str, str]
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    rejected: int = 0
    suppressed: int = 0
    created_contacts: int = 0
    rejects_file: str | None = None
    rejects: list[dict] = field(default_factory=list)
    footer: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    previously_imported: str | None = None
    dry_run: bool = False

    def counts(self) -> dict[str, int]:
        keys = ("read", "inserted", "updated", "unchanged", "duplicates", "rejected", "suppressed")
        return {k: getattr(self, k) for k in keys}


def rejects_path(path: Path) -> Path:
    """`<input>.rejects.csv`, next to the input."""
    return path.with_name(path.name + ".rejects.csv")


def pick_mapping(ws: Workspace | None, mapping_id: str | None, kind: str) -> Mapping | None:
    """The workspace mapping named by `--mapping`, checked to be of the right kind."""
    if mapping_id is None:
        return None
    mappings = ws.mappings if ws else {}
    if mapping_id not in mappings:
        raise UsageError(f"unknown mapping {mapping_id!r}{did_you_mean(mapping_id, mappings)}: declare it under "
                         f"`mappings:` in the workspace YAML, or use --preset")
    mapping = mappings[mapping_id]
    if mapping.kind != kind:
        raise UsageError(f"mapping {mapping_id!r} is for {mapping.kind}, not {kind}: pick a {kind} mapping")
    return mapping


def open_input(path: Path, mapping: Mapping | None, encoding: str | None, delimiter: str | None) -> CsvTable:
    return open_csv(path, encoding or (mapping.encoding if mapping else None), delimiter or (mapping.delimiter if mapping else None))


class _Log:
    """Collects rejects: streamed to the rejects file (unless dry run), the first few kept for display."""

    def __init__(self, path: Path, header: list[str], dry_run: bool):
        self.writer = None if dry_run else RejectsWriter(rejects_path(path), header)
        self.shown: list[dict] = []
        self.count = 0
        if not dry_run and rejects_path(path).exists():
            rejects_path(path).unlink()  # a stale file from an earlier run would mislead

    def reject(self, number: int, fields: list[str], reason: str) -> None:
        self.count += 1
        if reason == FORGOTTEN:
            # The person asked to be erased: the rejects file must not copy their data back to disk.
            fields = [""] * len(fields)
        if len(self.shown) < REJECTS_SHOWN:
            self.shown.append({"row": number, "reason": reason})
        if self.writer is not None:
            self.writer.add(number, fields, reason)

    def close(self, result: ImportResult) -> None:
        result.rejected = self.count
        result.rejects = self.shown
        if self.writer is not None:
            self.writer.close()
            if self.writer.count:
                result.rejects_file = str(self.writer.path)


def previous_import(db: sqlite_utils.Database, kind: str, sha256: str) -> str | None:
    row = db.execute("SELECT imported_at FROM import_log WHERE kind = ? AND sha256 = ? ORDER BY id DESC LIMIT 1", [kind, sha256]).fetchone()
    return row[0] if row else None


def log_import(db: sqlite_utils.Database, result: ImportResult, now: datetime) -> None:
    db.execute(
        "INSERT INTO import_log (kind, file_name, sha256, rows_read, inserted, updated, unchanged, duplicates, rejected, imported_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [result.kind, Path(result.file).name, result.sha256, result.read, result.inserted, result.updated,
         result.unchanged, result.duplicates, result.rejected, to_db(now)],
    )


def import_contacts(ws: Workspace | None, db: sqlite_utils.Database, path: Path | str, now: datetime, *,
                    mapping_id: str | None = None, preset: str | None = None, encoding: str | None = None,
                    delimiter: str | None = None, date_format: str | None = None, decimal_comma: bool | None = None,
                    dry_run: bool = False) -> ImportResult:
    """Import a contacts file; returns the counts. Raises ImportFileError when the file is unreadable."""
    path = Path(path)
    mapping = pick_mapping(ws, mapping_id, "contacts")
    with open_input(path, mapping, encoding, delimiter) as table:
        resolved = resolve(table.header, table.keys, "contacts", mapping, preset)
        if date_format:
            resolved.date_format = date_format
        if decimal_comma is not None:
            resolved.decimal_comma = decimal_comma
        if resolved.field_index("email") is None and resolved.field_index("external_id") is None:
            raise UsageError(
                f"{path}: no column holds an email or an external id (columns: {', '.join(table.header)}): "
                f"declare a mapping with --mapping, or pick a --preset"
            )
        result = ImportResult(str(path), "contacts", table.sha256, table.encoding, table.delimiter, resolved.preset,
                              resolved.describe(), dry_run=dry_run, previously_imported=previous_import(db, "contacts", table.sha256))
        forgotten = {r[0] for r in db.execute("SELECT email_hash FROM forgotten")}
        convert, staged, attr_keys = build_converter(resolved, ws, forgotten)
        log = _Log(path, table.header, dry_run)
        cache = [db.execute(f"PRAGMA {schema}.cache_size").fetchone()[0] for schema in ("main", "temp")]
        # A bigger page cache keeps the indexes of a million-row table in memory while they are written.
        db.execute("PRAGMA main.cache_size = -65536")
        db.execute("PRAGMA temp.cache_size = -32768")
        db.execute("BEGIN IMMEDIATE")
        collecting = gc.isenabled()
        gc.disable()  # the loop makes a million short-lived lists and no cycles: collections are pure cost
        try:
            _stage_contacts(db, table, convert, staged, log, result)
            result.footer = table.footer
            _merge_contacts(db, staged, attr_keys, result, now)
            log.close(result)
            if dry_run:
                db.execute("ROLLBACK")
            else:
                log_import(db, result, now)
                db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            log.close(result)
            raise
        finally:
            if collecting:
                gc.enable()
            db.execute("DROP TABLE IF EXISTS temp.stage_contacts")
            db.execute(f"PRAGMA main.cache_size = {int(cache[0])}")
            db.execute(f"PRAGMA temp.cache_size = {int(cache[1])}")
    return result


def _stage_contacts(db: sqlite_utils.Database, table: CsvTable, convert, staged: list[str], log: _Log,
                    result: ImportResult) -> None:
    """Stream the good rows into temp.stage_contacts; keep only the last row of each key."""
    db.execute("DROP TABLE IF EXISTS temp.stage_contacts")
    columns = ("external_id", "email", "email_hash", *staged, "attributes", "row_hash", "suppress")
    # Column names are ours (CONTACT_FIELDS), never the file's.
    db.execute("CREATE TEMP TABLE stage_contacts (rn INTEGER PRIMARY KEY, " + ", ".join(f"{c} TEXT" for c in columns)
               + ", contact_id INTEGER)")
    sql = f"INSERT INTO stage_contacts (rn, {', '.join(columns)}) VALUES (?{', ?' * len(columns)})"
    executemany = db.conn.executemany
    seen: set[str] = set()
    repeated: set[str] = set()
    batch: list = []
    # Stored digests by external id (Python's hash of the text: a dict of a million ints, not strings).
    stored = {k: hash(h) for k, h in db.execute("SELECT external_id, row_hash FROM contacts WHERE external_id IS NOT NULL "
                                               "AND row_hash IS NOT NULL")}
    skipped: set[str] = set()
    stored_digest: dict[str, int] = {}
    digest, quick_key, suppressed = convert.digest, convert.key, convert.suppressed
    for number, fields, problem in table.rows():
        result.read += 1
        if problem:
            log.reject(number, fields, problem)
            continue
        if stored or skipped:
            ext = quick_key(fields)
            if ext and (suppressed is None or suppressed(fields) is None):
                if ext in seen:
                    if ext in skipped and hash(digest(fields)) == stored_digest.get(ext):
                        result.duplicates += 1
                        continue
                elif stored.get(ext) == hash(digest(fields)):
                    # Unchanged since the last import: nothing to convert, stage or write.
                    stored_digest[ext] = stored.pop(ext)
                    skipped.add(ext)
                    seen.add(ext)
                    continue
        try:
            row = convert(number, fields)
        except ValueError as exc:
            log.reject(number, fields, str(exc))
            continue
        key = row[1] or "@" + row[3]
        if key in seen:
            result.duplicates += 1
            if key in skipped:
                skipped.discard(key)  # the earlier copy was not staged: this row alone stands for the key
            else:
                repeated.add(key)
        else:
            seen.add(key)
        batch.append(row)
        if len(batch) >= CHUNK:
            executemany(sql, batch)
            batch = []
    if batch:
        executemany(sql, batch)
    result.unchanged += len(skipped)
    if repeated:
        # Within a file the last row of a key wins.
        db.execute("CREATE TEMP TABLE stage_repeated (k TEXT PRIMARY KEY)")
        db.conn.executemany("INSERT INTO stage_repeated (k) VALUES (?)", ((k,) for k in repeated))
        key = "COALESCE(external_id, '@' || email_hash)"
        db.execute(f"CREATE INDEX temp.stage_contacts_k ON stage_contacts({key})")
        db.execute(f"DELETE FROM stage_contacts WHERE {key} IN (SELECT k FROM stage_repeated) AND rn NOT IN "
                   f"(SELECT MAX(rn) FROM stage_contacts WHERE {key} IN (SELECT k FROM stage_repeated) GROUP BY {key})")
        db.execute("DROP TABLE temp.stage_repeated")


def _merge_contacts(db: sqlite_utils.Database, present: list[str], attr_keys: list[str], result: ImportResult,
                    now: datetime) -> None:
    """Set-based merge of the staged rows into contacts; fills the counts."""
    conn = db.conn
    stamp = to_db(now)
    existing = conn.execute("SELECT COUNT(*) FROM contacts").fetchone()[0]
    no_id = conn.execute("SELECT EXISTS (SELECT 1 FROM stage_contacts WHERE external_id IS NULL)").fetchone()[0]
    if no_id:
        conn.execute("CREATE INDEX temp.stage_contacts_hash ON stage_contacts(email_hash)")
        # A row without id whose email belongs to a row with one is the same person: merge into the latter.
        cur = conn.execute(
            "DELETE FROM stage_contacts WHERE external_id IS NULL AND email_hash IN "
            "(SELECT email_hash FROM stage_contacts WHERE external_id IS NOT NULL)"
        )
        result.duplicates += cur.rowcount
    if existing:
        conn.execute(
            "UPDATE stage_contacts SET contact_id = c.id FROM contacts c "
            "WHERE stage_contacts.external_id IS NOT NULL AND c.external_id = stage_contacts.external_id"
        )
        adopted = 0
        if conn.execute("SELECT EXISTS (SELECT 1 FROM stage_contacts WHERE contact_id IS NULL AND email_hash IS NOT NULL)").fetchone()[0]:
            adopted += conn.execute(
                "UPDATE stage_contacts SET contact_id = (SELECT MIN(c.id) FROM contacts c WHERE c.email_hash = stage_contacts.email_hash "
                "AND c.external_id IS NULL) WHERE contact_id IS NULL AND email_hash IS NOT NULL"
            ).rowcount
            conn.execute(
                "UPDATE stage_contacts SET contact_id = (SELECT MIN(c.id) FROM contacts c WHERE c.email_hash = stage_contacts.email_hash) "
                "WHERE contact_id IS NULL AND external_id IS NULL AND email_hash IS NOT NULL"
            )
        if adopted:
            conn.execute("CREATE INDEX temp.stage_contacts_contact ON stage_contacts(contact_id)")
            # Two rows with different ids adopting the same id-less contact: the last adopts it, the others are new people.
            conn.execute(
                "UPDATE stage_contacts SET contact_id = NULL WHERE contact_id IS NOT NULL AND external_id IS NOT NULL "
                "AND rn < (SELECT MAX(s.rn) FROM stage_contacts s WHERE s.contact_id = stage_contacts.contact_id)"
            )
            cur = conn.execute(
                "DELETE FROM stage_contacts WHERE external_id IS NULL AND contact_id IN "
                "(SELECT contact_id FROM stage_contacts WHERE external_id IS NOT NULL AND contact_id IS NOT NULL)"
            )
            result.duplicates += cur.rowcount
        matched = conn.execute("SELECT COUNT(*) FROM stage_contacts WHERE contact_id IS NOT NULL").fetchone()[0]
        # Field names come from CONTACT_FIELDS (ours), never from the file; attribute names are bound JSON paths.
        assignments = ["external_id = COALESCE(s.external_id, contacts.external_id)",
                       "email = COALESCE(s.email, contacts.email)", "email_hash = COALESCE(s.email_hash, contacts.email_hash)"]
        assignments += [f"{name} = s.{name}" for name in present]
        paths = ['$."' + key.replace('"', '""') + '"' for key in attr_keys]
        # The file's attribute columns replace the contact's (an empty cell removes one); others stay.
        attributes = f"json_patch(json_remove(contacts.attributes{', ?' * len(paths)}), s.attributes)" if paths else \
            "json_patch(contacts.attributes, s.attributes)"
        cur = conn.execute(
            "UPDATE contacts SET " + ", ".join(assignments) + f", attributes = {attributes}, "
            "row_hash = s.row_hash, updated_at = ? FROM stage_contacts s "
            "WHERE s.contact_id = contacts.id AND contacts.row_hash IS NOT s.row_hash",
            [*paths, stamp],
        )
        result.updated = cur.rowcount
        result.unchanged += matched - result.updated
    columns = ["external_id", "email", "email_hash", *present]
    insert = (f"INSERT INTO contacts ({', '.join(columns)}, attributes, row_hash, created_at, updated_at) "
              f"SELECT {', '.join(columns)}, attributes, row_hash, ?, ? FROM stage_contacts WHERE contact_id IS NULL ORDER BY rn")
    new = conn.execute("SELECT COUNT(*) FROM stage_contacts WHERE contact_id IS NULL").fetchone()[0]
    if new >= 50_000 and new > existing:
        # Building an index once, sorted, is several times faster than a million random insertions into it.
        indexes = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'contacts' "
                               "AND sql IS NOT NULL").fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        result.inserted = conn.execute(insert, [stamp, stamp]).rowcount
        for _, sql in indexes:
            conn.execute(sql)
    else:
        result.inserted = conn.execute(insert, [stamp, stamp]).rowcount
    cur = conn.execute(
        "INSERT OR IGNORE INTO suppressions (email_hash, email, reason, source, note, created_at) "
        "SELECT email_hash, email, suppress, 'import', ?, ? FROM stage_contacts WHERE suppress IS NOT NULL AND email_hash IS NOT NULL",
        [Path(result.file).name, stamp],
    )
    result.suppressed = cur.rowcount


def list_contacts(db: sqlite_utils.Database, limit: int = 50, search: str | None = None) -> list[dict]:
    """Contacts newest first, each with its attributes and whether its address is suppressed."""
    sql = (
        "SELECT c.id, c.external_id, c.email, c.first_name, c.last_name, c.language, c.timezone, c.country, c.segment, "
        "c.company, c.role, c.attributes, s.reason AS suppressed FROM contacts c "
        "LEFT JOIN suppressions s ON s.email_hash = c.email_hash"
    )
    params: list = []
    if search:
        sql += " WHERE c.email LIKE ? OR c.first_name LIKE ? OR c.last_name LIKE ? OR c.external_id LIKE ?"
        params += [f"%{search}%"] * 4
    sql += " ORDER BY c.id DESC LIMIT ?"
    params.append(limit)
    cur = db.execute(sql, params)
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, row)) for row in cur.fetchall()]
    for row in rows:
        row["attributes"] = json.loads(row["attributes"] or "{}")
    return rows
