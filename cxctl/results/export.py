"""`cxctl export`: the store's tables for a column store or a BI tool (Parquet, CSV or JSON Lines),
with the contact as a keyed pseudonym, streamed in batches so memory stays flat whatever the size.

How a batch is made: SQLite writes the batch as CSV text itself (one `group_concat` over a range of ids,
every text quoted), and pyarrow's C++ reader parses it with the declared types. Python never touches a
row, which is what makes a 5-million-row export as fast as the `sqlite3 -csv` dump of the same rows; a
reader thread runs the queries while the main thread parses and writes the previous batch.

The columns are declared once, in TABLES: the export, its types and the tables of docs/export-schema.md
all come from that declaration (a test checks the page). SCHEMA_VERSION changes when a column is renamed, removed or
retyped; a new column at the end keeps it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import sqlite_utils

from cxctl.core.errors import UsageError
from cxctl.core.timeutil import parse_now, to_db
from cxctl.workspace.loader import Workspace

SCHEMA_VERSION = 1
FORMATS = ("parquet", "csv", "jsonl")
BATCH_IDS = 100_000
SECRET_ENV = "CXCTL_EXPORT_SECRET"


@dataclass(frozen=True)
class Column:
    """One exported column: its name, type (int, bool, text, key, timestamp, day, real), the SQL that reads
    it (over the table's aliases), and whether it is personal data (out unless asked for). A `key` is a
    text that is never free: a workspace identifier, a language code, a status, a pseudonym — written
    unquoted, which saves SQLite and the parser most of their work on the widest tables."""

    name: str
    type: str
    sql: str
    doc: str
    personal: bool = False


@dataclass(frozen=True)
class Table:
    """An exported table: its columns, the FROM clause, the integer key the batches range over, and the
    column (a UTC time) that says when a row was written or changed, for `--since`."""

    name: str
    doc: str
    source: str
    key: str
    changed: str
    columns: tuple[Column, ...]


def _c(name: str, type_: str, sql: str, doc: str, personal: bool = False) -> Column:
    return Column(name, type_, sql, doc, personal)


CONTACT = _c(
    "contact",
    "key",
    "p.pseudonym",
    "keyed pseudonym of the contact (HMAC-SHA256 of its id, 32 hex digits): "
    "the same in every export made with the same secret, so tables join",
)
WHERE_MOMENT = "LEFT JOIN temp.export_moments m ON m.moment = {alias}.moment"

TABLES: tuple[Table, ...] = (
    Table(
        "responses",
        "one row per response (counted, partial or duplicate), one column per indicator",
        "responses r LEFT JOIN temp.export_people p ON p.id = r.contact_id "
        "LEFT JOIN invitations i ON i.id = r.invitation_id " + WHERE_MOMENT.format(alias="r"),
        "r.id",
        "r.imported_at",
        (
            _c("response_id", "int", "r.id", "the store's response id"),
            CONTACT,
            _c("moment", "key", "r.moment", "key moment id"),
            _c("journey", "key", "m.journey", "journey of the moment (from the workspace)"),
            _c("stage", "key", "m.stage", "journey stage of the moment"),
            _c("channel", "key", "m.channel", "channel of the moment"),
            _c(
                "language", "key", "COALESCE(i.language, p.language)", "language of the invitation (else the contact's)"
            ),
            _c("submitted_at", "timestamp", "r.submitted_at", "when it was submitted (UTC)"),
            _c("day", "day", "r.day", "day of submission in the workspace time zone (the scorecard's day)"),
            _c("status", "key", "r.status", "counted (the one that counts for its invitation), partial or duplicate"),
            _c("complete", "bool", "r.complete", "the respondent finished the survey"),
            _c("source", "key", "r.source", "survey tool format it was imported from"),
            _c("invitation_id", "int", "r.invitation_id", "the invitation it answers (empty when matched otherwise)"),
            _c("nps", "int", "r.score_nps", "the moment's NPS answer, 0–10"),
            _c("csat", "int", "r.score_csat", "the moment's CSAT answer, on its question's scale"),
            _c("ces", "int", "r.score_ces", "the moment's CES answer, on its question's scale"),
            _c(
                "imported_at",
                "timestamp",
                "r.imported_at",
                "when it was written to the store (UTC; what --since reads)",
            ),
        ),
    ),
    Table(
        "answers",
        "long form: one row per answer, with the question's type and scale",
        "answers a JOIN responses r ON r.id = a.response_id LEFT JOIN temp.export_people p ON p.id = r.contact_id "
        "LEFT JOIN temp.export_questions q ON q.question = a.question",
        "a.response_id",
        "r.imported_at",
        (
            _c("response_id", "int", "a.response_id", "the response (responses.response_id)"),
            CONTACT,
            _c("moment", "key", "r.moment", "key moment id"),
            _c("question", "key", "a.question", "question id"),
            _c("question_type", "key", "q.type", "nps, csat, ces, rating, single_choice, multiple_choice, open…"),
            _c("scale_min", "int", "q.scale_min", "lowest value of a scale question"),
            _c("scale_max", "int", "q.scale_max", "highest value of a scale question"),
            _c("value_num", "real", "a.value_num", "numeric answer"),
            _c(
                "value_text",
                "text",
                "CASE WHEN p.forgotten THEN NULL ELSE a.value_text END",
                "text answer: a choice id, a JSON list of ids, or the free text of an open question "
                "(never for a forgotten person)",
            ),
        ),
    ),
    Table(
        "invitations",
        "the funnel: every planned, sent, failed or bounced invitation and reminder, and whether it was answered",
        "invitations i LEFT JOIN temp.export_people p ON p.id = i.contact_id " + WHERE_MOMENT.format(alias="i"),
        "i.id",
        "i.updated_at",
        (
            _c("invitation_id", "int", "i.id", "the store's invitation id"),
            CONTACT,
            _c("moment", "key", "i.moment", "key moment id"),
            _c("journey", "key", "m.journey", "journey of the moment"),
            _c("stage", "key", "m.stage", "journey stage of the moment"),
            _c("kind", "key", "i.kind", "invitation or reminder"),
            _c("parent_id", "int", "i.parent_id", "for a reminder, the invitation it follows"),
            _c("wave", "text", "i.wave", "wave of a relational moment"),
            _c("language", "key", "i.language", "language of the message"),
            _c("status", "key", "i.status", "planned, sending, sent, failed, bounced, in_doubt, cancelled…"),
            _c("send_at", "timestamp", "i.send_at", "when it is or was due (UTC)"),
            _c("sent_at", "timestamp", "i.sent_at", "when it was sent (UTC)"),
            _c("attempts", "int", "i.attempts", "delivery attempts"),
            _c(
                "answered",
                "bool",
                "EXISTS (SELECT 1 FROM responses x WHERE x.invitation_id = i.id AND x.status = 'counted')",
                "a counted response answers it",
            ),
            _c("updated_at", "timestamp", "i.updated_at", "last change (UTC; what --since reads)"),
            _c(
                "email", "text", "CASE WHEN p.forgotten THEN NULL ELSE i.email END", "address it went to", personal=True
            ),
            _c(
                "last_error",
                "text",
                "CASE WHEN p.forgotten THEN NULL ELSE i.last_error END",
                "the server's last answer on failure (may quote the address)",
                personal=True,
            ),
        ),
    ),
    Table(
        "events",
        "the events imported from the CRM, which trigger the transactional moments",
        "events e LEFT JOIN temp.export_people p ON p.id = e.contact_id",
        "e.id",
        "e.imported_at",
        (
            _c("event_id", "int", "e.id", "the store's event id"),
            _c("event_key", "text", "e.event_key", "the source's event reference"),
            CONTACT,
            _c("type", "text", "e.type", "event type"),
            _c("occurred_at", "timestamp", "e.occurred_at", "when it happened (UTC)"),
            _c("source", "text", "e.source", "file it was imported from"),
            _c("attributes", "text", "e.attributes", "the event's attributes as a JSON object"),
            _c(
                "imported_at",
                "timestamp",
                "e.imported_at",
                "when it was written to the store (UTC; what --since reads)",
            ),
        ),
    ),
    Table(
        "contacts",
        "one row per contact: the non-identifying columns, and personal data only when asked for",
        "contacts c JOIN temp.export_people p ON p.id = c.id",
        "c.id",
        "c.updated_at",
        (
            CONTACT,
            _c("language", "key", "c.language", "preferred language"),
            _c("country", "text", "c.country", "country"),
            _c("segment", "text", "c.segment", "segment"),
            _c("role", "text", "c.role", "B2B role"),
            _c("forgotten", "bool", "p.forgotten", "erased by `cxctl forget` (no personal data, whatever the flag)"),
            _c("created_at", "timestamp", "c.created_at", "first imported (UTC)"),
            _c("updated_at", "timestamp", "c.updated_at", "last change (UTC; what --since reads)"),
            _c(
                "external_id", "text", "CASE WHEN p.forgotten THEN NULL ELSE c.external_id END", "CRM id", personal=True
            ),
            _c("email", "text", "CASE WHEN p.forgotten THEN NULL ELSE c.email END", "address", personal=True),
            _c(
                "first_name",
                "text",
                "CASE WHEN p.forgotten THEN NULL ELSE c.first_name END",
                "first name",
                personal=True,
            ),
            _c("last_name", "text", "CASE WHEN p.forgotten THEN NULL ELSE c.last_name END", "last name", personal=True),
            _c("company", "text", "CASE WHEN p.forgotten THEN NULL ELSE c.company END", "company", personal=True),
        ),
    ),
    Table(
        "contact_attributes",
        "long form: one row per contact attribute (the CRM's extra columns)",
        "contacts c JOIN temp.export_people p ON p.id = c.id JOIN json_each(c.attributes) j",
        "c.id",
        "c.updated_at",
        (
            CONTACT,
            _c("attribute", "text", "j.key", "attribute name"),
            _c("value", "text", "CAST(j.value AS TEXT)", "its value as text (JSON for a list or an object)"),
        ),
    ),
)


@dataclass
class ExportedTable:
    name: str
    file: str
    rows: int


@dataclass
class ExportResult:
    """What `export` wrote: the folder, the format, the tables with their row counts, and the manifest."""

    folder: str
    format: str
    schema_version: int
    exported_at: str
    since: str | None
    with_personal_data: bool
    forgotten_withheld: int
    tables: list[ExportedTable] = field(default_factory=list)


def arrow_type(name: str):
    import pyarrow as pa

    return {
        "int": pa.int64(),
        "bool": pa.bool_(),
        "text": pa.string(),
        "key": pa.string(),
        "real": pa.float64(),
        "timestamp": pa.timestamp("s", tz="UTC"),
        "day": pa.date32(),
    }[name]


def pseudonymiser(env_name: str = SECRET_ENV):
    """The pseudonym function keyed by the secret in `env_name`; raises UsageError (with the fix) when unset."""
    secret = os.environ.get(env_name, "")
    if not secret:
        raise UsageError(
            f"{env_name} is not set: the export names each contact by a keyed pseudonym and needs a secret "
            f"— export {env_name}=$(openssl rand -hex 32), and keep it: the same secret gives the same "
            f"pseudonyms in every export, so they join"
        )
    key = secret.encode("utf-8")

    def pseudonym(contact_id: int | None) -> str | None:
        if contact_id is None:
            return None
        return hmac.new(key, str(contact_id).encode("ascii"), hashlib.sha256).hexdigest()[:32]

    return pseudonym


def export_store(
    ws: Workspace,
    db: sqlite_utils.Database,
    folder: Path | str,
    now: datetime,
    *,
    format: str = "parquet",
    since: str | None = None,
    with_personal_data: bool = False,
    secret_env: str = SECRET_ENV,
    tables: list[str] | None = None,
) -> ExportResult:
    """Write each table to `folder/<table>.<format>` (replacing it), then `folder/export.json` (the
    manifest: schema version, time, rows per table). `since` (ISO day or time, workspace time zone)
    keeps the rows written or changed from then on. Raises UsageError for a bad format, folder or secret."""
    if format not in FORMATS:
        raise UsageError(f"unknown --format {format!r}: use parquet, csv or jsonl")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file: name a folder for the export (--to DIR)")
    wanted = [t for t in TABLES if tables is None or t.name in tables]
    if tables is not None and len(wanted) != len(set(tables)):
        raise UsageError(f"unknown table in {tables}: use {', '.join(t.name for t in TABLES)}")
    since_db = to_db(parse_now(since, ws.settings.timezone)) if since else None
    pseudonym = pseudonymiser(secret_env)
    folder.mkdir(parents=True, exist_ok=True)
    _prepare(ws, db, pseudonym)
    forgotten = db.execute("SELECT COUNT(*) FROM temp.export_people WHERE forgotten").fetchone()[0]
    result = ExportResult(str(folder), format, SCHEMA_VERSION, to_db(now), since_db, with_personal_data, forgotten)
    for table in wanted:
        columns = [c for c in table.columns if with_personal_data or not c.personal]
        path = folder / f"{table.name}.{format}"
        rows = _write(db, table, columns, since_db, path, format)
        result.tables.append(ExportedTable(table.name, path.name, rows))
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "exported_at": result.exported_at,
        "since": since_db,
        "format": format,
        "with_personal_data": with_personal_data,
        "tables": {t.name: {"file": t.file, "rows": t.rows} for t in result.tables},
    }
    (folder / "export.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return result


def _prepare(ws: Workspace, db: sqlite_utils.Database, pseudonym) -> None:
    """Temporary tables the queries join: each contact's pseudonym and forgotten flag (one HMAC per
    contact, not per row), the workspace's moments (journey, stage, channel) and questions (type, scale)."""
    q = db.execute
    # In-memory temporary tables with a cache of their own: every row looks its contact up in export_people.
    # The main cache stays small: the tables are read once, in key order (a big cache only costs memory).
    q("PRAGMA temp_store=MEMORY")
    q("PRAGMA temp.cache_size=-131072")
    q(
        "CREATE TEMP TABLE IF NOT EXISTS export_people (id INTEGER PRIMARY KEY, pseudonym TEXT, forgotten INTEGER, language TEXT)"
    )
    q(
        "CREATE TEMP TABLE IF NOT EXISTS export_moments (moment TEXT PRIMARY KEY, journey TEXT, stage TEXT, channel TEXT)"
    )
    q(
        "CREATE TEMP TABLE IF NOT EXISTS export_questions (question TEXT PRIMARY KEY, type TEXT, scale_min INTEGER, scale_max INTEGER)"
    )
    for name in ("export_people", "export_moments", "export_questions"):
        q(f"DELETE FROM temp.{name}")
    db.conn.create_function("cx_pseudonym", 1, pseudonym, deterministic=True)
    q("BEGIN")
    q("INSERT INTO temp.export_people SELECT id, cx_pseudonym(id), forgotten_at IS NOT NULL, language FROM contacts")
    db.conn.executemany(
        "INSERT INTO temp.export_moments VALUES (?, ?, ?, ?)",
        [(mid, m.journey, m.stage, m.channel) for mid, m in ws.moments.items()],
    )
    db.conn.executemany(
        "INSERT INTO temp.export_questions VALUES (?, ?, ?, ?)",
        [(qid, spec.type, *(spec.scale or (None, None))) for qid, spec in ws.questions.items()],
    )
    q("COMMIT")


