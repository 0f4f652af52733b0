"""Dimension rollups: counts of counted responses and sent invitations per value of a contact or event
attribute the workspace lists in `dimensions:`, so a scorecard broken down by it reads a table bounded by
the distinct (dimension, value, moment, day, score) combinations instead of scanning every response.

A response counts under the CURRENT value of its contact's attribute (or of the event behind its
invitation), exactly as the breakdown that scans the responses: when a contact's attribute changes, the
triggers of migration 13 move that contact's counts from the old value to the new one. Rows written in
bulk by the responses import are added by `add_counted` (the import calls it once); every other write
goes through the triggers. Attribute names are bound as JSON paths, never spliced into SQL.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: `validate` reads this module's names and never opens a store
    import sqlite_utils

CONTACT_COLUMNS = ("segment", "country", "language", "company", "role")
"""Contact columns a scorecard breaks down by (the same as cxctl.results.scorecard's)."""
EVENT_PREFIX = "event."
BUILTIN = ("moment", "journey", "stage", "week", "month", "quarter")
"""Dimensions every scorecard reads from the main rollups: nothing to declare."""
KINDS = ("nps", "csat", "ces")
"""Score kinds, stored as their index (0, 1, 2): the responses' score_nps, score_csat, score_ces."""


@dataclass(frozen=True)
class Dimension:
    """One declared dimension: where its value is read."""

    name: str
    source: str  # 'contact' (an attribute), 'column' (a contact column) or 'event' (an attribute of the event)
    field: str  # the attribute or column name

    @property
    def path(self) -> str:
        return '$."' + self.field.replace('"', '""') + '"'


@dataclass
class SyncResult:
    """What `sync` did: the dimensions built and dropped, and why it wrote nothing when it could not."""

    built: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str | None = None


def parse(name: str) -> Dimension:
    """`event.nature` → the event attribute `nature`; `segment` → the contact column; else a contact attribute."""
    if name.startswith(EVENT_PREFIX):
        return Dimension(name, "event", name[len(EVENT_PREFIX) :])
    if name in CONTACT_COLUMNS:
        return Dimension(name, "column", name)
    return Dimension(name, "contact", name)


def built(db: sqlite_utils.Database) -> dict[str, Dimension]:
    """The dimensions whose rollups exist in the store, by name."""
    rows = db.execute("SELECT name, source, field FROM rollup_dimensions").fetchall()
    return {name: Dimension(name, source, field_) for name, source, field_ in rows}


# --- the value of a dimension for a row (SQL over the registry row `d`) ---------------------------------------


def _contact_value(row: str) -> str:
    """The raw value of dimension `d` on contact row `row` (the column names are constants, not input)."""
    columns = " ".join(f"WHEN '{c}' THEN {row}.{c}" for c in CONTACT_COLUMNS)
    return (
        f"CASE d.source WHEN 'column' THEN CASE d.field {columns} END ELSE json_extract({row}.attributes, d.path) END"
    )


def _text(expr: str) -> str:
    """As the breakdown groups: no value (or no contact, no event) is ''; numbers as text."""
    return f"CAST(COALESCE({expr}, '') AS TEXT)"


def _response_value(row: str) -> str:
    return _text(
        f"CASE WHEN d.source = 'event' THEN (SELECT json_extract(e.attributes, d.path) FROM invitations i "
        f"JOIN events e ON e.id = i.event_id WHERE i.id = {row}.invitation_id) "
        f"ELSE (SELECT {_contact_value('c')} FROM contacts c WHERE c.id = {row}.contact_id) END"
    )


def _invitation_value(row: str) -> str:
    return _text(
        f"CASE WHEN d.source = 'event' THEN (SELECT json_extract(e.attributes, d.path) FROM events e "
        f"WHERE e.id = {row}.event_id) ELSE (SELECT {_contact_value('c')} FROM contacts c WHERE c.id = {row}.contact_id) END"
    )


_KIND_ROWS = "(SELECT 0 AS kind UNION ALL SELECT 1 UNION ALL SELECT 2) k"


def _score(row: str) -> str:
    return f"CASE k.kind WHEN 0 THEN {row}.score_nps WHEN 1 THEN {row}.score_csat ELSE {row}.score_ces END"


def _responses_into(select_from: str, value: str, sign: str, where: str, dims: str = "true") -> list[str]:
    """Two statements adding `sign` × the counted responses of `select_from` (alias r, beside registry row d)
    under `value`: to the score rollup and the response rollup, grouped first."""
    return [
        f"""INSERT INTO dim_score_rollup (dimension, moment, day, value, kind, score, n)
            SELECT d.name, r.moment, r.day, {value}, k.kind, {_score("r")}, SUM({sign})
            FROM rollup_dimensions d, {select_from}, {_KIND_ROWS}
            WHERE ({dims}) AND ({where}) AND {_score("r")} IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6
            ON CONFLICT DO UPDATE SET n = n + excluded.n""",
        f"""INSERT INTO dim_response_rollup (dimension, moment, day, value, n, uninvited)
            SELECT d.name, r.moment, r.day, {value}, SUM({sign}), SUM(({sign}) * (r.invitation_id IS NULL))
            FROM rollup_dimensions d, {select_from}
            WHERE ({dims}) AND ({where}) GROUP BY 1, 2, 3, 4
            ON CONFLICT DO UPDATE SET n = n + excluded.n, uninvited = uninvited + excluded.uninvited""",
    ]


def _sent_into(select_from: str, value: str, sign: str, where: str, dims: str = "true") -> str:
    """Adds `sign` × the sent invitations of `select_from` (alias i) under `value`."""
    return f"""INSERT INTO dim_sent_rollup (dimension, moment, hour, value, n)
            SELECT d.name, i.moment, substr(COALESCE(i.sent_at, i.send_at), 1, 13), {value}, SUM({sign})
            FROM rollup_dimensions d, {select_from}
            WHERE ({dims}) AND ({where}) AND i.status = 'sent' AND i.kind = 'invitation' GROUP BY 1, 2, 3, 4
            ON CONFLICT DO UPDATE SET n = n + excluded.n"""


def _one_row(row: str) -> str:
    """The trigger row `row` (old/new) as a one-row table r, so one statement serves bulk and trigger."""
    return (
        f"(SELECT {row}.moment AS moment, {row}.day AS day, {row}.score_nps AS score_nps, {row}.score_csat AS score_csat, "
        f"{row}.score_ces AS score_ces, {row}.invitation_id AS invitation_id, {row}.contact_id AS contact_id) r"
    )


def _one_invitation(row: str) -> str:
    return (
        f"(SELECT {row}.moment AS moment, {row}.sent_at AS sent_at, {row}.send_at AS send_at, {row}.status AS status, "
        f"{row}.kind AS kind, {row}.event_id AS event_id, {row}.contact_id AS contact_id) i"
    )


_MOVE_ROWS = "(SELECT -1 AS sign UNION ALL SELECT 1) m"


def _moved(old: str, new: str) -> str:
    """The value of each side of a move: the old value leaves (sign -1), the new one enters (+1)."""
    return f"CASE m.sign WHEN -1 THEN {old} ELSE {new} END"


_ANY = "EXISTS (SELECT 1 FROM rollup_dimensions)"
_RESPONSE_COLUMNS = "status, moment, day, score_nps, score_csat, score_ces, contact_id, invitation_id"
_SENT_COLUMNS = "status, kind, sent_at, send_at, moment, contact_id, event_id"


def _trigger(name: str, when: str, statements: Iterable[str]) -> str:
    body = ";\n".join(statements)
    return f"CREATE TRIGGER IF NOT EXISTS {name} {when}\nBEGIN\n{body};\nEND;\n"


def schema() -> str:
    """The tables and triggers of migration 13 (SQL text built from constants). Migration 13 runs this text
    once per store: a later change here reaches existing stores only through a new migration that drops and
    recreates what changed."""
    # An invitation's event changed: its responses move from the old event's value to the new one's.
    old_event_value = _text("(SELECT json_extract(e.attributes, d.path) FROM events e WHERE e.id = old.event_id)")
    new_event_value = _text("(SELECT json_extract(e.attributes, d.path) FROM events e WHERE e.id = new.event_id)")
    contact_old = _text(_contact_value("old"))
    contact_new = _text(_contact_value("new"))
    event_old = _text("json_extract(old.attributes, d.path)")
    event_new = _text("json_extract(new.attributes, d.path)")
    contact_dims = "d.source <> 'event'"
    event_dims = "d.source = 'event'"
    moved_contact = _moved(contact_old, contact_new)
    moved_event = _moved(event_old, event_new)
    moved_invitation = _moved(old_event_value, new_event_value)
    # Keys end with the day (the hour): a period's count for one value is one range of the primary key.
    tables = """
        CREATE TABLE IF NOT EXISTS rollup_dimensions (
            name TEXT PRIMARY KEY,
            source TEXT NOT NULL CHECK (source IN ('contact', 'column', 'event')),
            field TEXT NOT NULL,
            path TEXT NOT NULL,
            built_at TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS dim_score_rollup (
            dimension TEXT NOT NULL,
            moment TEXT NOT NULL,
            day TEXT NOT NULL,
            value TEXT NOT NULL,
            kind INTEGER NOT NULL,
            score INTEGER NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (dimension, moment, value, kind, score, day)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS dim_response_rollup (
            dimension TEXT NOT NULL,
            moment TEXT NOT NULL,
            day TEXT NOT NULL,
            value TEXT NOT NULL,
            n INTEGER NOT NULL,
            uninvited INTEGER NOT NULL,
            PRIMARY KEY (dimension, moment, value, day)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS dim_sent_rollup (
            dimension TEXT NOT NULL,
            moment TEXT NOT NULL,
            hour TEXT NOT NULL,
            value TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (dimension, moment, value, hour)
        ) WITHOUT ROWID;
    """
    triggers = [
        _trigger(
            "responses_dims_leave",
            f"AFTER UPDATE OF {_RESPONSE_COLUMNS} ON responses WHEN old.status = 'counted' AND {_ANY}",
            _responses_into(_one_row("old"), _response_value("r"), "-1", "true"),
        ),
        # pending → counted included: the import adds only the rows it inserts (add_counted), not the ones it replaces.
        _trigger(
            "responses_dims_enter",
            f"AFTER UPDATE OF {_RESPONSE_COLUMNS} ON responses WHEN new.status = 'counted' AND {_ANY}",
            _responses_into(_one_row("new"), _response_value("r"), "1", "true"),
        ),
        _trigger(
            "responses_dims_delete",
            f"BEFORE DELETE ON responses WHEN old.status = 'counted' AND {_ANY}",
            _responses_into(_one_row("old"), _response_value("r"), "-1", "true"),
        ),
        _trigger(
            "invitations_dims_insert",
            f"AFTER INSERT ON invitations WHEN new.status = 'sent' AND new.kind = 'invitation' AND {_ANY}",
            [_sent_into(_one_invitation("new"), _invitation_value("i"), "1", "true")],
        ),
        _trigger(
            "invitations_dims_leave",
            f"AFTER UPDATE OF {_SENT_COLUMNS} ON invitations WHEN old.status = 'sent' AND old.kind = 'invitation' AND {_ANY}",
            [_sent_into(_one_invitation("old"), _invitation_value("i"), "-1", "true")],
        ),
        _trigger(
            "invitations_dims_enter",
            f"AFTER UPDATE OF {_SENT_COLUMNS} ON invitations WHEN new.status = 'sent' AND new.kind = 'invitation' AND {_ANY}",
            [_sent_into(_one_invitation("new"), _invitation_value("i"), "1", "true")],
        ),
        _trigger(
            "invitations_dims_delete",
            f"AFTER DELETE ON invitations WHEN old.status = 'sent' AND old.kind = 'invitation' AND {_ANY}",
            [_sent_into(_one_invitation("old"), _invitation_value("i"), "-1", "true")],
        ),
        _trigger(
            "invitations_dims_event",
            "AFTER UPDATE OF event_id ON invitations WHEN old.event_id IS NOT new.event_id AND EXISTS "
            "(SELECT 1 FROM rollup_dimensions WHERE source = 'event')",
            _responses_into(
                f"responses r, {_MOVE_ROWS}",
                moved_invitation,
                "m.sign",
                "r.invitation_id = new.id AND r.status = 'counted'",
                event_dims,
            ),
        ),
        _trigger(
            "contacts_dims_move",
            "AFTER UPDATE OF attributes, segment, country, language, company, role ON contacts WHEN EXISTS "
            f"(SELECT 1 FROM rollup_dimensions d WHERE {contact_dims} AND {contact_old} IS NOT {contact_new})",
            [
                *_responses_into(
                    f"responses r, {_MOVE_ROWS}",
                    moved_contact,
                    "m.sign",
                    f"r.contact_id = new.id AND r.status = 'counted' AND {contact_old} IS NOT {contact_new}",
                    contact_dims,
                ),
                _sent_into(
                    f"invitations i, {_MOVE_ROWS}",
                    moved_contact,
                    "m.sign",
                    f"i.contact_id = new.id AND {contact_old} IS NOT {contact_new}",
                    contact_dims,
                ),
            ],
        ),
        _trigger(
            "events_dims_move",
            "AFTER UPDATE OF attributes ON events WHEN EXISTS "
            f"(SELECT 1 FROM rollup_dimensions d WHERE {event_dims} AND {event_old} IS NOT {event_new})",
            [
                *_responses_into(
                    f"invitations x JOIN responses r ON r.invitation_id = x.id, {_MOVE_ROWS}",
                    moved_event,
                    "m.sign",
                    f"x.event_id = new.id AND r.status = 'counted' AND {event_old} IS NOT {event_new}",
                    event_dims,
                ),
                _sent_into(
                    f"invitations i, {_MOVE_ROWS}",
                    moved_event,
                    "m.sign",
                    f"i.event_id = new.id AND {event_old} IS NOT {event_new}",
                    event_dims,
                ),
            ],
        ),
    ]
    return tables + "".join(triggers)


# --- building, dropping, adding -------------------------------------------------------------------------------


def _count(db: sqlite_utils.Database, dimension: Dimension, after_id: int | None = None) -> None:
    """Add to `dimension`'s rollups the counted responses (those with an id above `after_id`, else all, and
    then the sent invitations too), set-based: each contact's (event's) value is read once into a temporary
    table, the responses are grouped through the store's covering index, the ones without invitation
    counted apart through theirs. Groups come out in the order of each rollup's key (appended, not scattered)."""
    q = db.execute
    event = dimension.source == "event"
    q("DROP TABLE IF EXISTS temp.dim_values")
    q("CREATE TEMP TABLE dim_values (id INTEGER PRIMARY KEY, value TEXT NOT NULL)")
    only = "true" if after_id is None else "r.id > :after"
    owner = "i.event_id" if event else "r.contact_id"
    join = "LEFT JOIN invitations i ON i.id = r.invitation_id" if event else ""
    wanted = f"(SELECT {owner} FROM responses r {join} WHERE r.status = 'counted' AND {only})"
    source = "events x" if event else "contacts x"
    value = "json_extract(x.attributes, d.path)" if event else _contact_value("x")
    q(
        f"""INSERT INTO temp.dim_values SELECT x.id, {_text(value)} FROM rollup_dimensions d, {source}
            WHERE d.name = :name {"" if after_id is None else "AND x.id IN " + wanted}""",
        {"name": dimension.name, "after": after_id},
    )
    value_of = "COALESCE(v.value, '')"
    q("DROP TABLE IF EXISTS temp.dim_counts")
    q(
        f"""CREATE TEMP TABLE dim_counts AS
            SELECT r.moment AS moment, r.day AS day, r.score_nps AS score_nps, r.score_csat AS score_csat,
                   r.score_ces AS score_ces, {value_of} AS value, COUNT(*) AS n
            FROM responses r {join} LEFT JOIN temp.dim_values v ON v.id = {owner}
            WHERE r.status = 'counted' AND {only} GROUP BY 1, 2, 3, 4, 5, 6""",
        {"after": after_id},
    )
    q(
        f"""INSERT INTO dim_score_rollup (dimension, moment, day, value, kind, score, n)
            SELECT :name, r.moment, r.day, r.value, k.kind, {_score("r")}, SUM(r.n) FROM temp.dim_counts r, {_KIND_ROWS}
            WHERE {_score("r")} IS NOT NULL GROUP BY 2, 4, 5, 6, 3
            ON CONFLICT DO UPDATE SET n = n + excluded.n""",
        {"name": dimension.name},
    )
    q(
        """INSERT INTO dim_response_rollup (dimension, moment, day, value, n, uninvited)
           SELECT :name, moment, day, value, SUM(n), 0 FROM temp.dim_counts WHERE true GROUP BY 2, 4, 3
           ON CONFLICT DO UPDATE SET n = n + excluded.n""",
        {"name": dimension.name},
    )
    # Without invitation: no event (value ''), and few rows, found through the index on invitation_id.
    q(
        f"""INSERT INTO dim_response_rollup (dimension, moment, day, value, n, uninvited)
            SELECT :name, r.moment, r.day, {"''" if event else value_of}, 0, COUNT(*)
            FROM responses r {"" if event else "LEFT JOIN temp.dim_values v ON v.id = r.contact_id"}
            WHERE r.invitation_id IS NULL AND r.status = 'counted' AND {only} GROUP BY 2, 3, 4
            ON CONFLICT DO UPDATE SET uninvited = uninvited + excluded.uninvited""",
        {"name": dimension.name, "after": after_id},
    )
    if after_id is None:
        owner = "i.event_id" if event else "i.contact_id"
        index = "" if event else "INDEXED BY invitations_sent_hour"
        q(
            f"""INSERT INTO dim_sent_rollup (dimension, moment, hour, value, n)
                SELECT :name, i.moment, substr(COALESCE(i.sent_at, i.send_at), 1, 13), {value_of}, COUNT(*)
                FROM invitations i {index} LEFT JOIN temp.dim_values v ON v.id = {owner}
                WHERE i.status = 'sent' AND i.kind = 'invitation' GROUP BY 2, 4, 3
                ON CONFLICT DO UPDATE SET n = n + excluded.n""",
            {"name": dimension.name},
        )
    q("DROP TABLE temp.dim_counts")
    q("DROP TABLE temp.dim_values")


def _drop(db: sqlite_utils.Database, name: str) -> None:
    for table in ("dim_score_rollup", "dim_response_rollup", "dim_sent_rollup"):
        db.execute(f"DELETE FROM [{table}] WHERE dimension = ?", [name])  # constant table names


def sync(db: sqlite_utils.Database, names: Iterable[str], *, now: str = "") -> SyncResult:
    """Build the rollups of the dimensions listed and not built yet, drop those no longer listed; in one
    transaction. A store that cannot be written (read-only, or the in-memory empty store) is left untouched:
    the result says so, and the scorecards read the raw rows."""
    wanted = {name: parse(name) for name in dict.fromkeys(names)}
    have = built(db)
    to_build = [d for name, d in wanted.items() if have.get(name) != d]
    to_drop = [name for name in have if name not in wanted or have[name] != wanted[name]]
    result = SyncResult()
    if not to_build and not to_drop:
        return result
    if not db.execute("PRAGMA main.database_list").fetchone()[2]:
        result.skipped = "the store is not created yet"
        return result
    started = time.perf_counter()
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        result.skipped = f"the store cannot be written ({exc})"
        return result
    try:
        for name in to_drop:
            _drop(db, name)
            db.execute("DELETE FROM rollup_dimensions WHERE name = ?", [name])
        for d in to_build:
            db.execute(
                "INSERT INTO rollup_dimensions (name, source, field, path, built_at) VALUES (?, ?, ?, ?, ?)",
                [d.name, d.source, d.field, d.path, now or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())],
            )
            _count(db, d)
        db.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        db.execute("ROLLBACK")
        if "readonly" in str(exc):
            result.skipped = f"the store cannot be written ({exc})"
            return result
        raise
    except BaseException:
        db.execute("ROLLBACK")
        raise
    result.built = [d.name for d in to_build]
    result.dropped = [name for name in to_drop if name not in result.built]
    result.seconds = time.perf_counter() - started
    return result


def recount(db: sqlite_utils.Database) -> None:
    """Recount every built dimension from the raw rows, inside the caller's transaction (rollups rebuild)."""
    for name, dimension in built(db).items():
        _drop(db, name)
        _count(db, dimension)


def add_counted(db: sqlite_utils.Database, after_id: int) -> None:
    """Add the counted responses with an id above `after_id` (the rows a bulk import just inserted, which no
    trigger saw), inside the caller's transaction. Nothing to do when no dimension is built."""
    for dimension in built(db).values():
        _count(db, dimension, after_id)
