"""The signing secret between runs (issue 14, item 6): its fingerprint is stored, never the key; a
changed secret is refused unless rotated; after a rotation, links signed with the previous key keep
verifying until the grace period ends."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cxctl.core import tokens
from cxctl.core.errors import UsageError
from cxctl.core.timeutil import parse_now
from cxctl.delivery.send import send_campaign
from cxctl.delivery.signing import SecretChangedError, keyring
from cxctl.delivery.transport import OutboxTransport

OLD = "test-secret-do-not-use-in-production"
NEW = "a-brand-new-secret-after-rotation-0042"
NOW = parse_now("2026-11-23T10:00:00+00:00")


def send(ws, db, now=NOW, **kwargs):
    return send_campaign(ws, db, now, OutboxTransport(ws.outbox_dir), moment="delivery_csat", **kwargs)


def test_the_store_keeps_a_fingerprint_never_the_key(smtp_ws, send_helpers):
    ws, db = smtp_ws(transport="outbox")
    send_helpers.add_invitations(db, ws, [{"email": "a@example.com"}])
    assert send(ws, db).sent == 1
    rows = db.execute("SELECT fingerprint, role FROM signing_keys").fetchall()
    assert rows == [(tokens.fingerprint(OLD.encode()), "current")]
    dump = "\n".join(db.conn.iterdump())
    assert OLD not in dump and OLD.encode().hex() not in dump


def test_a_changed_secret_is_refused_before_anything_is_planned_or_sent(
    smtp_ws, send_helpers, monkeypatch, cli, workspace_dir
):
    ws, db = smtp_ws(transport="outbox")
    send_helpers.add_invitations(db, ws, [{"email": "a@example.com"}])
    assert send(ws, db).sent == 1
    send_helpers.add_invitations(db, ws, [{"email": "b@example.com", "external_id": "B"}])
    monkeypatch.setenv("CXCTL_SECRET", NEW)
    with pytest.raises(SecretChangedError, match="--rotate-secret") as error:
        send(ws, db)
    assert NEW not in str(error.value) and OLD not in str(error.value)
    assert "CXCTL_SECRET_PREVIOUS" in str(error.value)
    assert db.execute("SELECT status FROM invitations WHERE email = 'b@example.com'").fetchone()[0] == "planned"
    code, _, err = cli(
        "send", "-w", str(workspace_dir), "--now", "2026-11-23T10:00:00+00:00", "--moment", "delivery_csat"
    )
    assert code == 1 and "not the secret that signed the links already sent" in err and NEW not in err


def test_rotation_keeps_old_links_verifying_during_the_grace_period(smtp_ws, send_helpers, monkeypatch):
    ws, db = smtp_ws(transport="outbox")
    send_helpers.add_invitations(db, ws, [{"email": "a@example.com"}])
    assert send(ws, db).sent == 1
    old_token = db.execute("SELECT token FROM invitations").fetchone()[0]

    monkeypatch.setenv("CXCTL_SECRET", NEW)
    with pytest.raises(UsageError, match="never signed with"):  # a wrong "previous" secret is refused
        monkeypatch.setenv("CXCTL_SECRET_PREVIOUS", "not-the-old-one-at-all-000")
        send(ws, db, rotate_secret=True)
    monkeypatch.setenv("CXCTL_SECRET_PREVIOUS", OLD)
    report = send(ws, db, rotate_secret=True)
    assert report.ok
    with pytest.raises(UsageError, match="already in use"):  # --rotate-secret left in cron is refused
        send(ws, db, rotate_secret=True)
    assert send(ws, db).ok  # the new secret is now the one in use

    keys, status = keyring(ws, db, NOW + timedelta(days=30))
    assert tokens.verify_with_keys(keys, old_token) and not tokens.verify(NEW.encode(), old_token)
    assert status.previous[0]["loaded"] is True
    tag = tokens.sign_value(OLD.encode(), old_token, "9")
    assert tokens.verify_value_with_keys(keys, old_token, "9", tag)
    new_token = tokens.new_token(keys.current)
    assert tokens.verify_with_keys(keys, new_token)

    expired, status = keyring(ws, db, NOW + ws.settings.token_grace_period + timedelta(days=1))
    assert not tokens.verify_with_keys(expired, old_token) and status.previous[0]["loaded"] is False
    monkeypatch.delenv("CXCTL_SECRET_PREVIOUS")
    without, _ = keyring(ws, db, NOW + timedelta(days=30))
    assert not tokens.verify_with_keys(without, old_token)