def _csv_expression(columns: list[Column]) -> str:
    """One CSV line per row, built by SQLite in one printf (NULL prints as an empty field, four times
    faster than concatenating COALESCEs): texts quoted with their quotes doubled, UTC times with a Z so
    they read as UTC instants."""
    args = []
    for c in columns:
        if c.type == "text":
            args.append(f"""'"' || replace({c.sql}, '"', '""') || '"'""")
        elif c.type == "timestamp":
            args.append(f"substr({c.sql}, 1, 19) || 'Z'")
        else:
            args.append(c.sql)
    return f"printf('{','.join('%s' for _ in columns)}', {', '.join(args)})"


def _batches(db: sqlite_utils.Database, table: Table, columns: list[Column], since: str | None) -> Iterator[bytes]:
    """CSV text of consecutive ranges of the table's key, read by a thread of its own (sqlite3 releases
    the interpreter while it steps), two batches ahead at most, so memory stays flat."""
    base = " ".join(table.source.split()[:2])  # the table the key belongs to, with its alias
    low, high = db.execute(f"SELECT MIN({table.key}), MAX({table.key}) FROM {base}").fetchone()
    if low is None:
        return
    where = f"{table.key} >= ? AND {table.key} < ?" + (f" AND {table.changed} >= ?" if since else "")
    # A BLOB: the bytes come out of SQLite as they are, without a decode and an encode in Python.
    sql = f"SELECT CAST(group_concat(line, char(10)) AS BLOB) FROM (SELECT {_csv_expression(columns)} AS line FROM {table.source} WHERE {where})"
    pending: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def read() -> None:
        try:
            start = low
            while start <= high and not stop.is_set():
                text = db.execute(sql, [start, start + BATCH_IDS] + ([since] if since else [])).fetchone()[0]
                if text:
                    pending.put(text)
                start += BATCH_IDS
            pending.put(None)
        except BaseException as exc:  # handed to the writer, which raises it
            pending.put(exc)

    reader = threading.Thread(target=read, name=f"export-{table.name}", daemon=True)
    reader.start()
    try:
        while True:
            item = pending.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():
            with contextlib.suppress(queue.Empty):
                pending.get(timeout=0.1)
        reader.join()


