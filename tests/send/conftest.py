"""Real SMTP servers (aiosmtpd on 127.0.0.1) and a workspace with contacts and due invitations."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socket
import threading
from collections import Counter
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from cxctl import store
from cxctl.core import tokens
from cxctl.core.timeutil import parse_now, to_db
from cxctl.validation import load_workspace

NOW = "2026-11-23T10:00:00+00:00"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """Collects every message; subclasses answer differently."""

    def __init__(self, delay: float = 0.0):
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.delay = delay
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            self.messages.append(
                (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or envelope.content)
            )
        return "250 Message accepted"

    def parsed(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(data, policy=email.policy.default) for _, _, data in self.messages]

    def per_address(self) -> Counter:
        return Counter(rcpt for _, rcpts, _ in self.messages for rcpt in rcpts)


class FlakySink(Sink):
    """Answers 421 (closing) or 451 to the first tries of each recipient, then accepts."""

    def __init__(self, refusals: int = 1, code: str = "451 4.3.0 try again later"):
        super().__init__()
        self.refusals = refusals
        self.code = code
        self.seen: Counter = Counter()

    async def handle_DATA(self, server, session, envelope):
        key = envelope.rcpt_tos[0]
        self.seen[key] += 1
        if self.seen[key] <= self.refusals:
            return self.code
        return await super().handle_DATA(server, session, envelope)


class RefusingSink(Sink):
    """Answers 550 (no such user) for recipients whose local part starts with `bad`."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("bad"):
            return "550 5.1.1 no such user"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


class DroppingSink(Sink):
    """Drops the connection in the middle of DATA for the first `drops` messages."""

    def __init__(self, drops: int = 1):
        super().__init__()
        self.drops = drops

    async def handle_DATA(self, server, session, envelope):
        if self.drops > 0:
            self.drops -= 1
            server.transport.close()
            return "421 dropped"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def smtp_server():
    """Start a handler on 127.0.0.1; returns start(handler) -> port. Stopped at teardown."""
    controllers = []

    def start(handler) -> int:
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        controllers.append(controller)
        return port

    yield start
    for controller in controllers:
        controller.stop()


SMTP_WORKSPACE = """\
workspace:
  name: Boutique test
  default_language: fr
  languages: [fr, en]
  timezone: Europe/Paris
  sender:
    name: Service Client Élodie
    address: avis@boutique.example
    reply_to: service@boutique.example
  survey_url: "https://survey.example/s/{{moment}}?lang={{lang}}&t={{token}}"
  unsubscribe_url: "https://boutique.example/desinscription?t={{token}}"
  unsubscribe_mailto: desinscription@boutique.example
  token_secret_env: CXCTL_SECRET
  transport: {transport}
  smtp:
    host: 127.0.0.1
    port: {port}
    concurrency: {concurrency}
    max_consecutive_failures: {max_failures}
    retry_schedule: [10m, 30m, 2h]
    give_up_after: 1d
    timeout: 5s

rules:
  quiet_period: 30d
  max_reminders: 2
  priority: [support_ces, delivery_csat, nps_relational]
"""


def write_smtp_config(
    root: Path, port: int = 25, transport: str = "smtp", concurrency: int = 2, max_failures: int = 3
) -> Path:
    """Replace the shared test workspace's cxctl.yaml with one that sends to `port`."""
    (root / "cxctl.yaml").write_text(
        SMTP_WORKSPACE.format(transport=transport, port=port, concurrency=concurrency, max_failures=max_failures),
        encoding="utf-8",
    )
    return root


def add_invitations(
    db, ws, people: list[dict], moment: str = "delivery_csat", now: str = NOW, kind: str = "invitation"
) -> list[int]:
    """Insert contacts, a delivery event each, and one planned invitation each, due at `now`."""
    stamp = to_db(parse_now(now))
    secret = ws.secret()
    ids = []
    for i, person in enumerate(people):
        email_address = person["email"]
        contact_id = db.execute(
            "INSERT INTO contacts (external_id, email, email_hash, first_name, last_name, language, attributes, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                person.get("external_id", f"C{i}-{email_address}"),
                email_address,
                store.email_hash(email_address),
                person.get("first_name"),
                person.get("last_name"),
                person.get("language", "fr"),
                json.dumps(person.get("attributes", {})),
                stamp,
                stamp,
            ],
        ).lastrowid
        event_id = db.execute(
            "INSERT INTO events (event_key, contact_id, type, occurred_at, attributes, imported_at) VALUES (?, ?, ?, ?, ?, ?)",
            [
                f"E-{contact_id}-{i}",
                contact_id,
                "order_delivered",
                stamp,
                json.dumps(person.get("event", {"order_id": f"A{i:04d}"})),
                stamp,
            ],
        ).lastrowid
        invitation_id = db.execute(
            "INSERT INTO invitations (dedupe_key, token, contact_id, moment, event_id, kind, language, email, send_at, status, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'planned', ?, ?)",
            [
                f"{moment}|{contact_id}|e{event_id}",
                tokens.new_token(secret),
                contact_id,
                moment,
                event_id,
                kind,
                person.get("language", "fr"),
                email_address,
                stamp,
                stamp,
                stamp,
            ],
        ).lastrowid
        ids.append(invitation_id)
    return ids


@pytest.fixture
def smtp_ws(workspace_dir):
    """make(port, transport=..., concurrency=..., max_failures=...) -> (workspace, db)."""

    def make(port: int = 25, **kwargs):
        write_smtp_config(workspace_dir, port, **kwargs)
        ws = load_workspace(workspace_dir)
        return ws, store.connect(ws.database)

    return make


