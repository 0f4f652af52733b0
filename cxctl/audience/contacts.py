"""Contacts import: CRM and spreadsheet exports → the `contacts` table, losing nothing.

The bulk path streams the file (cxctl.audience.csvio), checks and normalises each row with a converter
generated for the file's columns (cxctl.audience.contact_rows), and stages the good rows in a TEMP table with
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
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import sqlite_utils

from cxctl.audience.contact_bulk import (
    Batch,
    Batches,
    Tally,
    add_suppressions,
    converted_batches,
    drop_stage,
    in_worker,
    load_fresh,
    load_staged,
    merge_staged,
    parallel_possible,
)
from cxctl.audience.contact_rows import FORGOTTEN, build_converter  # noqa: F401  (FORGOTTEN: the reject reason, for callers)
from cxctl.audience.csvio import CsvTable, RejectsWriter, open_csv
from cxctl.core.errors import UsageError, did_you_mean
from cxctl.core.timeutil import to_db
from cxctl.workspace.loader import Workspace
from cxctl.workspace.model import Mapping
from cxctl.workspace.presets import resolve

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
        raise UsageError(
            f"unknown mapping {mapping_id!r}{did_you_mean(mapping_id, mappings)}: declare it under "
            f"`mappings:` in the workspace YAML, or use --preset"
        )
    mapping = mappings[mapping_id]
    if mapping.kind != kind:
        raise UsageError(f"mapping {mapping_id!r} is for {mapping.kind}, not {kind}: pick a {kind} mapping")
    return mapping


def open_input(path: Path, mapping: Mapping | None, encoding: str | None, delimiter: str | None) -> CsvTable:
    return open_csv(
        path, encoding or (mapping.encoding if mapping else None), delimiter or (mapping.delimiter if mapping else None)
    )


@contextmanager
def import_transaction(db: sqlite_utils.Database, log: ImportLog, result: ImportResult, now: datetime, dry_run: bool):
    """One transaction per import: committed with its import-log entry, rolled back on a dry run or on
    any error (Ctrl-C included), so a file lands whole or not at all; the rejects are settled either way."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        log.close(result)
        if dry_run:
            db.execute("ROLLBACK")
        else:
            log_import(db, result, now)
            db.execute("COMMIT")
    except BaseException:
        if db.conn.in_transaction:
            db.execute("ROLLBACK")
        log.close(result)
        raise


class ImportLog:
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

    def close_writer(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def close(self, result: ImportResult) -> None:
        """Fill the result's rejects; the rows may have been written by the worker process."""
        result.rejected = self.count
        result.rejects = self.shown
        self.close_writer()
        if self.writer is not None and self.count and rejects_path(Path(result.file)).exists():
            result.rejects_file = str(self.writer.path)


def readable_rows(table: CsvTable, result: ImportResult, log: ImportLog) -> Iterator[tuple[int, list[str]]]:
    """The rows of the file that could be read, counted in `result.read`; the others are rejected with
    their row number and reason, and what reading noted goes to `result.notes`. (The contacts bulk path
    inlines this loop: a million rows.)"""
    for number, fields, problem in table.rows():
        result.read += 1
        if problem:
            log.reject(number, fields, problem)
            continue
        yield number, fields
    result.notes += table.notes


def previous_import(db: sqlite_utils.Database, kind: str, sha256: str) -> str | None:
    row = db.execute(
        "SELECT imported_at FROM import_log WHERE kind = ? AND sha256 = ? ORDER BY id DESC LIMIT 1", [kind, sha256]
    ).fetchone()
    return row[0] if row else None


def log_import(db: sqlite_utils.Database, result: ImportResult, now: datetime) -> None:
    db.execute(
        "INSERT INTO import_log (kind, file_name, sha256, rows_read, inserted, updated, unchanged, duplicates, rejected, imported_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            result.kind,
            Path(result.file).name,
            result.sha256,
            result.read,
            result.inserted,
            result.updated,
            result.unchanged,
            result.duplicates,
            result.rejected,
            to_db(now),
        ],
    )


