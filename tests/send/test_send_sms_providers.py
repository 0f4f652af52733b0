"""SMS through Twilio's and Brevo's HTTP APIs (issue 16), against a local server on 127.0.0.1 that implements
their documented contracts and records what it received: E.164 numbers, the opt-out wording, the encoding
and segments, the credentials in the right header and nowhere else; and the state machine of email for
their answers (sent with the provider's id, bounced and suppressed for SMS only, 429 held and retried,
5xx and timeouts retried on the clock, refused credentials stopping the run)."""

from __future__ import annotations

import base64
import json
import logging
from datetime import timedelta

import pytest

from cxctl.core.timeutil import from_db, parse_now
from cxctl.delivery.send import deliver, send_campaign
from cxctl.delivery.sms_transport import BrevoTransport, TwilioTransport
from cxctl.delivery.transport import OutboxTransport

NOW = "2026-11-23T10:00:00+00:00"  # a Monday, 11:00 in Paris: inside the SMS hours


def people(n: int, **extra) -> list[dict]:
    return [
        {"phone": f"+336123456{i:02d}", "email": f"p{i}@example.com", "first_name": "Camille", **extra}
        for i in range(n)
    ]


def run(ws, db, transport, **kwargs):
    return deliver(
        ws,
        db,
        parse_now(NOW),
        OutboxTransport(ws.outbox_dir),
        sms_transport=transport,
        retry_delays=(0.05, 0.1),
        **kwargs,
    )


def statuses(db) -> dict[str, int]:
    return dict(db.execute("SELECT status, COUNT(*) FROM invitations GROUP BY status").fetchall())


def no_secret_anywhere(server, report, db, caplog) -> None:
    text = (
        json.dumps(report.__dict__, default=str)
        + caplog.text
        + json.dumps(db.execute("SELECT last_error, message_id, provider_ref FROM invitations").fetchall())
    )
    for secret in (server.auth_token, server.api_key):
        assert secret not in text


def test_twilio_receives_each_sms_as_its_contract_says(sms_provider, sms_ws, sms_helpers, caplog):
    caplog.set_level(logging.DEBUG)
    server = sms_provider()
    ws, db = sms_ws(server.url, transport="twilio")
    ids = sms_helpers.add_sms_invitations(db, ws, people(5))
    report = run(ws, db, TwilioTransport(ws.settings.sms))
    assert (report.sent, report.failed, report.ok) == (5, 0, True), report.errors
    assert report.by_channel["sms"]["sent"] == 5 and report.by_channel["email"]["due"] == 0
    got = server.accepted("twilio")
    assert sorted(r.to for r in got) == [f"+336123456{i:02d}" for i in range(5)]
    for request in got:
        assert request.path == f"/2010-04-01/Accounts/{server.account_sid}/Messages.json"
        assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
        assert (
            request.headers["authorization"]
            == "Basic " + base64.b64encode(f"{server.account_sid}:{server.auth_token}".encode()).decode()
        )
        assert request.fields["From"] == "+33644600000"
        assert request.text.startswith("Bonjour Camille, votre avis ? https://survey.example/s/repair_sms?lang=fr&t=")
        assert request.text.endswith("\nSTOP au 36111")
        assert "https://survey.example/s/repair_sms?lang=fr&t=" in request.text
    rows = db.execute("SELECT id, status, provider_ref, channel FROM invitations ORDER BY id").fetchall()
    assert [r[1] for r in rows] == ["sent"] * 5 and all(r[2].startswith("SM") and len(r[2]) == 34 for r in rows)
    assert {r[0] for r in rows} == set(ids)
    no_secret_anywhere(server, report, db, caplog)


