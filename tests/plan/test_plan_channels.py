"""Planning across channels (issue 16): the first channel of a moment the person can receive, SMS only
with consent and within the SMS hours (no Sunday, no public holiday of the person's country, 08:00-20:00
in their zone), and one quiet period, cap and priority for the person whatever the channel."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime

import pytest

from cxctl import store
from cxctl.audience.phones import phone_hash
from cxctl.core.emails import normalise
from cxctl.planning.engine import compute_plan
from cxctl.planning.explain import explain
from cxctl.planning.plans import record_plan
from cxctl.validation import check_workspace

WORKSPACE = """\
workspace:
  name: Channels test
  default_language: fr
  languages: [fr, en]
  timezone: Europe/Paris
  sender: {name: Service Client, address: avis@boutique.example}
  survey_url: "https://survey.example/s/{moment}?t={token}"
  token_secret_env: CXCTL_SECRET
  sms: {opt_out: STOP au 36111}
questions:
  csat: {type: csat, text: {fr: Satisfait ?, en: Satisfied?}}
journeys:
  shop: {name: Shop, stages: [delivery, support]}
rules:
  quiet_period: 30d
  send_window: {days: [mon, tue, wed, thu, fri, sat, sun], hours: '07:00-22:00'}
moments:
  repair:
    journey: shop
    stage: support
    kind: transactional
    trigger: {event: repair_done, delay: 0s, expires: 5d}
    questions: [csat]
    channels: [sms, email]
    reminders: {count: 1, after: 2d}
    targets: {csat: 80}
  delivery:
    journey: shop
    stage: delivery
    kind: transactional
    trigger: {event: order_delivered, delay: 0s, expires: 5d}
    questions: [csat]
    targets: {csat: 80}
