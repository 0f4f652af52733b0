"""The store's schema as numbered migrations, applied in order and recorded in the `migrations` table.

Migrations are append-only once released: to change the schema, add a function to MIGRATIONS.
Times are UTC text (see cxctl.core.timeutil); free-form attributes are JSON text, queried with
json_extract and a bound path, never by splicing a column name into SQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only annotations use it: importing the store must not import numpy (issue 18)
    import sqlite_utils


def _run_script(db: sqlite_utils.Database, script: str) -> None:
    """Run DDL statements inside the caller's transaction (executescript would commit it)."""
    # Split on complete statements (sqlite3.complete_statement), so trigger bodies keep their `;`.
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n\t;"):
                db.execute(pending)
            pending = ""
    if pending.strip(" \n\t;"):
        db.execute(pending)


def _m1_audience(db: sqlite_utils.Database) -> None:
    """Contacts, events, suppressions and the import log."""
    _run_script(
        db,
        """
        CREATE TABLE contacts (
            id INTEGER PRIMARY KEY,
            external_id TEXT UNIQUE,
            email TEXT,
            email_hash TEXT,
            first_name TEXT,
            last_name TEXT,
            language TEXT,
            timezone TEXT,
            country TEXT,
            segment TEXT,
            company TEXT,
            role TEXT,
            attributes TEXT NOT NULL DEFAULT '{}',
            row_hash TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            forgotten_at TEXT
        );
        CREATE INDEX contacts_email ON contacts(email);
        CREATE INDEX contacts_email_hash ON contacts(email_hash);

        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            event_key TEXT NOT NULL UNIQUE,
            contact_id INTEGER NOT NULL REFERENCES contacts(id),
            type TEXT NOT NULL,
            occurred_at TEXT NOT NULL,
            attributes TEXT NOT NULL DEFAULT '{}',
            source TEXT,
            imported_at TEXT NOT NULL
        );
        CREATE INDEX events_type_time ON events(type, occurred_at);
        CREATE INDEX events_contact ON events(contact_id, occurred_at);

        CREATE TABLE suppressions (
            id INTEGER PRIMARY KEY,
            email_hash TEXT NOT NULL UNIQUE,
            email TEXT,
            reason TEXT NOT NULL,
            source TEXT,
            note TEXT,
            created_at TEXT NOT NULL
        );

        CREATE TABLE import_log (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            file_name TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            rows_read INTEGER NOT NULL DEFAULT 0,
            inserted INTEGER NOT NULL DEFAULT 0,
            updated INTEGER NOT NULL DEFAULT 0,
            unchanged INTEGER NOT NULL DEFAULT 0,
            duplicates INTEGER NOT NULL DEFAULT 0,
            rejected INTEGER NOT NULL DEFAULT 0,
            imported_at TEXT NOT NULL
        );
        """,
    )


def _m2_invitations(db: sqlite_utils.Database) -> None:
    """Invitations and reminders with their send states (planned → sending → sent | failed | bounced)."""
    _run_script(
        db,
        """
        CREATE TABLE invitations (
            id INTEGER PRIMARY KEY,
            dedupe_key TEXT NOT NULL UNIQUE,
            token TEXT NOT NULL UNIQUE,
            contact_id INTEGER NOT NULL REFERENCES contacts(id),
            moment TEXT NOT NULL,
            event_id INTEGER REFERENCES events(id),
            wave TEXT,
            kind TEXT NOT NULL DEFAULT 'invitation',
            parent_id INTEGER REFERENCES invitations(id),
            language TEXT,
            email TEXT,
            send_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'planned',
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT,
            last_error TEXT,
            message_id TEXT,
            sent_at TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX invitations_contact_time ON invitations(contact_id, send_at);
        CREATE INDEX invitations_moment_contact ON invitations(moment, contact_id, send_at);
        CREATE INDEX invitations_status ON invitations(status, send_at);
        CREATE INDEX invitations_parent ON invitations(parent_id);
        CREATE INDEX invitations_wave ON invitations(moment, wave, contact_id);
        -- Fatigue rules read the live invitations of a recent window (cxctl.planning.engine): the expression and the
        -- WHERE must stay identical to the queries there for SQLite to use this partial index. Every
        -- column those queries name is in it, so they never touch the table (covering index).
        CREATE INDEX invitations_fatigue ON invitations(COALESCE(sent_at, send_at), contact_id, moment, kind, status, sent_at, send_at)
            WHERE kind = 'invitation' AND status IN ('planned','sending','sent','in_doubt');
        """,
    )


