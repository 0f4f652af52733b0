"""Property test (issue 16): a year of daily plan-and-send runs over mixed channels, at random hours of the
day, with people withdrawing SMS consent or replying STOP along the way. Whatever the configuration, the
solicitation rules count people, not channels (one quiet period, one cap, one daily volume across email and
SMS), and no SMS ever goes without consent, after a STOP, or outside the SMS hours of the person's zone
(08:00-20:00, not on Sunday, not on a public holiday of their country)."""

from __future__ import annotations

import random
import textwrap
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxctl import store
from cxctl.audience.phones import phone_hash
from cxctl.core.emails import normalise
from cxctl.core.timeutil import from_db, to_db
from cxctl.delivery.send import send_campaign
from cxctl.delivery.sms_transport import SmsOutboxTransport
from cxctl.delivery.transport import OutboxTransport
from cxctl.validation import check_workspace

START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")
BASE = """\
workspace:
  name: Mixed channels
  default_language: fr
  languages: [fr, en]
  timezone: Europe/Paris
  sender: {{name: Service Client, address: avis@boutique.example}}
  survey_url: "https://survey.example/s/{{moment}}?t={{token}}"
  token_secret_env: CXCTL_SECRET
  outbox: out/mail
  sms: {{opt_out: STOP au 36111, outbox: out/sms}}
questions:
  csat: {{type: csat, text: {{fr: Satisfait ?, en: Satisfied?}}}}
journeys:
  shop: {{name: Shop, stages: [delivery, support, loyalty]}}
rules:
  quiet_period: {quiet}
  send_window: {window}
{cap}{daily}moments:
  delivery:
    journey: shop
    stage: delivery
    kind: transactional
    trigger: {{event: order_delivered, delay: 0s, expires: {expires}}}
    questions: [csat]
    channels: {delivery_channels}
    priority: {delivery_priority}
    targets: {{csat: 80}}
  support:
    journey: shop
    stage: support
    kind: transactional
    trigger: {{event: ticket_closed, delay: 1h, expires: 5d}}
    questions: [csat]
    channels: {support_channels}
    reminders: {{count: 1, after: 2d}}
    priority: 2
    targets: {{csat: 80}}
  nps:
    journey: shop
    stage: loyalty
    kind: relational
    schedule: {{every: {every}}}
    questions: [csat]
    channels: [email, sms]
    sample: 0.5
    priority: 3
    targets: {{csat: 80}}
"""

configs = st.fixed_dictionaries(
    {
        "quiet": st.sampled_from(["0s", "7d", "30d"]),
        "window": st.sampled_from(
            [
                "{days: [mon, tue, wed, thu, fri, sat, sun], hours: '00:00-24:00'}",
                "{days: [mon, tue, wed, thu, fri], hours: '09:00-18:00'}",
            ]
        ),
        "cap": st.sampled_from(["", "  cap: {max: 2, window: 60d}\n"]),
        "daily": st.sampled_from(["", "  daily_cap: 3\n"]),
        "expires": st.sampled_from(["2d", "7d"]),
        "delivery_channels": st.sampled_from(["[sms, email]", "[sms]", "[email]"]),
        "support_channels": st.sampled_from(["[sms, email]", "[email, sms]"]),
        "delivery_priority": st.integers(1, 3),
        "every": st.sampled_from(["month", "quarter"]),
    }
)
people = st.lists(
    st.fixed_dictionaries(
        {
            "phone": st.booleans(),
            "consent": st.sampled_from([1, 0, None]),
            "email": st.booleans(),
            "abroad": st.booleans(),
        }
    ),
    min_size=4,
    max_size=7,
)
events = st.lists(
    st.tuples(
        st.integers(0, 6),
        st.sampled_from(["order_delivered", "ticket_closed"]),
        st.integers(0, 360),
        st.integers(0, 23),
    ),
    max_size=40,
)
changes = st.lists(st.tuples(st.integers(0, 6), st.sampled_from(["withdraw", "stop"]), st.integers(0, 360)), max_size=4)


