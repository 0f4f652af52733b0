"""The send lock: one `cxctl send` per database at a time, so overlapping cron runs are harmless.

`fcntl.flock` on `<database>.send.lock`, held for the whole run (plan and delivery). The kernel releases
it when the process dies, even by `kill -9`, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

from cxctl.core.errors import LockedError

_HELD: dict[str, int] = {}


def database_file(db: sqlite_utils.Database) -> Path | None:
    for _, name, file in db.execute("PRAGMA database_list").fetchall():
        if name == "main" and file:
            return Path(file)
    return None


@contextlib.contextmanager
def send_lock(db_file: Path | None, wait: bool = False, purpose: str = "send") -> Iterator[None]:
    """Hold `<db>.<purpose>.lock` (fcntl.flock) for the run; re-entrant within one process. `purpose`
    names the command (send; alerts, for `cxctl followups alerts|digest`): each has its own lock.
    Raises LockedError at once when another process holds it, unless `wait`."""
    if db_file is None:
        yield
        return
    path = f"{db_file}.{purpose}.lock"
    if path in _HELD:
        _HELD[path] += 1
        try:
            yield
        finally:
            _HELD[path] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise LockedError(
                f"another `cxctl {'send' if purpose == 'send' else 'followups ' + purpose}` (process {holder}) is running "
                f"on {db_file}: it holds {path}; "
                f"let it finish, or rerun with --wait to start when it does"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _HELD[path] = 1
        try:
            yield
        finally:
            del _HELD[path]
    finally:
        os.close(fd)  # closing releases the flock, also when the process dies
