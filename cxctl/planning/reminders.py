"""Reminders to people who did not answer: part of the one planning run (cxctl.planning.engine).

An invitation without any row in `responses` gets reminder n once the previous message has been sent
for `after`; the reminders respect forgotten people, suppressions and send windows, and never count
toward the fatigue rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cxctl.planning.plans import REMINDER_GRACE, Exclusion, Plan, PlannedInvitation

if TYPE_CHECKING:  # the engine calls this module; it imports none of the engine at run time
    from cxctl.planning.engine import Engine
from cxctl.core.timeutil import from_db, to_db
from cxctl.planning.rules import live_sql, pick_language, suppression_source_sql


def plan_reminders(engine: Engine, plan: Plan, only: str | None, list_exclusions: bool) -> None:
    """Reminders to non-responders: due after `after`, up to min(count, rules.max_reminders).

    They respect suppressions and send windows and never count toward fatigue caps.
    """
    source_sql, source_params = suppression_source_sql(engine.ws.rules.suppression_sources)
    only_contact, only_params = engine.contact_filter("i.contact_id")
    for mid in engine.ranked:
        m = engine.ws.moments[mid]
        if m.reminders is None or (only and mid != only):
            continue
        count = min(m.reminders.count, engine.ws.rules.max_reminders)
        if count == 0:
            continue
        after = m.reminders.after
        expires = m.trigger.expires if m.trigger is not None else None
        oldest = engine.now - after * count - REMINDER_GRACE
        rows = engine.sql(
            "SELECT i.id, i.contact_id, i.event_id, i.wave, i.language, c.email, COALESCE(c.timezone, ''),"
            " COALESCE(c.forgotten_at, f.forgotten_at), s.reason, s.created_at,"
            f" {source_sql}, COALESCE(i.sent_at, i.send_at),"
            " (SELECT COUNT(*) FROM invitations r INDEXED BY invitations_parent WHERE r.parent_id = i.id),"
            " (SELECT COUNT(*) FROM invitations r INDEXED BY invitations_parent WHERE r.parent_id = i.id AND r.status <> 'sent'),"
            " (SELECT MAX(r.sent_at) FROM invitations r INDEXED BY invitations_parent WHERE r.parent_id = i.id),"
            " (SELECT e.occurred_at FROM events e WHERE e.id = i.event_id),"
            # A reminder goes by its invitation's channel; an SMS one needs the number, consent and no STOP still.
            " i.channel, c.phone, c.sms_consent, ss.reason, ss.created_at, COALESCE(c.country, '')"
            " FROM invitations i INDEXED BY invitations_fatigue JOIN contacts c ON c.id = i.contact_id"
            " LEFT JOIN forgotten f ON f.email_hash = c.email_hash"
            " LEFT JOIN suppressions s ON s.email_hash = c.email_hash"
            " LEFT JOIN sms_suppressions ss ON ss.phone_hash = c.phone_hash"
            f" WHERE i.kind = 'invitation' AND {live_sql('i')} AND COALESCE(i.sent_at, i.send_at) > ?"
            " AND COALESCE(i.sent_at, i.send_at) <= ? AND i.status = 'sent' AND i.moment = ?"
            f" AND NOT EXISTS (SELECT 1 FROM responses r WHERE r.invitation_id = i.id){only_contact}",
            [*source_params, to_db(oldest), to_db(engine.now - after), mid, *only_params],
        ).fetchall()
        due_by, late_by = to_db(engine.now - after), to_db(engine.now - after - REMINDER_GRACE)
        for (
            parent,
            contact_id,
            event_id,
            wave,
            language,
            email,
            tz,
            forgotten_at,
            supp_reason,
            supp_since,
            source_flag,
            sent_at,
            done,
            pending,
            last_reminder,
            occurred_at,
            channel,
            phone,
            sms_consent,
            ss_reason,
            ss_since,
            country,
        ) in rows:
            number = done + 1
            if done >= count or pending:
                continue
            # Due when the last message is `after` old, dropped past the grace: compared as store text
            # (fixed-width UTC), which orders like the times and saves parsing 50,000 of them.
            base = max(sent_at, last_reminder or sent_at)[:19]
            if base > due_by or base < late_by:
                continue
            reason = detail = None
            if forgotten_at:
                reason, detail = "forgotten", f"the person was forgotten on {forgotten_at[:10]}: never contacted again"
            elif channel == "sms":
                if source_flag:
                    reason, detail = "suppressed", source_flag
                elif ss_reason:
                    reason, detail = (
                        "suppressed",
                        f"the number is suppressed for SMS ({ss_reason}, since {ss_since[:10]})",
                    )
                elif not phone or sms_consent != 1:
                    reason, detail = "no_channel", "the SMS reminder has no number or no SMS consent any more"
            elif supp_reason or source_flag:
                reason = "suppressed"
                detail = (
                    f"the address is suppressed ({supp_reason}, since {supp_since[:10]})"
                    if supp_reason
                    else source_flag
                )
            elif not email or not email.strip():
                reason, detail = "no_email", "the contact has no email address"
            if reason is None and expires is not None and occurred_at is not None:
                # The survey closes with its event (trigger.expires): `send` would drop this reminder as
                # expired, so the plan does not show it as planned.
                send_at, _ = engine.slot(tz, mid, channel, country)
                if from_db(occurred_at) + expires < send_at:
                    reason = "expired"
                    detail = (
                        f"the survey of the event of {occurred_at[:16]} closed at "
                        f"{to_db(from_db(occurred_at) + expires)[:16]} UTC, before the reminder's send time"
                    )
            if reason:
                plan.counts[reason] = plan.counts.get(reason, 0) + 1
                plan.by_moment.setdefault(mid, {})
                plan.by_moment[mid][reason] = plan.by_moment[mid].get(reason, 0) + 1
                if list_exclusions:
                    plan.exclusions.append(
                        Exclusion(
                            contact_id,
                            mid,
                            reason,
                            f"reminder {number} to invitation #{parent}: {detail}",
                            event_id,
                            wave,
                            "reminder",
                        )
                    )
                continue
            send_at, _ = engine.slot(tz, mid, channel, country)
            plan.planned.append(
                PlannedInvitation(
                    contact_id,
                    mid,
                    "reminder",
                    event_id,
                    wave,
                    parent,
                    send_at,
                    language or pick_language(None, engine.ws.settings.languages, engine.ws.settings.default_language),
                    email,
                    f"{parent}|r{number}",
                    channel,
                    phone if channel == "sms" else None,
                )
            )
