"""The secret that signs the links, as the store remembers it: a fingerprint, never the key.

Every link already in a mailbox was signed with the secret of its day. A different CXCTL_SECRET between
runs would silently break them all (issue 14), so the store keeps the fingerprint of the secret in use
and a changed one is refused unless the user says it is a rotation (`cxctl send --rotate-secret`).
After a rotation the old fingerprint stays `previous` for `workspace.token_grace_period`: when the old
secret is given in `workspace.token_previous_secret_env`, tokens it signed still verify
(cxctl.core.tokens.verify_with_keys) until then.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime

import sqlite_utils

from cxctl.core.durations import format_duration
from cxctl.core.errors import CxError, UsageError
from cxctl.core.timeutil import from_db, to_db
from cxctl.core.tokens import Keyring, fingerprint


class SecretChangedError(CxError):
    """The signing secret differs from the one that signed the links already sent."""


@dataclass
class KeyStatus:
    """What the store knows of the signing keys (for reports; fingerprints only)."""

    current: str
    rotated: bool = False  # this call recorded a rotation
    previous: list[dict] = field(default_factory=list)  # {fingerprint, verify_until, loaded}


def _previous_secret(ws) -> bytes | None:
    value = os.environ.get(ws.settings.token_previous_secret_env)
    return value.encode() if value else None


def keyring(
    ws, db: sqlite_utils.Database, now: datetime, *, rotate: bool = False, record: bool = True
) -> tuple[Keyring, KeyStatus]:
    """The keys to sign and verify with, after checking CXCTL_SECRET against the stored fingerprint.

    The first use records the fingerprint (unless `record` is False: a dry run). Raises
    SecretChangedError when the secret changed and `rotate` is False; with `rotate`, records the change
    (the old key becomes `previous` until now + token_grace_period). Raises UsageError when `rotate` is
    asked with the same secret, or when the previous-secret variable holds a key the store never used.
    """
    secret = ws.secret()
    settings = ws.settings
    current_fp = fingerprint(secret)
    rows = db.execute("SELECT fingerprint, role, verify_until FROM signing_keys").fetchall()
    stored = next((fp for fp, role, _ in rows if role == "current"), None)
    status = KeyStatus(current_fp)
    old = _previous_secret(ws)
    if old is not None and rows and fingerprint(old) not in {fp for fp, _, _ in rows}:
        raise UsageError(
            f"{settings.token_previous_secret_env} holds a secret this workspace never signed with "
            f"({fingerprint(old)}): put the secret used before the rotation there, or unset it"
        )
    if stored is None:
        if record:
            _write(
                db,
                [
                    (
                        "INSERT OR REPLACE INTO signing_keys (fingerprint, role, since) VALUES (?, 'current', ?)",
                        [current_fp, to_db(now)],
                    )
                ],
            )
    elif stored == current_fp:
        if rotate:
            raise UsageError(
                f"--rotate-secret: {settings.token_secret_env} holds the secret already in use ({current_fp}): put the "
                f"new secret in {settings.token_secret_env} and the old one in {settings.token_previous_secret_env}, "
                f"then rerun; or drop --rotate-secret (leave it out of cron: it accepts any change)"
            )
    elif not rotate:
        raise SecretChangedError(
            f"{settings.token_secret_env} is not the secret that signed the links already sent (stored fingerprint "
            f"{stored}, this one {current_fp}): those links would stop verifying. If the change is a mistake, restore "
            f"the previous value; if you mean to rotate, run `cxctl send --rotate-secret` and keep the old secret in "
            f"{settings.token_previous_secret_env} for {format_duration(settings.token_grace_period)} "
            f"(workspace.token_grace_period) so links already in mailboxes keep verifying"
        )
    elif record:
        until = to_db(now + settings.token_grace_period)
        _write(
            db,
            [
                ("UPDATE signing_keys SET role = 'retired' WHERE role = 'previous'", []),
                ("UPDATE signing_keys SET role = 'previous', verify_until = ? WHERE role = 'current'", [until]),
                (
                    "INSERT OR REPLACE INTO signing_keys (fingerprint, role, since, verify_until) VALUES (?, 'current', ?, NULL)",
                    [current_fp, to_db(now)],
                ),
            ],
        )
        status.rotated = True
        rows = db.execute("SELECT fingerprint, role, verify_until FROM signing_keys").fetchall()
    previous = [(fp, until) for fp, role, until in rows if role == "previous"]
    if rotate and not record and stored not in (None, current_fp):  # dry run of a rotation: what it would keep
        previous = [(stored, to_db(now + settings.token_grace_period))]
    keys: list[bytes] = []
    for fp, until in previous:
        expires = from_db(until)  # None: no end to the grace period
        in_grace = expires is None or expires > now
        loaded = old is not None and fingerprint(old) == fp and in_grace
        if loaded:
            assert old is not None, "loaded only when the previous secret is given"
            keys.append(old)
        status.previous.append({"fingerprint": fp, "verify_until": until, "loaded": loaded})
    return Keyring(secret, tuple(keys)), status


def _write(db: sqlite_utils.Database, statements: list[tuple[str, list]]) -> None:
    conn = db.conn
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN IMMEDIATE")
    try:
        for sql, params in statements:
            conn.execute(sql, params)
        if own:
            conn.execute("COMMIT")
    except BaseException:
        if own:
            conn.execute("ROLLBACK")
        raise
