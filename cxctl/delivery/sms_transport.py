"""SMS transports: an outbox folder of `.sms` files (the default) and two providers through their documented
HTTP APIs with httpx — Twilio's Messages API and Brevo's transactional SMS.

Each answer is classified as the email transports classify SMTP replies (cxctl.delivery.transport): sent
(with the provider's id, which delivery receipts name), temporary (5xx, timeouts, 429 — whose Retry-After
holds every connection), bounce (the number is invalid, not a mobile, or unsubscribed at the provider: the
number is suppressed for SMS), rejected (the message itself), or a TransportError that stops the run
(credentials refused, no credit, a sender the provider does not know). Credentials come from environment
variables and never appear in a message, a report or an exception.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from cxctl.core.errors import TransportError, UsageError
from cxctl.delivery.transport import Connection, OutboxTransport, SendFailure, Transport
from cxctl.workspace.channels import SmsSettings

# Twilio error codes (https://www.twilio.com/docs/api/errors) that say the number cannot take this SMS.
TWILIO_BOUNCES = {
    21211: "bounce",
    21612: "bounce",
    21614: "bounce",
    21610: "opt_out",
}  # 21610: the recipient replied STOP to this sender
# Codes that no retry and no other message can fix: the run stops with the fix.
TWILIO_STOPS = {
    20003: "the credentials were refused",
    20404: "the account or resource does not exist",
    21606: "the From number is not a Twilio number of this account that can send SMS",
    21659: "the From number is not a Twilio number of this account",
    21212: "the From number is invalid",
    21703: "the Messaging Service has no sender",
    30002: "the account is suspended",
}
MAX_HOLD_SECONDS = 300.0  # a Retry-After longer than this is taken as "try again on the clock", not within the run


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or an HTTP date) or Brevo's `x-sib-ratelimit-reset`."""
    for header in ("retry-after", "x-sib-ratelimit-reset"):
        value = response.headers.get(header)
        if not value:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            from email.utils import parsedate_to_datetime

            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                continue
            from datetime import UTC, datetime

            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except (ValueError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _transient(exc: Exception) -> SendFailure:
    return SendFailure("temporary", f"{type(exc).__name__}: {exc}", connection=True)


class HttpSmsConnection(Connection):
    """One worker's HTTP connection to the provider: a client of its own with one kept-alive connection, as an
    SMTP worker keeps its session (a shared pool re-checks every idle connection at each request: measured, a
    fifth of the run's time)."""

    def __init__(self, transport: HttpSmsTransport):
        self.transport = transport
        self.client: httpx.AsyncClient | None = None

    async def send(self, sender: str, recipient: str, data: bytes, name: str) -> str | None:
        transport = self.transport
        if self.client is None:
            self.client = transport.new_client(1)
        try:
            response = await self.client.send(
                transport.request(self.client, sender, recipient, data.decode("utf-8"), name)
            )
        except httpx.TimeoutException as exc:
            raise _transient(exc) from None
        except httpx.TransportError as exc:
            raise _transient(exc) from None
        return transport.outcome(response)

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.aclose()


class HttpSmsTransport(Transport):
    """A provider's HTTP API: `concurrency` workers, each with its own kept-alive connection."""

    def __init__(self, settings: SmsSettings):
        self.settings = settings
        self.concurrency = settings.concurrency
        self.rate_per_second = settings.rate_per_second

    def new_client(self, connections: int) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        return httpx.AsyncClient(timeout=self.settings.timeout.total_seconds(), limits=limits)

    def connect(self) -> Connection:
        return HttpSmsConnection(self)

    def request(self, client: httpx.AsyncClient, sender: str, recipient: str, text: str, name: str) -> httpx.Request:
        raise NotImplementedError

    def outcome(self, response: httpx.Response) -> str | None:
        raise NotImplementedError

    def stop(self, what: str) -> TransportError:
        return TransportError(f"{self.name} at {self.base_url}: {what}")

    @property
    def base_url(self) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.name} {self.base_url} ({self.concurrency} connections)"


