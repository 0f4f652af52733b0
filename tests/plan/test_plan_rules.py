"""Each rule of the solicitation engine and each exclusion reason, on a real SQLite store."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cxctl.core.errors import UsageError
from cxctl.planning.engine import compute_plan
from cxctl.planning.plans import record_plan
from cxctl.planning.rules import draw

ANYTIME = "send_window: {days: [mon, tue, wed, thu, fri, sat, sun], hours: '00:00-24:00'}"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


NOW = utc("2026-11-20 10:00")  # a Friday

RULES = f"""
rules:
  quiet_period: 30d
  {ANYTIME}
"""

DELIVERY = """
moments:
  delivery:
    journey: shop
    stage: delivery
    kind: transactional
    trigger: {event: order_delivered, delay: 2d, expires: 14d}
    questions: [csat]
"""

TWO = (
    DELIVERY
    + """
  support:
    journey: shop
    stage: support
    kind: transactional
    trigger: {event: ticket_closed, delay: 1h, expires: 7d}
    questions: [csat]
"""
)

NPS = """
moments:
  nps:
    journey: shop
    stage: loyalty
    kind: relational
    schedule: {every: quarter}
    questions: [csat]
"""


def reasons(plan):
    return {(x.contact_id, x.moment): x.reason for x in plan.exclusions}


def planned(plan):
    return {(p.contact_id, p.moment) for p in plan.planned}


def test_due_event_is_planned_with_its_dedupe_key_and_language(make_store):
    s = make_store(RULES, DELIVERY)
    c = s.contact("c1", language="en-GB")
    e = s.event(c, "order_delivered", "2026-11-17 09:00:00")
    plan = compute_plan(s.ws, s.db, NOW)
    [p] = plan.planned
    assert (p.contact_id, p.moment, p.kind, p.event_id, p.wave) == (c, "delivery", "invitation", e, None)
    assert p.dedupe_key == f"delivery|{c}|e{e}"
    assert p.language == "en" and p.email == "c1@example.com"
    assert p.send_at == NOW


def test_event_not_yet_due_is_neither_planned_nor_excluded(make_store):
    s = make_store(RULES, DELIVERY)
    c = s.contact("c1")
    s.event(c, "order_delivered", "2026-11-19 09:00:00")  # due on the 21st
    plan = compute_plan(s.ws, s.db, NOW)
    assert plan.planned == [] and plan.exclusions == []


def test_expired_event_is_excluded_recently_then_forgotten(make_store):
    s = make_store(RULES, DELIVERY)
    c = s.contact("c1")
    s.event(c, "order_delivered", "2026-11-01 09:00:00")  # expired 2026-11-15
    plan = compute_plan(s.ws, s.db, NOW)
    assert reasons(plan) == {(c, "delivery"): "expired"}
    assert "expired on 2026-11-15 09:00" in plan.exclusions[0].detail
    later = compute_plan(s.ws, s.db, NOW + timedelta(days=10))
    assert later.exclusions == [] and later.planned == []


def test_other_event_types_are_ignored(make_store):
    s = make_store(RULES, DELIVERY)
    c = s.contact("c1")
    s.event(c, "order_placed", "2026-11-17 09:00:00")
    assert compute_plan(s.ws, s.db, NOW).planned == []


@pytest.mark.parametrize(
    "setup, reason",
    [
        (lambda s, c: s.suppress("c1@example.com", "bounce"), "suppressed"),
        (lambda s, c: s.forget_hash("c1@example.com"), "forgotten"),
        (
            lambda s, c: s.db.execute("UPDATE contacts SET forgotten_at = '2026-06-01 00:00:00' WHERE id = ?", [c]),
            "forgotten",
        ),
        (
            lambda s, c: s.db.execute("UPDATE contacts SET email = NULL, email_hash = NULL WHERE id = ?", [c]),
            "no_email",
        ),
    ],
)
def test_person_level_exclusions(make_store, setup, reason):
    s = make_store(RULES, DELIVERY)
    c = s.contact("c1")
    s.event(c, "order_delivered", "2026-11-17 09:00:00")
    setup(s, c)
    plan = compute_plan(s.ws, s.db, NOW)
    assert plan.planned == []
    assert reasons(plan) == {(c, "delivery"): reason}
    assert plan.counts == {reason: 1}


def test_suppression_source_attribute_flags_the_contact(make_store):
    rules = RULES + "  suppression_sources: [{attribute: ne_pas_contacter, reason: opt_out}]\n"
    s = make_store(rules, DELIVERY)
    flagged = s.contact("c1", attributes={"ne_pas_contacter": "Oui"})
    free = s.contact("c2", attributes={"ne_pas_contacter": "non"})
    for c in (flagged, free):
        s.event(c, "order_delivered", "2026-11-17 09:00:00")
    plan = compute_plan(s.ws, s.db, NOW)
    assert planned(plan) == {(free, "delivery")}
    [x] = plan.exclusions
    assert x.reason == "suppressed" and "ne_pas_contacter" in x.detail


def test_already_invited_for_the_event_and_record_is_idempotent(make_store):
    s = make_store(RULES, DELIVERY)
    c = s.contact("c1")
    s.event(c, "order_delivered", "2026-11-17 09:00:00")
    plan = compute_plan(s.ws, s.db, NOW)
    assert record_plan(s.db, s.ws, plan, NOW) == 1
    assert record_plan(s.db, s.ws, plan, NOW) == 0
    row = s.db.execute("SELECT status, token, send_at FROM invitations").fetchone()
    assert row[0] == "planned" and "." in row[1] and row[2] == "2026-11-20 10:00:00"
    again = compute_plan(s.ws, s.db, NOW + timedelta(hours=1))
    assert reasons(again) == {(c, "delivery"): "already_invited"}


def test_quiet_period_counts_any_moment_and_frees_after(make_store):
    s = make_store(RULES, TWO)
    c = s.contact("c1")
    s.invitation(c, "support", "2026-11-01 10:00:00")
    s.event(c, "order_delivered", "2026-11-17 09:00:00")
    plan = compute_plan(s.ws, s.db, NOW)
    assert reasons(plan) == {(c, "delivery"): "quiet_period"}
    assert "free again 2026-12-01 10:00" in plan.exclusions[0].detail
    # The event is still valid on 2026-12-01 11:00? It expired on 2026-12-01 09:00: so it is reported expired.
    s.event(c, "order_delivered", "2026-11-29 09:00:00")
    later = compute_plan(s.ws, s.db, utc("2026-12-01 11:00"))
    assert planned(later) == {(c, "delivery")}


def test_failed_and_cancelled_invitations_do_not_count_toward_fatigue(make_store):
    s = make_store(RULES, DELIVERY)
    c = s.contact("c1")
    s.invitation(c, "delivery", "2026-11-15 10:00:00", status="cancelled")
    s.invitation(c, "delivery", "2026-11-16 10:00:00", status="bounced")
    s.invitation(c, "delivery", "2026-11-16 11:00:00", status="sent", kind="reminder")
    s.event(c, "order_delivered", "2026-11-17 09:00:00")
    assert planned(compute_plan(s.ws, s.db, NOW)) == {(c, "delivery")}


def test_a_failed_send_awaiting_its_retry_counts_toward_fatigue(make_store):
    """It will go out at its next try: a second survey to the same person meanwhile would break the quiet
    period. Once cxctl has given up on it (no next try), it no longer counts."""
    s = make_store(RULES, TWO)
    c = s.contact("c1")
    failed = s.invitation(c, "support", "2026-11-17 08:00:00", status="failed")
    s.db.execute("UPDATE invitations SET attempts = 1, next_attempt_at = '2026-11-20 10:10:00' WHERE id = ?", [failed])
    s.event(c, "order_delivered", "2026-11-17 09:00:00")
    assert reasons(compute_plan(s.ws, s.db, NOW)) == {(c, "delivery"): "quiet_period"}
    s.db.execute("UPDATE invitations SET attempts = 5, next_attempt_at = NULL WHERE id = ?", [failed])  # given up
    assert planned(compute_plan(s.ws, s.db, NOW)) == {(c, "delivery")}


def test_cap_per_rolling_window(make_store):
    rules = f"""
