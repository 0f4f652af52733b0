"""`cxctl serve` fixtures: a workspace whose public_url is a real uvicorn on 127.0.0.1, whose invitations
`cxctl send` delivers to an aiosmtpd server on 127.0.0.1, and helpers to read the links of those messages."""

from __future__ import annotations

import email
import email.policy
import html
import json
import re
import socket
import threading
import time
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from cxctl import store
from cxctl.core.timeutil import parse_now
from cxctl.validation import load_workspace

SECRET = "test-secret-do-not-use-in-production"
SEND_NOW = "2026-11-23T12:00:00+00:00"
SERVE_NOW = "2026-11-24T09:00:00+00:00"  # the day after the send: the answer window (30 days) is open

SERVE_YAML = """\
workspace:
  name: Maison Lumen
  default_language: fr
  languages: [fr, en]
  timezone: Europe/Paris
  sender:
    name: Service Client
    address: avis@lumen.example
  public_url: "http://127.0.0.1:{port}"
  token_secret_env: CXCTL_SECRET
  transport: smtp
  smtp: {{host: 127.0.0.1, port: {smtp_port}, concurrency: 2, timeout: 5s}}
  min_responses: 1

rules:
  quiet_period: 1d
  send_window: {{days: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}}

journeys:
  achat:
    name: {{fr: Achat en ligne, en: Online purchase}}
    stages: [livraison]

questions:
  nps:
    type: nps
    text: {{fr: "Recommanderiez-vous Maison Lumen à un proche ?", en: "Would you recommend Maison Lumen to a friend?"}}
    labels:
      0: {{fr: Pas du tout probable, en: Not at all likely}}
      10: {{fr: Très probable, en: Extremely likely}}
    required: true
  nps_raisons:
    type: multiple_choice
    text: {{fr: "Qu'est-ce qui a le plus compté ?", en: "What mattered most?"}}
    choices:
      - {{id: prix, label: {{fr: Les prix, en: Prices}}}}
      - {{id: livraison, label: {{fr: La livraison, en: Delivery}}}}
      - {{id: conseil, label: {{fr: Le conseil, en: Advice}}}}
  nps_pourquoi:
    type: open
    text: {{fr: "Que devrions-nous améliorer ?", en: "What should we improve?"}}

moments:
  nps_livraison:
    name: {{fr: Votre livraison, en: Your delivery}}
    journey: achat
    stage: livraison
    kind: transactional
    trigger: {{event: order_delivered, delay: 1h, expires: 14d}}
    questions: [nps, nps_raisons, nps_pourquoi]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """Keeps every message the SMTP server receives."""

    def __init__(self):
        self.messages: list[bytes] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append(envelope.original_content or envelope.content)
        return "250 Message accepted"

    def parsed(self) -> list[email.message.EmailMessage]:
        with self.lock:
            return [email.message_from_bytes(data, policy=email.policy.default) for data in self.messages]


def message_links(message: email.message.EmailMessage) -> list[str]:
    """Every http(s) link of a message: the HTML part's hrefs, the text part's URLs, List-Unsubscribe."""
    found: list[str] = []
    for part in message.walk():
        if part.get_content_type() == "text/html":
            found += [html.unescape(h) for h in re.findall(r'href="([^"]+)"', part.get_content())]
        elif part.get_content_type() == "text/plain":
            found += re.findall(r"https?://\S+", part.get_content())
    found += re.findall(r"<(https?://[^>]+)>", str(message.get("List-Unsubscribe", "")))
    return [link for link in dict.fromkeys(found) if link.startswith("http")]


def one_click_link(message: email.message.EmailMessage, score: int) -> str:
    return next(link for link in message_links(message) if f"&score={score}&" in link)


def reserve_port(port: int = 0) -> socket.socket:
    """A listening socket on 127.0.0.1, held from the start: the links name its port before the server runs,
    and nothing else on the machine (a browser, a driver, another test) can take the port meanwhile."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    return sock


