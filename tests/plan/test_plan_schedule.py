"""Waves of relational moments and send windows across time zones and daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxctl.planning.engine import compute_plan
from cxctl.planning.schedule import next_opening, wave_for
from cxctl.workspace.model import Schedule, SendWindow

PARIS = ZoneInfo("Europe/Paris")
MONTREAL = ZoneInfo("America/Montreal")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(text: str, tz: ZoneInfo) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz).astimezone(UTC)


@pytest.mark.parametrize(
    "every, now, wave_id, start_local",
    [
        ("quarter", "2026-11-20 10:00", "2026Q4", "2026-10-01 00:00"),
        ("quarter", "2026-12-31 23:30", "2027Q1", "2027-01-01 00:00"),  # 00:30 in Paris: already next year
        ("month", "2026-03-29 12:00", "2026-03", "2026-03-01 00:00"),
        ("week", "2026-11-20 10:00", "2026W47", "2026-11-16 00:00"),
        ("year", "2026-06-01 00:00", "2026", "2026-01-01 00:00"),
        ("14d", "2026-11-20 10:00", "2026-11-16", "2026-11-16 00:00"),
    ],
)
def test_waves_are_named_and_start_at_local_midnight(every, now, wave_id, start_local):
    wave = wave_for(Schedule(every=every), utc(now), "Europe/Paris")
    assert wave.id == wave_id
    assert wave.start == local(start_local, PARIS)
    assert wave.start <= utc(now) < wave.end


def test_cron_wave_is_the_last_firing_in_local_time():
    schedule = Schedule(cron="0 9 1 */3 *")  # 09:00 on the 1st of Jan, Apr, Jul, Oct
    wave = wave_for(schedule, utc("2026-11-20 10:00"), "Europe/Paris")
    assert wave.id == "2026-10-01T09:00"
    assert wave.start == local("2026-10-01 09:00", PARIS)
    assert wave.end == local("2027-01-01 09:00", PARIS)  # winter time: still 09:00 local


def test_week_waves_across_the_year_boundary_use_iso_weeks():
    assert wave_for(Schedule(every="week"), utc("2026-12-31 12:00"), "Europe/Paris").id == "2026W53"


WEEKDAYS = SendWindow(days=["mon", "tue", "wed", "thu", "fri"], hours="09:00-19:00")


@pytest.mark.parametrize(
    "now, tz, expected_local",
    [
        ("2026-11-20 10:00", PARIS, "2026-11-20 11:00"),  # inside: now
        ("2026-11-20 07:00", PARIS, "2026-11-20 09:00"),  # before opening: today 09:00
        ("2026-11-20 18:30", PARIS, "2026-11-23 09:00"),  # Friday evening: Monday 09:00
        ("2026-11-20 18:30", MONTREAL, "2026-11-20 13:30"),  # same instant, Montreal afternoon: now
        ("2026-11-21 03:00", MONTREAL, "2026-11-23 09:00"),  # Friday 22:00 in Montreal: Monday
    ],
)
def test_next_opening_in_the_contacts_zone(now, tz, expected_local):
    assert next_opening(utc(now), tz, WEEKDAYS) == local(expected_local, tz)


def test_next_opening_across_spring_and_autumn_dst_keeps_local_hours():
    everyday = SendWindow(days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], hours="09:00-19:00")
    # Saturday 28 March 2026 20:00 Paris (UTC+1) -> Sunday 29 March 09:00 Paris, now UTC+2.
    spring = next_opening(local("2026-03-28 20:00", PARIS), PARIS, everyday)
    assert spring == utc("2026-03-29 07:00")
    # Saturday 24 October 20:00 Paris (UTC+2) -> Sunday 25 October 09:00 Paris, now UTC+1.
    autumn = next_opening(local("2026-10-24 20:00", PARIS), PARIS, everyday)
    assert autumn == utc("2026-10-25 08:00")
    # Montreal changes on other dates (8 March 2026).
    assert next_opening(local("2026-03-07 20:00", MONTREAL), MONTREAL, everyday) == utc("2026-03-08 13:00")


def test_opening_inside_the_spring_gap_moves_forward():
    early = SendWindow(days=["sun"], hours="02:30-05:00")
    opens = next_opening(local("2026-03-28 12:00", PARIS), PARIS, early)
    assert opens.astimezone(PARIS).strftime("%H:%M") == "03:30"


def test_overnight_window_runs_past_midnight():
    night = SendWindow(days=["fri"], hours="22:00-02:00")
    assert next_opening(local("2026-11-21 01:00", PARIS), PARIS, night) == local("2026-11-21 01:00", PARIS)
    assert next_opening(local("2026-11-21 03:00", PARIS), PARIS, night) == local("2026-11-27 22:00", PARIS)


@settings(max_examples=60, deadline=None)
@given(
    when=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)),
    tz=st.sampled_from(["Europe/Paris", "America/Montreal", "Pacific/Auckland", "Asia/Kolkata", "UTC"]),
    days=st.sets(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]), min_size=1),
    start=st.integers(0, 22),
    length=st.integers(1, 10),
)
def test_next_opening_is_inside_the_window_and_never_early(when, tz, days, start, length):
    end = min(start + length, 24)
    window = SendWindow(days=sorted(days), hours=f"{start:02d}:00-{end:02d}:00")
    now = when.replace(tzinfo=UTC)
    opens = next_opening(now, ZoneInfo(tz), window)
    assert opens >= now
    wall = opens.astimezone(ZoneInfo(tz))
    assert wall.strftime("%a").lower() in days
    # 02:00 may not exist on a spring-forward day: the opening then moves one hour later.
    assert start <= wall.hour + wall.minute / 60 <= (end if end < 24 else 24) + 1
    assert opens - now < timedelta(days=8)


def test_plan_sends_at_the_window_opening_in_each_contacts_zone(make_store):
    s = make_store(
        "rules: {quiet_period: 30d, send_window: {days: [mon, tue, wed, thu, fri], hours: '09:00-19:00'}}\n",
        """