def smtputf8_notes(db: sqlite_utils.Database, stamp: str) -> list[str]:
    """Decided at import, not discovered on the wire (issue 12, item 8): the addresses just written whose
    local part is not ASCII, which a server without SMTPUTF8 cannot take."""
    from cxctl.core.emails import smtputf8_contacts

    count, shown = smtputf8_contacts(db, stamp)
    if not count:
        return []
    more = f", and {count - len(shown)} more" if count > len(shown) else ""
    return [
        f"{count} address(es) have a non-ASCII local part ({'; '.join(shown)}{more}): only a mail server offering "
        f"SMTPUTF8 can deliver them, and smtp.smtputf8 is false, so `cxctl send` marks them failed without trying. "
        f"Correct those addresses, or set workspace.smtp.smtputf8: true if your server supports SMTPUTF8"
    ]


def import_contacts(
    ws: Workspace | None,
    db: sqlite_utils.Database,
    path: Path | str,
    now: datetime,
    *,
    mapping_id: str | None = None,
    preset: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    date_format: str | None = None,
    decimal_comma: bool | None = None,
    dry_run: bool = False,
) -> ImportResult:
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
        result = ImportResult(
            str(path),
            "contacts",
            table.sha256,
            table.encoding,
            table.delimiter,
            resolved.preset,
            resolved.describe(),
            dry_run=dry_run,
            previously_imported=previous_import(db, "contacts", table.sha256),
        )
        forgotten = {r[0] for r in db.execute("SELECT email_hash FROM forgotten")}
        convert, staged, attr_keys = build_converter(resolved, ws, forgotten)
        log = ImportLog(path, table.header, dry_run)
        stamp = to_db(now)
        cache = [db.execute(f"PRAGMA {schema}.cache_size").fetchone()[0] for schema in ("main", "temp")]
        # A bigger page cache keeps the indexes of a million-row table in memory while they are written.
        db.execute("PRAGMA main.cache_size = -65536")
        db.execute("PRAGMA temp.cache_size = -32768")
        collecting = gc.isenabled()
        gc.disable()  # the loop makes a million short-lived lists and no cycles: collections are pure cost
        batches: Batches[Batch] | None = None
        try:
            with import_transaction(db, log, result, now, dry_run):
                fresh = db.execute("SELECT NOT EXISTS (SELECT 1 FROM contacts)").fetchone()[0]
                # Stored digests by external id (Python's hash of the text: a dict of a million ints, not strings).
                stored = (
                    {}
                    if fresh
                    else {
                        k: hash(h)
                        for k, h in db.execute(
                            "SELECT external_id, row_hash FROM contacts WHERE external_id IS NOT NULL AND row_hash IS NOT NULL"
                        )
                    }
                )
                tally = Tally()

                def produce() -> Generator[Batch, None, None]:
                    return converted_batches(table, convert, log, tally, stored)

                def finish() -> Tally:
                    log.close_writer()
                    tally.rejected, tally.shown = log.count, log.shown
                    return tally

                if parallel_possible(path.stat().st_size):
                    batches, finished = in_worker(produce, finish)
                else:
                    batches, finished = produce(), finish
                if fresh:
                    tally, result.inserted, merged = load_fresh(db, batches, staged, stamp, finished)
                else:
                    tally = load_staged(db, batches, staged, finished)
                log.count, log.shown = tally.rejected, tally.shown
                result.read, result.duplicates, result.unchanged, result.footer = (
                    tally.read,
                    tally.duplicates,
                    tally.unchanged,
                    tally.footer,
                )
                result.notes += tally.notes
                if fresh:
                    result.duplicates += merged
                else:
                    merge_staged(db, staged, attr_keys, result, stamp)
                result.suppressed = add_suppressions(db, fresh, path.name, stamp)
                if ws is None or not (ws.settings.smtp and ws.settings.smtp.smtputf8):
                    result.notes.extend(smtputf8_notes(db, stamp))
        except BaseException:
            if batches is not None:
                batches.close()  # stops the worker process, if any, now rather than when collected
            raise
        finally:
            if collecting:
                gc.enable()
            drop_stage(db)
            db.execute(f"PRAGMA main.cache_size = {int(cache[0])}")
            db.execute(f"PRAGMA temp.cache_size = {int(cache[1])}")
    return result


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
