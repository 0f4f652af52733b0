"""The solicitation engine: who gets which survey, when, and why not. `plan` shows it, `send` runs it.

`compute_plan` is a pure read: it gathers the candidates (events due for transactional and
in-the-moment moments, the audience of the current wave for relational ones) into temporary tables
and applies the rules of `cxctl.planning.rules.REASONS` in order with set-based SQL; Python only handles the
small sets (one send-window computation per time zone and moment, the daily quotas, the final rows).
`record_plan` writes the planned rows; planning twice never creates two invitations (dedupe keys).
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlite_utils

from cxctl.core.timeutil import from_db, to_db
from cxctl.planning.channels import channel_sql, sms_join, uses_sms
from cxctl.planning.listing import list_exclusions as listing
from cxctl.planning.plans import (
    Exclusion,
    Plan,
    PlannedInvitation,
    check_moment,
    recontact_for,
    send_window_for,
    sql_modifier,
)
from cxctl.planning.reminders import plan_reminders
from cxctl.planning.rules import audience_sql, draw, given_up_sql, live_sql, pick_language, span, suppression_source_sql
from cxctl.planning.schedule import (
    Wave,
    holiday_region,
    local_day_bounds,
    next_opening,
    next_sms_opening,
    wave_for,
    zone,
)
from cxctl.workspace.model import Moment

# Expired events are reported for this long after their expiry, then dropped silently, so a daily
# plan does not list years of old events.
EXPIRED_REPORT_FOR = timedelta(days=7)

TEMP_TABLES = (
    "plan_moments",
    "plan_waved",
    "plan_hist",
    "plan_hist_moment",
    "plan_eval",
    "plan_multi",
    "plan_ok",
    "plan_slots",
    "plan_quota",
    "plan_day_quota",
    "plan_placed",
    "plan_day_base",
    "plan_final",
)


def compute_plan(
    ws, db: sqlite_utils.Database, now: datetime, moment: str | None = None, *, list_exclusions: bool = True
) -> Plan:
    """Decide who gets which invitation or reminder at `now`; read-only.

    `moment` restricts the result, not the decision: priorities are still settled across all moments.
    `list_exclusions=False` skips building one Exclusion per excluded candidate (counts stay exact).
    """
    check_moment(ws, moment)
    engine = Engine(ws, db, now)
    return engine.run(moment, list_exclusions=list_exclusions)


class Engine:
    """One planning run over temporary tables (dropped at the end; the store file is not written)."""

    def __init__(self, ws, db: sqlite_utils.Database, now: datetime, contact_id: int | None = None):
        self.ws = ws
        self.conn: sqlite3.Connection = db.conn
        self.now = now.astimezone(UTC).replace(microsecond=0)
        self.now_db = to_db(self.now)
        self.contact_id = contact_id
        self.ranked = sorted(ws.moments, key=ws.moment_rank)
        self.waves: dict[str, Wave] = {}
        self.slots: dict[tuple[str, str, str, str], tuple[datetime, date]] = {}
        self.source = suppression_source_sql(ws.rules.suppression_sources)
        self.details = True  # keep the data behind each exclusion (see `run`)
        self.stream_exclusions = False  # listed exclusions left to `streamed_plan` to read
        self.own = False
        self.saved: dict[str, Any] | None = None

    # --- plumbing ---------------------------------------------------------------------------------

    def sql(self, statement: str, params: list[Any] | tuple = ()) -> sqlite3.Cursor:
        return self.conn.execute(statement, params)

    def drop(self) -> None:
        for name in TEMP_TABLES:
            self.sql(f"DROP TABLE IF EXISTS temp.{name}")

    def contact_filter(self, column: str) -> tuple[str, list[Any]]:
        if self.contact_id is None:
            return "", []
        return f" AND {column} = ?", [self.contact_id]

    def run(self, only: str | None, *, list_exclusions: bool, keep: bool = False) -> Plan:

        self.conn.create_function("cx_draw", 3, draw, deterministic=True)
        self.details = list_exclusions
        own = self.own = not self.conn.in_transaction
        saved = self.tune() if own and self.contact_id is None else None
        if own:
            self.sql("BEGIN")  # one snapshot for the whole run
        try:
            self.drop()
            self.moments_table()
            self.history()
            self.gather()
            self.priority()
            self.send_windows()
            self.daily_caps()
            plan = self.collect(only, list_exclusions)
            plan_reminders(self, plan, only, list_exclusions)
            plan.planned.sort(key=lambda p: (p.send_at, p.moment, p.contact_id, p.kind))
            return plan
        finally:
            if not keep:
                self.drop()
            if own and not keep:
                self.sql("ROLLBACK")
            if saved and not keep:
                self.untune(saved)
            self.saved = saved if keep else None

    def finish(self) -> None:
        """End a run kept open (`run(keep=True)` outside a transaction): drop its tables, end its snapshot."""
        self.drop()
        if self.own:
            self.sql("ROLLBACK")
        if self.saved:
            self.untune(self.saved)

    def tune(self) -> dict[str, Any]:
        """Keep the working tables in memory, with a modest page cache for the store's own pages.

        The store is read mostly once, in index order, and its pages stay in the OS cache: 16 MB of
        SQLite cache instead of 128 MB took about 100 MB off `plan --json` at 1M contacts for no
        measurable time (issue 18, docs/benchmarks.md). Switching temp_store drops existing temporary
        tables, so it is only done when there are none.
        """
        saved = {name: self.sql(f"PRAGMA {name}").fetchone()[0] for name in ("cache_size", "temp_store")}
        self.sql("PRAGMA cache_size = -16384")
        if not self.sql("SELECT 1 FROM sqlite_temp_master LIMIT 1").fetchone():
            self.sql("PRAGMA temp_store = MEMORY")
        return saved

    def untune(self, saved: dict[str, Any]) -> None:
        self.sql(f"PRAGMA cache_size = {int(saved['cache_size'])}")
        if (
            saved["temp_store"] != self.sql("PRAGMA temp_store").fetchone()[0]
            and not self.sql("SELECT 1 FROM sqlite_temp_master LIMIT 1").fetchone()
        ):
            self.sql(f"PRAGMA temp_store = {int(saved['temp_store'])}")

    # --- steps ------------------------------------------------------------------------------------

    def moments_table(self) -> None:
        self.sql(
            "CREATE TEMP TABLE plan_moments (moment TEXT PRIMARY KEY, rank INTEGER, sample REAL, recontact_from TEXT,"
            " recontact_txt TEXT, recontact_mod TEXT, expiry_mod TEXT)"
        )
        rows = []
        for rank, mid in enumerate(self.ranked):
            m = self.ws.moments[mid]
            recontact = recontact_for(self.ws, m)
            rows.append(
                (
                    mid,
                    rank,
                    m.sample,
                    to_db(self.now - recontact) if recontact else None,
                    span(recontact) if recontact else None,
                    sql_modifier(recontact) if recontact else None,
                    sql_modifier(m.trigger.expires - m.trigger.delay) if m.trigger else None,
                )
            )
        self.conn.executemany("INSERT INTO plan_moments VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def gather(self) -> None:
        """Candidates with every per-person rule applied in one pass: due, unexpired events of each
        trigger, the audience of each relational wave. The first failing rule is the reason."""
        self.sql(
            "CREATE TEMP TABLE plan_eval (id INTEGER PRIMARY KEY, contact_id INTEGER NOT NULL, moment TEXT NOT NULL,"
            " event_id INTEGER, wave TEXT, eligible_at TEXT, rank INTEGER, sample REAL, email TEXT,"
            " language TEXT, tz TEXT, forgotten_at TEXT, supp_reason TEXT, supp_since TEXT, source_flag TEXT,"
            " inv_id INTEGER, inv_status TEXT, last_any TEXT, last_moment TEXT, cap_count INTEGER, moment_last TEXT,"
            " reason TEXT, detail TEXT, channel TEXT, country TEXT)"
        )
        self.sql(
            "CREATE TEMP TABLE plan_waved (moment TEXT, contact_id INTEGER, id INTEGER, status TEXT, counts INTEGER,"
            " PRIMARY KEY (moment, contact_id)) WITHOUT ROWID"
        )
        for mid in self.ranked:
            m = self.ws.moments[mid]
            if m.kind == "relational":
                self.gather_wave(mid, m)
            else:
                self.gather_events(mid, m)

    def _rules_select(
        self, mid: str, m: Moment, key: str, key_params: list[Any], invited: str = "i"
    ) -> tuple[str, list[Any]]:
        """The rule columns and reason over contact `c`, invitation `invited`, history `h`/`hm` (one pass).

        `hm` is only joined for a moment with a recontact period (see `joins`)."""
        rules = self.ws.rules
        source_sql, source_params = self.source
        recontact = recontact_for(self.ws, m)
        rank = self.ranked.index(mid)
        last = "hm.last" if recontact else "NULL"
        counted = "w.counts" if invited == "w" else f"NOT {given_up_sql(invited)}"
        # The data behind each verdict only serves the listed details (plan --json, --explain): a run that
        # only counts stores NULLs instead (the CRM flag is then read once per person, not twice).
        details = (
            (
                f"COALESCE(c.forgotten_at, f.forgotten_at), s.reason, s.created_at, {source_sql}, {invited}.id,"
                f" {invited}.status, h.last_any, h.last_moment, h.cap_count, {last}"
            )
            if self.details
            else ", ".join(["NULL"] * 10)
        )
        channel = channel_sql(m.channels)
        if m.channels == ["email"]:  # as before channels: the address's own reasons, then an email refusal
            reach = (
                f"  WHEN s.email_hash IS NOT NULL OR {source_sql} IS NOT NULL THEN 'suppressed'"
                "  WHEN c.email IS NULL OR trim(c.email) = '' THEN 'no_email'"
                "  WHEN c.email_consent = 0 THEN 'no_channel'"
            )
        else:  # a CRM do-not-contact flag stops every channel; a suppressed address or number only its own
            reach = f"  WHEN {source_sql} IS NOT NULL THEN 'suppressed'  WHEN ({channel}) IS NULL THEN 'no_channel'"
        sql = (
            f" {rank}, ?, c.email, c.language, COALESCE(c.timezone, ''), {details},"
            " CASE WHEN c.forgotten_at IS NOT NULL OR f.email_hash IS NOT NULL THEN 'forgotten'"
            f"{reach}"
            f"  WHEN {invited}.id IS NOT NULL AND {counted} THEN 'already_invited'"
            "  WHEN h.last_any > ? THEN 'quiet_period'"
            "  WHEN h.cap_count >= ? THEN 'cap'"
            f"  WHEN {last} > ? THEN 'recontact'"
            # Last of the per-person rules: the (Python) draw is computed only for who reaches it.
            f"  WHEN ? < 1 AND cx_draw(c.id, ?, {key}) >= ? THEN 'not_sampled'"
            f" END, {channel}, COALESCE(c.country, '')"
        )
        params = [
            m.sample,
            *(source_params if self.details else []),
            *source_params,
            to_db(self.now - rules.quiet_period),
            rules.cap.max if rules.cap else None,
            to_db(self.now - recontact) if recontact else None,
            m.sample,
            mid,
            *key_params,
            m.sample,
        ]
        return sql, params

    def joins(self, mid: str, m: Moment) -> tuple[str, list[Any]]:
        """The rule joins over contact `c`; the per-moment history only when the moment has a recontact
        period (a million look-ups saved for a whole-base wave without one)."""
        sql = (
            " LEFT JOIN forgotten f ON f.email_hash = c.email_hash"
            " LEFT JOIN suppressions s ON s.email_hash = c.email_hash"
            " LEFT JOIN plan_hist h ON h.contact_id = c.id" + (sms_join() if uses_sms(m.channels) else "")
        )
        if recontact_for(self.ws, m) is None:
            return sql, []
        return sql + " LEFT JOIN plan_hist_moment hm ON hm.contact_id = c.id AND hm.moment = ?", [mid]

    def gather_events(self, mid: str, m: Moment) -> None:
        trigger = m.trigger
        assert trigger is not None, "an event moment has a trigger (Moment's validator)"
        where, params = audience_sql(m.audience, with_event=True)
        only, only_params = self.contact_filter("e.contact_id")
        key = "? || '|' || e.contact_id || '|e' || e.id"
        rules_sql, rules_params = self._rules_select(mid, m, "'e' || e.id", [])
        joins, join_params = self.joins(mid, m)
        self.sql(
            "INSERT INTO plan_eval (contact_id, moment, event_id, wave, eligible_at, rank, sample, email,"
            " language, tz, forgotten_at, supp_reason, supp_since, source_flag, inv_id, inv_status, last_any, last_moment,"
            " cap_count, moment_last, reason, channel, country)"
            f" SELECT e.contact_id, ?, e.id, NULL, datetime(e.occurred_at, ?),{rules_sql}"
            " FROM events e JOIN contacts c ON c.id = e.contact_id"
            f" LEFT JOIN invitations i ON i.dedupe_key = {key}{joins}"
            f" WHERE e.type = ? AND e.occurred_at <= ? AND e.occurred_at > ? AND {where}{only}",
            [
                mid,
                sql_modifier(trigger.delay),
                *rules_params,
                mid,
                *join_params,
                trigger.event,
                to_db(self.now - trigger.delay),
                to_db(self.now - trigger.expires),
                *params,
                *only_params,
            ],
        )
        expired_from = self.now - trigger.expires - EXPIRED_REPORT_FOR
        self.sql(
            "INSERT INTO plan_eval (contact_id, moment, event_id, eligible_at, rank, sample, email,"
            " language, tz, reason, detail)"
            " SELECT e.contact_id, ?, e.id, datetime(e.occurred_at, ?), ?, ?, c.email, c.language,"
            " COALESCE(c.timezone, ''), 'expired',"
            " printf('event of %s UTC expired on %s UTC (%s after the event)', substr(e.occurred_at, 1, 16),"
            " substr(datetime(e.occurred_at, ?), 1, 16), ?)"
            " FROM events e JOIN contacts c ON c.id = e.contact_id"
            f" WHERE e.type = ? AND e.occurred_at <= ? AND e.occurred_at > ? AND {where}{only}"
            f" AND NOT EXISTS (SELECT 1 FROM invitations i WHERE i.dedupe_key = {key})",
            [
                mid,
                sql_modifier(trigger.delay),
                self.ranked.index(mid),
                m.sample,
                sql_modifier(trigger.expires),
                span(trigger.expires),
                trigger.event,
                to_db(self.now - trigger.expires),
                to_db(expired_from),
                *params,
                *only_params,
                mid,
            ],
        )

    def gather_wave(self, mid: str, m: Moment) -> None:
        assert m.schedule is not None, "a relational moment has a schedule (Moment's validator)"
        wave = wave_for(m.schedule, self.now, self.ws.settings.timezone)
        self.waves[mid] = wave
        where, params = audience_sql(m.audience, with_event=False)
        only, only_params = self.contact_filter("c.id")
        # Already invited = any invitation of this moment and wave (not only by dedupe key). The bare
        # `status` is the one of the MIN(id) row: SQLite guarantees it only when MIN is the query's sole
        # min/max aggregate, hence SUM for `counts` (with MAX beside it, the status was another row's).
        self.sql(
            f"INSERT INTO plan_waved SELECT moment, contact_id, MIN(id), status, SUM(NOT {given_up_sql('invitations')}) > 0"
            " FROM invitations"
            f" WHERE moment = ? AND wave = ? AND kind = 'invitation'{self.contact_filter('contact_id')[0]}"
            " GROUP BY contact_id",
            [mid, wave.id, *only_params],
        )
        rules_sql, rules_params = self._rules_select(mid, m, "?", [wave.id], invited="w")
        joins, join_params = self.joins(mid, m)
        self.sql(
            "INSERT INTO plan_eval (contact_id, moment, event_id, wave, eligible_at, rank, sample, email,"
            " language, tz, forgotten_at, supp_reason, supp_since, source_flag, inv_id, inv_status, last_any, last_moment,"
            " cap_count, moment_last, reason, channel, country)"
            f" SELECT c.id, ?, NULL, ?, ?,{rules_sql}"
            " FROM contacts c LEFT JOIN plan_waved w ON w.moment = ? AND w.contact_id = c.id"
            f"{joins}"
            f" WHERE {where}{only}",
            [mid, wave.id, to_db(wave.start), *rules_params, mid, *join_params, *params, *only_params],
        )

    def history(self) -> None:
        """Per person: the last live invitation (any moment), how many fall in the cap window, and per moment."""
        rules = self.ws.rules
        spans = [rules.quiet_period, timedelta(days=1)]
        if rules.cap:
            spans.append(rules.cap.window)
        since = to_db(self.now - max(spans))
        cap_from = to_db(self.now - rules.cap.window) if rules.cap else self.now_db
        only, only_params = self.contact_filter("contact_id")
        self.sql(
            "CREATE TEMP TABLE plan_hist (contact_id INTEGER PRIMARY KEY, last_any TEXT, last_moment TEXT, cap_count INTEGER)"
        )
        # Read in time order through the partial index (INDEXED BY: left alone, the planner scans every
        # invitation in contact order), each row updating its person's line: the last row read is the
        # latest invitation (on an exact tie, the moment that sorts last). An upsert per row costs less
        # than the GROUP BY's sort of a million rows (1.8 s -> 1.2 s on the bench).
        self.sql(
            "INSERT INTO plan_hist SELECT contact_id, COALESCE(sent_at, send_at), moment, COALESCE(sent_at, send_at) > ?"
            " FROM invitations INDEXED BY invitations_fatigue"
            f" WHERE kind = 'invitation' AND {live_sql()} AND COALESCE(sent_at, send_at) > ?{only}"
            " ORDER BY COALESCE(sent_at, send_at)"
            " ON CONFLICT (contact_id) DO UPDATE SET last_any = excluded.last_any, last_moment = excluded.last_moment,"
            " cap_count = cap_count + excluded.cap_count",
            [cap_from, since, *only_params],
        )
        self.sql(
            "CREATE TEMP TABLE plan_hist_moment (contact_id INTEGER, moment TEXT, last TEXT, PRIMARY KEY (contact_id, moment)) WITHOUT ROWID"
        )
        recontacts = [r for r in (recontact_for(self.ws, self.ws.moments[m]) for m in self.ranked) if r]
        if recontacts:
            self.sql(
                "INSERT INTO plan_hist_moment SELECT contact_id, moment, COALESCE(sent_at, send_at)"
                " FROM invitations INDEXED BY invitations_fatigue"
                f" WHERE kind = 'invitation' AND {live_sql()} AND COALESCE(sent_at, send_at) > ?{only}"
                " AND moment IN (SELECT moment FROM plan_moments WHERE recontact_from IS NOT NULL)"
                " ORDER BY COALESCE(sent_at, send_at) ON CONFLICT (contact_id, moment) DO UPDATE SET last = excluded.last",
                [to_db(self.now - max(recontacts)), *only_params],
            )

    def priority(self) -> None:
        """One invitation per person per run: the highest-ranked moment, then the oldest event.

        Window functions are slow in SQLite (1.3 s over 390k survivors), and only a few percent of the
        survivors have more than one candidate: only theirs are ranked, everyone else is first."""
        self.sql("CREATE TEMP TABLE plan_multi (contact_id INTEGER PRIMARY KEY)")
        self.sql(
            "INSERT INTO plan_multi SELECT contact_id FROM plan_eval WHERE reason IS NULL"
            " GROUP BY contact_id HAVING COUNT(*) > 1"
        )
        self.sql(
            "CREATE TEMP TABLE plan_ok (id INTEGER PRIMARY KEY, contact_id INTEGER, moment TEXT, rank INTEGER,"
            " eligible_at TEXT, event_id INTEGER, tz TEXT, rn INTEGER, top_moment TEXT, channel TEXT, country TEXT)"
        )
        self.sql(
            "INSERT INTO plan_ok SELECT id, contact_id, moment, rank, eligible_at, event_id, tz, 1, moment, channel, country"
            " FROM plan_eval WHERE reason IS NULL AND contact_id NOT IN (SELECT contact_id FROM plan_multi)"
        )
        self.sql(
            "INSERT INTO plan_ok SELECT id, contact_id, moment, rank, eligible_at, event_id, tz,"
            " ROW_NUMBER() OVER w, FIRST_VALUE(moment) OVER w, channel, country"
            " FROM plan_eval WHERE reason IS NULL AND contact_id IN (SELECT contact_id FROM plan_multi)"
            " WINDOW w AS (PARTITION BY contact_id ORDER BY rank, eligible_at, event_id)"
        )

    def slot(self, tz: str, moment: str, channel: str = "email", country: str = "") -> tuple[datetime, date]:
        """Send time (next window opening in the contact's zone; for an SMS, within the SMS hours too, and not
        on a public holiday of the contact's country) and its day in the workspace zone."""
        key = (tz, moment, channel, country if channel == "sms" else "")
        if key not in self.slots:
            m, place = self.ws.moments[moment], zone(tz, self.ws.settings.timezone)
            if channel == "sms":
                sms = self.ws.settings.sms
                send_at = next_sms_opening(
                    self.now,
                    place,
                    send_window_for(self.ws, m),
                    m.sms_hours or sms.hours,
                    holiday_region(country, sms.default_region),
                )
            else:
                send_at = next_opening(self.now, place, send_window_for(self.ws, m))
            self.slots[key] = (send_at, send_at.astimezone(zone(self.ws.settings.timezone, "UTC")).date())
        return self.slots[key]

    def send_windows(self) -> None:
        self.sql(
            "CREATE TEMP TABLE plan_slots (tz TEXT, moment TEXT, channel TEXT, country TEXT, send_at TEXT, send_day TEXT,"
            " PRIMARY KEY (tz, moment, channel, country))"
        )
        groups = self.sql("SELECT DISTINCT tz, moment, channel, country FROM plan_ok WHERE rn = 1").fetchall()
        rows = []
        for tz, moment, channel, country in groups:
            send_at, day = self.slot(tz, moment, channel, country)
            rows.append((tz, moment, channel, country, to_db(send_at), day.isoformat()))
        self.conn.executemany("INSERT INTO plan_slots VALUES (?, ?, ?, ?, ?, ?)", rows)

    def day_counts(self, days: set[str]) -> dict[str, Counter]:
        """Live invitations already counted on each workspace-local day, per moment."""
        tz = zone(self.ws.settings.timezone, "UTC")
        out: dict[str, Counter] = {}
        for day in days:
            start, end = local_day_bounds(date.fromisoformat(day), tz)
            rows = self.sql(
                "SELECT moment, COUNT(*) FROM invitations INDEXED BY invitations_fatigue"
                f" WHERE kind = 'invitation' AND {live_sql()}"
                " AND COALESCE(sent_at, send_at) >= ? AND COALESCE(sent_at, send_at) < ? GROUP BY moment",
                [to_db(start), to_db(end)],
            ).fetchall()
            out[day] = Counter(dict(rows))
        return out

    def daily_caps(self) -> None:
        """Per-moment then workspace daily volumes, counting what is already planned or sent that day."""
        self.sql(
            "CREATE TEMP TABLE plan_quota (moment TEXT, send_day TEXT, remaining INTEGER, PRIMARY KEY (moment, send_day))"
        )
        self.sql("CREATE TEMP TABLE plan_day_quota (send_day TEXT PRIMARY KEY, remaining INTEGER)")
        days = {row[0] for row in self.sql("SELECT DISTINCT send_day FROM plan_slots")}
        existing = self.day_counts(days)
        survivors = dict(self.sql("SELECT moment, COUNT(*) FROM plan_ok WHERE rn = 1 GROUP BY moment").fetchall())
        quotas = []
        for mid in self.ranked:
            m = self.ws.moments[mid]
            for day in days:
                limit = self.spread_limit(mid, m, survivors.get(mid, 0), existing[day][mid])
                if m.daily_cap is not None:
                    limit = m.daily_cap if limit is None else min(limit, m.daily_cap)
                if limit is not None:
                    quotas.append((mid, day, max(0, limit - existing[day][mid])))
        self.conn.executemany("INSERT INTO plan_quota VALUES (?, ?, ?)", quotas)
        if self.ws.rules.daily_cap is not None:
            cap = self.ws.rules.daily_cap
            self.conn.executemany(
                "INSERT INTO plan_day_quota VALUES (?, ?)",
                [(day, max(0, cap - sum(existing[day].values()))) for day in days],
            )
        # An event whose next send window opens after its expiry could never go: `expired`, no quota used.
        self.sql(
            "CREATE TEMP TABLE plan_placed AS"
            " SELECT o.id, o.contact_id, o.moment, o.rank, o.eligible_at, o.event_id, s.send_at, s.send_day,"
            "  q.remaining AS moment_left,"
            "  (o.event_id IS NOT NULL AND s.send_at >= datetime(o.eligible_at, m.expiry_mod)) AS too_late"
            " FROM plan_ok o JOIN plan_slots s ON s.tz = o.tz AND s.moment = o.moment AND s.channel = o.channel"
            "  AND s.country = o.country"
            " JOIN plan_moments m ON m.moment = o.moment"
            " LEFT JOIN plan_quota q ON q.moment = o.moment AND q.send_day = s.send_day WHERE o.rn = 1"
        )
        # The workspace cap counts, in each day, the moments in rank order: a moment's kept rows are its
        # first `moment_left` in time order, so a row's place in the day is the rows kept by the
        # higher-ranked moments that day (a handful of groups, summed here) plus its place in its moment.
        # One window sort instead of two.
        base: dict[str, int] = defaultdict(int)
        offsets = []
        for day, rank, sendable, left in self.sql(
            "SELECT send_day, rank, SUM(NOT too_late), MAX(moment_left) FROM plan_placed GROUP BY send_day, rank"
            " ORDER BY send_day, rank"
        ):
            offsets.append((day, rank, base[day]))
            base[day] += sendable if left is None else min(sendable, left)
        self.sql(
            "CREATE TEMP TABLE plan_day_base (send_day TEXT, rank INTEGER, before INTEGER, PRIMARY KEY (send_day, rank))"
        )
        self.conn.executemany("INSERT INTO plan_day_base VALUES (?, ?, ?)", offsets)
        self.sql(
            "CREATE TEMP TABLE plan_final AS"
            " WITH slotted AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY send_day, rank, too_late"
            "  ORDER BY eligible_at, contact_id) AS moment_n FROM plan_placed)"
            " SELECT c.*, NOT c.too_late AND c.moment_left IS NOT NULL AND c.moment_n > c.moment_left AS moment_cut,"
            # Meaningful for rows neither too late nor cut by their moment's cap (the only ones it decides).
            "  g.remaining AS day_left, b.before + c.moment_n AS day_n"
            " FROM slotted c JOIN plan_day_base b ON b.send_day = c.send_day AND b.rank = c.rank"
            " LEFT JOIN plan_day_quota g ON g.send_day = c.send_day"
        )

    def spread_limit(self, mid: str, m: Moment, survivors: int, already_today: int) -> int | None:
        """With `schedule.spread`, today's share of the wave: what remains over the days left to spread it."""
        if m.kind != "relational":
            return None
        assert m.schedule is not None, "a relational moment has a schedule (Moment's validator)"
        if m.schedule.spread is None:
            return None
        wave = self.waves[mid]
        spread_end = wave.start + m.schedule.spread
        days_left = max(1, math.ceil((spread_end - self.now).total_seconds() / 86400))
        return math.ceil((survivors + already_today) / days_left)

    # --- results ----------------------------------------------------------------------------------

    def collect(self, only: str | None, list_exclusions: bool) -> Plan:
        ws = self.ws
        where, params = (" AND moment = ?", [only]) if only else ("", [])
        planned: list[PlannedInvitation] = []
        languages = {}
        rows = self.sql(
            # The dedupe key is built for the planned rows only (the same text as the candidate queries use).
            "SELECT f.contact_id, f.moment, f.event_id, e.wave, f.send_at, e.language, e.email,"
            " e.moment || '|' || e.contact_id || CASE WHEN e.event_id IS NULL THEN '|w' || e.wave ELSE '|e' || e.event_id END,"
            " e.channel, CASE WHEN e.channel = 'sms' THEN (SELECT phone FROM contacts c WHERE c.id = f.contact_id) END"
            " FROM plan_final f JOIN plan_eval e ON e.id = f.id"
            " WHERE NOT f.too_late AND NOT f.moment_cut AND (f.day_left IS NULL OR f.day_n <= f.day_left)"
            f"{where.replace('moment', 'f.moment')}",
            params,
        )
        for contact_id, moment, event_id, wave, send_at, language, email, key, channel, phone in rows:
            when = from_db(send_at)
            assert when is not None, "every placed row has its slot's send_at (plan_slots, joined)"
            if language not in languages:
                languages[language] = pick_language(language, ws.settings.languages, ws.settings.default_language)
            planned.append(
                PlannedInvitation(
                    contact_id,
                    moment,
                    "invitation",
                    event_id,
                    wave,
                    None,
                    when,
                    languages[language],
                    email,
                    key,
                    channel,
                    phone,
                )
            )
        # Counted without the joins the listing needs (the wave, the detail). A listed run reads the
        # candidates' reasons through the index it needs anyway, so their count needs no sort.
        if list_exclusions:
            self.sql(
                "CREATE INDEX temp.plan_eval_listed ON plan_eval (moment, reason, contact_id, event_id)"
                " WHERE reason IS NOT NULL"
            )
        found: Counter = Counter()
        for moment, reason, n in [
            *self.sql(
                "SELECT moment, reason, COUNT(*) FROM plan_eval"
                f"{' INDEXED BY plan_eval_listed' if list_exclusions else ''}"
                f" WHERE reason IS NOT NULL{where} GROUP BY moment, reason",
                params,
            ),
            *self.sql(
                "SELECT moment, reason, COUNT(*) FROM (SELECT moment, 'lower_priority' AS reason FROM plan_ok WHERE rn > 1"
                " UNION ALL SELECT moment, CASE WHEN too_late THEN 'expired' ELSE 'daily_cap' END FROM plan_final"
                "  WHERE too_late OR moment_cut OR (day_left IS NOT NULL AND day_n > day_left))"
                f" WHERE 1{where} GROUP BY moment, reason",
                params,
            ),
        ]:
            found[moment, reason] += n
        by_moment: dict[str, dict[str, int]] = defaultdict(dict)
        counts: Counter = Counter()
        for (moment, reason), n in sorted(found.items()):
            by_moment[moment][reason] = n
            counts[reason] += n
        exclusions: list[Exclusion] = []
        if list_exclusions and not self.stream_exclusions:
            exclusions = listing(self, by_moment)
        return Plan(
            self.now,
            planned,
            exclusions,
            dict(counts),
            dict(by_moment),
            {mid: w.id for mid, w in self.waves.items() if only in (None, mid)},
        )