def _m3_responses(db: sqlite_utils.Database) -> None:
    """Responses, their answers, the quarantine of unusable rows, follow-up calls, and the rollups.

    `status` of a response: counted (the one response that counts for its invitation), partial (not
    finished), duplicate (another response to the same invitation counts), pending (being imported).
    score_nps/csat/ces copy the moment's indicator answers onto the response row, so a breakdown by a
    contact attribute scans one narrow table instead of joining every answer.
    The rollups hold counts of counted responses per (moment, local day[, question, value]) and of sent
    invitations per (moment, UTC hour); triggers keep them exact when rows are updated or deleted by
    any writer (privacy, pruning); the bulk import adds its new rows set-based (cxctl.results.importer).
    """
    _run_script(
        db,
        """
        CREATE TABLE responses (
            id INTEGER PRIMARY KEY,
            response_key TEXT NOT NULL UNIQUE,
            content_hash TEXT NOT NULL,
            invitation_id INTEGER REFERENCES invitations(id),
            contact_id INTEGER REFERENCES contacts(id),
            moment TEXT NOT NULL,
            source TEXT NOT NULL,
            submitted_at TEXT NOT NULL,
            day TEXT NOT NULL,
            complete INTEGER NOT NULL DEFAULT 1,
            status TEXT NOT NULL DEFAULT 'pending',
            score_nps INTEGER,
            score_csat INTEGER,
            score_ces INTEGER,
            import_id INTEGER,
            imported_at TEXT NOT NULL
        );
        CREATE INDEX responses_invitation ON responses(invitation_id, submitted_at);
        CREATE INDEX responses_contact ON responses(contact_id);
        -- Serves every read by status, moment and day (scorecard breakdowns, follow-ups, reasons), covering.
        CREATE INDEX responses_scores ON responses(status, moment, day, score_nps, score_csat, score_ces, contact_id);

        CREATE TABLE answers (
            response_id INTEGER NOT NULL REFERENCES responses(id) ON DELETE CASCADE,
            question TEXT NOT NULL,
            value_num REAL,
            value_text TEXT,
            PRIMARY KEY (response_id, question)
        ) WITHOUT ROWID;

        CREATE TABLE quarantine (
            id INTEGER PRIMARY KEY,
            row_key TEXT NOT NULL UNIQUE,
            source TEXT NOT NULL,
            moment TEXT,
            file_name TEXT,
            row_number INTEGER,
            kind TEXT NOT NULL,
            reason TEXT NOT NULL,
            raw TEXT NOT NULL,
            imported_at TEXT NOT NULL
        );

        CREATE TABLE followups (
            response_id INTEGER PRIMARY KEY REFERENCES responses(id) ON DELETE CASCADE,
            status TEXT NOT NULL DEFAULT 'done',
            note TEXT,
            done_at TEXT NOT NULL
        );

        CREATE TABLE score_rollup (
            moment TEXT NOT NULL,
            day TEXT NOT NULL,
            question TEXT NOT NULL,
            value INTEGER NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (moment, day, question, value)
        ) WITHOUT ROWID;

        CREATE TABLE response_rollup (
            moment TEXT NOT NULL,
            day TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (moment, day)
        ) WITHOUT ROWID;

        CREATE TABLE sent_rollup (
            moment TEXT NOT NULL,
            hour TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (moment, hour)
        ) WITHOUT ROWID;

        CREATE TRIGGER responses_uncount AFTER UPDATE OF status ON responses
        WHEN old.status = 'counted' AND new.status <> 'counted'
        BEGIN
            INSERT INTO score_rollup (moment, day, question, value, n)
                SELECT old.moment, old.day, question, CAST(value_num AS INTEGER), -1 FROM answers
                WHERE response_id = old.id AND value_num IS NOT NULL
                ON CONFLICT DO UPDATE SET n = n - 1;
            INSERT INTO response_rollup (moment, day, n) VALUES (old.moment, old.day, -1)
                ON CONFLICT DO UPDATE SET n = n - 1;
        END;

        CREATE TRIGGER responses_count AFTER UPDATE OF status ON responses
        WHEN old.status NOT IN ('counted', 'pending') AND new.status = 'counted'
        BEGIN
            INSERT INTO score_rollup (moment, day, question, value, n)
                SELECT new.moment, new.day, question, CAST(value_num AS INTEGER), 1 FROM answers
                WHERE response_id = new.id AND value_num IS NOT NULL
                ON CONFLICT DO UPDATE SET n = n + 1;
            INSERT INTO response_rollup (moment, day, n) VALUES (new.moment, new.day, 1)
                ON CONFLICT DO UPDATE SET n = n + 1;
        END;

        CREATE TRIGGER responses_delete BEFORE DELETE ON responses
        WHEN old.status = 'counted'
        BEGIN
            INSERT INTO score_rollup (moment, day, question, value, n)
                SELECT old.moment, old.day, question, CAST(value_num AS INTEGER), -1 FROM answers
                WHERE response_id = old.id AND value_num IS NOT NULL
                ON CONFLICT DO UPDATE SET n = n - 1;
            INSERT INTO response_rollup (moment, day, n) VALUES (old.moment, old.day, -1)
                ON CONFLICT DO UPDATE SET n = n - 1;
        END;

        CREATE INDEX invitations_sent_hour ON invitations(moment, substr(COALESCE(sent_at, send_at), 1, 13), contact_id)
            WHERE status = 'sent' AND kind = 'invitation';

        CREATE TRIGGER invitations_sent_insert AFTER INSERT ON invitations
        WHEN new.status = 'sent' AND new.kind = 'invitation'
        BEGIN
            INSERT INTO sent_rollup (moment, hour, n) VALUES (new.moment, substr(COALESCE(new.sent_at, new.send_at), 1, 13), 1)
                ON CONFLICT DO UPDATE SET n = n + 1;
        END;

        CREATE TRIGGER invitations_sent_leave AFTER UPDATE OF status, sent_at, send_at, moment, kind ON invitations
        WHEN old.status = 'sent' AND old.kind = 'invitation'
        BEGIN
            INSERT INTO sent_rollup (moment, hour, n) VALUES (old.moment, substr(COALESCE(old.sent_at, old.send_at), 1, 13), -1)
                ON CONFLICT DO UPDATE SET n = n - 1;
        END;

        CREATE TRIGGER invitations_sent_enter AFTER UPDATE OF status, sent_at, send_at, moment, kind ON invitations
        WHEN new.status = 'sent' AND new.kind = 'invitation'
        BEGIN
            INSERT INTO sent_rollup (moment, hour, n) VALUES (new.moment, substr(COALESCE(new.sent_at, new.send_at), 1, 13), 1)
                ON CONFLICT DO UPDATE SET n = n + 1;
        END;

        CREATE TRIGGER invitations_sent_delete AFTER DELETE ON invitations
        WHEN old.status = 'sent' AND old.kind = 'invitation'
        BEGIN
            INSERT INTO sent_rollup (moment, hour, n) VALUES (old.moment, substr(COALESCE(old.sent_at, old.send_at), 1, 13), -1)
                ON CONFLICT DO UPDATE SET n = n - 1;
        END;
        """,
    )


