"""Writing staged responses into the store, set-based and in one transaction: matching them to invitations,
quarantining what matches nothing, replacing newer versions, choosing the response that counts per
invitation, and keeping the scorecard rollups exact. `cxctl.results.importer` reads the export and fills the
staging tables this module starts from.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlite_utils

from cxctl.core import tokens
from cxctl.results.formats import Export
from cxctl.results.quarantine import quarantine_unmatched, row_digest
from cxctl.store import dimensions, email_hash
from cxctl.workspace.loader import Workspace


@dataclass
class Problem:
    """One row that did not land, with its place."""

    row: int
    kind: str
    reason: str


@dataclass
class ImportReport:
    """What `responses import` did with each row of the file."""

    file: str
    format: str
    moment: str | None
    rows_read: int = 0
    inserted: int = 0
    replaced: int = 0
    unchanged: int = 0
    counted: int = 0
    partial: int = 0
    duplicates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the import did not do, with the fix (unread questions…)

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())


STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS stage (
    row_number INTEGER PRIMARY KEY, response_key TEXT, content_hash TEXT, row_hash TEXT, moment TEXT, token TEXT,
    email TEXT, external_id TEXT, submitted_at TEXT, day TEXT, complete INTEGER, status TEXT, incomplete TEXT,
    free INTEGER NOT NULL DEFAULT 0,
    score_nps INTEGER, score_csat INTEGER, score_ces INTEGER,
    invitation_id INTEGER, contact_id INTEGER, invitation_moment TEXT, outcome TEXT, existing_id INTEGER,
    existing_invitation INTEGER, fields TEXT)
;
CREATE TEMP TABLE IF NOT EXISTS stage_answers (row_number INTEGER, question TEXT, value_num REAL, value_text TEXT)
"""


@dataclass
class Facts:
    """What the streaming pass learnt about the staged rows, so the set-based pass skips the steps that
    cannot apply (each skipped step is a full scan of the staging table)."""

    repeated_keys: bool = False  # one response id on several rows of the file
    tokenless: bool = False  # some row has no token (matched by email or external reference)
    repeated_tokens: bool = False  # one token on several rows
    value_counts: Counter = field(default_factory=Counter)  # (moment, day, question, value) of complete rows
    day_counts: Counter = field(default_factory=Counter)  # (moment, day, complete) of all rows
    id_column: str | None = None  # the export's response id column, when it has one
    # (moment, score slot 0 nps / 1 csat / 2 ces, question): indicator answers staged only as the row's score,
    # whose answer rows settle writes in SQL (a Python tuple and a bound row per answer saved).
    indicators: list[tuple[str, int, str]] = field(default_factory=list)
    digests_in_sql: bool = False  # a staged row_hash may be NULL: settle computes it from the cells if needed