rules:
  quiet_period: 1d
  cap: {{max: 2, window: 90d}}
  {ANYTIME}
"""
    s = make_store(rules, DELIVERY)
    c = s.contact("c1")
    s.invitation(c, "delivery", "2026-09-01 10:00:00")
    s.invitation(c, "delivery", "2026-10-01 10:00:00")
    s.event(c, "order_delivered", "2026-11-17 09:00:00")
    plan = compute_plan(s.ws, s.db, NOW)
    assert reasons(plan) == {(c, "delivery"): "cap"}
    assert "2 invitations since" in plan.exclusions[0].detail
    # The first one leaves the 90-day window on 2026-11-30.
    s.event(c, "order_delivered", "2026-11-28 09:00:00")
    assert planned(compute_plan(s.ws, s.db, utc("2026-12-01 10:00"))) == {(c, "delivery")}


def test_recontact_is_per_moment(make_store):
    rules = f"""
rules:
  quiet_period: 0s
  {ANYTIME}
"""
    moments = TWO.replace("expires: 14d}", "expires: 14d}\n    recontact: 60d")
    s = make_store(rules, moments)
    c = s.contact("c1")
    s.invitation(c, "delivery", "2026-10-15 10:00:00")
    s.event(c, "order_delivered", "2026-11-17 09:00:00")
    s.event(c, "ticket_closed", "2026-11-19 09:00:00")
    plan = compute_plan(s.ws, s.db, NOW)
    assert reasons(plan) == {(c, "delivery"): "recontact"}
    assert planned(plan) == {(c, "support")}


def test_sampling_is_deterministic_and_close_to_the_share(make_store):
    s = make_store(RULES, NPS.replace("questions: [csat]", "questions: [csat]\n    sample: 0.3"))
    ids = [s.contact(f"c{i}") for i in range(400)]
    first = compute_plan(s.ws, s.db, NOW)
    second = compute_plan(s.ws, s.db, NOW + timedelta(days=3))
    assert planned(first) == planned(second)
    chosen = {c for c, _ in planned(first)}
    assert chosen == {c for c in ids if draw(c, "nps", "2026Q4") < 0.3}
    assert 0.22 < len(chosen) / 400 < 0.38
    assert first.counts == {"not_sampled": 400 - len(chosen)}


def test_priority_keeps_the_highest_and_the_other_stays_eligible(make_store):
    rules = f"""
