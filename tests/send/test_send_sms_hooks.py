"""SMS webhooks as plain functions (issue 16; `cxctl serve` is not on main yet, so nothing mounts them): a
Twilio STOP or a Brevo unsubscribe suppresses the number for SMS only, a receipt saying the number cannot
take SMS bounces the invitation it names, and a request whose signature or token does not match changes
nothing."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from cxctl.core.timeutil import parse_now
from cxctl.delivery.send import deliver
from cxctl.delivery.sms_hooks import SignatureError, handle_sms_hook, twilio_signature
from cxctl.delivery.sms_transport import TwilioTransport
from cxctl.delivery.transport import OutboxTransport

NOW = "2026-11-23T10:00:00+00:00"
URL = "https://avis.boutique.example/hooks/sms/twilio"


def test_twilio_signature_matches_twilios_documented_example():
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    assert (
        twilio_signature("https://mycompany.com/myapp.php?foo=1&bar=2", params, "12345")
        == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    )


def signed(params: dict[str, str], token: str) -> tuple[dict[str, str], bytes]:
    return {
        "X-Twilio-Signature": twilio_signature(URL, params, token),
        "Content-Type": "application/x-www-form-urlencoded",
    }, urlencode(params).encode()


def test_a_twilio_stop_suppresses_the_number_for_sms_and_stops_the_planned_sms(sms_provider, sms_ws, sms_helpers):
    server = sms_provider()
    ws, db = sms_ws(server.url, transport="twilio")
    ids = sms_helpers.add_sms_invitations(
        db, ws, [{"phone": "+33612345600", "email": "a@example.com"}, {"phone": "+33612345601"}]
    )
    params = {
        "MessageSid": "SM" + "1" * 32,
        "AccountSid": server.account_sid,
        "From": "+33612345600",
        "To": "+33644600000",
        "Body": "Stop",
        "OptOutType": "STOP",
        "SmsStatus": "received",
    }
    headers, body = signed(params, server.auth_token)
    report = handle_sms_hook(ws, db, "twilio", URL, headers, body, parse_now(NOW))
    assert (report.stops, report.bounces) == (1, 0)
    assert db.execute("SELECT phone, reason, source FROM sms_suppressions").fetchall() == [
        ("+33612345600", "opt_out", "twilio webhook")
    ]
    assert db.execute("SELECT COUNT(*) FROM suppressions").fetchone()[0] == 0  # the email is not touched
    sent = deliver(
        ws, db, parse_now(NOW), OutboxTransport(ws.outbox_dir), sms_transport=TwilioTransport(ws.settings.sms)
    )
    assert sent.sent == 1 and sent.skipped == {"suppressed": 1}
    assert dict(db.execute("SELECT id, status FROM invitations").fetchall()) == {ids[0]: "cancelled", ids[1]: "sent"}


def test_a_forged_or_altered_twilio_request_changes_nothing(sms_provider, sms_ws, sms_helpers):
    server = sms_provider()
    ws, db = sms_ws(server.url, transport="twilio")
    params = {"MessageSid": "SM" + "2" * 32, "From": "+33612345600", "Body": "STOP"}
    headers, _ = signed(params, server.auth_token)
    altered = urlencode({**params, "From": "+33699999999"}).encode()  # someone else's number, same signature
    with pytest.raises(SignatureError, match="X-Twilio-Signature does not match"):
        handle_sms_hook(ws, db, "twilio", URL, headers, altered, parse_now(NOW))
    with pytest.raises(SignatureError):
        handle_sms_hook(ws, db, "twilio", URL, {}, urlencode(params).encode(), parse_now(NOW))
    assert db.execute("SELECT COUNT(*) FROM sms_suppressions").fetchone()[0] == 0


def test_a_twilio_receipt_for_an_unknown_number_bounces_its_invitation(sms_provider, sms_ws, sms_helpers):
    server = sms_provider()
    ws, db = sms_ws(server.url, transport="twilio")
    sms_helpers.add_sms_invitations(db, ws, [{"phone": "+33612345600"}, {"phone": "+33612345601"}])
    deliver(ws, db, parse_now(NOW), OutboxTransport(ws.outbox_dir), sms_transport=TwilioTransport(ws.settings.sms))
    (sid_bad, phone_bad), (sid_ok, phone_ok) = db.execute(
        "SELECT provider_ref, phone FROM invitations ORDER BY id"
    ).fetchall()
    for params in (
        {"MessageSid": sid_bad, "MessageStatus": "undelivered", "ErrorCode": "30005", "To": phone_bad},
        {"MessageSid": sid_ok, "MessageStatus": "delivered", "To": phone_ok},
    ):
        headers, body = signed(params, server.auth_token)
        handle_sms_hook(ws, db, "twilio", URL, headers, body, parse_now(NOW))
    assert db.execute("SELECT phone, status FROM invitations ORDER BY id").fetchall() == [
        (phone_bad, "bounced"),
        (phone_ok, "sent"),
    ]
    assert db.execute("SELECT phone, reason FROM sms_suppressions").fetchall() == [(phone_bad, "bounce")]


def test_brevo_events_need_the_bearer_token_and_apply_stops_and_hard_bounces(
    sms_provider, sms_ws, sms_helpers, monkeypatch
):
    server = sms_provider()
    ws, db = sms_ws(server.url, transport="brevo")
    text = (
        (ws.root / "cxctl.yaml")
        .read_text(encoding="utf-8")
        .replace('    brevo: {base_url: "', '    brevo: {webhook_token_env: BREVO_WEBHOOK_TOKEN, base_url: "')
    )
    (ws.root / "cxctl.yaml").write_text(text, encoding="utf-8")
    from cxctl.validation import load_workspace

    ws = load_workspace(ws.root)
    sms_helpers.add_sms_invitations(db, ws, [{"phone": "+33612345600"}, {"phone": "+33612345601"}])
    from cxctl.delivery.sms_transport import BrevoTransport

    deliver(ws, db, parse_now(NOW), OutboxTransport(ws.outbox_dir), sms_transport=BrevoTransport(ws.settings.sms))
    ref = db.execute("SELECT provider_ref FROM invitations WHERE phone = '+33612345601'").fetchone()[0]
    body = json.dumps(
        [
            {"msg_status": "unsubscribe", "to": "33612345600", "messageId": 1},
            {"msg_status": "hardBounce", "to": "33612345601", "messageId": int(ref), "description": "absent"},
        ]
    ).encode()
    with pytest.raises(Exception, match="webhook_token_env"):
        handle_sms_hook(ws, db, "brevo", "https://x/hooks/sms/brevo", {}, body, parse_now(NOW))
    monkeypatch.setenv("BREVO_WEBHOOK_TOKEN", "a-long-random-webhook-token")
    with pytest.raises(SignatureError):
        handle_sms_hook(ws, db, "brevo", "https://x", {"Authorization": "Bearer guess"}, body, parse_now(NOW))
    report = handle_sms_hook(
        ws, db, "brevo", "https://x", {"Authorization": "Bearer a-long-random-webhook-token"}, body, parse_now(NOW)
    )
    assert (report.stops, report.bounces) == (1, 1)
    assert dict(db.execute("SELECT phone, reason FROM sms_suppressions").fetchall()) == {
        "+33612345600": "opt_out",
        "+33612345601": "bounce",
    }
    assert db.execute("SELECT status FROM invitations WHERE phone = '+33612345601'").fetchone()[0] == "bounced"