class TwilioTransport(HttpSmsTransport):
    """POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json, form-encoded To, From (or
    MessagingServiceSid), Body; HTTP Basic auth with the Account SID and Auth Token; 201 with the Message `sid`."""

    name = "twilio"

    def __init__(self, settings: SmsSettings):
        super().__init__(settings)
        twilio = settings.twilio
        self.account_sid = env(twilio.account_sid_env, "sms.twilio.account_sid_env")
        token = env(twilio.auth_token_env, "sms.twilio.auth_token_env")
        # HTTP Basic with the Account SID and the Auth Token, built once; it goes in this header and nowhere else.
        self.authorization = "Basic " + base64.b64encode(f"{self.account_sid}:{token}".encode()).decode("ascii")
        self.url = f"{twilio.base_url.rstrip('/')}/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        self.parsed_url = httpx.URL(self.url)
        self.headers = {
            "Authorization": self.authorization,
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "User-Agent": "cxctl",
        }

    @property
    def base_url(self) -> str:
        return self.settings.twilio.base_url.rstrip("/")

    def sender(self) -> str:
        return self.settings.twilio.from_number or self.settings.sender or ""

    def request(self, client: httpx.AsyncClient, sender: str, recipient: str, text: str, name: str) -> httpx.Request:
        twilio = self.settings.twilio
        form = {"To": recipient, "Body": text}
        if twilio.messaging_service_sid:
            form["MessagingServiceSid"] = twilio.messaging_service_sid
        else:
            form["From"] = sender
        if twilio.status_callback:
            form["StatusCallback"] = twilio.status_callback
        # Encoded here, with the URL parsed once: httpx's own form path costs more than the rest of a send.
        return httpx.Request("POST", self.parsed_url, content=urlencode(form).encode("ascii"), headers=self.headers)

    def outcome(self, response: httpx.Response) -> str | None:
        data = _json(response)
        status = response.status_code
        if status in (200, 201) and data.get("sid"):
            return str(data["sid"])
        code = data.get("code") if isinstance(data.get("code"), int) else None
        said = f"{status} {code or ''} {data.get('message') or response.reason_phrase}".replace("  ", " ").strip()
        if status == 429 or code == 20429:
            raise SendFailure("temporary", f"twilio: {said}", status, retry_after=retry_after_seconds(response))
        if status >= 500:
            raise SendFailure("temporary", f"twilio: {said}", status, retry_after=retry_after_seconds(response))
        if code in TWILIO_STOPS or status in (401, 403):
            what = TWILIO_STOPS.get(code or 0, "the credentials were refused")
            raise self.stop(
                f"{said}: {what}: check sms.twilio (from_number, messaging_service_sid) and the variables "
                f"named by sms.twilio.account_sid_env and auth_token_env"
            )
        if code in TWILIO_BOUNCES:
            raise SendFailure("bounce", f"twilio: {said}", status, reason=TWILIO_BOUNCES[code])
        raise SendFailure("rejected", f"twilio: {said}", status)