class ThreadServer:
    """A real uvicorn on 127.0.0.1, in a thread of the test process, with cxctl's log set-up; it serves on
    the socket given (or binds `port` itself)."""

    def __init__(self, app, port: int, sock: socket.socket | None = None):
        import uvicorn

        from cxctl.web.server import log_config

        self.port = port
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=port, log_config=log_config(), lifespan="off", server_header=False
            )
        )
        sockets = [sock] if sock is not None else None
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": sockets}, daemon=True)

    def start(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


class ServeWorkspace:
    """A workspace, its SMTP sink and the servers started over it."""

    def __init__(self, root: Path, sock: socket.socket, sink: Sink):
        self.root, self.sock, self.sink = root, sock, sink
        self.port = sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.servers: list[ThreadServer] = []

    def release_port(self) -> int:
        """Close the held socket (for a server in another process, which binds the port itself)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        return self.port

    @property
    def ws(self):
        return load_workspace(self.root)

    def db(self):
        return store.connect(self.ws.database)

    def seed(self, people: list[tuple[str, str]], occurred_at: str = "2026-11-22 10:00:00") -> None:
        """Contacts (address, language) with one delivery each: `cxctl send` plans and sends their invitations."""
        db = self.db()
        for address, language in people:
            contact_id = db.execute(
                "INSERT INTO contacts (external_id, email, email_hash, first_name, language, segment, attributes, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, 'particulier', '{}', '2026-11-01 00:00:00', '2026-11-01 00:00:00')",
                [f"C-{address}", address, store.email_hash(address), "Anaïs", language],
            ).lastrowid
            db.execute(
                "INSERT INTO events (event_key, contact_id, type, occurred_at, attributes, imported_at) "
                "VALUES (?, ?, 'order_delivered', ?, '{\"order_id\": \"A1\"}', '2026-11-22 11:00:00')",
                [f"E-{address}", contact_id, occurred_at],
            )
        db.conn.close()

    def send(self, cli, now: str = SEND_NOW) -> dict:
        code, out, err = cli("send", "-w", str(self.root), "--now", now, "--json")
        assert code == 0, err
        return json.loads(out)

    def message_to(self, address: str) -> email.message.EmailMessage:
        return next(m for m in self.sink.parsed() if m["To"].addresses[0].addr_spec == address)

    def serve(self, now: str = SERVE_NOW, **options) -> str:
        """Start the app on this workspace's port (the one its links name); returns the base URL."""
        from cxctl.web.app import create_app

        ws = self.ws
        app = create_app(ws, now=parse_now(now), **options)
        sock = self.sock if self.sock is not None else reserve_port(self.port)
        self.sock = None  # uvicorn owns it now, and closes it when it stops
        server = ThreadServer(app, self.port, sock).start()
        self.servers.append(server)
        return self.base

    def stop(self) -> None:
        while self.servers:
            self.servers.pop().stop()
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def count(self, table: str) -> int:
        db = self.db()
        try:
            return db.execute(f"SELECT COUNT(*) FROM [{table}]").fetchone()[0]
        finally:
            db.conn.close()


@pytest.fixture
def serve_ws(tmp_path, monkeypatch):
    """A served workspace: SMTP sink started, uvicorn started by `.serve()`, both stopped at teardown."""
    monkeypatch.setenv("CXCTL_SECRET", SECRET)
    sock, smtp_port = reserve_port(), free_port()
    port = sock.getsockname()[1]
    root = tmp_path / "ws"
    root.mkdir()
    (root / "cxctl.yaml").write_text(SERVE_YAML.format(port=port, smtp_port=smtp_port), encoding="utf-8")
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    served = ServeWorkspace(root, sock, sink)
    yield served
    served.stop()
    controller.stop()


@pytest.fixture
def serve_helpers():
    """Module-level helpers for test files (importlib mode cannot import conftest)."""
    import types

    return types.SimpleNamespace(
        SEND_NOW=SEND_NOW,
        SERVE_NOW=SERVE_NOW,
        SECRET=SECRET,
        message_links=message_links,
        one_click_link=one_click_link,
        free_port=free_port,
        reserve_port=reserve_port,
        ThreadServer=ThreadServer,
    )