def _write(
    db: sqlite_utils.Database, table: Table, columns: list[Column], since: str | None, path: Path, format: str
) -> int:
    """Stream the table into `path` (written beside it, then renamed: a reader never sees half a file)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    schema = pa.schema([pa.field(c.name, arrow_type(c.type)) for c in columns])
    read_options = pcsv.ReadOptions(column_names=[c.name for c in columns], block_size=1 << 24)
    # Only free text may hold a line break: the parser is faster when it need not look for quoted ones.
    parse_options = pcsv.ParseOptions(newlines_in_values=any(c.type == "text" for c in columns))
    convert = pcsv.ConvertOptions(
        column_types={f.name: f.type for f in schema},
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        null_values=[""],
        true_values=["1"],
        false_values=["0"],
    )
    partial = path.with_name(path.name + ".partial")
    rows = 0
    with _writer(partial, schema, format) as write:
        for text in _batches(db, table, columns, since):
            batch = pcsv.read_csv(
                io.BytesIO(text), read_options=read_options, parse_options=parse_options, convert_options=convert
            )
            rows += batch.num_rows
            write(batch)
    partial.replace(path)
    return rows


class _writer:
    """A context manager giving a `write(table)` function for the format; closes the file on exit."""

    def __init__(self, path: Path, schema, format: str):
        self.path, self.schema, self.format = path, schema, format

    def __enter__(self):
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        if self.format == "parquet":
            self.sink = pq.ParquetWriter(str(self.path), self.schema, compression="zstd")
            return self.sink.write_table
        if self.format == "csv":
            self.sink = pcsv.CSVWriter(str(self.path), self.schema)
            return self.sink.write_table
        self.sink = open(self.path, "w", encoding="utf-8", newline="\n")

        def write_jsonl(batch) -> None:
            for row in batch.to_pylist():
                self.sink.write(json.dumps(row, ensure_ascii=False, default=_json_value) + "\n")

        return write_jsonl

    def __exit__(self, *exc) -> None:
        self.sink.close()
        if exc[0] is not None:
            self.path.unlink(missing_ok=True)


def _json_value(value):
    """Times as ISO 8601 (UTC with Z), days as ISO dates."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.isoformat()


def schema_markdown() -> str:
    """The schema page's tables, generated from TABLES (docs/export-schema.md embeds it; a test checks)."""
    lines = [f"Schema version: **{SCHEMA_VERSION}**", ""]
    for table in TABLES:
        lines += [
            f"### `{table.name}`",
            "",
            table.doc[0].upper() + table.doc[1:] + f". `--since` reads `{table.changed.split('.')[-1]}`.",
            "",
            "| column | type | personal | meaning |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| `{c.name}` | {'text' if c.type == 'key' else c.type} | {'yes' if c.personal else ''} | {c.doc} |"
            for c in table.columns
        ]
        lines.append("")
    return "\n".join(lines)