def settle(
    ws: Workspace,
    db: sqlite_utils.Database,
    export: Export,
    report: ImportReport,
    quarantine: list[tuple],
    imported_at: str,
    secret: Callable[[], tokens.Keyring | bytes],
    columns: list[str],
    facts: Facts,
    *,
    reread: bool = False,
    log: bool = True,
) -> None:
    """The set-based part, in one transaction: match, quarantine, replace, insert, choose, roll up.

    Staged rows still to insert have `outcome` NULL and the status their completeness gives; the choice of
    the counting response per invitation only runs when an invitation has several responses. `log` False
    leaves import_log alone (one answer from the survey page is not an import of a file).
    """
    q = db.execute
    keep_last = [m for m, spec in ws.moments.items() if spec.responses.keep == "last"]
    windows = {m: int(spec.responses.match_window.total_seconds()) for m, spec in ws.moments.items()}
    # No foreign-key probe per written row: every id written here comes from a join made in this same
    # write transaction (invitations, contacts, the responses just written), and nothing is deleted from a
    # parent table. The pragma is a no-op inside a transaction, hence before BEGIN; restored after.
    checked = q("PRAGMA foreign_keys").fetchone()[0]
    if checked and not db.conn.in_transaction:
        q("PRAGMA foreign_keys=OFF")
    q("BEGIN IMMEDIATE")
    try:
        # Newer duplicates of one response id inside the file: the last row wins.
        if facts.repeated_keys:
            q(
                "DELETE FROM temp.stage WHERE row_number NOT IN (SELECT MAX(row_number) FROM temp.stage GROUP BY response_key)"
            )
        q(
            "UPDATE temp.stage SET invitation_id = i.id, contact_id = i.contact_id, invitation_moment = i.moment"
            " FROM invitations i WHERE i.token = temp.stage.token"
        )
        if facts.indicators:
            _stage_indicator_answers(db, facts.indicators)
        if facts.tokenless:
            _match_without_token(db, windows)
        _free_of_invitation(db, ws)
        removed = quarantine_unmatched(db, export, quarantine, imported_at, secret, columns, report.skipped)

        stored = q("SELECT EXISTS (SELECT 1 FROM responses)").fetchone()[0]
        if stored:
            _replace_known(db, report, imported_at, reread)
        # Every staged row lands as staged: the counts taken while reading are the rollup increments.
        intact = not (facts.repeated_keys or removed or report.unchanged or report.replaced)
        # One response counts per invitation: the first completed (or the last, with keep: last). The choice is
        # made before the new rows are written, so they go in with their final status (no second pass over them).
        q("CREATE TEMP TABLE IF NOT EXISTS target (src TEXT, id INTEGER, status TEXT)")
        q("DELETE FROM temp.target")
        if report.replaced or facts.tokenless or facts.repeated_tokens or (stored and _answered_before(db)):
            intact = False
            marks = ",".join("?" * len(keep_last)) or "NULL"
            q(
                f"""INSERT INTO temp.target (src, id, status)
                 SELECT src, id, CASE WHEN complete = 0 THEN 'partial' WHEN rank = 1 THEN 'counted' ELSE 'duplicate' END FROM (
                     SELECT src, id, complete, ROW_NUMBER() OVER (PARTITION BY COALESCE(invitation_id, src || id) ORDER BY complete DESC,
                         CASE WHEN moment IN ({marks}) THEN submitted_at END DESC, submitted_at, src, id) AS rank
                     FROM (SELECT 'r' AS src, r.id, r.invitation_id, r.complete, r.moment, r.submitted_at FROM responses r
                           WHERE r.invitation_id IN (SELECT invitation_id FROM temp.stage UNION
                                                     SELECT existing_invitation FROM temp.stage WHERE outcome = 'replace')
                              OR (r.invitation_id IS NULL AND r.id IN (SELECT existing_id FROM temp.stage WHERE outcome = 'replace'))
                           UNION ALL
                           SELECT 's', row_number, invitation_id, complete, moment, submitted_at FROM temp.stage
                           WHERE outcome IS NULL))""",
                keep_last,
            )
            q("CREATE INDEX IF NOT EXISTS temp.target_src_id ON target(src, id)")
            q("""UPDATE temp.stage SET status = t.status
                 FROM temp.target t WHERE t.src = 's' AND t.id = temp.stage.row_number""")
        # New rows get their ids here (last id + file row number), so their answers need no look-up by key.
        base = q("SELECT COALESCE(MAX(id), 0) FROM responses").fetchone()[0]
        # Secondary indexes are kept during the insert: rebuilding them after loading an empty table was measured
        # slower (1,000,000 rows: 3.7 s against 3.2 s), since exports arrive roughly in submission order.
        q(
            """INSERT INTO responses (id, response_key, content_hash, invitation_id, contact_id, moment, source, submitted_at, day,
                 complete, status, imported_at, score_nps, score_csat, score_ces)
             SELECT ? + row_number, response_key, content_hash, invitation_id, contact_id, moment, ?, submitted_at, day, complete,
                 status, ?, score_nps, score_csat, score_ces
             FROM temp.stage WHERE outcome IS NULL ORDER BY row_number""",
            [base, export.format, imported_at],
        )
        report.inserted = q("SELECT changes()").fetchone()[0]
        _drop_free_text_of_the_forgotten(ws, db, few=sum(facts.day_counts.values()) <= 100)
        q(
            """INSERT INTO answers (response_id, question, value_num, value_text)
             SELECT CASE WHEN s.outcome IS NULL THEN ? + s.row_number ELSE s.existing_id END, a.question, a.value_num, a.value_text
             FROM temp.stage s JOIN temp.stage_answers a ON a.row_number = s.row_number
             ORDER BY 1, 2""",  # in the table's key order: the indicator answers were staged after the others
            [base],
        )
        dimensions.add_counted(db, after_id=base)  # the inserted rows, in the rollups of the declared dimensions
        if intact:
            _roll_up_counted(db, report, facts)
        else:
            _roll_up(db, report)
        # Older responses this import replaced or counted again: the next check of the cases reads them
        # (cxctl.results.cases.open_cases), with the new ids above its mark, instead of the whole store.
        if report.replaced or not intact:
            q("""INSERT OR IGNORE INTO case_pending (response_id)
                 SELECT id FROM temp.target WHERE src = 'r'
                 UNION SELECT existing_id FROM temp.stage WHERE outcome = 'replace'""")
        # A row quarantined again keeps one entry, with the latest reason (a mapping fixed in between
        # changes why it does not match); a row that lands now leaves the quarantine it may have been in.
        db.conn.executemany(
            "INSERT INTO quarantine (row_key, source, moment, file_name, row_number, kind, reason, raw,"
            " imported_at) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (row_key) DO UPDATE SET"
            " moment = excluded.moment, file_name = excluded.file_name, row_number = excluded.row_number,"
            " kind = excluded.kind, reason = excluded.reason, raw = excluded.raw, imported_at = excluded.imported_at",
            quarantine,
        )
        if q("SELECT EXISTS (SELECT 1 FROM quarantine WHERE source = ?)", [export.format]).fetchone()[0]:
            digest = "s.row_hash"
            if facts.digests_in_sql:
                db.conn.create_function("cx_row_digest", 1, row_digest, deterministic=True)
                digest = "COALESCE(s.row_hash, cx_row_digest(s.fields))"
            q(
                f"""DELETE FROM quarantine WHERE source = ? AND row_key IN (
                     SELECT 'q:' || {digest} FROM temp.stage s)""",
                [export.format],
            )
            if facts.id_column:
                # An earlier, invalid version of a response that lands now (same tool, moment and response
                # id, corrected in the tool and exported again) leaves the quarantine too. The column name
                # is bound as a JSON path, never spliced.
                q(
                    """DELETE FROM quarantine WHERE source = ? AND moment IS NOT NULL
                         AND moment || ':' || json_extract(raw, ?) IN (SELECT substr(s.response_key, ?) FROM temp.stage s)""",
                    [export.format, '$."' + facts.id_column.replace('"', '""') + '"', len(export.format) + 2],
                )
        if log:
            q(
                """INSERT INTO import_log (kind, file_name, sha256, rows_read, inserted, updated, unchanged, duplicates, rejected, imported_at)
                 VALUES ('responses', ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    export.path.name,
                    export.sha256,
                    report.rows_read,
                    report.inserted,
                    report.replaced,
                    report.unchanged,
                    report.duplicates,
                    len(quarantine),
                    imported_at,
                ],
            )
        q("COMMIT")
    except BaseException:
        q("ROLLBACK")
        raise
    finally:
        if checked:
            q("PRAGMA foreign_keys=ON")
    for entry in quarantine:
        report.quarantined[entry[5]] = report.quarantined.get(entry[5], 0) + 1
        report.problems.append(Problem(entry[4], entry[5], entry[6]))
    report.problems.sort(key=lambda p: p.row)


def _stage_indicator_answers(db: sqlite_utils.Database, indicators: list[tuple[str, int, str]]) -> None:
    """The answer rows of the indicator questions, from the staged scores (the reader staged no answer row
    for them), so every later step finds all the answers in temp.stage_answers."""
    q = db.execute
    q("CREATE TEMP TABLE IF NOT EXISTS stage_indicators (moment TEXT, slot INTEGER, question TEXT)")
    q("DELETE FROM temp.stage_indicators")
    db.conn.executemany("INSERT INTO temp.stage_indicators VALUES (?, ?, ?)", indicators)
    q("""INSERT INTO temp.stage_answers (row_number, question, value_num, value_text)
         SELECT row_number, question, value, NULL FROM (
             SELECT s.row_number, i.question,
                    CASE i.slot WHEN 0 THEN s.score_nps WHEN 1 THEN s.score_csat ELSE s.score_ces END AS value
             FROM temp.stage s JOIN temp.stage_indicators i ON i.moment = s.moment)
         WHERE value IS NOT NULL""")


def _drop_free_text_of_the_forgotten(ws: Workspace, db: sqlite_utils.Database, *, few: bool = False) -> None:
    """A response that still arrives, by its token, for a person who was forgotten counts (its scores are
    anonymous), but its free text may name them again: kept out, as `forget` erased it from the store.
    With `few` staged rows their contacts are looked up one by one, instead of a scan of every contact
    (one answer from the survey page must not cost a pass over the whole audience)."""
    if few:
        found = db.execute(
            "SELECT EXISTS (SELECT 1 FROM temp.stage s JOIN contacts c ON c.id = s.contact_id"
            " WHERE c.forgotten_at IS NOT NULL)"
        ).fetchone()[0]
    else:
        found = db.execute("SELECT EXISTS (SELECT 1 FROM contacts WHERE forgotten_at IS NOT NULL)").fetchone()[0]
    if not found:
        return
    from cxctl.privacy.erasure import free_and_fixed_questions

    free, fixed = free_and_fixed_questions(ws)
    free_marks, fixed_marks = ",".join("?" * len(free)) or "NULL", ",".join("?" * len(fixed)) or "NULL"
    db.execute(
        f"""UPDATE temp.stage_answers SET value_text = NULL WHERE value_text IS NOT NULL
                   AND row_number IN (SELECT s.row_number FROM temp.stage s JOIN contacts c ON c.id = s.contact_id
                                      WHERE c.forgotten_at IS NOT NULL)
                   AND (question IN ({free_marks}) OR (question NOT IN ({fixed_marks}) AND value_num IS NULL))""",
        [*free, *fixed],
    )


def _match_without_token(db: sqlite_utils.Database, windows: dict[str, int]) -> None:
    """No token: the contact by external reference, else by email; then its latest invitation to this moment
    sent within match_window before the response."""
    q = db.execute
    q("CREATE TEMP TABLE IF NOT EXISTS windows (moment TEXT PRIMARY KEY, seconds INTEGER)")
    q("DELETE FROM temp.windows")
    db.conn.executemany("INSERT INTO temp.windows VALUES (?, ?)", list(windows.items()))
    # Addresses are matched by their hash, as everywhere else (contacts are indexed on email_hash only).
    q("CREATE TEMP TABLE IF NOT EXISTS stage_hash (row_number INTEGER PRIMARY KEY, email_hash TEXT NOT NULL)")
    q("DELETE FROM temp.stage_hash")
    db.conn.executemany(
        "INSERT INTO temp.stage_hash VALUES (?, ?)",
        (
            (number, email_hash(email))
            for number, email in db.execute(
                "SELECT row_number, email FROM temp.stage WHERE token IS NULL AND email IS NOT NULL"
            ).fetchall()
        ),
    )
    q("""UPDATE temp.stage SET contact_id = COALESCE(
             (SELECT c.id FROM contacts c WHERE c.external_id = temp.stage.external_id),
             (SELECT c.id FROM contacts c WHERE c.email_hash =
                 (SELECT h.email_hash FROM temp.stage_hash h WHERE h.row_number = temp.stage.row_number)
              ORDER BY c.id LIMIT 1))
         WHERE token IS NULL""")
    q("""UPDATE temp.stage SET invitation_id = (
             SELECT i.id FROM invitations i, temp.windows w
             WHERE i.contact_id = temp.stage.contact_id AND i.moment = temp.stage.moment AND i.kind = 'invitation'
               AND w.moment = i.moment AND COALESCE(i.sent_at, i.send_at) <= temp.stage.submitted_at
               AND COALESCE(i.sent_at, i.send_at) >= datetime(temp.stage.submitted_at, '-' || w.seconds || ' seconds')
             ORDER BY COALESCE(i.sent_at, i.send_at) DESC LIMIT 1),
           invitation_moment = temp.stage.moment
         WHERE token IS NULL AND contact_id IS NOT NULL""")


def _free_of_invitation(db: sqlite_utils.Database, ws: Workspace) -> None:
    """Mark the staged rows that count without an invitation: those of moments with `responses.match: contact`
    tied to a known contact, and those of `match: none` moments (a row carrying a token still needs its
    invitation: an unknown token is quarantined as usual)."""
    by_mode = {
        mode: [m for m, spec in ws.moments.items() if spec.responses.match == mode] for mode in ("contact", "none")
    }
    for mode, moments in by_mode.items():
        if not moments:
            continue
        marks = ",".join("?" * len(moments))
        known = " AND contact_id IS NOT NULL" if mode == "contact" else ""
        db.execute(
            f"UPDATE temp.stage SET free = 1 WHERE invitation_id IS NULL AND token IS NULL AND moment IN ({marks})"
            + known,
            moments,
        )


def _replace_known(db: sqlite_utils.Database, report: ImportReport, imported_at: str, reread: bool = False) -> None:
    """Known response ids: identical (cells and reading) → unchanged, unless `reread`; an older version →
    unchanged; otherwise replaced."""
    q = db.execute
    q(
        """UPDATE temp.stage SET outcome = CASE
             WHEN (r.content_hash = temp.stage.content_hash AND NOT ?) OR temp.stage.submitted_at < r.submitted_at THEN 'unchanged'
             ELSE 'replace' END, existing_id = r.id, existing_invitation = r.invitation_id
         FROM responses r WHERE r.response_key = temp.stage.response_key""",
        [int(reread)],
    )
    unchanged, replaced = q(
        "SELECT COUNT(*) FILTER (WHERE outcome = 'unchanged'), COUNT(*) FILTER (WHERE outcome = 'replace')"
        " FROM temp.stage WHERE outcome IS NOT NULL"
    ).fetchone()
    report.unchanged, report.replaced = unchanged, replaced
    if unchanged:
        q("DELETE FROM temp.stage WHERE outcome = 'unchanged'")
    if replaced:
        # Replaced: leave the counts (trigger), swap the answers, then let the choice recount.
        q(
            "UPDATE responses SET status = 'pending' WHERE id IN (SELECT existing_id FROM temp.stage WHERE outcome = 'replace')"
        )
        q("DELETE FROM answers WHERE response_id IN (SELECT existing_id FROM temp.stage WHERE outcome = 'replace')")
        q(
            """UPDATE responses SET content_hash = s.content_hash, invitation_id = s.invitation_id, contact_id = s.contact_id,
                 submitted_at = s.submitted_at, day = s.day, complete = s.complete, imported_at = ?,
                 score_nps = s.score_nps, score_csat = s.score_csat, score_ces = s.score_ces
             FROM temp.stage s WHERE s.outcome = 'replace' AND responses.id = s.existing_id""",
            [imported_at],
        )


def _roll_up_counted(db: sqlite_utils.Database, report: ImportReport, facts: Facts) -> None:
    """The rollup increments and the report's counts from the counts taken while reading (no scan)."""
    db.conn.executemany(
        "INSERT INTO score_rollup (moment, day, question, value, n) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT DO UPDATE SET n = n + excluded.n",
        [(*key, n) for key, n in sorted(facts.value_counts.items())],
    )
    counted: Counter = Counter()
    for (moment, day, complete), n in facts.day_counts.items():
        if complete:
            counted[moment, day] += n
            report.counted += n
        else:
            report.partial += n
    db.conn.executemany(
        "INSERT INTO response_rollup (moment, day, n) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
        [(*key, n) for key, n in sorted(counted.items())],
    )


def _roll_up(db: sqlite_utils.Database, report: ImportReport) -> None:
    """Counts: new counted rows straight from the staging tables; replaced rows (pending → counted) from the
    store; every other status change of an older row goes through the triggers. Fills the report's counts."""
    q = db.execute
    q("""INSERT INTO score_rollup (moment, day, question, value, n)
         SELECT moment, day, question, value, SUM(n) FROM (
             SELECT s.moment, s.day, a.question, CAST(a.value_num AS INTEGER) AS value, COUNT(*) AS n
             FROM temp.stage s JOIN temp.stage_answers a ON a.row_number = s.row_number
             WHERE s.outcome IS NULL AND s.status = 'counted' AND a.value_num IS NOT NULL GROUP BY 1, 2, 3, 4
             UNION ALL
             SELECT r.moment, r.day, a.question, CAST(a.value_num AS INTEGER), COUNT(*)
             FROM temp.target t JOIN responses r ON r.id = t.id JOIN answers a ON a.response_id = r.id
             WHERE t.src = 'r' AND t.status = 'counted' AND r.status = 'pending' AND a.value_num IS NOT NULL
             GROUP BY 1, 2, 3, 4)
         WHERE true GROUP BY 1, 2, 3, 4
         ON CONFLICT DO UPDATE SET n = n + excluded.n""")
    # New rows per (moment, day, status): one scan gives both the response rollup and the report's counts.
    counted: Counter = Counter()
    names = {"counted": "counted", "partial": "partial", "duplicate": "duplicates"}
    for moment, day, status, n in q(
        "SELECT moment, day, status, COUNT(*) FROM temp.stage WHERE outcome IS NULL GROUP BY 1, 2, 3"
    ).fetchall():
        setattr(report, names[status], getattr(report, names[status]) + n)
        if status == "counted":
            counted[moment, day] += n
    if report.replaced:
        for moment, day, n in q("""SELECT r.moment, r.day, COUNT(*) FROM temp.target t JOIN responses r ON r.id = t.id
                                   WHERE t.src = 'r' AND t.status = 'counted' AND r.status = 'pending' GROUP BY 1, 2""").fetchall():
            counted[moment, day] += n
        for (
            status,
            n,
        ) in q("""SELECT t.status, COUNT(*) FROM temp.stage s JOIN temp.target t ON t.src = 'r' AND t.id = s.existing_id
                              WHERE s.outcome = 'replace' GROUP BY 1""").fetchall():
            setattr(report, names[status], getattr(report, names[status]) + n)
    db.conn.executemany(
        "INSERT INTO response_rollup (moment, day, n) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
        [(m, d, n) for (m, d), n in counted.items()],
    )
    q("""UPDATE responses SET status = t.status FROM temp.target t
         WHERE t.src = 'r' AND responses.id = t.id AND responses.status <> t.status""")
    if report.replaced:
        q("DELETE FROM score_rollup WHERE n = 0")


def _answered_before(db: sqlite_utils.Database) -> bool:
    """Whether an invitation of the staged rows already has a stored response (then the choice must run)."""
    return bool(
        db.execute(
            "SELECT EXISTS (SELECT 1 FROM temp.stage s JOIN responses r ON r.invitation_id = s.invitation_id)"
        ).fetchone()[0]
    )


def rebuild_rollups(db: sqlite_utils.Database) -> None:
    """Recount the scorecard rollups, the declared dimensions' too, from the raw rows (after a bulk load that
    bypassed the import, or to repair)."""
    q = db.execute
    # SQLite's default 2 MB page cache and temporary files, whatever the connection was given (an import sets
    # 256 MB and memory): the scans below read each page once, and a big cache or an in-memory GROUP BY
    # only adds fresh memory to fault in (a million responses, CPU of the answers' pass: 1.2 s against 2.0-2.4 s).
    cache, temp = q("PRAGMA cache_size").fetchone()[0], q("PRAGMA temp_store").fetchone()[0]
    q("PRAGMA cache_size=-2000")
    q("PRAGMA temp_store=DEFAULT")
    q("BEGIN IMMEDIATE")
    try:
        q("DELETE FROM score_rollup")
        q("DELETE FROM response_rollup")
        q("DELETE FROM sent_rollup")
        # The answers first, each finding its response by id: both tables are read in key order. Starting from the
        # responses' status index read the answers in random order (a million responses: 5.1-5.4 s against 2.8-3.1 s).
        q("""INSERT INTO score_rollup (moment, day, question, value, n)
             SELECT r.moment, r.day, a.question, CAST(a.value_num AS INTEGER), COUNT(*) FROM answers a
             CROSS JOIN responses r ON r.id = a.response_id WHERE r.status = 'counted' AND a.value_num IS NOT NULL
             GROUP BY 1, 2, 3, 4""")
        q("""INSERT INTO response_rollup (moment, day, n)
             SELECT moment, day, COUNT(*) FROM responses WHERE status = 'counted' GROUP BY 1, 2""")
        q("""INSERT INTO sent_rollup (moment, hour, n)
             SELECT moment, substr(COALESCE(sent_at, send_at), 1, 13), COUNT(*) FROM invitations
             WHERE status = 'sent' AND kind = 'invitation' GROUP BY 1, 2""")
        dimensions.recount(db)
        q("COMMIT")
    except BaseException:
        q("ROLLBACK")
        raise
    finally:
        q(f"PRAGMA cache_size={int(cache)}")
        q(f"PRAGMA temp_store={int(temp)}")
