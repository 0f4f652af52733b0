"""Contacts import, bulk path: converted rows → SQLite, for files of a million rows.

Three parts, each chosen for what it costs on a million rows:

- `converted_batches` runs the per-row loop (parse, skip unchanged rows, convert, count duplicates,
  reject) and yields batches of rows ready for `executemany`;
- `in_worker` runs that loop in a forked process and hands the batches over a pipe, so parsing and
  checking (Python) overlap with the inserts (SQLite) on a 2-core machine;
- `load_fresh` inserts straight into an empty `contacts` table (secondary indexes dropped and
  built once, sorted, at the end), `load_staged` + `merge_staged` stage the rows in a TEMP table and
  merge them set-based into a table that already holds contacts.
"""

from __future__ import annotations

import marshal
import multiprocessing
import os
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import sqlite_utils

CHUNK = 20_000
# Below this file size the worker process costs more than it saves (a fork and a pipe).
PARALLEL_BYTES = 8_000_000


@dataclass
class Tally:
    """What the per-row loop counted; sent back from the worker process at the end."""

    read: int = 0
    duplicates: int = 0
    unchanged: int = 0
    repeated: set[str] = field(default_factory=set)  # keys seen more than once (the last row wins)
    no_id: bool = False  # some staged row has no external id
    footer: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what reading the file noted (csvio)
    rejected: int = 0
    shown: list[dict] = field(default_factory=list)


# (rows, rows repeating a key of an earlier row, [(row number, suppression reason)])
Batch = tuple[list[list], list[list], list[tuple[int, str]]]


# A batch for in_worker: a tuple of row lists, which marshal carries (the responses import has its own).
T = TypeVar("T", bound=tuple[list[Any], ...])
T_co = TypeVar("T_co", covariant=True)
R = TypeVar("R")  # what `finish` returns


class Batches(Protocol[T_co]):
    """Batches that can be stopped before the end: a generator such as `converted_batches`, or the worker's."""

    def __iter__(self) -> Iterator[T_co]: ...

    def close(self) -> None: ...


def converted_batches(table, convert, log, tally: Tally, stored: dict[str, int]) -> Generator[Batch, None, None]:
    """Yield (rows, repeats, suppressions) batches of the good rows; rejects go to `log`, counts to
    `tally`. A row whose key an earlier row had goes to `repeats`, so that the first copies can be
    inserted with a plain INSERT (a quarter cheaper than INSERT OR REPLACE) and only repeats replace.

    `stored` maps external ids to (Python) hashes of the stored row digests: a row whose raw cells
    give the same digest is unchanged and is neither converted nor staged."""
    seen: set[str] = set()
    repeated = tally.repeated
    skipped: set[str] = set()
    stored_digest: dict[str, int] = {}
    digest, quick_key, suppressed = convert.digest, convert.key, convert.suppressed
    rows: list[list] = []
    repeats: list[list] = []
    suppressions: list[tuple[int, str]] = []
    read = duplicates = 0
    no_id = False
    for number, fields, problem in table.rows():
        read += 1
        if problem:
            log.reject(number, fields, problem)
            continue
        if stored or skipped:
            ext = quick_key(fields)
            if ext and (suppressed is None or suppressed(fields) is None):
                if ext in seen:
                    if ext in skipped and hash(digest(fields)) == stored_digest.get(ext):
                        duplicates += 1
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
        key = row[1]
        if key is None:
            key = "@" + row[3]
            no_id = True
        if key in seen:
            duplicates += 1
            if key in skipped:
                skipped.discard(key)  # the earlier copy was not staged: this row alone stands for the key
                rows.append(row)
            else:
                repeated.add(key)
                repeats.append(row)
        else:
            seen.add(key)
            rows.append(row)
        if suppressed is not None and row[2] is not None:
            reason = suppressed(fields)
            if reason is not None:
                suppressions.append((number, reason))
        if len(rows) >= CHUNK:
            yield rows, repeats, suppressions
            rows, repeats, suppressions = [], [], []
    if rows or repeats or suppressions:
        yield rows, repeats, suppressions
    tally.read += read
    tally.duplicates += duplicates
    tally.unchanged += len(skipped)
    tally.no_id = tally.no_id or no_id
    tally.footer = table.footer
    tally.notes = list(table.notes)


