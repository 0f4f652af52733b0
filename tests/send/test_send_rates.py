"""Bounce and complaint rates per moment and day against the bulk-sender thresholds (`db status`, the send
summary), and `send` stopping a moment whose complaint rate crosses deliverability.max_complaint_rate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cxctl import store
from cxctl.store import email_hash
from cxctl.validation import load_workspace

NOW = "2026-11-23T10:00:00+00:00"


@pytest.fixture
def busy_ws(tmp_path, monkeypatch):
    """delivery_csat sent 200 messages on Friday 20 November (2 bounced at send time) and got one spam
    complaint (0.5 %); support_ces sent 50 with none. One invitation of each is due now."""
    import importlib.util
    import sys

    monkeypatch.setenv("CXCTL_SECRET", "test-secret-do-not-use-in-production")
    module = sys.modules.get("_root_conftest")
    if module is None:
        spec = importlib.util.spec_from_file_location("_root_conftest", Path(__file__).parents[1] / "conftest.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["_root_conftest"] = module
    root = module.write_workspace(tmp_path / "ws")
    ws = load_workspace(root)
    db = store.connect(ws.database)
    rows, contacts = [], []
    for i in range(1, 253):
        contacts.append((i, f"C{i}", f"c{i}@client.example", email_hash(f"c{i}@client.example")))
        moment = "delivery_csat" if i <= 200 or i == 251 else "support_ces"
        status = "planned" if i > 250 else ("bounced" if i <= 2 else "sent")
        sent_at = None if status == "planned" else "2026-11-20 09:30:00"
        rows.append(
            (
                i,
                f"k{i}",
                f"t{i}",
                i,
                moment,
                "2026-11-20 09:00:00" if sent_at else "2026-11-23 09:00:00",
                status,
                sent_at,
                "2026-11-20",
                "2026-11-20",
            )
        )
    db.conn.executemany(
        "INSERT INTO contacts (id, external_id, email, email_hash, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, '2026-01-01', '2026-01-01')",
        contacts,
    )
    db.conn.executemany(
        "INSERT INTO invitations (id, dedupe_key, token, contact_id, moment, send_at, status, sent_at,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    db.execute(
        "INSERT INTO bounces (report_key, email_hash, kind, invitation_id, moment, sent_day, imported_at)"
        " VALUES ('<arf-1@yahoo.example>', ?, 'complaint', 10, 'delivery_csat', '2026-11-20', ?)",
        [email_hash("c10@client.example"), "2026-11-21 08:00:00"],
    )
    yield ws, db
    db.conn.close()


def test_db_status_shows_rates_per_moment_and_day(busy_ws, cli):
    ws, _ = busy_ws
    code, out, err = cli("db", "status", "-w", str(ws.root), "--now", NOW, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["counts"]["bounces"] == 1 and data["version"] == data["latest"]  # the other keys are unchanged
    by = {(r["moment"], r["day"]): r for r in data["rates"]}
    day = by[("delivery_csat", "2026-11-20")]
    assert (day["sent"], day["hard_bounces"], day["complaints"]) == (200, 2, 1)
    assert (day["bounce_rate"], day["complaint_rate"], day["verdict"]) == (1.0, 0.5, "over")
    assert by[("support_ces", "2026-11-20")]["verdict"] == "ok"
    assert by[("delivery_csat", None)]["sent"] == 200  # the total row
    code, out, err = cli("db", "status", "-w", str(ws.root), "--now", NOW)
    assert "OVER" in out and "complaints under 0.3 %" in err


def test_send_stops_a_moment_over_its_complaint_ceiling(busy_ws, cli):
    ws, db = busy_ws
    code, out, err = cli("send", "-w", str(ws.root), "--now", NOW, "--json")
    assert code == 1, err  # a moment stopped is a run to look at
    report = json.loads(out)
    assert list(report["stopped_moments"]) == ["delivery_csat"]
    assert "1 complaint(s) for 200 message(s) sent in the last 1w (0.5 %" in report["stopped_moments"]["delivery_csat"]
    # Held: the due invitation and the 198 reminders the plan just added for the moment's non-responders.
    assert report["skipped"].get("complaint_ceiling") == 199
    statuses = dict(db.execute("SELECT moment, status FROM invitations WHERE id IN (251, 252)").fetchall())
    assert statuses == {"delivery_csat": "planned", "support_ces": "sent"}  # kept for later, not cancelled
    assert any(r["moment"] == "delivery_csat" and r["verdict"] == "over" for r in report["rates"])
    code, _, err = cli("send", "-w", str(ws.root), "--now", NOW)
    assert "delivery_csat not sent: 1 complaint(s)" in err


def test_under_min_sent_or_without_a_ceiling_the_moment_goes(busy_ws, cli):
    ws, db = busy_ws
    (ws.root / "deliverability.yaml").write_text("deliverability:\n  min_sent: 500\n", encoding="utf-8")
    code, out, err = cli("send", "-w", str(ws.root), "--now", NOW, "--json")
    assert code == 0, err
    assert json.loads(out)["stopped_moments"] == {}
    assert db.execute("SELECT status FROM invitations WHERE id = 251").fetchone()[0] == "sent"