def _m4_privacy(db: sqlite_utils.Database) -> None:
    """Hashes of forgotten addresses, so a later import cannot bring the person back.

    The index on invitations(event_id) serves the foreign-key check when retention deletes old
    events: without it every deleted event scans all invitations (quadratic on a large store).
    """
    _run_script(
        db,
        """
        CREATE TABLE forgotten (
            email_hash TEXT PRIMARY KEY,
            forgotten_at TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS invitations_event ON invitations(event_id);
        """,
    )


def _m5_lean_contacts(db: sqlite_utils.Database) -> None:
    """Drop the index on contacts(email): every look-up by address goes through email_hash (the
    pseudonym the suppressions and the forgotten list key on), so the second index only cost a
    million-row import 0.85 s to build and 45 MB to write."""
    _run_script(db, "DROP INDEX IF EXISTS contacts_email;")


def _m6_retries_count(db: sqlite_utils.Database) -> None:
    """A failed send that will be tried again counts toward the fatigue rules like a planned one: the
    partial index those rules read through (cxctl.planning.rules.live_sql) now covers it."""
    _run_script(
        db,
        """
        DROP INDEX IF EXISTS invitations_fatigue;
        CREATE INDEX invitations_fatigue ON invitations(COALESCE(sent_at, send_at), contact_id, moment, kind, status, sent_at,
                                                        send_at, next_attempt_at)
            WHERE kind = 'invitation' AND (status IN ('planned','sending','sent','in_doubt') OR (status = 'failed' AND next_attempt_at IS NOT NULL));
        """,
    )


