"""Provider webhooks of the SMS channel: inbound STOP replies and delivery receipts, checked and applied.

`cxctl serve` (cxctl.web) is meant to mount `handle_sms_hook` at `/hooks/sms/{provider}`; until it does,
these are plain functions — parse, verify, apply — that any web front (or a test) can call with the request
it received. What they do:

- a STOP reply (Twilio: an inbound message whose body is a stop word, or `OptOutType=STOP`; Brevo: an
  `unsubscribe` event or a `reply` saying STOP) suppresses the number for SMS (its email is untouched);
- a receipt saying the number cannot take SMS (Twilio: failed/undelivered with 30005 unknown number,
  30006 landline, 30004 blocked, 21610 unsubscribed…; Brevo: `hardBounce`, `blocked`) bounces the invitation
  it names (by the provider's id stored at send time) and suppresses the number; a delivered receipt is
  counted; a temporary failure changes nothing.

Authenticity: Twilio signs every request (`X-Twilio-Signature`: base64 HMAC-SHA1 of the full URL followed by
the sorted POST parameters, keyed with the Auth Token); Brevo does not sign bodies, so its webhook is
configured with a bearer token (`sms.brevo.webhook_token_env`) that is compared in constant time.
A request that fails the check changes nothing (SignatureError).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import sqlite_utils

from cxctl.audience.phones import phone_hash
from cxctl.core.errors import CxError, UsageError
from cxctl.core.timeutil import to_db

STOP_WORDS = frozenset(
    {
        "STOP",
        "STOPALL",
        "UNSUBSCRIBE",
        "CANCEL",
        "END",
        "QUIT",
        "ARRET",
        "ARRÊT",
        "STOP SMS",
        "DESABONNER",
        "DÉSABONNER",
    }
)
# Twilio error codes of a receipt that say this number cannot take SMS (https://www.twilio.com/docs/api/errors).
TWILIO_NUMBER_ERRORS = {
    "30004": "blocked",
    "30005": "bounce",
    "30006": "bounce",
    "21211": "bounce",
    "21614": "bounce",
    "21610": "opt_out",
    "21612": "bounce",
}
BREVO_BOUNCES = {"hardbounce": "bounce", "hard_bounce": "bounce", "blocked": "blocked", "invalid_number": "bounce"}


class SignatureError(CxError):
    """A webhook request whose signature or token does not match: nothing is applied (HTTP 403)."""


@dataclass(frozen=True)
class HookEvent:
    """One thing a provider told us: a STOP, a delivery, or a number that cannot take SMS."""

    kind: str  # stop | bounce | delivered | failed | other
    phone: str | None = None  # E.164
    provider_ref: str | None = None  # the provider's id of the message the receipt is about
    reason: str = "bounce"  # for a bounce: the suppression's reason
    detail: str = ""


@dataclass
class HookReport:
    provider: str
    events: int = 0
    stops: int = 0
    bounces: int = 0
    delivered: int = 0
    ignored: int = 0
    details: list[str] = field(default_factory=list)


def _e164(number: str | None) -> str | None:
    if not number:
        return None
    text = str(number).strip().replace(" ", "")
    return text if text.startswith("+") else "+" + text


# --- Twilio ---------------------------------------------------------------------------------------


def twilio_signature(url: str, params: dict[str, str], auth_token: str) -> str:
    """X-Twilio-Signature of a form POST: base64(HMAC-SHA1(token, url + k1 + v1 + k2 + v2 …)), keys sorted."""
    payload = url + "".join(key + params[key] for key in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode("utf-8"), hashlib.sha1).digest()).decode()


def verify_twilio(url: str, params: dict[str, str], signature: str | None, auth_token: str) -> None:
    """Raise SignatureError unless `signature` is Twilio's for this URL and these parameters."""
    expected = twilio_signature(url, params, auth_token)
    if not signature or not hmac.compare_digest(expected, signature):
        raise SignatureError(
            "the X-Twilio-Signature does not match this request: check that the URL configured at "
            "Twilio is exactly the one cxctl serves (scheme, host, path, query) and that "
            "sms.twilio.auth_token_env names this account's Auth Token"
        )


def parse_twilio(params: dict[str, str]) -> list[HookEvent]:
    """An inbound message (a STOP) or a status callback (a receipt)."""
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    sid = params.get("MessageSid") or params.get("SmsSid")
    if status in ("", "received") and "Body" in params:
        words = " ".join(params.get("Body", "").upper().split())
        if params.get("OptOutType", "").upper() == "STOP" or words in STOP_WORDS:
            return [HookEvent("stop", _e164(params.get("From")), sid, "opt_out", f"replied {params.get('Body', '')!r}")]
        return [HookEvent("other", _e164(params.get("From")), sid, detail="an inbound message that is not a STOP")]
    code = params.get("ErrorCode") or ""
    if status == "delivered":
        return [HookEvent("delivered", _e164(params.get("To")), sid)]
    if status in ("failed", "undelivered") and code in TWILIO_NUMBER_ERRORS:
        return [
            HookEvent("bounce", _e164(params.get("To")), sid, TWILIO_NUMBER_ERRORS[code], f"{status}, error {code}")
        ]
    if status in ("failed", "undelivered"):
        return [HookEvent("failed", _e164(params.get("To")), sid, detail=f"{status}, error {code or '?'}")]
    return [HookEvent("other", _e164(params.get("To")), sid, detail=status)]


