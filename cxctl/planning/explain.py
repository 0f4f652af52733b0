"""`cxctl plan --explain CONTACT`: every rule's verdict for one person, with the data behind it.

It runs the same engine as `compute_plan`, restricted to that person, and reads the per-rule data the
engine computed (last invitation, cap count, sample draw...). Run-wide rules are shown as they apply to
this person alone: the daily caps count what is already planned or sent that day, not other people
competing in the same run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlite_utils

from cxctl.core.emails import normalise
from cxctl.core.errors import UsageError
from cxctl.core.timeutil import from_db, to_db
from cxctl.planning.channels import channel_options, describe_choice
from cxctl.planning.engine import Engine
from cxctl.planning.plans import Exclusion, PlannedInvitation, check_moment, recontact_for, send_window_for
from cxctl.planning.rules import audience_sql, draw, span
from cxctl.planning.schedule import holiday_region, zone
from cxctl.store import email_hash


@dataclass
class Check:
    """One rule applied to one candidate: passed or not, and why."""

    rule: str
    ok: bool
    detail: str


@dataclass
class MomentVerdict:
    """What the engine decides for one moment (and one event or wave) for this person."""

    moment: str
    verdict: str  # planned | excluded | not_eligible
    reason: str | None
    event_id: int | None
    wave: str | None
    send_at: datetime | None
    checks: list[Check] = field(default_factory=list)
    timezone: str | None = None
    """The person's time zone (theirs, else the workspace's): the details give local times in it."""
    send_at_local: str | None = None
    """send_at in that time zone, e.g. `10:00 Europe/Paris`."""
    channel: str | None = None
    """The channel the invitation would go by (the first of the moment's channels that reaches the person)."""


@dataclass
class Explanation:
    contact_id: int
    external_id: str | None
    email: str | None
    now: datetime
    moments: list[MomentVerdict]
    reminders: list[PlannedInvitation | Exclusion]


def find_contact(db: sqlite_utils.Database, contact: str) -> tuple[int, str | None, str | None]:
    """A contact by external id, else by email; raise UsageError naming the fix."""
    row = db.execute("SELECT id, external_id, email FROM contacts WHERE external_id = ?", [contact]).fetchone()
    if row is None and "@" in contact:
        try:
            address = normalise(contact)
        except ValueError:
            address = contact.strip()
        row = db.execute(
            "SELECT id, external_id, email FROM contacts WHERE email_hash = ? OR email = ? ORDER BY id LIMIT 1",
            [email_hash(address), address],
        ).fetchone()
    if row is None:
        raise UsageError(
            f"no contact {contact!r} (by external id or email): check the spelling, or import it with "
            "`cxctl contacts import`"
        )
    return row


def explain(ws, db: sqlite_utils.Database, now: datetime, contact: str, moment: str | None = None) -> Explanation:
    """Each moment's verdict for one person and every rule's check; read-only."""
    check_moment(ws, moment)
    contact_id, external_id, email = find_contact(db, contact)
    engine = Engine(ws, db, now, contact_id=contact_id)
    own = not db.conn.in_transaction
    try:
        plan = engine.run(None, list_exclusions=True, keep=True)
        rows = engine.sql(
            "SELECT e.*, o.rn, o.top_moment, f.send_at AS final_send_at, f.too_late, f.moment_cut, f.day_left, f.day_n, f.send_day"
            " FROM plan_eval e LEFT JOIN plan_ok o ON o.id = e.id LEFT JOIN plan_final f ON f.id = e.id"
            " ORDER BY e.rank, e.eligible_at, e.event_id"
        )
        names = [d[0] for d in rows.description]
        candidates = [dict(zip(names, r, strict=True)) for r in rows.fetchall()]
        verdicts: list[MomentVerdict] = []
        seen = set()
        for row in candidates:
            if moment and row["moment"] != moment:
                continue
            seen.add(row["moment"])
            verdicts.append(_verdict(ws, engine, row))
        for mid in engine.ranked:
            if mid in seen or (moment and mid != moment):
                continue
            verdicts.append(_not_eligible(ws, engine, mid, contact_id))
    finally:
        engine.drop()
        if own:
            engine.sql("ROLLBACK")
    reminders: list[PlannedInvitation | Exclusion] = [p for p in plan.planned if p.kind == "reminder"]
    reminders += [x for x in plan.exclusions if x.kind == "reminder"]
    if moment:
        reminders = [r for r in reminders if r.moment == moment]
    return Explanation(contact_id, external_id, email, engine.now, verdicts, reminders)


def _day(text: str | None) -> str:
    return (text or "")[:16]


def local_time(when: datetime | str | None, tz: str) -> str:
    """`11:00 Europe/Paris` (the date too when it is not the UTC one): the time the person lives in."""
    if when is None:
        return ""
    moment = from_db(when) if isinstance(when, str) else when
    if moment is None:
        return ""
    place = zone(tz, "UTC")
    local = moment.astimezone(place)
    same_day = local.date() == moment.astimezone(UTC).date()
    return f"{local:%H:%M}" + ("" if same_day else f" on {local:%Y-%m-%d}") + f" {place.key}"


def _at(when: str | None, tz: str) -> str:
    """A stored UTC time and the contact's local time beside it: `2026-11-05 10:00 UTC (11:00 Europe/Paris)`."""
    if not when:
        return ""
    return f"{_day(when)} UTC ({local_time(when, tz)})"


def _verdict(ws, engine: Engine, row: dict) -> MomentVerdict:
    rules = ws.rules
    m = ws.moments[row["moment"]]
    now = engine.now
    tz = row["tz"] or ws.settings.timezone
    checks: list[Check] = []
    if row["event_id"] is not None:
        trigger = m.trigger
        due = from_db(row["eligible_at"])
        occurred = due - trigger.delay
        expired = row["reason"] == "expired"
        checks.append(
            Check(
                "eligible",
                True,
                f"event #{row['event_id']} {trigger.event} at {_at(to_db(occurred), tz)},"
                f" due after {span(trigger.delay)}",
            )
        )
        checks.append(
            Check(
                "expired",
                not expired,
                f"expires {_at(to_db(occurred + trigger.expires), tz)} ({span(trigger.expires)} after the event)",
            )
        )
    else:
        wave = engine.waves[row["moment"]]
        checks.append(
            Check(
                "eligible",
                True,
                f"in the audience of wave {wave.id} ({_at(to_db(wave.start), tz)} to {_at(to_db(wave.end), tz)})",
            )
        )
    forgotten = row["forgotten_at"]
    checks.append(Check("forgotten", not forgotten, f"forgotten on {forgotten[:10]}" if forgotten else "not forgotten"))
    channel = "email"
    if m.channels == ["email"]:
        suppressed = row["supp_reason"] or row["source_flag"]
        checks.append(
            Check(
                "suppressed",
                not suppressed,
                (
                    f"suppressed ({row['supp_reason']}, since {row['supp_since'][:10]})"
                    if row["supp_reason"]
                    else row["source_flag"]
                )
                if suppressed
                else "no suppression for this address",
            )
        )
        has_email = bool(row["email"] and row["email"].strip())
        checks.append(Check("no_email", has_email, row["email"] if has_email else "no email address"))
    else:
        # Several channels: a suppressed address or number only closes its own channel (cxctl.planning.channels).
        checks.append(Check("suppressed", not row["source_flag"], row["source_flag"] or "no do-not-contact flag"))
        chosen, text = describe_choice(channel_options(engine.conn, row["contact_id"], m.channels))
        checks.append(Check("channel", chosen is not None, text))
        channel = chosen or channel
    checks.append(
        Check(
            "already_invited",
            row["inv_id"] is None,
            f"invitation #{row['inv_id']} exists ({row['inv_status']})" if row["inv_id"] else "not yet invited",
        )
    )
    last = row["last_any"]
    if last:
        free = from_db(last) + rules.quiet_period
        checks.append(
            Check(
                "quiet_period",
                free <= now,
                f"last invited {_at(last, tz)} by {row['last_moment']}: quiet period "
                f"{span(rules.quiet_period)}, free again {_at(to_db(free), tz)}",
            )
        )
    else:
        checks.append(Check("quiet_period", True, f"no invitation in the last {span(rules.quiet_period)}"))
    if rules.cap:
        n = row["cap_count"] or 0
        checks.append(
            Check(
                "cap", n < rules.cap.max, f"{n} invitation(s) in the last {span(rules.cap.window)}; cap {rules.cap.max}"
            )
        )
    recontact = recontact_for(ws, m)
    if recontact:
        ml = row["moment_last"]
        last_for_moment = from_db(ml) if ml else None
        free = last_for_moment + recontact if last_for_moment is not None else None
        checks.append(
            Check(
                "recontact",
                not free or free <= now,
                f"last invited for {row['moment']} {_at(ml, tz)}: recontact {span(recontact)}, "
                f"free again {_at(to_db(free), tz)}"
                if free
                else f"not invited for {row['moment']} in the last {span(recontact)}",
            )
        )
    if row["sample"] >= 1:
        checks.append(Check("sample", True, "everyone is invited (sample 1)"))
    else:
        value = draw(row["contact_id"], row["moment"], row["wave"] or f"e{row['event_id']}")
        checks.append(
            Check("sample", value < row["sample"], f"draw {value:.4f} against sample share {row['sample']:g}")
        )
    if row["rn"] is not None:
        checks.append(
            Check(
                "priority",
                row["rn"] == 1,
                "highest priority for this person in this run"
                if row["rn"] == 1
                else f"{row['top_moment']} ranks higher in this run",
            )
        )
    if row["final_send_at"] is not None and row["too_late"]:
        checks.append(
            Check(
                "expired", False, f"the next send window opens {_at(row['final_send_at'], tz)}, after the event expires"
            )
        )
    elif row["final_send_at"] is not None:
        capped = bool(row["moment_cut"]) or (row["day_left"] is not None and row["day_n"] > row["day_left"])
        checks.append(
            Check(
                "daily_cap",
                not capped,
                f"daily volume for {row['send_day']}: " + ("reached" if capped else "room left"),
            )
        )
        window = send_window_for(ws, m)
        sms_hours = ""
        if row["channel"] == "sms":
            hours, region = (
                m.sms_hours or ws.settings.sms.hours,
                holiday_region(row["country"], ws.settings.sms.default_region),
            )
            sms_hours = f", within the SMS hours {hours.hours} on {','.join(hours.days)}" + (
                "" if hours.public_holidays else f", not on a public holiday ({region})"
            )
        checks.append(
            Check(
                "send_window",
                True,
                f"{window.hours} on {','.join(window.days)}{sms_hours} in "
                f"{row['tz'] or ws.settings.timezone}: sends at {_at(row['final_send_at'], tz)}",
            )
        )
    planned = row["final_send_at"] is not None and all(c.ok for c in checks)
    renamed = {"priority": "lower_priority", "sample": "not_sampled"}
    reason = row["reason"] or next((renamed.get(c.rule, c.rule) for c in checks if not c.ok), None)
    return MomentVerdict(
        row["moment"],
        "planned" if planned else "excluded",
        None if planned else reason,
        row["event_id"],
        row["wave"],
        from_db(row["final_send_at"]) if planned else None,
        checks,
        zone(tz, "UTC").key,
        local_time(row["final_send_at"], tz) if planned else None,
        (row["channel"] or channel) if planned else None,
    )


def _not_eligible(ws, engine: Engine, mid: str, contact_id: int) -> MomentVerdict:
    m = ws.moments[mid]
    tz = (
        engine.sql("SELECT COALESCE(timezone, '') FROM contacts WHERE id = ?", [contact_id]).fetchone()[0]
        or ws.settings.timezone
    )
    where, params = audience_sql(m.audience, with_event=False)
    in_audience = engine.sql(f"SELECT 1 FROM contacts c WHERE c.id = ? AND {where}", [contact_id, *params]).fetchone()
    checks = [
        Check(
            "audience",
            bool(in_audience),
            "matches the audience"
            if in_audience
            else f"not in the audience ({m.audience.model_dump(exclude_defaults=True)})",
        )
    ]
    if m.kind != "relational":
        trigger = m.trigger
        last, upcoming = engine.sql(
            "SELECT MAX(CASE WHEN occurred_at <= ? THEN occurred_at END), MIN(CASE WHEN occurred_at > ? THEN occurred_at END)"
            " FROM events WHERE contact_id = ? AND type = ?",
            [engine.now_db, engine.now_db, contact_id, trigger.event],
        ).fetchone()
        if last is None and upcoming is None:
            detail = f"no {trigger.event} event for this person"
        elif last is None:
            detail = f"the next {trigger.event} event is dated {_at(upcoming, tz)}, after the planning time"
        elif from_db(last) + trigger.delay > engine.now:
            detail = (
                f"last {trigger.event} at {_at(last, tz)}: due after {span(trigger.delay)}, "
                f"at {_at(to_db(from_db(last) + trigger.delay), tz)}"
            )
        else:
            detail = f"last {trigger.event} at {_at(last, tz)}, expired after {span(trigger.expires)}"
        checks.append(Check("eligible", False, detail))
    return MomentVerdict(
        mid,
        "not_eligible",
        "not_in_audience" if not in_audience else "no_event",
        None,
        engine.waves[mid].id if mid in engine.waves else None,
        None,
        checks,
        zone(tz, "UTC").key,
    )
