"""The quarantine of the response rows that cannot land: their entries (keyed by the digest of the row's
cells, so a row quarantined again keeps one entry), the reasons of the rows that match no invitation, and
the list `cxctl responses quarantine` shows. `cxctl.results.response_store.settle` writes them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import sqlite_utils

from cxctl.core import tokens
from cxctl.core.errors import UsageError, did_you_mean
from cxctl.results.formats import Export
from cxctl.store import email_hash


def row_digest(joined: str) -> str:
    """The digest of a row's cells joined by the unit separator: the key of its quarantine entry, and the response id of a
    row without one (also the SQL function `cx_row_digest`, for the rows staged without it)."""
    return hashlib.sha1(joined.encode()).hexdigest()


FORGOTTEN_REASON = "forgotten (GDPR erasure): this person asked to be erased; the row's cells are not kept"


def quarantine_entry(
    export: Export,
    columns: list[str],
    number: int,
    joined: str,
    kind: str,
    reason: str,
    moment_id: str | None,
    imported_at: str,
    *,
    blank: bool = False,
) -> tuple:
    """The quarantine row of one file row (cells joined by the unit separator), keyed by its digest; `blank`
    keeps none of its cells (a forgotten person's)."""
    cells = joined.split("\x1f")
    raw = json.dumps(dict(zip(columns, [""] * len(cells) if blank else cells)), ensure_ascii=False)
    key = "q:" + row_digest(joined)
    return (key, export.format, moment_id, export.path.name, number, kind, reason, raw, imported_at)


def quarantine_unmatched(
    db: sqlite_utils.Database,
    export: Export,
    quarantine: list[tuple],
    imported_at: str,
    secret: Callable[[], tokens.Keyring | bytes],
    columns: list[str],
    skipped: dict[str, int],
) -> int:
    """Rows tied to no invitation (unless they count without one), or to another moment's, go to quarantine with
    the reason (one scan); an unfinished or partial row tied to nothing is only counted in `skipped` under that
    name, since it would never count (issue 12: they were reported `unmatched`). Returns how many left the
    staging table."""
    rows = db.execute(
        "SELECT row_number, token, email, external_id, contact_id, moment, invitation_moment, fields,"
        " invitation_id IS NULL, incomplete FROM temp.stage WHERE (invitation_id IS NULL AND NOT free)"
        " OR invitation_moment <> moment ORDER BY row_number"
    ).fetchall()
    if not rows:
        return 0
    forgotten: set[str] = set()
    hashes = sorted({email_hash(row[2]) for row in rows if row[2]})
    if hashes:
        # Only these addresses are looked up: the list of erased people grows with the years, not with the file.
        forgotten = {
            r[0]
            for r in db.execute(
                "SELECT email_hash FROM forgotten WHERE email_hash IN (SELECT value FROM json_each(?))",
                [json.dumps(hashes)],
            )
        }
    for number, token, email, external_id, contact_id, moment_id, _, fields, unmatched, incomplete in rows:
        if not unmatched:
            continue
        if email and email_hash(email) in forgotten:
            # The person asked to be erased: the row is recorded (file, row, reason) with none of its cells.
            quarantine.append(
                quarantine_entry(
                    export, columns, number, fields, "unmatched", FORGOTTEN_REASON, moment_id, imported_at, blank=True
                )
            )
            continue
        if incomplete:
            skipped[incomplete] = skipped.get(incomplete, 0) + 1
            continue
        # A token no invitation carries is checked against the secret (once per row, only here): a forged
        # link is named as such. The keys are asked for only then: an export without tokens needs no secret.
        # A Keyring (current secret, plus the previous one during a rotation's grace period) or a bare secret.
        keys = secret() if token else b""
        if token and not (
            tokens.verify_with_keys(keys, token) if isinstance(keys, tokens.Keyring) else tokens.verify(keys, token)
        ):
            reason = "invalid token signature (altered or forged link, or another workspace's secret)"
        elif token:
            reason = "unknown token: no invitation carries it (another database, or pruned)"
        elif contact_id is not None:
            reason = (
                f"no invitation of moment {moment_id!r} to this contact within the match window: widen "
                f"responses.match_window, or set responses.match: contact if this moment is answered without invitation"
            )
        elif email or external_id:
            reason = "no contact with this email or external reference: import the contacts, then import again"
        else:
            reason = "no token, email or external reference to match: add the token as a hidden field"
        quarantine.append(
            quarantine_entry(export, columns, number, fields, "unmatched", reason, moment_id, imported_at)
        )
    for number, _, _, _, _, moment_id, inv_moment, fields, unmatched, _ in rows:
        if not unmatched:
            quarantine.append(
                quarantine_entry(
                    export,
                    columns,
                    number,
                    fields,
                    "unmatched",
                    f"the token belongs to moment {inv_moment!r}, not {moment_id!r}: import with --moment {inv_moment}",
                    moment_id,
                    imported_at,
                )
            )
    db.execute("DELETE FROM temp.stage WHERE (invitation_id IS NULL AND NOT free) OR invitation_moment <> moment")
    return len(rows)


@dataclass
class QuarantineRow:
    id: int
    source: str
    moment: str | None
    file_name: str | None
    row_number: int | None
    kind: str
    reason: str
    raw: dict


def list_quarantine(
    db: sqlite_utils.Database, moment: str | None = None, known: list[str] | None = None
) -> list[QuarantineRow]:
    """The rows waiting in quarantine, oldest first. A `moment` that is neither in `known` (the workspace's)
    nor on a quarantined row is a typo: refused, like everywhere else, rather than an empty list."""
    sql = "SELECT id, source, moment, file_name, row_number, kind, reason, raw FROM quarantine"
    params: list = []
    if (
        moment
        and known is not None
        and moment not in known
        and db.execute("SELECT 1 FROM quarantine WHERE moment = ? LIMIT 1", [moment]).fetchone() is None
    ):
        raise UsageError(f"unknown moment {moment!r}{did_you_mean(moment, known)}: use one of {', '.join(known)}")
    if moment:
        sql += " WHERE moment = ?"
        params.append(moment)
    return [
        QuarantineRow(id_, source, moment_, file_name, row_number, kind, reason, json.loads(raw))
        for id_, source, moment_, file_name, row_number, kind, reason, raw in db.execute(
            sql + " ORDER BY id", params
        ).fetchall()
    ]