# --- Brevo ----------------------------------------------------------------------------------------


def verify_brevo(headers: dict[str, str], token: str) -> None:
    """Raise SignatureError unless the request carries `Authorization: Bearer <token>`."""
    given = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
    if not given.startswith("Bearer ") or not hmac.compare_digest(given[7:].strip(), token):
        raise SignatureError(
            "the webhook's bearer token does not match: configure Brevo's webhook with the token in "
            "the variable named by sms.brevo.webhook_token_env (Authorization: Bearer …)"
        )


def parse_brevo(payload: dict[str, Any] | list[dict[str, Any]]) -> list[HookEvent]:
    """Brevo's transactional SMS events (`msg_status` or `event`: delivered, hardBounce, unsubscribe, reply…)."""
    items = payload if isinstance(payload, list) else [payload]
    events = []
    for item in items:
        status = str(item.get("msg_status") or item.get("event") or "").replace(" ", "").lower()
        phone, ref = _e164(item.get("to") or item.get("from")), item.get("messageId") or item.get("message_id")
        ref = str(ref) if ref is not None else None
        reply = " ".join(str(item.get("reply") or "").upper().split())
        if status in ("unsubscribe", "unsubscribed", "optout") or (
            status in ("reply", "replied") and reply in STOP_WORDS
        ):
            events.append(HookEvent("stop", phone, ref, "opt_out", f"Brevo {status}"))
        elif status in BREVO_BOUNCES:
            events.append(
                HookEvent(
                    "bounce",
                    phone,
                    ref,
                    BREVO_BOUNCES[status],
                    f"Brevo {status}: {item.get('description') or ''}".strip(),
                )
            )
        elif status == "delivered":
            events.append(HookEvent("delivered", phone, ref))
        else:
            events.append(HookEvent("other", phone, ref, detail=status))
    return events


# --- applying -------------------------------------------------------------------------------------


def apply_events(db: sqlite_utils.Database, events: list[HookEvent], now: datetime, provider: str) -> HookReport:
    """Apply the events in one transaction: STOPs and refused numbers suppressed for SMS, their invitations bounced."""
    report = HookReport(provider, len(events))
    stamp = to_db(now)
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        for event in events:
            if event.kind in ("stop", "bounce") and event.phone:
                conn.execute(
                    "INSERT OR IGNORE INTO sms_suppressions (phone_hash, phone, reason, source, note, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [phone_hash(event.phone), event.phone, event.reason, f"{provider} webhook", event.detail, stamp],
                )
            if event.kind == "stop":
                report.stops += 1
            elif event.kind == "bounce":
                report.bounces += 1
                if event.provider_ref:
                    # The API had accepted it (sent); the operator could not deliver it: bounced, like an email DSN.
                    conn.execute(
                        "UPDATE invitations SET status = 'bounced', last_error = ?, updated_at = ?"
                        " WHERE provider_ref = ? AND channel = 'sms' AND status = 'sent'",
                        [f"{provider} receipt: {event.detail}", stamp, event.provider_ref],
                    )
            elif event.kind == "delivered":
                report.delivered += 1
            else:
                report.ignored += 1
            if len(report.details) < 50 and event.kind in ("stop", "bounce"):
                report.details.append(f"{event.kind} {event.phone}: {event.detail}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return report


def handle_sms_hook(
    ws: Any, db: sqlite_utils.Database, provider: str, url: str, headers: dict[str, str], body: bytes, now: datetime
) -> HookReport:
    """One webhook request as received (`/hooks/sms/{provider}`): verified, parsed, applied. Raises
    SignatureError (nothing applied) or UsageError for an unknown provider or a secret not set."""
    sms = ws.settings.sms
    if provider == "twilio":
        params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        token = os.environ.get(sms.twilio.auth_token_env)
        if not token:
            raise UsageError(
                f"the environment variable {sms.twilio.auth_token_env} (named by sms.twilio.auth_token_env) "
                f"is not set: webhooks from Twilio cannot be verified without it"
            )
        lowered = {k.lower(): v for k, v in headers.items()}
        verify_twilio(url, params, lowered.get("x-twilio-signature"), token)
        events = parse_twilio(params)
    elif provider == "brevo":
        name = sms.brevo.webhook_token_env
        token = os.environ.get(name or "")
        if not name or not token:
            raise UsageError(
                "Brevo's webhooks carry no signature: set sms.brevo.webhook_token_env to a variable holding "
                "a long random token, and configure the webhook at Brevo with Authorization: Bearer <token>"
            )
        verify_brevo(headers, token)
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            raise UsageError("the Brevo webhook's body is not JSON") from None
        events = parse_brevo(payload)
    else:
        raise UsageError(f"unknown SMS provider {provider!r} in /hooks/sms/{provider}: use twilio or brevo")
    return apply_events(db, events, now, provider)
