"""Which invitations are due to go now, on one channel, read a page at a time with their contact, event and
parent, and whether their address (email) or number (SMS) is suppressed (one look-up per page)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlite_utils

from cxctl.audience.phones import phone_hash
from cxctl.core.timeutil import to_db
from cxctl.store import email_hash

PAGE = 500

DUE_WHERE = """((i.status = 'planned' AND i.send_at <= :now)
    OR (i.status = 'failed' AND i.next_attempt_at IS NOT NULL AND i.next_attempt_at <= :now))
    AND (:moment IS NULL OR i.moment = :moment) AND i.channel = :channel"""

DUE_SQL = f"""
SELECT i.id, i.token, i.moment, i.kind, i.parent_id, i.language, i.email, i.attempts, i.status, i.first_tried_at,
       c.id AS contact_id, c.external_id, c.email AS contact_email, c.first_name, c.last_name,
       c.language AS contact_language, c.company, c.role, c.segment, c.country, c.attributes,
       c.forgotten_at, e.type AS event_type, e.occurred_at AS event_occurred_at,
       e.attributes AS event_attributes, i.channel, i.phone, c.phone AS contact_phone, c.sms_consent,
       c.timezone AS contact_timezone,
       (SELECT p.status FROM invitations p WHERE p.id = i.parent_id) AS parent_status,
       (SELECT 1 FROM responses r WHERE i.parent_id IS NOT NULL AND r.invitation_id = i.parent_id LIMIT 1) AS answered
FROM invitations i JOIN contacts c ON c.id = i.contact_id LEFT JOIN events e ON e.id = i.event_id
WHERE i.id > :after AND {DUE_WHERE}
ORDER BY i.id LIMIT :page
"""


CONTACT_SQL = """
SELECT c.id AS contact_id, c.external_id, c.email AS contact_email, c.first_name, c.last_name,
       c.language AS contact_language, c.company, c.role, c.segment, c.country, c.attributes, c.forgotten_at,
       e.type AS event_type, e.occurred_at AS event_occurred_at, e.attributes AS event_attributes,
       c.phone AS contact_phone, c.sms_consent, c.timezone AS contact_timezone,
       (SELECT p.status FROM invitations p WHERE p.id = ?2) AS parent_status,
       (SELECT 1 FROM responses r WHERE r.invitation_id = ?3 LIMIT 1) AS answered
FROM contacts c LEFT JOIN events e ON e.id = ?1
WHERE c.id = ?4
"""


def due_rows(
    db: sqlite_utils.Database, now: datetime, moment: str | None, channel: str = "email"
) -> Iterator[dict[str, Any]]:
    """Due rows of `channel` in id order, a page at a time (memory stays flat); each says whether its address
    (email) or its number (SMS) is suppressed (those bounced during the run are checked by the caller)."""
    from cxctl.delivery.sms_delivery import number_of, suppressed_numbers

    params = {"now": to_db(now), "moment": moment, "after": 0, "page": PAGE, "channel": channel}
    while True:
        cursor = db.execute(DUE_SQL, params)
        names = [d[0] for d in cursor.description]
        page = [dict(zip(names, r)) for r in cursor.fetchall()]
        if not page:
            return
        if channel == "sms":
            stopped = suppressed_numbers(db, page)
            for row in page:
                number = number_of(row)
                row["suppressed"] = number is not None and phone_hash(number) in stopped
            yield from page
            params["after"] = page[-1]["id"]
            continue
        hashes = [email_hash(r["contact_email"] or r["email"] or "") for r in page]
        suppressed = {
            h
            for (h,) in db.execute(
                "SELECT email_hash FROM suppressions WHERE email_hash IN (SELECT value FROM json_each(?))",
                [json.dumps(hashes)],
            )
        }
        for row, hashed in zip(page, hashes):
            row["suppressed"] = hashed in suppressed
        yield from page
        params["after"] = page[-1]["id"]
