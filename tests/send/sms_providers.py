"""A local SMS provider on 127.0.0.1 that implements the documented request and response contracts of Twilio's
Messages API and Brevo's transactional SMS API, and records what it received (as the SMTP tests' aiosmtpd sinks do).

Twilio: POST /2010-04-01/Accounts/{AccountSid}/Messages.json, form-encoded To, From | MessagingServiceSid,
Body; HTTP Basic auth (Account SID, Auth Token); 201 with the Message resource (sid SM…, status queued,
num_segments); errors as {code, message, more_info, status}: 20003 (401), 21211 invalid To, 21610 unsubscribed
recipient, 21614 not a mobile, 21602 no Body, 21604 no To, 21603 no From, 20429 (429, Retry-After).
Brevo: POST /v3/transactionalSMS/send, JSON {sender, recipient (digits, country code first), content, type,
unicodeEnabled, tag, webUrl}; header api-key; 201 {messageId}; errors as {code, message}: 401 unauthorized,
400 invalid_parameter / missing_parameter, 402 not_enough_credits, 429 (x-sib-ratelimit-* headers).

A minimal HTTP/1.1 server on asyncio (keep-alive, Content-Length bodies) in a thread of its own, so one
process can drive it from tests, from a `cxctl send` subprocess and from the benchmark.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import secrets
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)
STATUS_TEXT = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def segments(text: str) -> int:
    """The provider's own count (an independent implementation of 3GPP TS 23.038's arithmetic)."""
    if all(c in GSM7 for c in text):
        n = sum(2 if c in "^{}\\[~]|€" else 1 for c in text)
        return 1 if n <= 160 else -(-n // 153)
    n = len(text.encode("utf-16-le")) // 2
    return 1 if n <= 70 else -(-n // 67)


@dataclass
class Received:
    provider: str
    path: str
    headers: dict[str, str]
    fields: dict[str, Any]
    raw: bytes
    status: int
    at: float

    @property
    def to(self) -> str:
        value = self.fields.get("To") or self.fields.get("recipient") or ""
        return value if value.startswith("+") or not value else "+" + value

    @property
    def text(self) -> str:
        return self.fields.get("Body") or self.fields.get("content") or ""


@dataclass
class ProviderServer:
    """Both providers' endpoints. `behaviour[number]` scripts an answer per recipient (E.164):
    invalid, unsubscribed, landline, server_error, rate_limited:<n> (429 the first n times), flaky:<n> (500)."""

    account_sid: str = "AC" + "0" * 32
    auth_token: str = "twilio-auth-token-never-logged"
    api_key: str = "xkeysib-brevo-api-key-never-logged"
    delay: float = 0.0
    retry_after: str = "1"
    credits: int | None = None
    behaviour: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    busy: int = 0
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _seen: Counter = field(default_factory=Counter)
    _ids: Any = field(default_factory=lambda: itertools.count(1511882900176220))

    # --- accounting ---------------------------------------------------------------------------

    def accepted(self, provider: str | None = None) -> list[Received]:
        return [r for r in self.received if r.status == 201 and (provider is None or r.provider == provider)]

    def per_number(self) -> Counter:
        return Counter(r.to for r in self.accepted())

    # --- contracts ------------------------------------------------------------------------------

    def scripted(self, number: str) -> str | None:
        rule = self.behaviour.get(number)
        if rule and ":" in rule:
            kind, count = rule.split(":")
            with self.lock:
                self._seen[number] += 1
                return kind if self._seen[number] <= int(count) else None
        return rule

    def twilio(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, dict]:
        match = re.fullmatch(r"/2010-04-01/Accounts/(AC[0-9a-f]{32})/Messages\.json", path)
        if match is None:
            return 404, {}, {"code": 20404, "message": f"The requested resource {path} was not found", "status": 404}
        if method != "POST":
            return 405, {}, {"code": 20004, "message": "Method not allowed", "status": 405}
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if match.group(1) != self.account_sid or headers.get("authorization") != expected:
            return (
                401,
                {},
                {
                    "code": 20003,
                    "message": "Authenticate",
                    "more_info": "https://www.twilio.com/docs/errors/20003",
                    "status": 401,
                },
            )
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return (
                400,
                {},
                {"code": 21600, "message": "Content-Type must be application/x-www-form-urlencoded", "status": 400},
            )
        form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        to, body_text = form.get("To", ""), form.get("Body", "")

        def error(status: int, code: int, message: str, extra: dict | None = None) -> tuple[int, dict, dict]:
            return (
                status,
                extra or {},
                {
                    "code": code,
                    "message": message,
                    "more_info": f"https://www.twilio.com/docs/errors/{code}",
                    "status": status,
                },
            )

        if not to:
            return error(400, 21604, "A 'To' phone number is required.")
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return error(400, 21603, "A 'From' phone number is required.")
        if not body_text:
            return error(400, 21602, "Message body is required.")
        if len(body_text) > 1600:
            return error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if not E164.match(to):
            return error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        rule = self.scripted(to)
        if rule == "rate_limited":
            return error(429, 20429, "Too Many Requests", {"Retry-After": self.retry_after})
        if rule in ("server_error", "flaky"):
            return error(500, 20500, "Internal Server Error")
        if rule == "invalid":
            return error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if rule == "unsubscribed":
            return error(400, 21610, "Attempt to send to unsubscribed recipient")
        if rule == "landline":
            return error(400, 21614, f"'To' number {to} is not a valid mobile number")
        sid = "SM" + secrets.token_hex(16)
        return (
            201,
            {},
            {
                "account_sid": self.account_sid,
                "api_version": "2010-04-01",
                "body": body_text,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "num_media": "0",
                "num_segments": str(segments(body_text)),
                "price": None,
                "sid": sid,
                "status": "queued" if form.get("From") else "accepted",
                "to": to,
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            },
        )

    def brevo(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, dict]:
        if path != "/v3/transactionalSMS/send":
            return 404, {}, {"code": "document_not_found", "message": "Not found"}
        if method != "POST":
            return 405, {}, {"code": "method_not_allowed", "message": "Method not allowed"}
        if headers.get("api-key") != self.api_key:
            return 401, {}, {"code": "unauthorized", "message": "Key not found"}
        try:
            data = json.loads(body)
        except ValueError:
            return 400, {}, {"code": "bad_request", "message": "Invalid JSON"}
        for name in ("sender", "recipient", "content"):
            if not data.get(name):
                return 400, {}, {"code": "missing_parameter", "message": f"{name} is missing"}
        sender, recipient = str(data["sender"]), str(data["recipient"])
        if not (sender.isdigit() and len(sender) <= 15) and not (sender.isalnum() and len(sender) <= 11):
            return 400, {}, {"code": "invalid_parameter", "message": "Invalid sender name"}
        if not recipient.isdigit() or not 7 <= len(recipient) <= 15:
            return 400, {}, {"code": "invalid_parameter", "message": "Invalid recipient number"}
        if data.get("type", "transactional") not in ("transactional", "marketing"):
            return 400, {}, {"code": "invalid_parameter", "message": "type is not valid"}
        rule = self.scripted("+" + recipient)
        limits = {"x-sib-ratelimit-limit": "150", "x-sib-ratelimit-remaining": "149", "x-sib-ratelimit-reset": "1"}
        if rule == "rate_limited":
            return (
                429,
                {**limits, "x-sib-ratelimit-remaining": "0", "x-sib-ratelimit-reset": self.retry_after},
                {"code": "too_many_requests", "message": "Too many requests"},
            )
        if rule in ("server_error", "flaky"):
            return 500, {}, {"code": "internal_error", "message": "Internal server error"}
        if rule == "invalid" or rule == "landline":
            return 400, {}, {"code": "invalid_parameter", "message": "Invalid recipient number"}
        if rule == "unsubscribed":
            return 400, {}, {"code": "invalid_parameter", "message": "Recipient is blacklisted"}
        count = segments(str(data["content"]))
        with self.lock:
            if self.credits is not None:
                if self.credits < count:
                    return 402, {}, {"code": "not_enough_credits", "message": "Not enough credits"}
                self.credits -= count
            message_id = next(self._ids)
        return 201, limits, {"messageId": message_id}

    # --- HTTP --------------------------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    header = await reader.readline()
                    if header in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                path = target.split("?", 1)[0]
                self.busy += 1
                try:
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    provider = "brevo" if path.startswith("/v3/") else "twilio"
                    status, extra, payload = (self.brevo if provider == "brevo" else self.twilio)(
                        method, path, headers, body
                    )
                    fields: dict[str, Any] = {}
                    if provider == "twilio" and headers.get("content-type", "").startswith("application/x-www-form"):
                        fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
                    elif provider == "brevo":
                        try:
                            fields = json.loads(body or b"{}")
                        except ValueError:
                            fields = {}
                    with self.lock:
                        self.received.append(Received(provider, path, headers, fields, body, status, time.monotonic()))
                    if self.delay:
                        await asyncio.sleep(self.delay)
                finally:
                    self.busy -= 1
                data = json.dumps(payload).encode()
                head = [
                    f"HTTP/1.1 {status} {STATUS_TEXT.get(status, 'Status')}",
                    "Content-Type: application/json",
                    f"Content-Length: {len(data)}",
                    *(f"{k}: {v}" for k, v in extra.items()),
                ]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    def start(self) -> int:
        """Serve on 127.0.0.1 (a free port) in a thread; returns the port."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self.handle, "127.0.0.1", self.port, backlog=256)
            )
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="sms-provider", daemon=True)
        self._thread.start()
        ready.wait(5)
        return self.port

    def stop(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