@pytest.mark.timeout(600)  # a year of daily runs: a loaded machine (or a shared xdist core) gets 10 minutes
@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    config=configs, persons=people, evs=events, later=changes, seed=st.integers(0, 2**16), step=st.sampled_from([1, 2])
)
def test_a_year_of_mixed_channel_runs_keeps_the_rules_across_channels(
    tmp_path_factory, monkeypatch, config, persons, evs, later, seed, step
):
    monkeypatch.setenv("CXCTL_SECRET", "plan-test-secret-of-16-chars")
    root = tmp_path_factory.mktemp("mixed")
    (root / "cxctl.yaml").write_text(textwrap.dedent(BASE.format(**config)), encoding="utf-8")
    result = check_workspace([root])
    assert not result.errors, "\n".join(p.format() for p in result.errors)
    ws = result.workspace
    db = store.connect(ws.database)
    contacts, zones = [], {}
    for i, person in enumerate(persons):
        email = normalise(f"p{i}@example.com") if person["email"] or not person["phone"] else None
        phone = f"+3361234{i:04d}" if not person["abroad"] else f"+1438555{i:04d}"
        zone_name = "America/Montreal" if person["abroad"] else None
        contact_id = db.execute(
            "INSERT INTO contacts (external_id, email, email_hash, phone, phone_hash, sms_consent, language, timezone,"
            " country, attributes, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'fr', ?, ?, '{}', ?, ?)",
            [
                f"p{i}",
                email,
                store.email_hash(email) if email else None,
                phone if person["phone"] else None,
                phone_hash(phone) if person["phone"] else None,
                person["consent"],
                zone_name,
                "CA" if person["abroad"] else "FR",
                "2026-01-01 00:00:00",
                "2026-01-01 00:00:00",
            ],
        ).lastrowid
        contacts.append(contact_id)
        zones[contact_id] = ("CA", ZoneInfo("America/Montreal")) if person["abroad"] else ("FR", PARIS)
    for n, (who, type_, day, hour) in enumerate(evs):
        if who < len(contacts):
            at = to_db(START + timedelta(days=day, hours=hour))
            db.execute(
                "INSERT INTO events (event_key, contact_id, type, occurred_at, attributes, imported_at)"
                " VALUES (?, ?, ?, ?, '{}', ?)",
                [f"e{n}", contacts[who], type_, at, at],
            )
    pending = sorted((day, who, what) for who, what, day in later if who < len(contacts))
    withdrawn: dict[int, datetime] = {}
    stopped: dict[int, datetime] = {}
    hours = random.Random(seed)
    mail, sms = OutboxTransport(root / "out" / "mail"), SmsOutboxTransport(root / "out" / "sms")
    for day in range(0, 366, step):
        now = START + timedelta(
            days=day, hours=hours.choice([5, 7, 9, 12, 15, 18, 19, 21]), minutes=hours.randint(0, 59)
        )
        while pending and pending[0][0] <= day:
            _, who, what = pending.pop(0)
            contact_id = contacts[who]
            if what == "withdraw":
                db.execute("UPDATE contacts SET sms_consent = 0 WHERE id = ?", [contact_id])
                withdrawn.setdefault(contact_id, now)
            else:
                number = db.execute("SELECT phone FROM contacts WHERE id = ?", [contact_id]).fetchone()[0]
                if number:
                    db.execute(
                        "INSERT OR IGNORE INTO sms_suppressions (phone_hash, phone, reason, source, created_at)"
                        " VALUES (?, ?, 'opt_out', 'webhook', ?)",
                        [phone_hash(number), number, to_db(now)],
                    )
                    stopped.setdefault(contact_id, now)
        send_campaign(ws, db, now, mail, sms_transport=sms)
    check(ws, db, contacts, persons, zones, withdrawn, stopped)


def check(ws, db, contacts, persons, zones, withdrawn, stopped) -> None:
    rows = db.execute(
        "SELECT contact_id, moment, kind, channel, sent_at, send_at, status FROM invitations"
        " WHERE status = 'sent' ORDER BY sent_at"
    ).fetchall()
    by_person = defaultdict(list)
    for contact_id, _moment, kind, channel, sent_at, _send_at, _ in rows:
        sent = from_db(sent_at)
        if kind == "invitation":
            by_person[contact_id].append(sent)
        if channel == "sms":
            person = persons[contacts.index(contact_id)]
            assert person["phone"] and person["consent"] == 1, "an SMS without SMS consent"
            assert contact_id not in withdrawn or sent < withdrawn[contact_id], "an SMS after consent was withdrawn"
            assert contact_id not in stopped or sent < stopped[contact_id], "an SMS after a STOP"
            region, place = zones[contact_id]
            local = sent.astimezone(place)
            assert 8 <= local.hour < 20, f"an SMS at {local:%H:%M} local time"
            assert local.weekday() != 6, "an SMS on a Sunday"
            assert local.date() not in holidays.country_holidays(region, years=local.year), "an SMS on a public holiday"
    quiet, cap = ws.rules.quiet_period, ws.rules.cap
    for times in by_person.values():  # people, not channels: every invitation of a person, whatever the channel
        for a, b in zip(times, times[1:], strict=False):
            assert b - a >= quiet, f"two invitations within the quiet period, across channels: {a} then {b}"
        if cap:
            for t in times:
                assert len([u for u in times if t - cap.window < u <= t]) <= cap.max, "cap exceeded across channels"
    if ws.rules.daily_cap:
        per_day = defaultdict(int)
        for _, _, kind, _, _, send_at, _ in rows:
            if kind == "invitation":
                per_day[from_db(send_at).astimezone(PARIS).date()] += 1
        assert max(per_day.values(), default=0) <= ws.rules.daily_cap
