"""`cxctl scorecard`: NPS, CSAT, CES and response rate by moment, journey, segment, attribute and period,
with 95 % margins, minimum-n flags, targets, change against the previous period and a sparkline.

Breakdowns by moment, journey, stage and period read the rollups (counts per moment, local day,
question and value, kept by the import and by triggers): a few hundred thousand rows at most, whatever
the number of responses. Breakdowns by segment or any contact attribute need the contact of each
response, so they scan the responses once (set-based, with the attribute read by a bound JSON path),
unless the workspace lists the attribute in `dimensions:`: then they read its rollups
(cxctl.results.dimension_breakdown).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlite_utils

from cxctl.core.errors import UsageError, did_you_mean
from cxctl.core.timeutil import parse_day
from cxctl.results.closed_loop import ClosedLoop, closed_loop_figures
from cxctl.results.contact_breakdown import fetch_by_contact
from cxctl.results.dimension_breakdown import fetch_by_dimension, rollup_dimension
from cxctl.results.event_breakdown import EVENT_PREFIX, event_dimensions, event_key, fetch_by_event, json_path
from cxctl.results.stats import Mean, Nps, Proportion, mean_change, nps_change, proportion_change, sparkline
from cxctl.workspace.loader import Workspace

TIME_DIMENSIONS = ("week", "month", "quarter")
MOMENT_DIMENSIONS = ("moment", "journey", "stage")
CONTACT_COLUMNS = ("segment", "country", "language", "company", "role")
SPARK_PERIODS = 8


def period_label(day: date, granularity: str) -> str:
    if granularity == "month":
        return f"{day.year}-{day.month:02d}"
    if granularity == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    if granularity == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    raise ValueError(granularity)


def period_start(day: date, granularity: str) -> date:
    if granularity == "month":
        return day.replace(day=1)
    if granularity == "quarter":
        return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    return day - timedelta(days=day.weekday())


def previous_start(start: date, granularity: str) -> date:
    return period_start(start - timedelta(days=1), granularity)


@dataclass
class Indicator:
    """One indicator of one cell: value, its 95 % margin, n, and how it compares."""

    value: float | None
    margin: float | None
    n: int
    insufficient: bool
    interval: tuple[float, float] | None = None
    detail: dict[str, float | None] = field(default_factory=dict)
    target: float | None = None
    target_met: bool | None = None
    change: float | None = None
    significant: bool | None = None
    trend: list[float | None] = field(default_factory=list)
    sparkline: str = ""


@dataclass
class ScoreRow:
    group: dict[str, str]
    period: str | None
    responses: int
    sent: int
    indicators: dict[str, Indicator]
    moments: list[str] = field(default_factory=list)
    """The moments pooled in this row (one, unless --by has no `moment`)."""
    uninvited: int = 0
    """Counted responses without invitation (responses.match contact/none): in the scores, not in the rate."""


@dataclass
class Scorecard:
    by: list[str]
    since: str  # the days covered, inclusive: compute_scorecard resolves the defaults
    until: str
    min_responses: int
    rows: list[ScoreRow]
    moment: str | None = None
    """The moment of -m, when one was asked."""
    notes: list[str] = field(default_factory=list)
    """What the reader must know to read the rows right (e.g. an NPS pooling relational and transactional
    moments); the table prints them under it, stderr for other formats."""
    closed_loop: ClosedLoop | None = None
    """Follow-up cases of the period: called back in time, how fast, and the score after (cxctl.results.closed_loop)."""


@dataclass
class _Cell:
    """Counts accumulated for one (group, period label)."""

    nps: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    csat_k: int = 0
    csat_n: int = 0
    ces: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    ces_agree: int = 0
    responses: int = 0
    sent: int = 0
    uninvited: int = 0
    moments: set = field(default_factory=set)


def compute_scorecard(
    ws: Workspace,
    db: sqlite_utils.Database,
    now: datetime,
    *,
    by: list[str] | None = None,
    since: str | None = None,
    until: str | None = None,
    moment: str | None = None,
) -> Scorecard:
    """The scorecard rows for `by` (dimensions) between `since` and `until` (inclusive days, workspace time zone).

    `by` defaults to moment; `all` (or an empty list) is the whole programme in one row (the report's headline)."""
    by = [b.strip() for b in (["moment"] if by is None else by) if b.strip() and b.strip() != "all"]
    times = [b for b in by if b in TIME_DIMENSIONS]
    if len(times) > 1:
        raise UsageError(f"--by names two periods ({', '.join(times)}): keep one of week, month, quarter")
    if moment is not None and moment not in ws.moments:
        raise UsageError(f"unknown moment {moment!r}: use one of {', '.join(ws.moments)}")
    granularity = times[0] if times else "month"
    groups = [b for b in by if b not in TIME_DIMENSIONS]
    events = event_dimensions(db, groups, MOMENT_DIMENSIONS + CONTACT_COLUMNS)
    _check_attributes(db, groups, events)
    local = ZoneInfo(ws.settings.timezone)
    today = now.astimezone(local).date()
    until_day = parse_day(until, "--until") or today
    since_day = parse_day(since, "--since")
    if since_day is None:
        first_response = db.execute("SELECT MIN(day) FROM response_rollup WHERE n > 0").fetchone()[0]
        first_sent = db.execute("SELECT MIN(hour) FROM sent_rollup WHERE n > 0").fetchone()[0]
        firsts = [date.fromisoformat(first_response)] if first_response else []
        if first_sent:
            firsts.append(datetime.fromisoformat(first_sent + ":00:00+00:00").astimezone(local).date())
        since_day = min(firsts + [until_day])
    if since_day > until_day:
        if until is None:
            raise UsageError(
                f"--since {since_day} is after today ({until_day}, the day of --now): give an earlier --since"
            )
        raise UsageError(f"--since {since_day} is after --until {until_day}: swap them")
    moments = [moment] if moment else list(ws.moments)

    labels: dict[date, list[str]] = defaultdict(list)
    order: list[str] = []
    if times:
        start = previous_start(period_start(since_day, granularity), granularity)
        for _ in range(SPARK_PERIODS - 2):
            start = previous_start(start, granularity)
        day = start
        while day <= until_day:
            label = period_label(day, granularity)
            labels[day].append(label)
            if not order or order[-1] != label:
                order.append(label)
            day += timedelta(days=1)
        shown = {period_label(d, granularity) for d in _days(since_day, until_day)}
    else:
        length = (until_day - since_day).days + 1
        for d in _days(since_day, until_day):
            labels[d].append("current")
        if since is not None:
            for d in _days(since_day - timedelta(days=length), since_day - timedelta(days=1)):
                labels[d].append("previous")
        month = period_start(until_day, "month")
        months = [month]
        for _ in range(SPARK_PERIODS - 1):
            months.insert(0, previous_start(months[0], "month"))
        for d in _days(months[0], until_day):
            labels[d].append("m:" + period_label(d, "month"))
        order = ["m:" + period_label(m, "month") for m in months]
        shown = {"current"}

    # A big page cache and in-memory temporary tables: a breakdown walks millions of index entries and looks
    # each contact up in a temporary table (the defaults, 2 MB and temp files, make that I/O-bound).
    db.execute("PRAGMA temp_store=MEMORY")
    db.execute("PRAGMA cache_size=-262144")
    # One read transaction: a consistent snapshot, and the temporary tables filled without a commit per row.
    db.execute("BEGIN")
    try:
        dimension = rollup_dimension(db, groups, MOMENT_DIMENSIONS, events)
        cells = _fetch(ws, db, groups, moments, labels, local, events, dimension)
        if dimension is None:
            _count_uninvited(ws, db, cells, groups, moments, events)
    finally:
        db.execute("COMMIT")
    rows = _rows(ws, cells, groups, times, order, shown)
    return Scorecard(
        by,
        since_day.isoformat(),
        until_day.isoformat(),
        ws.settings.min_responses,
        rows,
        moment,
        _mixing_notes(ws, rows, by) + _uninvited_notes(ws, rows, moments),
        closed_loop_figures(ws, db, since_day, until_day, now, moment),
    )


def _mixing_notes(ws: Workspace, rows: list[ScoreRow], by: list[str]) -> list[str]:
    """An NPS that pools relational moments (how people feel about the company, asked every quarter) with
    transactional ones (right after a claim or a delivery) mixes two questions: said, with the fix."""
    pooled: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        with_nps = [m for m in row.moments if "nps" in row.indicators and _asks(ws, m, "nps")]
        kinds = {ws.moments[m].kind for m in with_nps}
        if "relational" in kinds and len(kinds) > 1:
            for m in with_nps:
                pooled[ws.moments[m].kind].add(m)
    if not pooled:
        return []
    parts = "; ".join(f"{kind} ({', '.join(sorted(ids))})" for kind, ids in sorted(pooled.items()))
    return [
        f"the NPS of some rows pools relational and transactional moments — {parts}: they answer different "
        f"questions; add moment to --by (--by {','.join(['moment'] + by)}) or pick "
        f"one with -m"
    ]


def _asks(ws: Workspace, moment_id: str, question_type: str) -> bool:
    return any(ws.questions[q].type == question_type for q in ws.moments[moment_id].questions)


def _uninvited_notes(ws: Workspace, rows: list[ScoreRow], moments: list[str]) -> list[str]:
    """Answers counted without invitation (issue 12) are in the scores, not in the response rate: said."""
    uninvited = sum(row.uninvited for row in rows)
    if not uninvited:
        return []
    free = sorted(m for m in moments if ws.moments[m].responses.match != "invitation")
    return [
        f"{uninvited} response(s) came without invitation ({', '.join(free)}: responses.match contact/none): "
        f"they count in the scores and in `responses`, not in the response rate"
    ]


def _count_uninvited(
    ws: Workspace,
    db: sqlite_utils.Database,
    cells: dict[tuple, dict],
    groups: list[str],
    moments: list[str],
    events: Collection[str],
) -> None:
    """Add to each cell the counted responses that have no invitation (moments with responses.match contact or
    none, issue 12), so the response rate leaves them out. Only those moments' rows are read, grouped by the
    same expressions as the breakdown (an answer without invitation has no event: its event attributes are
    empty)."""
    free = [m for m in moments if ws.moments[m].responses.match != "invitation"]
    if not free:
        return
    exprs, _, params = _group_sql(ws, groups, events)
    group = "CAST(" + " || char(31) || ".join(exprs) + " AS TEXT)" if exprs else "''"
    marks = ",".join("?" * len(free))
    rows = db.execute(
        f"""SELECT {group}, r.moment, d.label, COUNT(*) FROM responses r JOIN temp.sc_days d ON d.day = r.day
                          LEFT JOIN contacts c ON c.id = r.contact_id
                          LEFT JOIN invitations i ON i.id = r.invitation_id LEFT JOIN events e ON e.id = i.event_id
                          WHERE r.status = 'counted' AND r.invitation_id IS NULL AND r.moment IN ({marks})
                          GROUP BY 1, 2, 3""",
        [*params, *free],
    ).fetchall()
    for value, moment_id, label, n in rows:
        key = tuple(str(value).split("\x1f")) if exprs else ()
        cell = cells[key + (moment_id, label)]
        cell["uninvited"] = cell.get("uninvited", 0) + n


def _days(first: date, last: date):
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _check_attributes(db: sqlite_utils.Database, groups: list[str], events: set[str]) -> None:
    """A dimension that is neither built in nor an attribute of any contact or event is a typo (`segmnet`,
    `year`): refused with a suggestion, rather than shown as one blank group that looks like a result."""
    for g in groups:
        if g in MOMENT_DIMENSIONS or g in CONTACT_COLUMNS or g in events and not g.startswith(EVENT_PREFIX):
            continue
        if g in events:
            found = db.execute(
                "SELECT NOT EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM events WHERE "
                "json_extract(attributes, ?) IS NOT NULL)",
                [json_path(event_key(g))],
            ).fetchone()[0]
        else:
            found = db.execute(
                "SELECT NOT EXISTS (SELECT 1 FROM contacts) OR EXISTS "
                "(SELECT 1 FROM contacts WHERE json_extract(attributes, ?) IS NOT NULL)",
                [json_path(g)],
            ).fetchone()[0]
        if not found:
            # Attribute names seen on the first contacts and events, for the suggestion only.
            seen = [
                r[0]
                for r in db.execute(
                    "SELECT DISTINCT j.key FROM (SELECT attributes FROM contacts LIMIT 10000) c, "
                    "json_each(c.attributes) j ORDER BY 1"
                )
            ]
            seen_events = [
                r[0]
                for r in db.execute(
                    "SELECT DISTINCT j.key FROM (SELECT attributes FROM events LIMIT 10000) e, "
                    "json_each(e.attributes) j ORDER BY 1"
                )
            ]
            builtin = [*MOMENT_DIMENSIONS, *CONTACT_COLUMNS, *TIME_DIMENSIONS]
            candidates = builtin + seen + seen_events + [EVENT_PREFIX + k for k in seen_events]
            raise UsageError(
                f"--by {g!r}: no contact or event has this attribute{did_you_mean(g, candidates)}; use "
                f"{', '.join(builtin)}"
                + (f", a contact attribute ({', '.join(seen[:12])})" if seen else "")
                + (
                    f", an attribute of the events behind the answers ({', '.join(seen_events[:12])})"
                    if seen_events
                    else ""
                )
            )


def _group_sql(ws: Workspace, groups: list[str], events: Collection[str] = ()) -> tuple[list[str], list[str], list]:
    """SQL expressions for the contact (alias c) and event (alias e) dimensions; attribute names are bound
    JSON paths, never spliced."""
    exprs, names, params = [], [], []
    for g in groups:
        if g in MOMENT_DIMENSIONS:
            continue
        if g in events:
            exprs.append("COALESCE(json_extract(e.attributes, ?), '')")
            params.append(json_path(event_key(g)))
        elif g in CONTACT_COLUMNS:
            exprs.append(f"COALESCE(c.{g}, '')")
        else:
            exprs.append("COALESCE(json_extract(c.attributes, ?), '')")
            params.append(json_path(g))
        names.append(g)
    return exprs, names, params


def _fetch(
    ws: Workspace,
    db: sqlite_utils.Database,
    groups: list[str],
    moments: list[str],
    labels: dict[date, list[str]],
    local: ZoneInfo,
    events: Collection[str] = (),
    dimension: str | None = None,
) -> dict[tuple, dict]:
    """Counts per (contact group values, moment, label): scores, responses, sent invitations; read from the
    rollups of `dimension` when it is the one attribute asked and built (cxctl.results.dimension_breakdown)."""
    q = db.execute
    q("CREATE TEMP TABLE IF NOT EXISTS sc_days (day TEXT, label TEXT)")
    q("CREATE TEMP TABLE IF NOT EXISTS sc_hours (hour TEXT, label TEXT)")
    q("CREATE TEMP TABLE IF NOT EXISTS sc_moments (moment TEXT PRIMARY KEY)")
    for t in ("sc_days", "sc_hours", "sc_moments"):
        q(f"DELETE FROM temp.{t}")
    db.conn.executemany(
        "INSERT INTO temp.sc_days VALUES (?, ?)",
        [(d.isoformat(), label) for d, day_labels in labels.items() for label in day_labels],
    )
    q("CREATE INDEX IF NOT EXISTS temp.sc_days_day ON sc_days(day)")
    hours: list[tuple[str, str]] = []
    if labels:
        first, last = min(labels), max(labels)
        hour = datetime(first.year, first.month, first.day, tzinfo=local).astimezone(UTC)
        end = datetime(last.year, last.month, last.day, tzinfo=local).astimezone(UTC) + timedelta(days=1)
        while hour < end:
            for label in labels.get(hour.astimezone(local).date(), ()):
                hours.append((hour.strftime("%Y-%m-%d %H"), label))
            hour += timedelta(hours=1)
        db.conn.executemany("INSERT INTO temp.sc_hours VALUES (?, ?)", hours)
    q("CREATE INDEX IF NOT EXISTS temp.sc_hours_hour ON sc_hours(hour)")
    db.conn.executemany("INSERT INTO temp.sc_moments VALUES (?)", [(m,) for m in moments])
    scored = sorted(
        {q_ for m in moments for q_ in ws.moments[m].questions if ws.questions[q_].type in ("nps", "csat", "ces")}
    )
    marks = ",".join("?" * len(scored)) or "NULL"
    if dimension is not None:
        return fetch_by_dimension(ws, db, dimension, moments)
    exprs, _, params = _group_sql(ws, groups, events)
    if events:
        return fetch_by_event(ws, db, exprs, params, moments)
    width = len(exprs)
    out: dict[tuple, dict] = defaultdict(lambda: {"scores": defaultdict(int), "responses": 0, "sent": 0})
    if not exprs:
        # The rollups drive the loops (CROSS JOIN fixes the order): moment, then a day range of the primary key.
        days = [min(labels).isoformat(), max(labels).isoformat()] if labels else ["", ""]
        span = [hours[0][0], hours[-1][0]] if hours else ["", ""]
        scores = q(
            f"""SELECT r.moment, d.label, r.question, r.value, SUM(r.n) FROM temp.sc_moments m
                       CROSS JOIN score_rollup r ON r.moment = m.moment AND r.day BETWEEN ? AND ?
                       CROSS JOIN temp.sc_days d ON d.day = r.day
                       WHERE r.question IN ({marks}) AND r.n <> 0 GROUP BY 1, 2, 3, 4""",
            days + scored,
        )
        responses = q(
            """SELECT r.moment, d.label, SUM(r.n) FROM temp.sc_moments m
                         CROSS JOIN response_rollup r ON r.moment = m.moment AND r.day BETWEEN ? AND ?
                         CROSS JOIN temp.sc_days d ON d.day = r.day WHERE r.n <> 0 GROUP BY 1, 2""",
            days,
        )
        sent = q(
            """SELECT s.moment, h.label, SUM(s.n) FROM temp.sc_moments m
                    CROSS JOIN sent_rollup s ON s.moment = m.moment AND s.hour BETWEEN ? AND ?
                    CROSS JOIN temp.sc_hours h ON h.hour = s.hour WHERE s.n <> 0 GROUP BY 1, 2""",
            span,
        )
    else:
        return fetch_by_contact(ws, db, exprs, params, moments, labels, hours)
    for row in scores.fetchall():
        key = tuple(str(v) for v in row[:width]) + (row[width], row[width + 1])
        out[key]["scores"][(row[width + 2], row[width + 3])] += row[width + 4]
    for row in responses.fetchall():
        out[tuple(str(v) for v in row[:width]) + (row[width], row[width + 1])]["responses"] += row[width + 2]
    for row in sent.fetchall():
        out[tuple(str(v) for v in row[:width]) + (row[width], row[width + 1])]["sent"] += row[width + 2]
    return out


def _moment_group(ws: Workspace, moment_id: str, dimension: str) -> str:
    spec = ws.moments[moment_id]
    return {"moment": moment_id, "journey": spec.journey, "stage": spec.stage}[dimension]


def _rows(
    ws: Workspace, raw: dict[tuple, dict], groups: list[str], times: list[str], order: list[str], shown: set[str]
) -> list[ScoreRow]:
    contact_groups = [g for g in groups if g not in MOMENT_DIMENSIONS]
    cells: dict[tuple, dict[str, _Cell]] = defaultdict(lambda: defaultdict(_Cell))
    for key, data in raw.items():
        *contact_values, moment_id, label = key
        contact_map = dict(zip(contact_groups, contact_values))
        group = tuple(_moment_group(ws, moment_id, g) if g in MOMENT_DIMENSIONS else contact_map[g] for g in groups)
        cell = cells[group][label]
        cell.moments.add(moment_id)
        cell.responses += data["responses"]
        cell.sent += data["sent"]
        cell.uninvited += data.get("uninvited", 0)
        spec = ws.moments[moment_id]
        kinds: dict[str, str] = {}  # question type → the moment's first question of that type
        for qid in spec.questions:
            kinds.setdefault(ws.questions[qid].type, qid)
        for (qid, value), n in data["scores"].items():
            question = ws.questions[qid]
            if kinds.get(question.type) != qid:
                continue  # only the first question of each type is the moment's indicator
            if question.type == "nps":
                cell.nps[value] += n
            elif question.type == "csat":
                assert question.max is not None, "Question._scale gives CSAT its default max"
                top = question.top_box or 2
                cell.csat_n += n
                cell.csat_k += n if value > question.max - top else 0
            elif question.type == "ces":
                assert question.max is not None, "Question._scale gives CES its default max"
                cell.ces[value] += n
                cell.ces_agree += n if value >= question.max - 2 else 0
    minimum = ws.settings.min_responses
    rows = []
    for group, by_label in sorted(cells.items()):
        labels = [label for label in order if label in shown] if times else ["current"]
        for label in labels:
            if label not in by_label:
                continue
            cell = by_label[label]
            previous = None
            if times:
                index = order.index(label)
                previous = by_label.get(order[index - 1]) if index > 0 else None
                window = order[max(0, index - SPARK_PERIODS + 1) : index + 1]
            else:
                previous = by_label.get("previous")
                window = order
            trend_cells = [by_label.get(period) for period in window]
            indicators = _indicators(ws, cell, previous, trend_cells, minimum)
            if not indicators and cell.sent == 0:
                continue
            rows.append(
                ScoreRow(
                    dict(zip(groups, group)),
                    label if times else None,
                    cell.responses,
                    cell.sent,
                    indicators,
                    sorted(cell.moments),
                    cell.uninvited,
                )
            )
    return rows


def _target(ws: Workspace, moments: set, name: str) -> float | None:
    values = {getattr(ws.moments[m].targets, name) for m in moments}
    return values.pop() if len(values) == 1 else None


def _measure(cell: _Cell | None, name: str):
    if cell is None:
        return None
    if name == "nps":
        return Nps(*_nps_parts(cell.nps)) if sum(cell.nps.values()) else None
    if name == "csat":
        return Proportion(cell.csat_k, cell.csat_n) if cell.csat_n else None
    if name == "ces":
        return Mean.of(cell.ces) if sum(cell.ces.values()) else None
    invited = cell.responses - cell.uninvited  # answers without invitation have no place in a response rate
    return Proportion(min(invited, cell.sent), cell.sent) if cell.sent else None


def _nps_parts(counts: dict[int, int]) -> tuple[int, int, int]:
    return (
        sum(n for v, n in counts.items() if v >= 9),
        sum(n for v, n in counts.items() if 7 <= v <= 8),
        sum(n for v, n in counts.items() if v <= 6),
    )


def _indicators(
    ws: Workspace, cell: _Cell, previous: _Cell | None, trend: list[_Cell | None], minimum: int
) -> dict[str, Indicator]:
    out = {}
    for name in ("nps", "csat", "ces", "response_rate"):
        measure = _measure(cell, name)
        if measure is None:
            continue
        before = _measure(previous, name)
        n = measure.n
        insufficient = n < minimum
        series = []
        for t in trend:
            m = _measure(t, name)
            series.append(None if m is None or m.n < minimum else _value(m))
        if name == "nps":
            ind = Indicator(
                measure.score,
                measure.margin,
                n,
                insufficient,
                interval=measure.interval,
                detail={
                    "promoters": measure.share(measure.promoters),
                    "passives": measure.share(measure.passives),
                    "detractors": measure.share(measure.detractors),
                },
            )
            change = nps_change(measure, before) if before is not None else None
        elif name == "ces":
            agree = Proportion(cell.ces_agree, n)
            ind = Indicator(measure.value, measure.margin, n, insufficient, detail={"agree": agree.value})
            change = mean_change(measure, before) if before is not None else None
        else:
            ind = Indicator(measure.value, measure.margin, n, insufficient, interval=measure.interval)
            change = proportion_change(measure, before) if before is not None else None
        if change is not None and before.n >= minimum and not insufficient:
            ind.change, ind.significant = change.delta, change.significant
        ind.target = _target(ws, cell.moments, name)
        if ind.target is not None and not insufficient and ind.value is not None:
            ind.target_met = ind.value >= ind.target
        ind.trend = series
        ind.sparkline = sparkline(series)
        out[name] = ind
    return out


def format_value(ind: Indicator, digits: int = 0) -> str:
    """`93 ±15`: the value and its 95 % margin; `too few` below the minimum n (no value to read). The
    terminal's table and the report both write a figure with it, so they mark small cells alike."""
    if ind.insufficient:
        return "too few"
    text = f"{ind.value:.{digits}f}"
    return text + (f" ±{ind.margin:.{digits}f}" if ind.margin is not None else "")


def _value(measure) -> float | None:
    return measure.score if isinstance(measure, Nps) else measure.value
