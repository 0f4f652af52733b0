"""A suppression added after an invitation was planned still stops it: delivery re-checks suppressions."""

from __future__ import annotations

from datetime import UTC, datetime

from cxctl.audience import suppressions
from cxctl.audience.contacts import import_contacts
from cxctl.audience.events import import_events
from cxctl.delivery.send import send_campaign
from cxctl.delivery.transport import make_transport
from cxctl.planning.engine import compute_plan
from cxctl.planning.plans import record_plan

DELIVERED = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)  # a Monday
DUE = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # delivery_csat: 2 days later, inside the send window


def test_an_invitation_planned_before_suppress_add_is_not_sent(workspace, db, tmp_path):
    contacts = tmp_path / "clients.csv"
    contacts.write_text(
        "id;email;first_name;language\nK1;zoe@example.fr;Zoé;fr\nK2;luc@example.fr;Luc;fr\n", encoding="utf-8"
    )
    assert import_contacts(workspace, db, contacts, DELIVERED).inserted == 2
    events = tmp_path / "livraisons.csv"
    events.write_text(
        "external_id;order_id;date\nK1;A-1;2026-11-16T10:00+01:00\nK2;A-2;2026-11-16T10:00+01:00\n", encoding="utf-8"
    )
    assert import_events(workspace, db, events, DELIVERED, event_type="order_delivered").inserted == 2

    record_plan(db, workspace, compute_plan(workspace, db, DUE), DUE)
    planned = dict(db.execute("SELECT email, status FROM invitations").fetchall())
    assert planned == {"zoe@example.fr": "planned", "luc@example.fr": "planned"}

    suppressions.add(db, "Luc@Example.FR", "opt_out", DUE)
    report = send_campaign(workspace, db, DUE, make_transport(workspace, "outbox"))

    assert report.sent == 1
    assert dict(db.execute("SELECT email, status FROM invitations").fetchall()) == {
        "zoe@example.fr": "sent",
        "luc@example.fr": "cancelled",
    }
    sent_to = [
        path.read_text(encoding="utf-8", errors="replace") for path in workspace.outbox_dir.rglob("*") if path.is_file()
    ]
    assert any("zoe@example.fr" in text for text in sent_to)
    assert not any("luc@example.fr" in text.lower() for text in sent_to)
