"""SMS webhooks on `cxctl serve` (issue 16): `/hooks/sms/{provider}` on a real uvicorn, requests signed as the
providers sign them; a STOP suppresses the number for SMS, a receipt bounces its invitation, a forged request
gets 403 and changes nothing."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx

from cxctl.audience.phones import phone_hash
from cxctl.delivery.sms_hooks import twilio_signature

SMS_BLOCK = """\
  sms:
    opt_out: STOP au 36111
    brevo: {webhook_token_env: BREVO_WEBHOOK_TOKEN}
"""


def with_sms(serve_ws, monkeypatch):
    config = serve_ws.root / "cxctl.yaml"
    text = config.read_text(encoding="utf-8").replace("  min_responses: 1\n", "  min_responses: 1\n" + SMS_BLOCK)
    config.write_text(text, encoding="utf-8")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "twilio-auth-token-of-the-test")
    monkeypatch.setenv("BREVO_WEBHOOK_TOKEN", "brevo-webhook-token-of-the-test")
    db = serve_ws.db()
    contact = db.execute(
        "INSERT INTO contacts (external_id, email, email_hash, phone, phone_hash, sms_consent, attributes, created_at,"
        " updated_at) VALUES ('C1', NULL, NULL, '+33612345678', ?, 1, '{}', '2026-11-01 00:00:00', '2026-11-01 00:00:00')",
        [phone_hash("+33612345678")],
    ).lastrowid
    db.execute(
        "INSERT INTO invitations (dedupe_key, token, contact_id, moment, kind, channel, phone, send_at, sent_at, status,"
        " provider_ref, created_at, updated_at) VALUES ('k1', 't1', ?, 'nps_livraison', 'invitation', 'sms', '+33612345678',"
        " '2026-11-23 12:00:00', '2026-11-23 12:00:00', 'sent', 'SM' || printf('%032d', 7), '2026-11-23 12:00:00',"
        " '2026-11-23 12:00:00')",
        [contact],
    )
    db.conn.close()


def post_twilio(base: str, params: dict[str, str], token: str = "twilio-auth-token-of-the-test") -> httpx.Response:
    url = f"{base}/hooks/sms/twilio"
    return httpx.post(
        url,
        content=urlencode(params),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(url, params, token),
        },
    )


def test_twilio_stop_and_receipt_through_cxctl_serve(serve_ws, monkeypatch):
    with_sms(serve_ws, monkeypatch)
    base = serve_ws.serve()
    forged = post_twilio(base, {"From": "+33612345678", "Body": "STOP", "MessageSid": "SM1"}, token="a-guess")
    assert forged.status_code == 403 and serve_ws.count("sms_suppressions") == 0
    stop = post_twilio(base, {"From": "+33612345678", "Body": "STOP", "MessageSid": "SM1", "SmsStatus": "received"})
    assert stop.status_code == 200 and stop.text == "<Response></Response>"
    receipt = post_twilio(
        base,
        {
            "MessageSid": "SM" + "0" * 31 + "7",
            "MessageStatus": "undelivered",
            "ErrorCode": "30005",
            "To": "+33612345678",
        },
    )
    assert receipt.status_code == 200
    db = serve_ws.db()
    assert db.execute("SELECT phone, reason, source FROM sms_suppressions").fetchall() == [
        ("+33612345678", "opt_out", "twilio webhook")
    ]
    assert db.execute("SELECT status FROM invitations").fetchone()[0] == "bounced"


def test_brevo_events_need_the_bearer_token(serve_ws, monkeypatch):
    with_sms(serve_ws, monkeypatch)
    base = serve_ws.serve()
    body = b'{"msg_status": "unsubscribe", "to": "33612345678", "messageId": 1}'
    assert (
        httpx.post(f"{base}/hooks/sms/brevo", content=body, headers={"Authorization": "Bearer nope"}).status_code == 403
    )
    ok = httpx.post(
        f"{base}/hooks/sms/brevo",
        content=body,
        headers={"Authorization": "Bearer brevo-webhook-token-of-the-test", "Content-Type": "application/json"},
    )
    assert ok.status_code == 200 and ok.json()["stops"] == 1
    assert httpx.post(f"{base}/hooks/sms/nexmo", content=b"{}").status_code == 404
    assert serve_ws.count("sms_suppressions") == 1