def parallel_possible(size: int) -> bool:
    """A worker process pays off for big files on a machine with a second core, where fork exists."""
    return size >= PARALLEL_BYTES and (os.cpu_count() or 1) > 1 and "fork" in multiprocessing.get_all_start_methods()


def in_worker(produce: Callable[[], Iterable[T]], finish: Callable[[], R]) -> tuple[Batches[T], Callable[[], R]]:
    """Run `produce()` in a forked process; return (the batches it yields, a function giving `finish()`'s
    result computed in the worker). The pipe holds a few batches at most, so memory stays bounded.

    Fork, not spawn: the generated converter and the sets of known hashes are inherited, not pickled,
    and the worker keeps the parent's string hash seed, which the stored digests (`hash()` values
    computed in the parent) rely on. The worker never touches the parent's SQLite connection."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def work() -> None:
        receiver.close()
        try:
            for batch in produce():
                # marshal, not pickle: 6× cheaper to write for lists of str, int and None, and these
                # bytes only travel between two processes of the same interpreter.
                sender.send_bytes(marshal.dumps(batch, 2))
            sender.send_bytes(b"")
            sender.send(("done", finish()))
        except BaseException as exc:  # handed to the parent, which raises it
            sender.send_bytes(b"")
            sender.send(("error", exc))
        finally:
            sender.close()

    process = context.Process(target=work, name="cxctl-import-rows", daemon=True)
    process.start()
    sender.close()
    outcome: list[R] = []

    def batches() -> Generator[T, None, None]:
        try:
            while True:
                try:
                    data = receiver.recv_bytes()
                    if data:
                        yield marshal.loads(data)
                        continue
                    kind, payload = receiver.recv()
                except EOFError:
                    raise RuntimeError("the import worker process died: run the import again") from None
                if kind == "error":
                    raise payload
                else:
                    outcome.append(payload)
                    return
        finally:
            stop()

    def stop() -> None:
        receiver.close()
        process.join(timeout=0 if not outcome else 5)
        if process.is_alive():
            process.terminate()
            process.join()

    return _Batches(batches(), stop), lambda: outcome[0]


class _Batches(Generic[T]):
    """The worker's batches; `close()` stops the worker even when no batch was read yet."""

    def __init__(self, generator: Generator[T, None, None], stop: Callable[[], None]):
        self.generator, self.stop = generator, stop

    def __iter__(self) -> Iterator[T]:
        return self.generator

    def close(self) -> None:
        self.generator.close()
        self.stop()


def _secondary_indexes(conn) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'contacts' AND sql IS NOT NULL"
    ).fetchall()


def _stage_suppressions(conn) -> None:
    conn.execute("DROP TABLE IF EXISTS temp.stage_suppress")
    conn.execute("CREATE TEMP TABLE stage_suppress (rn INTEGER PRIMARY KEY, reason TEXT NOT NULL)")


def _sql_text(value: str) -> str:
    """A SQL string literal of one of our own values (a time stamp), never of file content."""
    return "'" + value.replace("'", "''") + "'"