def test_brevo_receives_json_with_the_encoding_flag_and_digits_only(sms_provider, sms_ws, sms_helpers, caplog):
    server = sms_provider()
    ws, db = sms_ws(server.url, transport="brevo")
    sms_helpers.add_sms_invitations(
        db, ws, people(2) + [{"phone": "+32470123456", "first_name": "Françoise", "country": "BE"}]
    )
    report = run(ws, db, BrevoTransport(ws.settings.sms))
    assert (report.sent, report.ok) == (3, True)
    got = {r.to: r for r in server.accepted("brevo")}
    assert set(got) == {"+33612345600", "+33612345601", "+32470123456"}
    plain, accented = got["+33612345600"], got["+32470123456"]
    assert plain.path == "/v3/transactionalSMS/send" and plain.headers["api-key"] == server.api_key
    assert plain.fields["recipient"] == "33612345600" and plain.fields["sender"] == "BOUTIQUE"
    assert plain.fields["type"] == "transactional" and plain.fields["unicodeEnabled"] is False
    assert accented.fields["unicodeEnabled"] is True and "Françoise" in accented.text  # ç is outside GSM-7: UCS-2
    from importlib import import_module

    providers = import_module("cxctl_test_sms_providers")
    assert providers.segments(plain.text) == 1 and providers.segments(accented.text) == 2  # what each is billed
    refs = [r[0] for r in db.execute("SELECT provider_ref FROM invitations ORDER BY id")]
    assert all(ref.isdigit() for ref in refs)
    no_secret_anywhere(server, report, db, caplog)


@pytest.mark.parametrize("transport", ["twilio", "brevo"])
def test_invalid_and_unsubscribed_numbers_bounce_and_are_suppressed_for_sms_only(
    sms_provider, sms_ws, sms_helpers, transport
):
    server = sms_provider(behaviour={"+33612345600": "invalid", "+33612345601": "unsubscribed"})
    ws, db = sms_ws(server.url, transport=transport)
    sms_helpers.add_sms_invitations(db, ws, people(3))
    sms_transport = (TwilioTransport if transport == "twilio" else BrevoTransport)(ws.settings.sms)
    report = run(ws, db, sms_transport)
    assert (report.sent, report.bounced, report.failed) == (1, 2, 0)
    assert statuses(db) == {"bounced": 2, "sent": 1}
    suppressed = dict(db.execute("SELECT phone, reason FROM sms_suppressions").fetchall())
    assert suppressed == {"+33612345600": "bounce", "+33612345601": "opt_out"}
    assert db.execute("SELECT COUNT(*) FROM suppressions").fetchone()[0] == 0  # their email is untouched


def test_a_429_holds_every_connection_for_its_retry_after_then_the_sms_go(sms_provider, sms_ws, sms_helpers):
    server = sms_provider(behaviour={"+33612345600": "rate_limited:1"}, retry_after="1")
    ws, db = sms_ws(server.url, transport="twilio", concurrency=2)
    sms_helpers.add_sms_invitations(db, ws, people(6))
    report = run(ws, db, TwilioTransport(ws.settings.sms))
    assert (report.sent, report.failed) == (6, 0)
    limited = next(r for r in server.received if r.status == 429)
    soon = [r for r in server.received if limited.at < r.at < limited.at + 0.9]
    assert len(soon) <= 1  # only a request already in flight on the other connection: the rest waited Retry-After
    assert server.per_number() == {f"+336123456{i:02d}": 1 for i in range(6)}


@pytest.mark.parametrize("transport", ["twilio", "brevo"])
def test_5xx_and_timeouts_fail_temporarily_and_retry_on_the_clock(sms_provider, sms_ws, sms_helpers, transport):
    server = sms_provider(behaviour={"+33612345600": "server_error"})
    ws, db = sms_ws(server.url, transport=transport)
    sms_helpers.add_sms_invitations(db, ws, people(2))
    cls = TwilioTransport if transport == "twilio" else BrevoTransport
    report = run(ws, db, cls(ws.settings.sms))
    assert (report.sent, report.failed) == (1, 1)
    status, next_at, error = db.execute(
        "SELECT status, next_attempt_at, last_error FROM invitations WHERE phone = '+33612345600'"
    ).fetchone()
    assert status == "failed" and "500" in error
    assert from_db(next_at) - parse_now(NOW) >= timedelta(minutes=10)  # sms.retry_schedule's first wait
    assert len([r for r in server.received if r.to == "+33612345600"]) == 3  # one try and two quick retries
    # At the next try the provider is back: it goes, once.
    server.behaviour.clear()
    later = deliver(ws, db, from_db(next_at), OutboxTransport(ws.outbox_dir), sms_transport=cls(ws.settings.sms))
    assert later.sent == 1 and server.per_number()["+33612345600"] == 1