rules:
  quiet_period: 0s
  priority: [support, delivery]
  {ANYTIME}
"""
    s = make_store(rules, TWO)
    c = s.contact("c1")
    s.event(c, "order_delivered", "2026-11-17 09:00:00")
    s.event(c, "ticket_closed", "2026-11-19 09:00:00")
    plan = compute_plan(s.ws, s.db, NOW)
    assert planned(plan) == {(c, "support")}
    assert reasons(plan) == {(c, "delivery"): "lower_priority"}
    assert "support" in plan.exclusions[0].detail
    record_plan(s.db, s.ws, plan, NOW)
    s.mark_sent()
    assert planned(compute_plan(s.ws, s.db, NOW + timedelta(hours=1))) == {(c, "delivery")}


def test_moment_priority_field_orders_when_rules_priority_is_silent(make_store):
    moments = TWO.replace("trigger: {event: ticket_closed", "priority: 5\n    trigger: {event: ticket_closed")
    s = make_store(RULES, moments)
    c = s.contact("c1")
    s.event(c, "order_delivered", "2026-11-17 09:00:00")
    s.event(c, "ticket_closed", "2026-11-19 09:00:00")
    assert planned(compute_plan(s.ws, s.db, NOW)) == {(c, "support")}


def test_moment_option_filters_the_result_not_the_decision(make_store):
    rules = RULES + "  priority: [support, delivery]\n"
    s = make_store(rules, TWO)
    c = s.contact("c1")
    s.event(c, "order_delivered", "2026-11-17 09:00:00")
    s.event(c, "ticket_closed", "2026-11-19 09:00:00")
    plan = compute_plan(s.ws, s.db, NOW, "delivery")
    assert plan.planned == [] and reasons(plan) == {(c, "delivery"): "lower_priority"}
    with pytest.raises(UsageError, match="unknown moment 'livraison'.*delivery"):
        compute_plan(s.ws, s.db, NOW, "livraison")


def test_daily_caps_count_what_is_already_planned_that_day(make_store):
    rules = f"""
rules:
  quiet_period: 0s
  daily_cap: 5
  {ANYTIME}
