"""The listed exclusions of a planning run (`plan --json`, `--explain`): every excluded candidate with
its reason and the data behind it, as one sentence. Part of the run of cxctl.planning.engine (`collect`).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from cxctl.planning.plans import Exclusion, sql_modifier

if TYPE_CHECKING:  # the engine calls this module; it imports none of the engine at run time
    from cxctl.planning.engine import Engine
from cxctl.core.timeutil import to_db
from cxctl.planning.rules import span

# Exclusion reasons whose detail texts repeat (the others name a draw, a time or an invitation):
# a listed run keeps one string per distinct text.
REPEATED_DETAILS = frozenset({"forgotten", "suppressed", "no_email", "no_channel", "lower_priority", "daily_cap"})


def list_exclusions(engine: Engine, by_moment: dict[str, dict[str, int]]) -> list[Exclusion]:
    """Every exclusion, ordered by moment, reason, contact and event (iter_exclusions, kept)."""
    return list(iter_exclusions(engine, by_moment))


def iter_exclusions(engine: Engine, by_moment: dict[str, dict[str, int]]) -> Generator[Exclusion, None, None]:
    """Every exclusion, ordered by moment, reason, contact and event, read from SQLite as it is consumed.

    One query per (moment, reason) in that order, read through the index `collect` made: the moment,
    reason and wave are then the same string objects for the whole group (a million exclusions
    share a handful) and never cross from SQLite, and no sort carries the detail texts."""
    detail = detail_sql()
    for moment in sorted(by_moment):
        wave = engine.waves[moment].id if moment in engine.waves else None
        for reason in sorted(by_moment[moment]):
            parts, params = [], []
            if reason not in ("lower_priority", "daily_cap"):
                parts.append(
                    f"SELECT contact_id, event_id, {detail} FROM plan_eval INDEXED BY plan_eval_listed"
                    " WHERE moment = ? AND reason = ? AND reason IS NOT NULL"
                )
                params += [*detail_params(engine), moment, reason]
            if reason == "lower_priority":
                parts.append(
                    "SELECT contact_id, event_id, printf('a higher-priority invitation (%s) is planned"
                    " for this person in this run', top_moment) FROM plan_ok WHERE moment = ? AND rn > 1"
                )
                params.append(moment)
            if reason == "expired":
                parts.append(
                    "SELECT contact_id, event_id, printf('the next send window opens %s UTC, after the event"
                    " expires (%s UTC)', substr(send_at, 1, 16), substr(datetime(eligible_at, (SELECT expiry_mod"
                    " FROM plan_moments pm WHERE pm.moment = plan_final.moment)), 1, 16))"
                    " FROM plan_final WHERE moment = ? AND too_late"
                )
                params.append(moment)
            if reason == "daily_cap":
                parts.append(
                    "SELECT contact_id, event_id, CASE WHEN moment_cut THEN printf('daily cap of %s reached for %s',"
                    " moment, send_day) ELSE printf('workspace daily cap reached for %s', send_day) END"
                    " FROM plan_final WHERE moment = ? AND NOT too_late"
                    " AND (moment_cut OR (day_left IS NOT NULL AND day_n > day_left))"
                )
                params.append(moment)
            rows = engine.sql(" UNION ALL ".join(parts) + " ORDER BY 1, 2", params)
            if reason in REPEATED_DETAILS:
                texts: dict[str, str] = {}
                one = texts.setdefault  # 300,000 daily-cap exclusions share two or three texts
                for contact_id, event_id, text in rows:
                    yield Exclusion(contact_id, moment, reason, one(text, text), event_id, wave)
            else:
                for contact_id, event_id, text in rows:
                    yield Exclusion(contact_id, moment, reason, text, event_id, wave)


def detail_sql() -> str:
    """The detail sentence of a candidate excluded by a per-person rule, over `plan_eval`'s columns."""
    return (
        "CASE reason"
        " WHEN 'expired' THEN detail"
        " WHEN 'forgotten' THEN 'the person was forgotten on ' || substr(forgotten_at, 1, 10) || ': never contacted again'"
        " WHEN 'suppressed' THEN COALESCE('the address is suppressed (' || supp_reason || ', since '"
        "  || substr(supp_since, 1, 10) || ')', source_flag)"
        " WHEN 'no_email' THEN 'the contact has no email address'"
        " WHEN 'no_channel' THEN 'none of the moment''s channels reaches the person (an SMS needs a mobile number, SMS"
        "  consent and no STOP; an email an address neither suppressed nor refused): plan --explain says which'"
        " WHEN 'already_invited' THEN printf('invitation #%d already exists for this %s (status %s)', inv_id,"
        "  CASE WHEN wave IS NULL THEN 'event' ELSE 'wave ' || wave END, inv_status)"
        " WHEN 'not_sampled' THEN printf('sample draw %.4f is not below the sample share %g',"
        "  cx_draw(contact_id, moment, COALESCE(wave, 'e' || event_id)), sample)"
        " WHEN 'quiet_period' THEN printf('last invited %s UTC by %s: quiet period %s, free again %s UTC',"
        "  substr(last_any, 1, 16), last_moment, ?, substr(datetime(last_any, ?), 1, 16))"
        " WHEN 'cap' THEN printf('%d invitations since %s UTC: the cap is %d per %s', cap_count, ?, ?, ?)"
        " WHEN 'recontact' THEN printf('last invited for %s on %s UTC: recontact period %s, free again %s UTC',"
        "  moment, substr(moment_last, 1, 16), (SELECT recontact_txt FROM plan_moments pm WHERE pm.moment = plan_eval.moment),"
        "  substr(datetime(moment_last, (SELECT recontact_mod FROM plan_moments pm WHERE pm.moment = plan_eval.moment)), 1, 16))"
        " END"
    )


def detail_params(engine: Engine) -> list[Any]:
    """The parameters of `detail_sql`: the workspace's quiet period and cap."""
    rules = engine.ws.rules
    cap = rules.cap
    return [
        span(rules.quiet_period),
        sql_modifier(rules.quiet_period),
        to_db(engine.now - cap.window)[:16] if cap else None,
        cap.max if cap else None,
        span(cap.window) if cap else None,
    ]