class BrevoTransport(HttpSmsTransport):
    """POST {base}/v3/transactionalSMS/send, JSON {sender, recipient (digits with the country code), content,
    type, unicodeEnabled[, webUrl]}; header `api-key`; 201 with the `messageId`."""

    name = "brevo"

    def __init__(self, settings: SmsSettings):
        super().__init__(settings)
        self.api_key = env(settings.brevo.api_key_env, "sms.brevo.api_key_env")
        self.url = f"{self.base_url}/v3/transactionalSMS/send"
        self.parsed_url = httpx.URL(self.url)
        self.headers = {
            "api-key": self.api_key,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "cxctl",
        }

    @property
    def base_url(self) -> str:
        return self.settings.brevo.base_url.rstrip("/")

    def sender(self) -> str:
        return self.settings.sender or ""

    def request(self, client: httpx.AsyncClient, sender: str, recipient: str, text: str, name: str) -> httpx.Request:
        from cxctl.delivery.sms_text import measure

        brevo = self.settings.brevo
        body: dict[str, Any] = {
            "sender": sender,
            "recipient": recipient.lstrip("+"),
            "content": text,
            "type": brevo.type,
            "tag": f"cxctl-{name}",
            "unicodeEnabled": measure(text).encoding == "UCS-2",
        }
        if brevo.web_url:
            body["webUrl"] = brevo.web_url
        return httpx.Request(
            "POST", self.parsed_url, content=json.dumps(body, ensure_ascii=False).encode("utf-8"), headers=self.headers
        )

    def outcome(self, response: httpx.Response) -> str | None:
        data = _json(response)
        status = response.status_code
        if status in (200, 201) and data.get("messageId") is not None:
            return str(data["messageId"])
        code = str(data.get("code") or "")
        message = str(data.get("message") or response.reason_phrase)
        said = f"{status} {code} {message}".replace("  ", " ").strip()
        if status == 429 or status >= 500:
            raise SendFailure("temporary", f"brevo: {said}", status, retry_after=retry_after_seconds(response))
        if status in (401, 402, 403) or code in ("unauthorized", "not_enough_credits", "permission_denied"):
            what = {402: "the account has no SMS credits left: buy credits"}.get(status, "the API key was refused")
            raise self.stop(f"{said}: {what}; check the variable named by sms.brevo.api_key_env")
        lowered = message.lower()
        if any(word in lowered for word in ("blacklist", "blocklist", "unsubscribed", "opted out")):
            raise SendFailure("bounce", f"brevo: {said}", status, reason="opt_out")
        if code == "invalid_parameter" and any(word in lowered for word in ("recipient", "phone", "number", "mobile")):
            raise SendFailure("bounce", f"brevo: {said}", status)
        if code == "invalid_parameter" and "sender" in lowered:
            raise self.stop(f"{said}: the sender is not accepted: check sms.sender (up to 11 letters and digits)")
        raise SendFailure("rejected", f"brevo: {said}", status)


class SmsOutboxConnection(Connection):
    def __init__(self, folder: Path):
        self.folder = folder

    async def send(self, sender: str, recipient: str, data: bytes, name: str) -> str | None:
        # Written whole then renamed, like the email outbox: a file there is always complete.
        from cxctl.delivery.sms_text import sms_file

        target = self.folder / f"{name}.sms"
        partial = self.folder / f".{name}.sms.part"
        try:
            partial.write_bytes(sms_file(name, recipient, sender, data.decode("utf-8")))
            os.replace(partial, target)
        except OSError as exc:
            raise SendFailure("temporary", f"cannot write {target}: {exc.strerror}", connection=True) from None
        return None


class SmsOutboxTransport(OutboxTransport):
    """Writes each SMS as `<invitation id>.sms` (headers, then the text) into a folder."""

    label = "sms outbox"
    setting = "workspace.sms.outbox"
    connection_class = SmsOutboxConnection


def env(name: str | None, key: str) -> str:
    value = os.environ.get(name or "")
    if not name or not value:
        raise UsageError(f"the environment variable {name} (named by {key}) is not set: export it before `cxctl send`")
    return value


def make_sms_transport(ws, name: str | None = None) -> Transport:
    """The workspace's SMS transport (workspace.sms.transport), or `name` ('outbox' | 'twilio' | 'brevo')."""
    settings: SmsSettings = ws.settings.sms
    chosen = name or settings.transport
    if chosen == "outbox":
        folder = Path(settings.outbox)
        return SmsOutboxTransport(folder if folder.is_absolute() else ws.root / folder)
    if chosen == "twilio":
        return TwilioTransport(settings)
    if chosen == "brevo":
        return BrevoTransport(settings)
    raise UsageError(f"unknown SMS transport {chosen!r}: use outbox, twilio or brevo")
