"""Mail transports: SMTP through aiosmtplib (reused connections, N in parallel, rate limit) and an
outbox folder of `.eml` files (the default, so a newcomer sees real messages without a server).

A transport hands out connections; each connection sends one message at a time and raises
`SendFailure` with a classification the delivery loop turns into a state: temporary (retry later),
recipient refused permanently (bounce), or message refused permanently.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiosmtplib

from cxctl.core.errors import TransportError, UsageError
from cxctl.workspace.model import SmtpSettings


class SendFailure(Exception):
    """One message could not be sent. kind: 'temporary' | 'bounce' (5xx on the recipient) | 'rejected'
    (5xx on the message); `connection` is True when the connection itself failed."""

    def __init__(
        self,
        kind: str,
        message: str,
        code: int | None = None,
        connection: bool = False,
        *,
        retry_after: float | None = None,
        reason: str = "bounce",
    ):
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.connection = connection
        self.retry_after = retry_after  # seconds the server asked to wait (HTTP 429 Retry-After), if any
        self.reason = reason  # for a bounce: the suppression's reason (bounce, or opt_out at the provider)


class RateLimiter:
    """Spaces sends evenly at `rate` messages per second across all connections."""

    def __init__(self, rate: float | None):
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0

    def hold(self, seconds: float) -> None:
        """No send on any connection for `seconds` (the provider answered 429 with Retry-After)."""
        self._next = max(self._next, time.monotonic() + seconds)

    async def wait(self) -> None:
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = max(self._next, slot + self.interval)
        if slot > now:
            await asyncio.sleep(slot - now)


class Connection:
    async def send(self, sender: str, recipient: str, data: bytes, name: str) -> str | None:
        """Hand one message over; return the provider's id for it when it gives one (an SMS API does)."""
        raise NotImplementedError

    async def close(self) -> None:
        return None


class Transport:
    """Base: `concurrency` connections from `connect()`; `describe()` for reports (no secrets)."""

    name = "transport"
    concurrency = 1
    rate_per_second: float | None = None

    def connect(self) -> Connection:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


# --- outbox -----------------------------------------------------------------------------------


class OutboxConnection(Connection):
    def __init__(self, folder: Path):
        self.folder = folder

    async def send(self, sender: str, recipient: str, data: bytes, name: str) -> None:
        # Written under a temporary name then renamed: a file in the outbox is always complete, and
        # re-sending the same invitation replaces its file instead of adding a second one.
        target = self.folder / f"{name}.eml"
        partial = self.folder / f".{name}.eml.part"
        try:
            partial.write_bytes(data)
            os.replace(partial, target)
        except OSError as exc:
            raise SendFailure("temporary", f"cannot write {target}: {exc.strerror}", connection=True) from None


class OutboxTransport(Transport):
    """Writes each message as `<invitation id>.eml` into a folder. The SMS outbox is the same with its own
    connection (`.sms` files), label and setting."""

    name = "outbox"
    label = "outbox"
    setting = "workspace.outbox"
    connection_class: type[Connection] = OutboxConnection

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def connect(self) -> Connection:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TransportError(
                f"cannot create the {self.label} folder {self.folder}: {exc.strerror}: check the path "
                f"({self.setting}) and its permissions"
            ) from None
        return self.connection_class(self.folder)  # type: ignore[call-arg]  # outbox connections take the folder

    def describe(self) -> str:
        return f"{self.label} {self.folder}"


# --- SMTP -------------------------------------------------------------------------------------