def _m7_settle_and_keys(db: sqlite_utils.Database) -> None:
    """What settling a crash and rotating the signing secret need (issue 14).

    invitations.run_id: the send run that last handed the message over; a message of a later run found
    in a relay log or a mailbox shows that the evidence covers the time of an earlier run's crash.
    invitations.first_tried_at: start of the retry clock (retries give up on a clock, not a count).
    invitations.reopened: times a never-delivered invitation was planned again (plan, --retry-failed).
    send_runs: one row per delivery run. signing_keys: fingerprints (never the keys) of the secret that
    signs the links, the previous one kept until its grace period ends so rotated links still verify.
    """
    # Idempotent, like the migrations before it: a store whose version record was lost re-applies it safely.
    columns = {row[1] for row in db.execute("PRAGMA table_info(invitations)").fetchall()}
    for name, declaration in (
        ("run_id", "INTEGER"),
        ("first_tried_at", "TEXT"),
        ("reopened", "INTEGER NOT NULL DEFAULT 0"),
    ):
        if name not in columns:
            db.execute(f"ALTER TABLE invitations ADD COLUMN {name} {declaration}")  # constant names, not input
    _run_script(
        db,
        """
        CREATE INDEX IF NOT EXISTS invitations_message_id ON invitations(message_id) WHERE message_id IS NOT NULL;
        CREATE TABLE IF NOT EXISTS send_runs (
            id INTEGER PRIMARY KEY,
            pid INTEGER,
            started_at TEXT NOT NULL,
            finished_at TEXT
        );
        CREATE TABLE IF NOT EXISTS signing_keys (
            fingerprint TEXT PRIMARY KEY,
            role TEXT NOT NULL CHECK (role IN ('current', 'previous', 'retired')),
            since TEXT NOT NULL,
            verify_until TEXT
        );
        """,
    )


def _m8_sms(db: sqlite_utils.Database) -> None:
    """A second channel (issue 16): a contact's mobile number (E.164) and consent per channel; each
    invitation's channel, the number it went to and the provider's id for it (delivery receipts name it);
    suppressions of numbers, kept apart from those of addresses (an SMS STOP is not an email opt-out).

    contacts.sms_consent: 1 consented, 0 refused, NULL unknown (no SMS). contacts.email_consent: 0 refused,
    else email may be used (as before this migration). phone_hash keys the SMS suppressions, like email_hash.
    Idempotent, like migration 7."""
    for table, added in (
        (
            "contacts",
            (("phone", "TEXT"), ("phone_hash", "TEXT"), ("sms_consent", "INTEGER"), ("email_consent", "INTEGER")),
        ),
        ("invitations", (("channel", "TEXT NOT NULL DEFAULT 'email'"), ("phone", "TEXT"), ("provider_ref", "TEXT"))),
    ):
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})").fetchall()}
        for name, declaration in added:
            if name not in columns:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")  # constant names, not input
    _run_script(
        db,
        """
        CREATE INDEX IF NOT EXISTS contacts_phone_hash ON contacts(phone_hash) WHERE phone_hash IS NOT NULL;
        CREATE INDEX IF NOT EXISTS invitations_provider_ref ON invitations(provider_ref) WHERE provider_ref IS NOT NULL;
        CREATE TABLE IF NOT EXISTS sms_suppressions (
            id INTEGER PRIMARY KEY,
            phone_hash TEXT NOT NULL UNIQUE,
            phone TEXT,
            reason TEXT NOT NULL,
            source TEXT,
            note TEXT,
            created_at TEXT NOT NULL
        );
        """,
    )


