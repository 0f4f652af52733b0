"""What a delivery run does differently for an SMS (cxctl.delivery.send runs both channels through one state
machine): the number it goes to, the checks made at the last moment (consent still given, no STOP since
planning, inside the SMS hours of the person's zone), and the text rendered for it.

The SMS hours are checked again here, not only when planning: a cron that runs late, a retry whose time
comes at 21:00, or a run on a holiday must not send; the row then waits, untouched, for a run in the hours.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

import sqlite_utils

from cxctl.audience.phones import phone_hash
from cxctl.delivery.outcomes import Prepared
from cxctl.delivery.render import contact_vars
from cxctl.delivery.sms_render import SmsRenderer, render_for_row
from cxctl.planning.schedule import holiday_region, sms_allowed_at, zone


def number_of(row: dict[str, Any]) -> str | None:
    """The contact's current number (if it changed since planning), else the planned one."""
    return row.get("contact_phone") or row.get("phone")


def suppressed_numbers(db: sqlite_utils.Database, page: list[dict[str, Any]]) -> set[str]:
    """The hashes of the page's numbers that are suppressed for SMS (one look-up per page)."""
    hashes = [phone_hash(n) for n in (number_of(r) for r in page) if n]
    return {
        h
        for (h,) in db.execute(
            "SELECT phone_hash FROM sms_suppressions WHERE phone_hash IN (SELECT value FROM json_each(?))",
            [json.dumps(hashes)],
        )
    }


def sms_refusal(ws: Any, row: dict[str, Any], at: datetime, suppressed: bool) -> tuple[str, str | None] | None:
    """(reason, new status or None to leave the row) when this SMS must not go now."""
    number = number_of(row)
    if row["forgotten_at"]:
        return "forgotten", "cancelled"
    if not number:
        return "no_phone", "cancelled"
    if row.get("sms_consent") != 1:  # consent withdrawn since planning: never an SMS without it
        return "no_sms_consent", "cancelled"
    if suppressed:
        return "suppressed", "cancelled"
    moment = ws.moments[row["moment"]]
    sms = ws.settings.sms
    place = zone(row.get("contact_timezone"), ws.settings.timezone)
    if not sms_allowed_at(
        at, place, moment.sms_hours or sms.hours, holiday_region(row.get("country"), sms.default_region)
    ):
        return "sms_hours", None
    return None


def prepare_sms(sms: SmsRenderer, row: dict[str, Any], lang: str) -> Prepared:
    """The SMS of a due row, as the transport takes it: the number, the text (UTF-8) and our own reference,
    stored before the request like an email's Message-ID."""
    number = number_of(row) or ""
    contact = contact_vars(
        {**row, "id": row["contact_id"], "email": row.get("contact_email") or "", "language": row["contact_language"]}
    )
    message = render_for_row(sms, row, lang, contact)
    reference = f"<sms.{row['id']}.{secrets.token_hex(6)}@cxctl>"
    return Prepared(
        row["id"],
        number,
        message.text.encode("utf-8"),
        reference,
        row["kind"],
        row["status"],
        row["attempts"],
        row.get("first_tried_at"),
        "sms",
    )