def test_a_provider_slower_than_the_timeout_is_a_temporary_failure(sms_provider, sms_ws, sms_helpers):
    server = sms_provider(delay=1.5)
    ws, db = sms_ws(server.url, transport="twilio")
    head, _, tail = (ws.root / "cxctl.yaml").read_text(encoding="utf-8").rpartition("    timeout: 5s\n")
    (ws.root / "cxctl.yaml").write_text(head + "    timeout: 1s\n" + tail, encoding="utf-8")  # the sms block's
    from cxctl.validation import load_workspace

    ws = load_workspace(ws.root)
    assert ws.settings.sms.timeout == timedelta(seconds=1)
    sms_helpers.add_sms_invitations(db, ws, people(1))
    report = run(ws, db, TwilioTransport(ws.settings.sms))
    assert report.failed == 1 and "Timeout" in report.errors[0]["error"]
    assert db.execute("SELECT status FROM invitations").fetchone()[0] == "failed"


@pytest.mark.parametrize("transport", ["twilio", "brevo"])
def test_refused_credentials_stop_the_run_untried_and_never_print_the_secret(
    sms_provider, sms_ws, sms_helpers, monkeypatch, transport, caplog
):
    server = sms_provider()
    ws, db = sms_ws(server.url, transport=transport)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "a-wrong-token-never-logged")
    monkeypatch.setenv("BREVO_API_KEY", "a-wrong-key-never-logged")
    sms_helpers.add_sms_invitations(db, ws, people(4))
    cls = TwilioTransport if transport == "twilio" else BrevoTransport
    report = run(ws, db, cls(ws.settings.sms))
    assert report.sent == 0 and report.stopped and "401" in report.stopped
    assert statuses(db) == {"planned": 4}
    for secret in ("a-wrong-token-never-logged", "a-wrong-key-never-logged"):
        assert secret not in json.dumps(report.__dict__, default=str) + caplog.text


def test_brevo_without_credit_stops_the_run(sms_provider, sms_ws, sms_helpers):
    server = sms_provider(credits=2)
    ws, db = sms_ws(server.url, transport="brevo", concurrency=1)
    sms_helpers.add_sms_invitations(db, ws, people(4))
    report = run(ws, db, BrevoTransport(ws.settings.sms))
    assert report.sent == 2 and "no SMS credits left" in report.stopped
    assert statuses(db) == {"sent": 2, "planned": 2}


def test_hourly_and_daily_caps_count_sms_apart_from_email(sms_provider, sms_ws, sms_helpers, send_helpers):
    server = sms_provider()
    ws, db = sms_ws(server.url, transport="twilio")
    text = (
        (ws.root / "cxctl.yaml")
        .read_text(encoding="utf-8")
        .replace("    sender: BOUTIQUE\n", "    sender: BOUTIQUE\n    max_per_hour: 2\n", 1)
    )
    (ws.root / "cxctl.yaml").write_text(text, encoding="utf-8")
    from cxctl.validation import load_workspace

    ws = load_workspace(ws.root)
    send_helpers.add_invitations(db, ws, [{"email": f"m{i}@example.com"} for i in range(3)])
    sms_helpers.add_sms_invitations(db, ws, people(5))
    report = run(ws, db, TwilioTransport(ws.settings.sms))
    assert report.by_channel["email"]["sent"] == 3  # the outbox has no quota, and email's is not SMS's
    assert report.by_channel["sms"]["sent"] == 2 and report.by_channel["sms"]["skipped"] == {"hourly_cap": 3}


