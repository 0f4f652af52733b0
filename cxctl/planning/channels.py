"""Which channel reaches a person for a moment: the first of the moment's `channels` the person can receive.

The rule is written twice, side by side, and the property tests hold them to each other: as SQL for the
engine (one CASE over contact `c`, the email suppressions `s` and the SMS suppressions `ss`), and in
Python for `plan --explain`, which says why each channel before the chosen one was passed over.

- sms: a mobile number (stored in E.164 at import), SMS consent (`sms_consent` = 1: never assumed), and
  the number not suppressed (a STOP reply, a provider's refusal);
- email: an address, not suppressed, and no refusal (`email_consent` = 0; unknown means email may go,
  as before channels existed).

The solicitation rules (quiet period, cap, priority) count people whatever the channel: they are applied
before and after this choice, never per channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SMS_USABLE = "(c.phone_hash IS NOT NULL AND c.sms_consent = 1 AND ss.phone_hash IS NULL)"
EMAIL_USABLE = (
    "(c.email IS NOT NULL AND trim(c.email) <> '' AND s.email_hash IS NULL AND COALESCE(c.email_consent, 1) <> 0)"
)
USABLE = {"sms": SMS_USABLE, "email": EMAIL_USABLE}


def uses_sms(channels: Sequence[str]) -> bool:
    return "sms" in channels


def channel_sql(channels: Sequence[str]) -> str:
    """SQL over `c`, `s` (and `ss` when SMS is listed): the first usable channel, or NULL for none.
    Channel names are the model's literals (email, sms), never input."""
    return "CASE " + " ".join(f"WHEN {USABLE[ch]} THEN '{ch}'" for ch in channels) + " END"


def sms_join() -> str:
    return " LEFT JOIN sms_suppressions ss ON ss.phone_hash = c.phone_hash"


@dataclass
class ChannelOption:
    """One channel of a moment for one person: usable or not, and why (for `plan --explain`)."""

    channel: str
    usable: bool
    detail: str


def channel_options(db: Any, contact_id: int, channels: Sequence[str]) -> list[ChannelOption]:
    """Each channel of the moment, in its order, with the person's data behind the verdict."""
    row = db.execute(
        "SELECT c.email, c.email_consent, c.phone, c.sms_consent, s.reason, s.created_at, ss.reason, ss.created_at"
        " FROM contacts c LEFT JOIN suppressions s ON s.email_hash = c.email_hash"
        " LEFT JOIN sms_suppressions ss ON ss.phone_hash = c.phone_hash WHERE c.id = ?",
        [contact_id],
    ).fetchone()
    email, email_consent, phone, sms_consent, s_reason, s_since, ss_reason, ss_since = row
    options = []
    for channel in channels:
        if channel == "sms":
            if not phone:
                options.append(ChannelOption("sms", False, "no mobile number"))
            elif sms_consent != 1:
                options.append(
                    ChannelOption(
                        "sms",
                        False,
                        f"{phone}: no SMS consent"
                        + (" (refused)" if sms_consent == 0 else " (unknown: never assumed)"),
                    )
                )
            elif ss_reason:
                options.append(
                    ChannelOption("sms", False, f"{phone} is suppressed for SMS ({ss_reason}, since {ss_since[:10]})")
                )
            else:
                options.append(ChannelOption("sms", True, f"{phone}, SMS consent given"))
        else:
            if not email or not email.strip():
                options.append(ChannelOption("email", False, "no email address"))
            elif email_consent == 0:
                options.append(ChannelOption("email", False, f"{email}: email refused (email_consent no)"))
            elif s_reason:
                options.append(
                    ChannelOption("email", False, f"{email} is suppressed ({s_reason}, since {s_since[:10]})")
                )
            else:
                options.append(ChannelOption("email", True, email))
    return options


def describe_choice(options: list[ChannelOption]) -> tuple[str | None, str]:
    """(chosen channel or None, one sentence saying why, and why not the others)."""
    chosen = next((o for o in options if o.usable), None)
    if chosen is None:
        return None, "no channel reaches this person: " + "; ".join(f"{o.channel}: {o.detail}" for o in options)
    passed = [o for o in options[: options.index(chosen)]]
    later = [o.channel for o in options[options.index(chosen) + 1 :]]
    text = f"{chosen.channel} to {chosen.detail}"
    if passed:
        text += " (" + "; ".join(f"not {o.channel}: {o.detail}" for o in passed) + ")"
    if later:
        text += f"; {', '.join(later)} not needed: {chosen.channel} comes first"
    return chosen.channel, text
