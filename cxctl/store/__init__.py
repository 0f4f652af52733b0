"""The SQLite store: connection, pragmas and numbered migrations.

`from cxctl import store` then `store.connect(path)` (read-write, migrated) or `store.read(path)`
(commands that only read: no file is created)."""

from cxctl.store.connection import (
    COUNTED_TABLES,
    StoreStatus,
    connect,
    email_hash,
    import_sqlite_utils,
    migrate,
    read,
    status,
)
from cxctl.store.migrations import MIGRATIONS

__all__ = [
    "COUNTED_TABLES",
    "MIGRATIONS",
    "StoreStatus",
    "connect",
    "email_hash",
    "import_sqlite_utils",
    "migrate",
    "read",
    "status",
]
