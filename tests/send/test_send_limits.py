"""Rate limit, caps, --limit, and SMTP authentication with secrets from the environment."""

from __future__ import annotations

import time

import pytest
from aiosmtpd.smtp import AuthResult

from cxctl.core.errors import UsageError
from cxctl.core.timeutil import parse_now
from cxctl.delivery.send import deliver
from cxctl.delivery.transport import SmtpTransport

NOW = "2026-11-23T10:00:00+00:00"


def people(n: int) -> list[dict]:
    return [{"email": f"p{i}@example.com"} for i in range(n)]


def test_rate_limit_spaces_the_messages(smtp_server, smtp_ws, send_helpers):
    sink = send_helpers.Sink()
    ws, db = smtp_ws(smtp_server(sink), concurrency=4)
    ws.settings.smtp.rate_per_second = 20
    send_helpers.add_invitations(db, ws, people(11))
    start = time.monotonic()
    report = deliver(ws, db, parse_now(NOW), SmtpTransport(ws.settings.smtp))
    assert report.sent == 11
    assert time.monotonic() - start >= 0.45  # 11 messages at 20/s: 10 intervals of 50 ms


@pytest.mark.parametrize(
    "setting, reason, full_at, still_full_at, free_at",
    [
        ("max_per_hour", "hourly_cap", "2026-11-23T10:10", "2026-11-23T10:50", "2026-11-23T11:30"),
        ("max_per_day", "daily_cap", "2026-11-23T18:00", "2026-11-24T09:00", "2026-11-24T18:30"),
    ],
)
def test_hourly_and_daily_caps_count_what_was_already_sent(
    smtp_server, smtp_ws, send_helpers, setting, reason, full_at, still_full_at, free_at
):
    """smtp.max_per_hour / max_per_day over the last hour / 24 hours: what goes over waits, planned."""
    sink = send_helpers.Sink()
    ws, db = smtp_ws(smtp_server(sink))
    setattr(ws.settings.smtp, setting, 5)
    send_helpers.add_invitations(db, ws, people(3))
    assert deliver(ws, db, parse_now(NOW), SmtpTransport(ws.settings.smtp)).sent == 3
    send_helpers.add_invitations(db, ws, [{"email": f"q{i}@example.com"} for i in range(4)], now=full_at + ":00+00:00")
    report = deliver(ws, db, parse_now(full_at + ":00+00:00"), SmtpTransport(ws.settings.smtp))
    assert report.sent == 2 and report.skipped == {reason: 2}
    assert db.execute("SELECT COUNT(*) FROM invitations WHERE status = 'planned'").fetchone()[0] == 2
    assert deliver(ws, db, parse_now(still_full_at + ":00+00:00"), SmtpTransport(ws.settings.smtp)).sent == 0
    assert deliver(ws, db, parse_now(free_at + ":00+00:00"), SmtpTransport(ws.settings.smtp)).sent == 2
    assert len(sink.messages) == 7


def test_limit_leaves_the_rest_planned(smtp_server, smtp_ws, send_helpers):
    sink = send_helpers.Sink()
    ws, db = smtp_ws(smtp_server(sink))
    send_helpers.add_invitations(db, ws, people(7))
    report = deliver(ws, db, parse_now(NOW), SmtpTransport(ws.settings.smtp), limit=3)
    assert report.sent == 3 and report.skipped == {"limit": 4}
    assert len(sink.messages) == 3


class Authenticator:
    def __init__(self):
        self.logins = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((auth_data.login, auth_data.password))
        if auth_data.login == b"cx" and auth_data.password == b"s3cret-pw":
            return AuthResult(success=True)
        # An explicit message: without one, aiosmtpd 1.4 leaves the client waiting for an answer.
        return AuthResult(success=False, handled=False, message="535 5.7.8 Authentication credentials invalid")


def start_auth_server(handler, authenticator) -> int:
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
        auth_required=True,
    )
    controller.start()
    return port, controller


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_login_uses_the_environment_and_a_refused_login_stops_the_run(smtp_ws, send_helpers, monkeypatch):
    sink, authenticator = send_helpers.Sink(), Authenticator()
    port, controller = start_auth_server(sink, authenticator)
    try:
        ws, db = smtp_ws(port)
        ws.settings.smtp.username_env, ws.settings.smtp.password_env = "CX_USER", "CX_PASSWORD"
        with pytest.raises(UsageError, match="CX_USER"):
            SmtpTransport(ws.settings.smtp)
        monkeypatch.setenv("CX_USER", "cx")
        monkeypatch.setenv("CX_PASSWORD", "s3cret-pw")
        send_helpers.add_invitations(db, ws, people(2))
        assert deliver(ws, db, parse_now(NOW), SmtpTransport(ws.settings.smtp)).sent == 2
        assert (b"cx", b"s3cret-pw") in authenticator.logins

        monkeypatch.setenv("CX_PASSWORD", "wrong-pw")
        send_helpers.add_invitations(db, ws, [{"email": "late@example.com"}])
        report = deliver(ws, db, parse_now(NOW), SmtpTransport(ws.settings.smtp), retry_delays=())
        assert report.stopped and "refused the login" in report.stopped and "wrong-pw" not in report.stopped
        assert report.sent == 0
        assert db.execute("SELECT status FROM invitations WHERE email = 'late@example.com'").fetchone()[0] == "planned"
    finally:
        controller.stop()