@pytest.fixture
def send_helpers():
    """The helpers above, for test modules (importlib mode cannot import conftest)."""
    import types

    return types.SimpleNamespace(
        NOW=NOW,
        add_invitations=add_invitations,
        write_smtp_config=write_smtp_config,
        Sink=Sink,
        FlakySink=FlakySink,
        RefusingSink=RefusingSink,
        DroppingSink=DroppingSink,
    )


# --- SMS (issue 16): a local provider server and a workspace that sends SMS to it --------------------

SMS_MOMENT = """\
moments:
  repair_sms:
    journey: ecommerce
    stage: support
    kind: transactional
    trigger: {event: repair_done, delay: 0s, expires: 7d}
    questions: [csat]
    targets: {csat: 80}
    channels: [sms, email]
    reminders: {count: 1, after: 2d}
"""

SMS_SETTINGS = """\
  sms:
    transport: {transport}
    sender: BOUTIQUE
    opt_out: {{fr: STOP au 36111, en: Reply STOP to 36111}}
    concurrency: {concurrency}
    max_consecutive_failures: {max_failures}
    retry_schedule: [10m, 30m, 2h]
    give_up_after: 1d
    timeout: 5s
    twilio: {{from_number: "+33644600000", base_url: "{url}"}}
    brevo: {{base_url: "{url}"}}
"""


def _provider_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "cxctl_test_sms_providers", Path(__file__).with_name("sms_providers.py")
    )
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def sms_provider(monkeypatch):
    """start(**options) -> a running ProviderServer on 127.0.0.1 (Twilio and Brevo contracts); credentials exported."""
    module = _provider_module()
    servers = []

    def start(**options):
        server = module.ProviderServer(**options)
        server.start()
        servers.append(server)
        monkeypatch.setenv("TWILIO_ACCOUNT_SID", server.account_sid)
        monkeypatch.setenv("TWILIO_AUTH_TOKEN", server.auth_token)
        monkeypatch.setenv("BREVO_API_KEY", server.api_key)
        return server

    yield start
    for server in servers:
        server.stop()


def write_sms_config(
    root: Path,
    url: str = "http://127.0.0.1:9",
    transport: str = "twilio",
    concurrency: int = 4,
    max_failures: int = 5,
    smtp_port: int = 25,
) -> Path:
    """The SMTP test workspace plus an SMS block sending to `url`, and a moment preferring SMS."""
    write_smtp_config(root, smtp_port, transport="outbox")
    config = root / "cxctl.yaml"
    text = config.read_text(encoding="utf-8").replace(
        "\nrules:",
        SMS_SETTINGS.format(transport=transport, url=url, concurrency=concurrency, max_failures=max_failures)
        + "\nrules:",
        1,
    )
    config.write_text(text.replace("priority: [support_ces,", "priority: [repair_sms, support_ces,"), encoding="utf-8")
    (root / "sms.yaml").write_text(SMS_MOMENT, encoding="utf-8")
    return root


def add_sms_invitations(db, ws, people: list[dict], moment: str = "repair_sms", now: str = NOW) -> list[int]:
    """Contacts with a mobile and SMS consent, a repair event each, one planned SMS invitation each, due at `now`."""
    from cxctl.audience.phones import phone_hash

    stamp = to_db(parse_now(now))
    secret = ws.secret()
    ids = []
    for i, person in enumerate(people):
        phone = person["phone"]
        address = person.get("email")
        contact_id = db.execute(
            "INSERT INTO contacts (external_id, email, email_hash, phone, phone_hash, sms_consent, first_name, language,"
            " timezone, country, attributes, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '{}', ?, ?)",
            [
                person.get("external_id", f"S{i}-{phone}"),
                address,
                store.email_hash(address) if address else None,
                phone,
                phone_hash(phone),
                person.get("sms_consent", 1),
                person.get("first_name"),
                person.get("language", "fr"),
                person.get("timezone"),
                person.get("country", "FR"),
                stamp,
                stamp,
            ],
        ).lastrowid
        event_id = db.execute(
            "INSERT INTO events (event_key, contact_id, type, occurred_at, attributes, imported_at) VALUES (?, ?, ?, ?, '{}', ?)",
            [f"R-{contact_id}-{i}", contact_id, "repair_done", stamp, stamp],
        ).lastrowid
        ids.append(
            db.execute(
                "INSERT INTO invitations (dedupe_key, token, contact_id, moment, event_id, kind, language, email, channel, phone,"
                " send_at, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'invitation', ?, ?, 'sms', ?, ?, 'planned', ?, ?)",
                [
                    f"{moment}|{contact_id}|e{event_id}",
                    tokens.new_token(secret),
                    contact_id,
                    moment,
                    event_id,
                    person.get("language", "fr"),
                    address,
                    phone,
                    stamp,
                    stamp,
                    stamp,
                ],
            ).lastrowid
        )
    return ids


@pytest.fixture
def sms_ws(workspace_dir):
    """make(url, transport=..., concurrency=..., max_failures=...) -> (workspace, db)."""

    def make(url: str = "http://127.0.0.1:9", **kwargs):
        write_sms_config(workspace_dir, url, **kwargs)
        ws = load_workspace(workspace_dir)
        return ws, store.connect(ws.database)

    return make


@pytest.fixture
def sms_helpers():
    import types

    return types.SimpleNamespace(NOW=NOW, add_sms_invitations=add_sms_invitations, write_sms_config=write_sms_config)