def _m9_followup_cases(db: sqlite_utils.Database) -> None:
    """Follow-ups become cases (issue 17): a state (open → contacted → resolved, or unreachable, no_action),
    an owner, a due date, the first contact, the outcome, and a history of every change with who and when.

    The `followups` table is rebuilt (done_at may now be empty: an open case is not done); its rows, all
    `done` call-backs, become resolved cases whose note is the outcome. note stays the latest note, so
    forget and prune, which clear it, keep working; a writer of the old columns only still gets a valid row.
    """
    columns = {row[1] for row in db.execute("PRAGMA table_info(followups)").fetchall()}
    if "opened_at" not in columns:  # idempotent: a store already rebuilt is left as it is
        _run_script(
            db,
            """
            CREATE TABLE followups_cases (
                response_id INTEGER PRIMARY KEY REFERENCES responses(id) ON DELETE CASCADE,
                status TEXT NOT NULL DEFAULT 'open',
                note TEXT,
                done_at TEXT,
                categories TEXT NOT NULL DEFAULT '[]',
                owner TEXT,
                owner_rule TEXT,
                due_at TEXT,
                opened_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
                first_contact_at TEXT,
                outcome TEXT,
                updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
                updated_by TEXT
            );
            INSERT INTO followups_cases (response_id, status, note, done_at, outcome, opened_at, first_contact_at,
                                         updated_at, updated_by)
                SELECT f.response_id, CASE f.status WHEN 'done' THEN 'resolved' ELSE f.status END, f.note, f.done_at, f.note,
                       COALESCE((SELECT r.imported_at FROM responses r WHERE r.id = f.response_id), f.done_at),
                       f.done_at, f.done_at, 'migration'
                FROM followups f;
            DROP TABLE followups;
            ALTER TABLE followups_cases RENAME TO followups;
            """,
        )
    _run_script(
        db,
        """
        CREATE INDEX IF NOT EXISTS followups_state ON followups(status, due_at);
        CREATE INDEX IF NOT EXISTS followups_owner ON followups(owner, status);
        CREATE TABLE IF NOT EXISTS followup_history (
            id INTEGER PRIMARY KEY,
            response_id INTEGER NOT NULL REFERENCES followups(response_id) ON DELETE CASCADE,
            at TEXT NOT NULL,
            by TEXT,
            action TEXT NOT NULL,
            from_status TEXT,
            to_status TEXT,
            owner TEXT,
            due_at TEXT,
            note TEXT
        );
        CREATE INDEX IF NOT EXISTS followup_history_case ON followup_history(response_id, id);
        INSERT INTO followup_history (response_id, at, by, action, from_status, to_status, note)
            SELECT response_id, COALESCE(done_at, updated_at), 'migration', 'migrated', NULL, status, note FROM followups
            WHERE updated_by = 'migration'
              AND NOT EXISTS (SELECT 1 FROM followup_history h WHERE h.response_id = followups.response_id);
        """,
    )


def _m10_alerts(db: sqlite_utils.Database) -> None:
    """Alerts to case owners (email, Slack, Teams), sent once per case, event and channel: alert_key is
    unique, and the states mirror the invitations' (planned → sending → sent | failed; a row left
    `sending` by a dead run is in_doubt and never re-sent silently). payload holds a digest's case ids."""
    _run_script(
        db,
        """
        CREATE TABLE IF NOT EXISTS alerts (
            id INTEGER PRIMARY KEY,
            alert_key TEXT NOT NULL UNIQUE,
            response_id INTEGER REFERENCES followups(response_id) ON DELETE CASCADE,
            event TEXT NOT NULL,
            channel TEXT NOT NULL,
            recipient TEXT NOT NULL,
            payload TEXT NOT NULL DEFAULT '[]',
            status TEXT NOT NULL DEFAULT 'planned',
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            message_id TEXT,
            created_at TEXT NOT NULL,
            sent_at TEXT,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS alerts_status ON alerts(status, id);
        CREATE INDEX IF NOT EXISTS alerts_case ON alerts(response_id);
        """,
    )