def test_a_server_without_auth_or_starttls_stops_the_run_at_once(smtp_server, smtp_ws, send_helpers, monkeypatch):
    """Credentials (or STARTTLS) asked of a server that does not offer them: a configuration error, not an
    outage — the run stops at the first message with the fix, nothing is marked failed or retried."""
    sink = send_helpers.Sink()
    ws, db = smtp_ws(smtp_server(sink))  # a plain aiosmtpd: no AUTH advertised without TLS, no STARTTLS
    send_helpers.add_invitations(db, ws, people(3))
    monkeypatch.setenv("CX_USER", "cx")
    monkeypatch.setenv("CX_PASSWORD", "s3cret-pw")
    ws.settings.smtp.username_env, ws.settings.smtp.password_env = "CX_USER", "CX_PASSWORD"
    report = deliver(ws, db, parse_now(NOW), SmtpTransport(ws.settings.smtp))
    assert report.stopped and "AUTH extension is not supported" in report.stopped and "smtp.security" in report.stopped
    assert "s3cret-pw" not in report.stopped and (report.sent, report.failed) == (0, 0)
    ws.settings.smtp.username_env = ws.settings.smtp.password_env = None
    ws.settings.smtp.security = "starttls"
    report = deliver(ws, db, parse_now(NOW), SmtpTransport(ws.settings.smtp))
    assert report.stopped and "STARTTLS extension not supported" in report.stopped and report.failed == 0
    assert db.execute("SELECT COUNT(*) FROM invitations WHERE status = 'planned'").fetchone()[0] == 3
    assert sink.messages == []


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (openssl), as a server-side SSLContext."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    return context, cert


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_starttls_and_implicit_tls(smtp_ws, send_helpers, tls_context, security):
    import socket

    from aiosmtpd.controller import Controller

    context, cert = tls_context
    sink = send_helpers.Sink()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if security == "starttls":
        controller = Controller(sink, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True)
    else:
        controller = Controller(sink, hostname="127.0.0.1", port=port, ssl_context=context)
    controller.start()
    try:
        ws, db = smtp_ws(port)
        ws.settings.smtp.security = security
        send_helpers.add_invitations(db, ws, people(2))
        transport = SmtpTransport(ws.settings.smtp)
        transport.validate_certs = False  # self-signed; a real server's certificate is checked
        report = deliver(ws, db, parse_now(NOW), transport)
        assert report.sent == 2, report.errors
        assert len(sink.messages) == 2
    finally:
        controller.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_login_that_times_out_stops_the_run_at_once_with_the_fix(smtp_ws, send_helpers, monkeypatch):
    """A server that never answers AUTH (issue 14, item 7): a configuration problem, not an outage. The run
    stops at the first login with the fix; nothing is marked failed, nothing retried for minutes."""
    import asyncio
    import socket
    import time
    from datetime import timedelta

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP

    class SilentAuth(SMTP):
        async def smtp_AUTH(self, arg):
            await asyncio.sleep(30)  # never answers (cancelled when the server stops)

    class SilentController(Controller):
        def factory(self):
            return SilentAuth(self.handler, authenticator=Authenticator(), auth_require_tls=False, auth_required=True)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = send_helpers.Sink()
    controller = SilentController(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        ws, db = smtp_ws(port, concurrency=2, max_failures=3)
        monkeypatch.setenv("CX_USER", "cx")
        monkeypatch.setenv("CX_PASSWORD", "s3cret-pw")
        ws.settings.smtp.username_env, ws.settings.smtp.password_env = "CX_USER", "CX_PASSWORD"
        ws.settings.smtp.timeout = timedelta(seconds=1)
        send_helpers.add_invitations(db, ws, people(10))
        started = time.monotonic()
        report = deliver(ws, db, parse_now(NOW), SmtpTransport(ws.settings.smtp), retry_delays=())
        assert time.monotonic() - started < 5
        assert report.stopped and "did not answer the login within 1 s" in report.stopped
        assert "smtp.port" in report.stopped and "s3cret-pw" not in report.stopped
        assert (report.sent, report.failed) == (0, 0)
        assert db.execute("SELECT status, COUNT(*), MAX(attempts) FROM invitations GROUP BY status").fetchall() == [
            ("planned", 10, 0)
        ]
    finally:
        controller.stop()