moments:
  delivery:
    journey: shop
    stage: delivery
    kind: transactional
    trigger: {event: order_delivered, delay: 1h, expires: 14d}
    questions: [csat]
""",
    )
    paris = s.contact("p", timezone=None)  # workspace zone
    montreal = s.contact("m", timezone="America/Montreal")
    broken = s.contact("b", timezone="Mars/Olympus")  # unknown: workspace zone
    for c in (paris, montreal, broken):
        s.event(c, "order_delivered", "2026-11-20 12:00:00")
    plan = compute_plan(s.ws, s.db, utc("2026-11-20 18:30"))  # Friday 19:30 Paris, 13:30 Montreal
    send = {p.contact_id: p.send_at for p in plan.planned}
    assert send[montreal] == utc("2026-11-20 18:30")
    assert send[paris] == send[broken] == local("2026-11-23 09:00", PARIS)


def test_event_whose_window_opens_after_its_expiry_is_expired_not_planned(make_store):
    s = make_store(
        "rules: {quiet_period: 30d, send_window: {days: [mon, tue, wed, thu, fri], hours: '09:00-19:00'}}\n",
        """
moments:
  chat:
    journey: shop
    stage: support
    kind: in_the_moment
    trigger: {event: chat_closed, delay: 0s, expires: 1d}
    questions: [csat]
""",
    )
    c = s.contact("c1")
    s.event(c, "chat_closed", "2026-11-20 17:00:00")  # Friday 18:00 Paris; expires Saturday 18:00
    plan = compute_plan(s.ws, s.db, utc("2026-11-20 18:30"))
    assert plan.planned == []
    [x] = plan.exclusions
    assert x.reason == "expired" and "opens 2026-11-23 08:00 UTC" in x.detail