def _m11_bounces(db: sqlite_utils.Database) -> None:
    """Bounces and complaints that arrive after the SMTP session (`cxctl bounces import`): one row per
    report and address (report_key is the report's Message-ID, else a hash of its bytes, so importing a
    mailbox twice changes nothing); the moment and the invitation's day are kept for the rates, even
    once retention deletes the invitation. Addresses only as their hash."""
    _run_script(
        db,
        """
        CREATE TABLE IF NOT EXISTS bounces (
            id INTEGER PRIMARY KEY,
            report_key TEXT NOT NULL,
            email_hash TEXT NOT NULL,
            kind TEXT NOT NULL,
            invitation_id INTEGER REFERENCES invitations(id) ON DELETE SET NULL,
            moment TEXT,
            sent_day TEXT,
            matched_by TEXT,
            diagnostic TEXT,
            source TEXT,
            imported_at TEXT NOT NULL,
            UNIQUE (report_key, email_hash)
        );
        CREATE INDEX IF NOT EXISTS bounces_address ON bounces(email_hash, kind);
        CREATE INDEX IF NOT EXISTS bounces_moment_day ON bounces(moment, sent_day, kind);
        """,
    )


def _m12_wave_state(db: sqlite_utils.Database) -> None:
    """A covering index of a relational wave's invitations (`plan`, issue 18): who already has one for this
    moment and wave, its id and status and whether it counts, read from the index alone instead of one
    table look-up per invitation (1.3 s of `plan` at 1M contacts / 10M invitations). Partial: only the
    invitations of a wave. Building it on an existing store of 10M invitations takes about 25 s, once."""
    _run_script(
        db,
        """
        CREATE INDEX IF NOT EXISTS invitations_wave_state
            ON invitations(moment, wave, contact_id, status, next_attempt_at, sent_at, reopened, kind)
            WHERE kind = 'invitation' AND wave IS NOT NULL;
        """,
    )


def _m13_dimensions(db: sqlite_utils.Database) -> None:
    """Rollups per value of the contact and event attributes the workspace lists in `dimensions:` (issue 18):
    the registry, the counts, and the triggers that keep them at each response's current value. Empty until
    `cxctl.store.dimensions.sync` builds a dimension; the triggers do nothing while the registry is empty."""
    from cxctl.store.dimensions import schema

    _run_script(db, schema())


def _m14_case_scan(db: sqlite_utils.Database) -> None:
    """What the follow-up cases were last checked against (issue 18): an import opens the cases of the
    responses it wrote or changed, not of the whole store. `case_scan` holds the thresholds the last check
    applied and the highest response id it saw; `case_pending` the older responses an import changed since
    (replaced, or counted again). A store without a row is checked in full once. The indexes spare an import
    a read of every contact (was anyone forgotten?), of the whole quarantine (any row of this tool?) and of
    every rollup count (which fell to zero after a replacement?)."""
    _run_script(
        db,
        """
        CREATE TABLE IF NOT EXISTS case_scan (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            flags TEXT NOT NULL,
            through INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS case_pending (response_id INTEGER PRIMARY KEY);
        CREATE INDEX IF NOT EXISTS contacts_forgotten ON contacts(forgotten_at) WHERE forgotten_at IS NOT NULL;
        CREATE INDEX IF NOT EXISTS quarantine_source ON quarantine(source, moment);
        CREATE INDEX IF NOT EXISTS score_rollup_empty ON score_rollup(n) WHERE n = 0;
        """,
    )


MIGRATIONS: list[tuple[int, str, Callable[[sqlite_utils.Database], None]]] = [
    (1, "audience", _m1_audience),
    (2, "invitations", _m2_invitations),
    (3, "responses", _m3_responses),
    (4, "privacy", _m4_privacy),
    (5, "lean contacts", _m5_lean_contacts),
    (6, "retries count", _m6_retries_count),
    (7, "settle and keys", _m7_settle_and_keys),
    (8, "sms", _m8_sms),
    (9, "follow-up cases", _m9_followup_cases),
    (10, "alerts", _m10_alerts),
    (11, "bounces", _m11_bounces),
    (12, "wave state", _m12_wave_state),
    (13, "dimensions", _m13_dimensions),
    (14, "case scan", _m14_case_scan),
]