def test_at_send_time_an_sms_waits_for_the_sms_hours_and_drops_without_consent_or_after_a_stop(
    sms_provider, sms_ws, sms_helpers
):
    from cxctl.audience.phones import phone_hash

    server = sms_provider()
    ws, db = sms_ws(server.url, transport="twilio")
    ids = sms_helpers.add_sms_invitations(db, ws, people(3))
    late = parse_now("2026-11-23T19:30:00+00:00")  # 20:30 in Paris
    report = deliver(ws, db, late, OutboxTransport(ws.outbox_dir), sms_transport=TwilioTransport(ws.settings.sms))
    assert report.sent == 0 and report.skipped == {"sms_hours": 3} and statuses(db) == {"planned": 3}
    db.execute("UPDATE contacts SET sms_consent = 0 WHERE phone = '+33612345600'")  # consent withdrawn since planning
    db.execute(
        "INSERT INTO sms_suppressions (phone_hash, phone, reason, source, created_at) VALUES (?, ?, 'opt_out', "
        "'webhook', '2026-11-23 18:00:00')",
        [phone_hash("+33612345601"), "+33612345601"],
    )
    report = run(ws, db, TwilioTransport(ws.settings.sms))
    assert report.sent == 1 and report.skipped == {"no_sms_consent": 1, "suppressed": 1}
    assert dict(db.execute("SELECT id, status FROM invitations").fetchall()) == {
        ids[0]: "cancelled",
        ids[1]: "cancelled",
        ids[2]: "sent",
    }
    assert list(server.per_number()) == ["+33612345602"]


def test_cxctl_send_plans_by_channel_then_sends_sms_to_the_provider_and_email_to_the_outbox(
    sms_provider, sms_ws, workspace_dir, cli
):
    from cxctl import store
    from cxctl.audience.contacts import import_contacts
    from cxctl.audience.events import import_events
    from cxctl.validation import load_workspace

    server = sms_provider()
    ws, db = sms_ws(server.url, transport="brevo")
    contacts = workspace_dir / "contacts.csv"
    contacts.write_text(
        "id,email,mobile,sms_consent,first_name\nA,a@example.com,06 12 34 56 78,oui,Anne\n"
        "B,b@example.com,06 98 76 54 32,non,Bruno\n",
        encoding="utf-8",
    )
    events = workspace_dir / "events.csv"
    events.write_text(
        "event_id,external_id,type,occurred_at\nR1,A,repair_done,2026-11-23T09:00:00Z\n"
        "R2,B,repair_done,2026-11-23T09:00:00Z\n",
        encoding="utf-8",
    )
    now = parse_now(NOW)
    import_contacts(ws, db, contacts, now)
    import_events(ws, db, events, now)
    code, out, err = cli("send", "-w", str(workspace_dir), "--now", NOW, "--moment", "repair_sms", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["by_channel"]["sms"]["sent"] == 1 and result["by_channel"]["email"]["sent"] == 1, result
    assert [r.to for r in server.accepted()] == ["+33612345678"]
    assert [p.name for p in (workspace_dir / "outbox").glob("*.eml")] == ["2.eml"]
    rows = (
        store.connect(load_workspace(workspace_dir).database)
        .execute("SELECT channel, phone, status FROM invitations ORDER BY id")
        .fetchall()
    )
    assert rows == [("sms", "+33612345678", "sent"), ("email", None, "sent")]


def test_the_sms_outbox_writes_one_readable_file_per_sms(sms_ws, sms_helpers):
    ws, db = sms_ws(transport="outbox")
    ids = sms_helpers.add_sms_invitations(db, ws, people(2))
    report = deliver(ws, db, parse_now(NOW), OutboxTransport(ws.outbox_dir))
    assert report.sent == 2 and "sms outbox" in report.transport
    written = (ws.root / "outbox" / "sms" / f"{ids[0]}.sms").read_text(encoding="utf-8")
    head, _, text = written.partition("\n\n")
    assert head.splitlines()[:5] == [
        "To: +33612345600",
        "From: BOUTIQUE",
        f"Invitation: {ids[0]}",
        "Encoding: GSM-7",
        "Segments: 1",
    ]
    assert text.rstrip().endswith("STOP au 36111")


def test_send_campaign_refuses_nothing_twice_when_run_again(sms_provider, sms_ws, sms_helpers):
    server = sms_provider()
    ws, db = sms_ws(server.url, transport="twilio")
    sms_helpers.add_sms_invitations(db, ws, people(3))
    now = parse_now(NOW)
    first = send_campaign(
        ws, db, now, OutboxTransport(ws.outbox_dir), moment="repair_sms", sms_transport=TwilioTransport(ws.settings.sms)
    )
    again = send_campaign(
        ws, db, now, OutboxTransport(ws.outbox_dir), moment="repair_sms", sms_transport=TwilioTransport(ws.settings.sms)
    )
    assert (first.sent, again.sent) == (3, 0) and sorted(server.per_number().values()) == [1, 1, 1]