def load_fresh(
    db: sqlite_utils.Database, batches: Iterable[Batch], staged: list[str], stamp: str, finish: Callable[[], Tally]
) -> tuple[Tally, int, int]:
    """Insert the rows straight into an empty `contacts` (id = row number); returns (tally, inserted,
    duplicates merged after the loop). Within the file the last row of a key wins: rows with an
    external id through `INSERT OR REPLACE` on its unique index, rows without one afterwards."""
    conn = db.conn
    _stage_suppressions(conn)
    indexes = _secondary_indexes(conn)
    for name, _ in indexes:
        # Building an index once, sorted, is several times faster than a million random insertions into it.
        conn.execute(f'DROP INDEX "{name}"')
    columns = ["id", "external_id", "email", "email_hash", *staged, "attributes", "row_hash"]
    # Column names are ours (CONTACT_FIELDS), never the file's; the time stamp is our own value
    # (to_db(now)), written as a literal so that each row binds only its own cells.
    insert = (
        f"INTO contacts ({', '.join(columns)}, created_at, updated_at) "
        f"VALUES ({', '.join('?' * len(columns))}, {_sql_text(stamp)}, {_sql_text(stamp)})"
    )
    executemany = conn.executemany
    for rows, repeats, suppressions in batches:
        executemany("INSERT " + insert, rows)
        if repeats:
            executemany("INSERT OR REPLACE " + insert, repeats)
        if suppressions:
            executemany("INSERT OR REPLACE INTO stage_suppress (rn, reason) VALUES (?, ?)", suppressions)
    tally = finish()
    threads = conn.execute("PRAGMA threads").fetchone()[0]
    conn.execute("PRAGMA threads = 2")  # a helper thread for the sorts (measured: about 10% off the index builds)
    try:
        for _, sql in indexes:
            conn.execute(sql)
    finally:
        conn.execute(f"PRAGMA threads = {int(threads)}")
    merged = 0
    by_email = [key[1:] for key in tally.repeated if key.startswith("@")]
    if by_email:
        conn.execute("CREATE TEMP TABLE stage_repeated (k TEXT PRIMARY KEY)")
        executemany("INSERT INTO stage_repeated (k) VALUES (?)", ((k,) for k in by_email))
        conn.execute(
            "DELETE FROM contacts WHERE external_id IS NULL AND email_hash IN (SELECT k FROM stage_repeated) "
            "AND id NOT IN (SELECT MAX(id) FROM contacts WHERE external_id IS NULL AND email_hash IN "
            "(SELECT k FROM stage_repeated) GROUP BY email_hash)"
        )
        conn.execute("DROP TABLE temp.stage_repeated")
    if tally.no_id:
        # A row without id whose email belongs to a row with one is the same person: merged into the latter.
        merged = conn.execute(
            "DELETE FROM contacts WHERE external_id IS NULL AND email_hash IN "
            "(SELECT email_hash FROM contacts WHERE external_id IS NOT NULL)"
        ).rowcount
    inserted = conn.execute("SELECT COUNT(*) FROM contacts").fetchone()[0]
    return tally, inserted, merged


def load_staged(
    db: sqlite_utils.Database, batches: Iterable[Batch], staged: list[str], finish: Callable[[], Tally]
) -> Tally:
    """Stage the rows in temp.stage_contacts for `merge_staged`; keep only the last row of each key."""
    conn = db.conn
    _stage_suppressions(conn)
    conn.execute("DROP TABLE IF EXISTS temp.stage_contacts")
    columns = ("external_id", "email", "email_hash", *staged, "attributes", "row_hash")
    # Column names are ours (CONTACT_FIELDS), never the file's.
    conn.execute(
        "CREATE TEMP TABLE stage_contacts (rn INTEGER PRIMARY KEY, "
        + ", ".join(f"{c} TEXT" for c in columns)
        + ", contact_id INTEGER)"
    )
    insert = f"INSERT INTO stage_contacts (rn, {', '.join(columns)}) VALUES (?{', ?' * len(columns)})"
    executemany = conn.executemany
    for rows, repeats, suppressions in batches:
        executemany(insert, rows)
        if repeats:
            executemany(insert, repeats)
        if suppressions:
            executemany("INSERT OR REPLACE INTO stage_suppress (rn, reason) VALUES (?, ?)", suppressions)
    tally = finish()
    if tally.repeated:
        # Within a file the last row of a key wins.
        conn.execute("CREATE TEMP TABLE stage_repeated (k TEXT PRIMARY KEY)")
        executemany("INSERT INTO stage_repeated (k) VALUES (?)", ((k,) for k in tally.repeated))
        key = "COALESCE(external_id, '@' || email_hash)"
        conn.execute(f"CREATE INDEX temp.stage_contacts_k ON stage_contacts({key})")
        conn.execute(
            f"DELETE FROM stage_contacts WHERE {key} IN (SELECT k FROM stage_repeated) AND rn NOT IN "
            f"(SELECT MAX(rn) FROM stage_contacts WHERE {key} IN (SELECT k FROM stage_repeated) GROUP BY {key})"
        )
        conn.execute("DROP TABLE temp.stage_repeated")
    return tally


