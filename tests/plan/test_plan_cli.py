"""`cxctl plan` from the user's side: tables, --json, --explain, and a store left untouched."""

from __future__ import annotations

import hashlib
import json

from cxctl import store

RULES = """
rules:
  quiet_period: 30d
  cap: {max: 3, window: 90d}
  send_window: {days: [mon, tue, wed, thu, fri], hours: '09:00-19:00'}
"""

MOMENTS = """
moments:
  delivery:
    journey: shop
    stage: delivery
    kind: transactional
    trigger: {event: order_delivered, delay: 2d, expires: 14d}
    questions: [csat]
    reminders: {count: 1, after: 3d}
  nps:
    journey: shop
    stage: loyalty
    kind: relational
    schedule: {every: quarter}
    questions: [csat]
"""


def fill(s):
    anna = s.contact("A-1", "Anna.Dupont@Example.com", language="fr")
    bob = s.contact("B-2", language="en", timezone="America/Montreal")
    s.contact("C-3", None)
    s.event(anna, "order_delivered", "2026-11-17 09:00:00")
    s.invitation(bob, "delivery", "2026-11-05 10:00:00")
    return anna, bob


def snapshot(path):
    db = store.connect(path)
    counts = {
        t: db.execute(f"SELECT COUNT(*) FROM [{t}]").fetchone()[0]
        for t in ("contacts", "events", "invitations", "suppressions")
    }
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()
    return counts, hashlib.sha256(path.read_bytes()).hexdigest()


def test_plan_tables_and_nothing_written(make_store, cli):
    s = make_store(RULES, MOMENTS)
    fill(s)
    s.db.conn.close()
    before = snapshot(s.ws.database)
    code, out, err = cli("plan", "-w", str(s.ws.root), "--now", "2026-11-20T11:00")
    assert code == 0, err
    assert "delivery" in out and "invitation" in out and "fr:1" in out
    assert "quiet_period" in out and "no_email" in out
    assert snapshot(s.ws.database) == before


def test_plan_json_lists_every_planned_row_and_exclusion(make_store, cli):
    s = make_store(RULES, MOMENTS)
    anna, bob = fill(s)
    code, out, err = cli("plan", "-w", str(s.ws.root), "--now", "2026-11-20T11:00", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["waves"] == {"nps": "2026Q4"}
    keys = sorted((p["moment"], p["contact_id"], p["send_at"]) for p in data["planned"])
    # Anna: delivery wins over nps; Bob's invitation of 5 November keeps him in the quiet period.
    assert keys == [("delivery", anna, "2026-11-20T10:00:00+00:00")]
    reasons = sorted((x["moment"], x["contact_id"], x["reason"]) for x in data["exclusions"])
    assert reasons == [("nps", anna, "lower_priority"), ("nps", bob, "quiet_period"), ("nps", 3, "no_email")]
    assert data["counts"] == {"lower_priority": 1, "quiet_period": 1, "no_email": 1}


def test_plan_moment_option_and_unknown_moment(make_store, cli):
    s = make_store(RULES, MOMENTS)
    fill(s)
    code, out, _ = cli("plan", "-w", str(s.ws.root), "--now", "2026-11-20T11:00", "--json", "--moment", "nps")
    assert code == 0 and {p["moment"] for p in json.loads(out)["planned"]} <= {"nps"}
    code, _, err = cli("plan", "-w", str(s.ws.root), "--moment", "livraison")
    assert code == 2 and "unknown moment 'livraison'" in err and "delivery" in err


def test_explain_shows_each_rule_with_its_data(make_store, cli):
    s = make_store(RULES, MOMENTS)
    fill(s)
    code, out, err = cli(
        "plan", "-w", str(s.ws.root), "--now", "2026-11-20T11:00", "--explain", "b-2@EXAMPLE.com", "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    by_moment = {m["moment"]: m for m in data["moments"]}
    assert by_moment["nps"]["verdict"] == "excluded" and by_moment["nps"]["reason"] == "quiet_period"
    quiet = next(c for c in by_moment["nps"]["checks"] if c["rule"] == "quiet_period")
    # Every time is given in UTC and in the person's own time zone (B-2 lives in Montréal).
    assert quiet == {
        "rule": "quiet_period",
        "ok": False,
        "detail": "last invited 2026-11-05 10:00 UTC (05:00 America/Montreal) by delivery: quiet period 30d, "
        "free again 2026-12-05 10:00 UTC (05:00 America/Montreal)",
    }
    assert by_moment["nps"]["timezone"] == "America/Montreal"
    assert by_moment["delivery"]["verdict"] == "not_eligible"
    code, out, _ = cli("plan", "-w", str(s.ws.root), "--now", "2026-11-20T11:00", "--explain", "A-1", "--json")
    planned = next(m for m in json.loads(out)["moments"] if m["verdict"] == "planned")
    assert planned["send_at_local"].endswith(planned["timezone"]) and planned["send_at_local"][:2].isdigit()
    code, out, _ = cli("plan", "-w", str(s.ws.root), "--now", "2026-11-20T11:00", "--explain", "A-1")
    assert code == 0 and "delivery event #1: planned" in out and "EXCLUDES" in out
    assert f"UTC ({planned['send_at_local']})" in out.replace("\n", " ")


def test_explain_unknown_contact_is_a_usage_error(make_store, cli):
    s = make_store(RULES, MOMENTS)
    code, _, err = cli("plan", "-w", str(s.ws.root), "--explain", "nobody@example.com")
    assert code == 2 and "no contact 'nobody@example.com'" in err


def test_explain_names_the_reason_of_a_sampled_out_person_and_an_empty_plan_says_so(make_store, cli):
    s = make_store(RULES, MOMENTS.replace("schedule: {every: quarter}", "schedule: {every: quarter}\n    sample: 0.01"))
    anna = s.contact("A-1")
    code, out, _ = cli("plan", "-w", str(s.ws.root), "--now", "2026-11-20T11:00", "--explain", "A-1", "--json")
    [nps] = [m for m in json.loads(out)["moments"] if m["moment"] == "nps"]
    from cxctl.planning.rules import draw

    assert draw(anna, "nps", "2026Q4") >= 0.01  # this id is drawn out
    assert nps["verdict"] == "excluded" and nps["reason"] == "not_sampled"
    code, out, _ = cli("plan", "-w", str(s.ws.root), "--now", "2026-11-20T11:00")
    assert code == 0 and "Nothing to plan at 2026-11-20 10:00 UTC." in out