"""


class Channels:
    def __init__(self, root, extra: str = ""):
        root.mkdir(parents=True, exist_ok=True)
        (root / "cxctl.yaml").write_text(textwrap.dedent(WORKSPACE) + extra, encoding="utf-8")
        result = check_workspace([root])
        assert not result.errors, "\n".join(p.format() for p in result.errors)
        self.ws = result.workspace
        self.db = store.connect(self.ws.database)
        self.events = 0

    def contact(
        self,
        key: str,
        *,
        email: str | None = "auto",
        phone: str | None = None,
        sms_consent: int | None = None,
        email_consent: int | None = None,
        timezone: str | None = None,
        country: str | None = None,
    ) -> int:
        address = normalise(f"{key}@example.com") if email == "auto" else email
        return self.db.execute(
            "INSERT INTO contacts (external_id, email, email_hash, phone, phone_hash, sms_consent, email_consent, language,"
            " timezone, country, attributes, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'fr', ?, ?, '{}', ?, ?)",
            [
                key,
                address,
                store.email_hash(address) if address else None,
                phone,
                phone_hash(phone) if phone else None,
                sms_consent,
                email_consent,
                timezone,
                country,
                "2026-01-01 00:00:00",
                "2026-01-01 00:00:00",
            ],
        ).lastrowid

    def event(self, contact_id: int, type_: str, at: str) -> int:
        self.events += 1
        return self.db.execute(
            "INSERT INTO events (event_key, contact_id, type, occurred_at, attributes, imported_at)"
            " VALUES (?, ?, ?, ?, '{}', ?)",
            [f"e{self.events}", contact_id, type_, at, at],
        ).lastrowid

    def stop(self, phone: str) -> None:
        self.db.execute(
            "INSERT INTO sms_suppressions (phone_hash, phone, reason, source, created_at)"
            " VALUES (?, ?, 'opt_out', 'test', '2026-01-01 00:00:00')",
            [phone_hash(phone), phone],
        )


@pytest.fixture
def channels(tmp_path, monkeypatch):
    monkeypatch.setenv("CXCTL_SECRET", "plan-test-secret-of-16-chars")
    return lambda extra="": Channels(tmp_path / "ws", extra)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_the_first_channel_the_person_can_receive_is_chosen_and_sms_needs_consent(channels):
    s = channels()
    sms = s.contact("sms", phone="+33612345678", sms_consent=1)
    refused = s.contact("refused", phone="+33612345679", sms_consent=0)
    unknown = s.contact("unknown", phone="+33612345670")  # consent never given: never an SMS
    stopped = s.contact("stopped", phone="+33612345671", sms_consent=1)
    s.stop("+33612345671")
    nobody = s.contact("nobody", email=None, phone="+33612345672", sms_consent=0)
    no_email = s.contact("email_refused", phone=None, email_consent=0)
    for person in (sms, refused, unknown, stopped, nobody, no_email):
        s.event(person, "repair_done", "2026-03-03 09:00:00")  # a Tuesday
    plan = compute_plan(s.ws, s.db, at("2026-03-03T10:00:00"))
    chosen = {p.contact_id: (p.channel, p.phone) for p in plan.planned}
    assert chosen == {
        sms: ("sms", "+33612345678"),
        refused: ("email", None),
        unknown: ("email", None),
        stopped: ("email", None),
    }
    assert plan.by_moment["repair"] == {"no_channel": 2}
    assert {x.contact_id for x in plan.exclusions} == {nobody, no_email}
    record_plan(s.db, s.ws, plan, at("2026-03-03T10:00:00"))
    rows = s.db.execute("SELECT contact_id, channel, phone FROM invitations ORDER BY contact_id").fetchall()
    assert rows[0] == (sms, "sms", "+33612345678") and rows[1] == (refused, "email", None)


def test_one_quiet_period_across_channels(channels):
    s = channels()
    person = s.contact("p", phone="+33612345678", sms_consent=1)
    s.event(person, "order_delivered", "2026-03-02 09:00:00")
    record_plan(s.db, s.ws, compute_plan(s.ws, s.db, at("2026-03-02T10:00:00")), at("2026-03-02T10:00:00"))
    s.db.execute("UPDATE invitations SET status = 'sent', sent_at = send_at")
    s.event(person, "repair_done", "2026-03-05 09:00:00")
    plan = compute_plan(s.ws, s.db, at("2026-03-05T10:00:00"))
    assert plan.planned == [] and plan.by_moment["repair"] == {"quiet_period": 1}


def test_an_sms_waits_for_the_sms_hours_sundays_and_public_holidays_in_the_persons_zone(channels):
    s = channels()
    paris = s.contact("paris", phone="+33612345678", sms_consent=1, country="FR")
    montreal = s.contact("montreal", phone="+15145550123", sms_consent=1, timezone="America/Montreal", country="CA")
    email_only = s.contact("mail")
    for person in (paris, montreal, email_only):
        s.event(person, "repair_done", "2026-07-13 19:00:00")
    # Monday 13 July 2026, 21:30 in Paris: too late for an SMS; 14 July is a holiday in France, not in Canada.
    plan = compute_plan(s.ws, s.db, at("2026-07-13T19:30:00"))
    sends = {p.contact_id: (p.channel, p.send_at) for p in plan.planned}
    assert sends[paris] == ("sms", at("2026-07-15T06:00:00"))  # Wednesday 08:00 in Paris
    assert sends[montreal] == ("sms", at("2026-07-13T19:30:00"))  # 15:30 in Montreal: now
    assert sends[email_only] == ("email", at("2026-07-13T19:30:00"))  # 21:30 is within the send window
    # Saturday 20:30 in Paris: no SMS on Sunday either, so Monday 08:00.
    s2_now = at("2026-03-07T19:30:00")
    s.event(paris, "repair_done", "2026-03-07 19:00:00")
    sunday = [p for p in compute_plan(s.ws, s.db, s2_now).planned if p.contact_id == paris]
    assert [(p.channel, p.send_at) for p in sunday] == [("sms", at("2026-03-09T07:00:00"))]


def test_a_moment_may_allow_sms_on_public_holidays(channels):
    s = channels()
    text = (
        (s.ws.root / "cxctl.yaml")
        .read_text(encoding="utf-8")
        .replace(
            "    channels: [sms, email]\n",
            "    channels: [sms, email]\n    sms_hours: {public_holidays: true, days: [mon, tue, wed, thu, fri, sat, sun]}\n",
        )
    )
    (s.ws.root / "cxctl.yaml").write_text(text, encoding="utf-8")
    s.ws = check_workspace([s.ws.root]).workspace
    person = s.contact("p", phone="+33612345678", sms_consent=1, country="FR")
    s.event(person, "repair_done", "2026-07-14 07:00:00")
    plan = compute_plan(s.ws, s.db, at("2026-07-14T07:30:00"))
    assert [(p.channel, p.send_at) for p in plan.planned] == [("sms", at("2026-07-14T07:30:00"))]


def test_explain_says_which_channel_and_why_not_the_others(channels, cli):
    s = channels()
    refused = s.contact("refused", phone="+33612345679", sms_consent=0)
    chosen = s.contact("chosen", phone="+33612345678", sms_consent=1)
    for person in (refused, chosen):
        s.event(person, "repair_done", "2026-03-03 09:00:00")
    result = explain(s.ws, s.db, at("2026-03-03T10:00:00"), "refused", moment="repair")
    verdict = result.moments[0]
    check = next(c for c in verdict.checks if c.rule == "channel")
    assert (verdict.verdict, verdict.channel) == ("planned", "email")
    assert check.detail == "email to refused@example.com (not sms: +33612345679: no SMS consent (refused))"
    result = explain(s.ws, s.db, at("2026-03-03T10:00:00"), "chosen", moment="repair")
    verdict = result.moments[0]
    assert verdict.channel == "sms"
    assert next(c for c in verdict.checks if c.rule == "channel").detail == (
        "sms to +33612345678, SMS consent given; email not needed: sms comes first"
    )
    window = next(c for c in verdict.checks if c.rule == "send_window").detail
    assert "within the SMS hours 08:00-20:00 on mon,tue,wed,thu,fri,sat, not on a public holiday (FR)" in window
    code, out, _ = cli(
        "plan", "-w", str(s.ws.root), "--now", "2026-03-03T10:00:00Z", "--explain", "chosen", "--moment", "repair"
    )
    assert code == 0 and "repair event #2: planned by sms, sends 2026-03-03 10:00 UTC (11:00 Europe/Paris)" in out
    code, out, _ = cli(
        "plan",
        "-w",
        str(s.ws.root),
        "--now",
        "2026-03-03T10:00:00Z",
        "--explain",
        "chosen",
        "--moment",
        "repair",
        "--json",
    )
    assert code == 0 and json.loads(out)["moments"][0]["channel"] == "sms"


def test_an_sms_invitation_is_reminded_by_sms_and_not_after_a_stop(channels):
    s = channels()
    person = s.contact("p", phone="+33612345678", sms_consent=1)
    other = s.contact("q", phone="+33612345670", sms_consent=1)
    for who in (person, other):
        s.event(who, "repair_done", "2026-03-03 09:00:00")
    record_plan(s.db, s.ws, compute_plan(s.ws, s.db, at("2026-03-03T10:00:00")), at("2026-03-03T10:00:00"))
    s.db.execute("UPDATE invitations SET status = 'sent', sent_at = send_at")
    s.stop("+33612345670")
    plan = compute_plan(s.ws, s.db, at("2026-03-05T10:00:00"))
    reminders = [(p.contact_id, p.kind, p.channel, p.phone) for p in plan.planned]
    assert reminders == [(person, "reminder", "sms", "+33612345678")]
    assert [(x.contact_id, x.reason) for x in plan.exclusions if x.kind == "reminder"] == [(other, "suppressed")]
    assert json.dumps([x.detail for x in plan.exclusions if x.kind == "reminder"]).count("suppressed for SMS") == 1