def add_suppressions(db: sqlite_utils.Database, fresh: bool, file_name: str, stamp: str) -> int:
    """Suppress the addresses of the kept rows that carry an opt-out flag; returns how many were new."""
    rows = "contacts r ON r.id = s.rn" if fresh else "stage_contacts r ON r.rn = s.rn"
    return db.conn.execute(
        "INSERT OR IGNORE INTO suppressions (email_hash, email, reason, source, note, created_at) "
        f"SELECT r.email_hash, r.email, s.reason, 'import', ?, ? FROM stage_suppress s JOIN {rows} "
        "WHERE r.email_hash IS NOT NULL ORDER BY s.rn",
        [file_name, stamp],
    ).rowcount


def drop_stage(db: sqlite_utils.Database) -> None:
    for name in ("stage_contacts", "stage_suppress", "stage_repeated"):
        db.execute(f"DROP TABLE IF EXISTS temp.{name}")


def merge_staged(db: sqlite_utils.Database, present: list[str], attr_keys: list[str], result, stamp: str) -> None:
    """Set-based merge of the staged rows into contacts; fills the counts."""
    conn = db.conn
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
        if conn.execute(
            "SELECT EXISTS (SELECT 1 FROM stage_contacts WHERE contact_id IS NULL AND email_hash IS NOT NULL)"
        ).fetchone()[0]:
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
        assignments = [
            "external_id = COALESCE(s.external_id, contacts.external_id)",
            "email = COALESCE(s.email, contacts.email)",
            "email_hash = COALESCE(s.email_hash, contacts.email_hash)",
        ]
        assignments += [f"{name} = s.{name}" for name in present]
        paths = ['$."' + key.replace('"', '""') + '"' for key in attr_keys]
        # The file's attribute columns replace the contact's (an empty cell removes one); others stay.
        attributes = (
            f"json_patch(json_remove(contacts.attributes{', ?' * len(paths)}), s.attributes)"
            if paths
            else "json_patch(contacts.attributes, s.attributes)"
        )
        cur = conn.execute(
            "UPDATE contacts SET " + ", ".join(assignments) + f", attributes = {attributes}, "
            "row_hash = s.row_hash, updated_at = ? FROM stage_contacts s "
            "WHERE s.contact_id = contacts.id AND contacts.row_hash IS NOT s.row_hash",
            [*paths, stamp],
        )
        result.updated = cur.rowcount
        result.unchanged += matched - result.updated
    columns = ["external_id", "email", "email_hash", *present]
    insert = (
        f"INSERT INTO contacts ({', '.join(columns)}, attributes, row_hash, created_at, updated_at) "
        f"SELECT {', '.join(columns)}, attributes, row_hash, ?, ? FROM stage_contacts WHERE contact_id IS NULL ORDER BY rn"
    )
    new = conn.execute("SELECT COUNT(*) FROM stage_contacts WHERE contact_id IS NULL").fetchone()[0]
    if new >= 50_000 and new > existing:
        # Building an index once, sorted, is several times faster than a million random insertions into it.
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'contacts' AND sql IS NOT NULL"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        result.inserted = conn.execute(insert, [stamp, stamp]).rowcount
        for _, sql in indexes:
            conn.execute(sql)
    else:
        result.inserted = conn.execute(insert, [stamp, stamp]).rowcount
