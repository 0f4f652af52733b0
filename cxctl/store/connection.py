"""The SQLite store: one database per workspace, opened through sqlite-utils with WAL, foreign keys
and a busy timeout, and migrated on open (see cxctl.store.migrations)."""

from __future__ import annotations

import hashlib
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cxctl.core.errors import StoreError
from cxctl.core.timeutil import to_db, utcnow
from cxctl.store.migrations import MIGRATIONS

if TYPE_CHECKING:
    # sqlite-utils imports numpy when it is installed (~0.25 s): imported when a store is opened, not
    # when a CLI module that opens one is imported (`cxctl --help` imports them all; issue 18).
    import sqlite_utils


def import_sqlite_utils() -> None:
    """Import sqlite-utils without numpy and pandas, unless they are imported already. sqlite-utils
    imports them, when installed, only to map their scalar types to column types, which cxctl never
    stores; numpy alone is ~0.15 s of every command that opens the store (issue 18). The CLI calls
    this before a command runs; pyarrow and matplotlib still import numpy when a command needs them."""
    if "sqlite_utils" in sys.modules:
        return
    blocked = [name for name in ("numpy", "pandas") if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # what makes an import raise ImportError
    try:
        import sqlite_utils  # noqa: F401
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def email_hash(email: str) -> str:
    """Stable pseudonym of a normalised address: kept after `forget` so the person is not re-invited."""
    return hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()


def connect(path: Path | str) -> sqlite_utils.Database:
    """Open (creating if needed) the database with WAL, foreign keys and a busy timeout; migrate it."""
    import sqlite_utils

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot open the database ({exc}): is it a cxctl SQLite file?") from None
    db = sqlite_utils.Database(conn)
    migrate(db)
    return db


def read(path: Path | str) -> sqlite_utils.Database:
    """The store for a command that only reads (plan, scorecard, lists): a store not created yet reads
    as an empty one, held in memory, and no file appears in the workspace."""
    if not Path(path).exists():
        import sqlite_utils

        db = sqlite_utils.Database(sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False))
        migrate(db)
        return db
    return connect(path)


def migrate(db: sqlite_utils.Database) -> list[int]:
    """Apply the migrations not yet recorded; return the versions applied."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    done = {row[0] for row in db.execute("SELECT version FROM migrations").fetchall()}
    known = max(v for v, _, _ in MIGRATIONS)
    if done and max(done) > known:
        raise StoreError(
            f"the database is at schema version {max(done)}, newer than this cxctl knows ({known}): upgrade cxctl"
        )
    applied = []
    for version, name, function in MIGRATIONS:
        if version in done:
            continue
        # One transaction per migration: a crash leaves the schema at the previous version, never half-way.
        db.execute("BEGIN IMMEDIATE")
        try:
            function(db)
            db.execute(
                "INSERT INTO migrations (version, name, applied_at) VALUES (?, ?, ?)", [version, name, to_db(utcnow())]
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied


@dataclass
class StoreStatus:
    """What `cxctl db status` shows."""

    path: str
    version: int
    latest: int
    counts: dict[str, int]


COUNTED_TABLES = (
    "contacts",
    "events",
    "suppressions",
    "invitations",
    "responses",
    "answers",
    "quarantine",
    "followups",
    "import_log",
    "alerts",
    "bounces",
)


def status(db: sqlite_utils.Database, path: Path | str) -> StoreStatus:
    version = db.execute("SELECT COALESCE(MAX(version), 0) FROM migrations").fetchone()[0]
    counts = {t: db.execute(f"SELECT COUNT(*) FROM [{t}]").fetchone()[0] for t in COUNTED_TABLES if db[t].exists()}
    return StoreStatus(str(path), version, max(v for v, _, _ in MIGRATIONS), counts)