"""
    moments = TWO.replace("expires: 14d}", "expires: 14d}\n    daily_cap: 2")
    s = make_store(rules, moments)
    both = [s.contact(f"c{i}") for i in range(6)]
    for c in both:
        s.event(c, "order_delivered", "2026-11-17 09:00:00")
        s.event(c, "ticket_closed", "2026-11-19 09:00:00")
    for i in range(6):
        s.event(s.contact(f"t{i}"), "ticket_closed", "2026-11-19 09:00:00")
    other = s.contact("other")
    s.invitation(other, "support", "2026-11-20 08:00:00")  # same Paris day: 1 of the 5 already used
    plan = compute_plan(s.ws, s.db, NOW)
    per_moment = {m: sum(1 for p in plan.planned if p.moment == m) for m in ("delivery", "support")}
    # Priority first (delivery ranks before support by id), then the moment cap (2), then the day's (5 - 1).
    assert per_moment == {"delivery": 2, "support": 2}
    assert plan.counts == {"lower_priority": 6, "daily_cap": 8}
    assert {x.detail for x in plan.exclusions if x.reason == "daily_cap"} == {
        "daily cap of delivery reached for 2026-11-20",
        "workspace daily cap reached for 2026-11-20",
    }
    # Next day: a fresh quota.
    record_plan(s.db, s.ws, plan, NOW)
    s.mark_sent()
    nxt = compute_plan(s.ws, s.db, NOW + timedelta(days=1))
    assert sum(1 for p in nxt.planned if p.moment == "delivery") == 2


def test_relational_wave_is_invited_once_and_spread_by_daily_cap(make_store):
    moments = NPS.replace("questions: [csat]", "questions: [csat]\n    daily_cap: 3")
    s = make_store(RULES.replace("30d", "0s"), moments)
    ids = [s.contact(f"c{i}") for i in range(7)]
    invited: list[int] = []
    for day in range(4):
        now = NOW + timedelta(days=day)
        plan = compute_plan(s.ws, s.db, now)
        assert {p.wave for p in plan.planned} <= {"2026Q4"}
        record_plan(s.db, s.ws, plan, now)
        s.mark_sent()
        invited += [p.contact_id for p in plan.planned]
    assert sorted(invited) == ids  # 3 + 3 + 1, never twice
    assert reasons(compute_plan(s.ws, s.db, NOW + timedelta(days=5)))[(ids[0], "nps")] == "already_invited"
    # A new quarter is a new wave.
    q1 = compute_plan(s.ws, s.db, utc("2027-01-05 10:00"))
    assert {p.wave for p in q1.planned} == {"2027Q1"} and len(q1.planned) == 3


def test_wave_already_invited_names_the_status_of_the_invitation_it_names(make_store):
    """The detail names the wave's first invitation and must give that one's status, not another row's
    (with MAX beside MIN in the wave query, SQLite took the status of the later, counted invitation)."""
    s = make_store(RULES.replace("30d", "0s"), NPS)
    c = s.contact("c1")
    given_up = s.invitation(c, "nps", "2026-10-05 10:00:00", status="failed", wave="2026Q4", key="nps|first")
    sent = s.invitation(c, "nps", "2026-10-12 10:00:00", wave="2026Q4", key="nps|second")
    assert given_up < sent
    plan = compute_plan(s.ws, s.db, NOW)
    [x] = plan.exclusions
    assert x.reason == "already_invited"
    assert x.detail == f"invitation #{given_up} already exists for this wave 2026Q4 (status failed)"


def test_spread_divides_the_wave_over_the_days_left(make_store):
    moments = NPS.replace("schedule: {every: quarter}", "schedule: {every: month, spread: 10d}")
    s = make_store(RULES.replace("30d", "0s"), moments)
    for i in range(20):
        s.contact(f"c{i}")
    plan = compute_plan(s.ws, s.db, utc("2026-11-01 10:00"))  # 10 days left: 2 a day
    assert len(plan.planned) == 2 and plan.counts == {"daily_cap": 18}


def test_audience_filters_contact_fields_attributes_and_event_attributes(make_store):
    moments = """
moments:
  delivery:
    journey: shop
    stage: delivery
    kind: transactional
    trigger: {event: order_delivered, delay: 2d, expires: 14d}
    questions: [csat]
    audience:
      segment: [B2B]
      country: [FR, BE]
      language: [fr]
      role: [buyer]
      contact: {"niveau fidélité.2026": [gold, platinum], vip: true}
      event: {channel: web}