def _classify(exc: Exception) -> SendFailure:
    """Map an aiosmtplib error to what the delivery loop does with the invitation."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        inner = exc.recipients[0] if exc.recipients else None
        if inner is not None:
            return _classify(inner)
        return SendFailure("temporary", str(exc))
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        kind = "bounce" if 500 <= exc.code < 600 else "temporary"
        return SendFailure(kind, f"{exc.code} {exc.message}", exc.code)
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        # e.g. an internationalised address and a server without SMTPUTF8: this message cannot go there
        return SendFailure("rejected", str(exc))
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        raise TransportError(
            f"the SMTP server refused the login ({exc.code} {exc.message}): check the user and "
            f"password in the environment variables named by smtp.username_env/password_env"
        )
    if isinstance(exc, (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError, aiosmtplib.SMTPTimeoutError)):
        return SendFailure("temporary", f"{type(exc).__name__}: {exc}", connection=True)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        if 500 <= exc.code < 600:
            return SendFailure("rejected", f"{exc.code} {exc.message}", exc.code)
        # 421 means the server is closing the connection: reconnect before the next message.
        return SendFailure("temporary", f"{exc.code} {exc.message}", exc.code, connection=exc.code == 421)
    if isinstance(exc, (OSError, asyncio.TimeoutError, aiosmtplib.SMTPException)):
        return SendFailure("temporary", f"{type(exc).__name__}: {exc}", connection=True)
    raise exc


class SmtpConnection(Connection):
    """One reused SMTP session; reconnects after any connection-level failure."""

    def __init__(self, transport: SmtpTransport):
        self.transport = transport
        self.client: aiosmtplib.SMTP | None = None

    async def _open(self) -> aiosmtplib.SMTP:
        t = self.transport
        client = aiosmtplib.SMTP(
            hostname=t.settings.host,
            port=t.settings.port,
            use_tls=t.settings.security == "tls",
            start_tls=t.settings.security == "starttls",
            timeout=t.settings.timeout.total_seconds(),
            validate_certs=t.validate_certs,
        )
        try:
            await client.connect()
            if t.username is not None and t.password is not None:
                await self._login(client, t.username, t.password)
        except aiosmtplib.SMTPException as exc:
            if type(exc) is aiosmtplib.SMTPException:
                # aiosmtplib raises the bare class when the server lacks what the settings ask for (AUTH,
                # STARTTLS): no retry can fix that, so the run stops now, like a refused login.
                client.close()
                raise TransportError(
                    f"{t.settings.host}:{t.settings.port}: {exc} — the server does not offer what the settings ask: "
                    f"check smtp.security (none, starttls, tls) and whether this server wants a login "
                    f"(smtp.username_env/password_env)"
                ) from None
            raise
        return client

    async def _login(self, client: aiosmtplib.SMTP, username: str, password: str) -> None:
        """Log in on an open connection. A login the server never answers is a configuration problem
        (wrong port or security for AUTH, a relay that only takes mail from its network), not an outage:
        the run stops at once with the fix instead of retrying for minutes (issue 14)."""
        t = self.transport
        try:
            await client.login(username, password)
        except (TimeoutError, aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPServerDisconnected) as exc:
            client.close()
            waited = t.settings.timeout.total_seconds()
            what = (
                f"did not answer the login within {waited:g} s (smtp.timeout)"
                if not isinstance(exc, aiosmtplib.SMTPServerDisconnected)
                else "closed the connection during the login"
            )
            raise TransportError(
                f"{t.settings.host}:{t.settings.port} {what}: check smtp.port and smtp.security (587 with starttls, "
                f"465 with tls), and whether this server takes a login at all (a relay that accepts mail from its "
                f"network needs no smtp.username_env/password_env)"
            ) from None

    async def send(self, sender: str, recipient: str, data: bytes, name: str) -> None:
        try:
            if self.client is None or not self.client.is_connected:
                self.client = await self._open()
            options = [] if recipient.isascii() else ["SMTPUTF8"]
            await self.client.sendmail(sender, [recipient], data, mail_options=options)
        except Exception as exc:  # classified below; anything unknown is re-raised as a bug
            failure = _classify(exc)
            if failure.connection:
                await self.close()
            raise failure from None

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None and client.is_connected:
            try:
                await asyncio.wait_for(client.quit(), timeout=5)
            except Exception:
                client.close()


class SmtpTransport(Transport):
    name = "smtp"

    def __init__(self, settings: SmtpSettings, validate_certs: bool = True):
        self.settings = settings
        self.concurrency = settings.concurrency
        self.rate_per_second = settings.rate_per_second
        self.validate_certs = validate_certs
        self.username = _env(settings.username_env, "smtp.username_env")
        self.password = _env(settings.password_env, "smtp.password_env")

    def connect(self) -> Connection:
        return SmtpConnection(self)

    def describe(self) -> str:
        return (
            f"smtp {self.settings.host}:{self.settings.port} ({self.settings.security}, {self.concurrency} connections)"
        )


def _env(name: str | None, key: str) -> str | None:
    if not name:
        return None
    value = os.environ.get(name)
    if not value:
        raise UsageError(f"the environment variable {name} (named by {key}) is not set: export it before `cxctl send`")
    return value


def make_transport(ws, name: str | None = None) -> Transport:
    """The workspace's transport (settings.transport), or `name` when given ('outbox' | 'smtp')."""
    chosen = name or ws.settings.transport
    if chosen == "outbox":
        return OutboxTransport(ws.outbox_dir)
    if chosen == "smtp":
        return SmtpTransport(ws.settings.smtp)
    raise UsageError(f"unknown transport {chosen!r}: use outbox or smtp")
