"""The listed exclusions of a planning run (`plan --json`, `--explain`): every excluded candidate with
its reason and the data behind it, as one sentence. Part of the run of cxctl.planning.engine (`collect`).
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
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
    for moment, reason, wave, sql, params in group_queries(engine, by_moment):
        rows = engine.sql(sql + " ORDER BY 1, 2", params)
        if reason in REPEATED_DETAILS:
            texts: dict[str, str] = {}
            one = texts.setdefault  # 300,000 daily-cap exclusions share two or three texts
            for contact_id, event_id, text in rows:
                yield Exclusion(contact_id, moment, reason, one(text, text), event_id, wave)
        else:
            for contact_id, event_id, text in rows:
                yield Exclusion(contact_id, moment, reason, text, event_id, wave)


def iter_exclusion_lines(engine: Engine, by_moment: dict[str, dict[str, int]]) -> Generator[str, None, None]:
    """iter_exclusions as JSON text, one object per exclusion, each line built by SQLite (`json_quote`):
    no tuple, no Exclusion, no dict per item reaches Python (a million of each cost seconds in
    `plan --json`). The text is the one `json.dumps(asdict(exclusion), ensure_ascii=False,
    separators=(", ", ": "))` writes, given SQLite's json_quote escapes as Python does
    (`json_quote_like_python`, checked once; else the lines are encoded from the Exclusions)."""
    if not json_quote_like_python(engine.conn):
        for exclusion in iter_exclusions(engine, by_moment):
            yield encode_exclusion(exclusion)
        return
    for moment, reason, wave, sql, params in group_queries(engine, by_moment):
        # The moment, reason and wave are the group's: encoded once, bound as parameters.
        line = (
            "SELECT '{\"contact_id\": ' || contact_id || ?1 || json_quote(detail) || ', \"event_id\": '"
            " || COALESCE(event_id, 'null') || ?2 FROM (" + sql + ") ORDER BY contact_id, event_id"
        )
        middle = f', "moment": {_quote(moment)}, "reason": {_quote(reason)}, "detail": '
        tail = f', "wave": {_quote(wave)}, "kind": "invitation"}}'
        for (text,) in engine.sql(line, [middle, tail, *params]):
            yield text


def encode_exclusion(exclusion: Exclusion) -> str:
    """An exclusion as the JSON object `plan --json` lists (the form iter_exclusion_lines builds in SQL)."""
    return _quote({name: getattr(exclusion, name) for name in EXCLUSION_FIELDS})


EXCLUSION_FIELDS = tuple(f.name for f in dataclasses.fields(Exclusion))


def _quote(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


_PROBE = "".join(map(chr, range(0x80))) + "\u00e9\u2028\u2029\ufeff\U0001f600"
_QUOTES_LIKE_PYTHON: dict[str, bool] = {}


def json_quote_like_python(conn: sqlite3.Connection) -> bool:
    """Whether this SQLite's json_quote escapes text exactly as Python's json module does with
    ensure_ascii=False (every ASCII character, a few beyond): then lines built in SQL are the bytes the
    Python encoder writes. Checked once per SQLite version."""
    version = sqlite3.sqlite_version
    if version not in _QUOTES_LIKE_PYTHON:
        try:
            quoted = conn.execute("SELECT json_quote(?)", [_PROBE]).fetchone()[0]
        except sqlite3.OperationalError:  # an SQLite built without JSON
            quoted = None
        _QUOTES_LIKE_PYTHON[version] = quoted == _quote(_PROBE)
    return _QUOTES_LIKE_PYTHON[version]


def group_queries(
    engine: Engine, by_moment: dict[str, dict[str, int]]
) -> Generator[tuple[str, str, str | None, str, list[Any]], None, None]:
    """Per (moment, reason), in that order: the moment, the reason, the wave, and the query (unordered)
    of its exclusions' `contact_id, event_id, detail`."""
    detail = detail_sql()
    for moment in sorted(by_moment):
        wave = engine.waves[moment].id if moment in engine.waves else None
        for reason in sorted(by_moment[moment]):
            parts, params = [], []
            if reason not in ("lower_priority", "daily_cap"):
                parts.append(
                    f"SELECT contact_id, event_id, {detail} AS detail FROM plan_eval INDEXED BY plan_eval_listed"
                    " WHERE moment = ? AND reason = ? AND reason IS NOT NULL"
                )
                params += [*detail_params(engine), moment, reason]
            if reason == "lower_priority":
                parts.append(
                    "SELECT contact_id, event_id, printf('a higher-priority invitation (%s) is planned"
                    " for this person in this run', top_moment) AS detail FROM plan_ok WHERE moment = ? AND rn > 1"
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
                    " moment, send_day) ELSE printf('workspace daily cap reached for %s', send_day) END AS detail"
                    " FROM plan_final WHERE moment = ? AND NOT too_late"
                    " AND (moment_cut OR (day_left IS NOT NULL AND day_n > day_left))"
                )
                params.append(moment)
            yield moment, reason, wave, " UNION ALL ".join(parts), params


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