"""
    s = make_store(RULES, moments)
    attrs = {"niveau fidélité.2026": "Gold", "vip": 1}
    ok = s.contact("ok", language="fr-CA", segment="b2b", country="FR", role="Buyer", attributes=attrs)
    wrong_role = s.contact("r", segment="B2B", country="FR", role="user", attributes=attrs)
    wrong_attr = s.contact("a", segment="B2B", country="BE", role="buyer", attributes={**attrs, "vip": False})
    wrong_lang = s.contact("l", language="en", segment="B2B", country="FR", role="buyer", attributes=attrs)
    for c in (ok, wrong_role, wrong_attr, wrong_lang):
        s.event(c, "order_delivered", "2026-11-17 09:00:00", {"channel": "web"})
    s.event(ok, "order_delivered", "2026-11-17 10:00:00", {"channel": "store"})
    plan = compute_plan(s.ws, s.db, NOW)
    assert [(p.contact_id, p.event_id) for p in plan.planned] == [(ok, 1)]
    assert plan.exclusions == []


def test_reminders_for_non_responders_after_the_delay(make_store):
    moments = DELIVERY + "    reminders: {count: 2, after: 3d}\n"
    s = make_store(RULES.replace("30d", "1d") + "  max_reminders: 2\n", moments)
    silent, answered, suppressed = s.contact("s"), s.contact("a"), s.contact("x")
    parents = {
        c: s.invitation(c, "delivery", "2026-11-16 10:00:00", event_id=None, key=f"delivery|{c}|e0")
        for c in (silent, answered, suppressed)
    }
    s.respond(parents[answered], answered, "delivery", "2026-11-17 08:00:00")
    s.suppress("x@example.com")
    assert compute_plan(s.ws, s.db, utc("2026-11-19 09:00")).planned == []  # not yet 3 days
    plan = compute_plan(s.ws, s.db, NOW)
    [r] = plan.planned
    assert (r.contact_id, r.kind, r.parent_id, r.dedupe_key) == (
        silent,
        "reminder",
        parents[silent],
        f"{parents[silent]}|r1",
    )
    [x] = plan.exclusions
    assert (x.contact_id, x.kind, x.reason) == (suppressed, "reminder", "suppressed")
    record_plan(s.db, s.ws, plan, NOW)
    assert compute_plan(s.ws, s.db, NOW + timedelta(days=4)).planned == []  # reminder 1 not sent yet
    s.mark_sent()
    second = compute_plan(s.ws, s.db, NOW + timedelta(days=3))
    assert [p.dedupe_key for p in second.planned if p.kind == "reminder"] == [f"{parents[silent]}|r2"]
    record_plan(s.db, s.ws, second, NOW + timedelta(days=3))
    s.mark_sent()
    # Two reminders at most.
    assert [p for p in compute_plan(s.ws, s.db, NOW + timedelta(days=6)).planned if p.kind == "reminder"] == []


def test_a_reminder_after_the_event_survey_closed_is_not_planned(make_store):
    """The survey of an event closes at occurred_at + expires; `send` would drop such a reminder as expired,
    so `plan` reports it excluded (expired) instead of planned: one engine, one answer."""
    moments = DELIVERY.replace("expires: 14d", "expires: 5d") + "    reminders: {count: 1, after: 3d}\n"
    s = make_store(RULES.replace("30d", "1d"), moments)
    early, late = s.contact("early"), s.contact("late")
    for who, occurred, sent in (
        (early, "2026-11-16 09:00:00", "2026-11-17 10:00:00"),
        (late, "2026-11-13 09:00:00", "2026-11-17 10:00:00"),
    ):
        event = s.event(who, "order_delivered", occurred)
        s.invitation(who, "delivery", sent, event_id=event, key=f"delivery|{who}|e{event}")
    plan = compute_plan(s.ws, s.db, NOW)  # 2026-11-20 10:00: both are due a reminder
    assert [(p.contact_id, p.kind) for p in plan.planned] == [(early, "reminder")]  # its survey closes 11-21 09:00
    [x] = [x for x in plan.exclusions if x.kind == "reminder"]
    assert (x.contact_id, x.reason) == (late, "expired")  # its survey closed on 11-18 09:00
    assert "closed at 2026-11-18 09:00 UTC" in x.detail


def test_reminders_do_not_count_toward_fatigue(make_store):
    moments = TWO + "    reminders: {count: 1, after: 1d}\n"
    s = make_store(RULES.replace("30d", "2d"), moments)
    c = s.contact("c1")
    s.invitation(c, "support", "2026-11-10 10:00:00")
    s.invitation(c, "support", "2026-11-19 09:00:00", kind="reminder", parent_id=1)
    s.event(c, "order_delivered", "2026-11-17 09:00:00")
    assert planned(compute_plan(s.ws, s.db, NOW)) == {(c, "delivery")}


@given(contact_id=st.integers(min_value=1, max_value=2**62), moment=st.text(min_size=1), key=st.text())
def test_the_sample_draw_is_the_first_64_bits_of_the_sha256_over_2_to_the_64(contact_id, moment, key):
    """The draw is a contract (same on every run, machine and version): its definition, spelled independently."""
    digest = hashlib.sha256(f"{contact_id}|{moment}|{key}".encode()).hexdigest()
    assert draw(contact_id, moment, key) == int(digest[:16], 16) / 2**64


def test_the_sample_draws_of_known_people_never_change():
    """Pinned values (who is sampled in a wave must not move with a new version)."""
    assert draw(1, "nps", "2026Q4") == 0.17308747176864572
    assert draw(424242, "delivery", "e17") == 0.16671512636655222
