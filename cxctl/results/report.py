"""`cxctl report`: the data of a shareable results report — headline, per moment and per journey stage
trends with their 95 % bands, distributions, response rates, reasons, verbatim themes, open follow-ups
and operational indicators — as plain dataclasses. `cxctl.results.report_render` turns it into one
self-contained HTML page; the web side (`/report`) calls the same two functions.

Every figure comes from the scorecard's own functions (compute_scorecard, format_value), the loop's
(reason_counts, themes, open_followup_ages) and `ops` (counts, beside_scorecard): the report has no
statistics of its own, so it always says what `cxctl scorecard` says for the same period.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlite_utils

from cxctl.core.errors import UsageError
from cxctl.results.closed_loop import ClosedLoop
from cxctl.results.followups import FollowupAges, open_followup_ages
from cxctl.results.operational import OpsIndicator, beside_scorecard, counts
from cxctl.results.scorecard import Indicator, ScoreRow, compute_scorecard, format_value, period_label, period_start
from cxctl.results.verbatims import Themes, reason_counts, themes
from cxctl.workspace.loader import Workspace
from cxctl.workspace.model import localise

INDICATORS = ("nps", "csat", "ces", "response_rate")
DIGITS = {"nps": 0, "csat": 0, "ces": 2, "response_rate": 0}
GRANULARITIES = ("week", "month")


@dataclass
class Figure:
    """One indicator of one cell, as the scorecard computed it, with the terminal's text for it."""

    indicator: str
    text: str
    value: float | None
    margin: float | None
    low: float | None
    high: float | None
    n: int
    insufficient: bool
    target: float | None
    target_met: bool | None
    change: float | None
    significant: bool | None


@dataclass
class Point:
    period: str
    figure: Figure | None


@dataclass
class Distribution:
    """Shares of an indicator's answers: NPS categories, or each value of a CSAT / CES scale."""

    indicator: str
    n: int
    parts: list[tuple[str, int, float]]  # label, count, share in %


@dataclass
class Section:
    """A moment, or a journey stage (all its moments together)."""

    kind: str  # moment | stage
    key: str
    title: str
    subtitle: str
    responses: int
    sent: int
    figures: dict[str, Figure] = field(default_factory=dict)
    trends: dict[str, list[Point]] = field(default_factory=dict)
    distributions: list[Distribution] = field(default_factory=list)
    reasons: list[tuple[str, int]] = field(default_factory=list)
    themes: Themes | None = None
    ops: list[OpsIndicator] = field(default_factory=list)
    breakdown: list[tuple[str, dict[str, Figure], int]] = field(default_factory=list)
    open_followups: dict[str, int] = field(default_factory=dict)


@dataclass
class Report:
    workspace: str
    language: str
    since: str
    until: str
    generated_at: str
    granularity: str
    periods: list[str]
    min_responses: int
    by: str | None
    headline: dict[str, Figure]
    moments: list[Section]
    stages: list[Section]
    followups: FollowupAges
    ops: list[OpsIndicator] = field(default_factory=list)
    closed_loop: ClosedLoop | None = None  # the scorecard's own figures (cxctl.results.closed_loop)


def figure(name: str, ind: Indicator | None) -> Figure | None:
    """The scorecard's indicator with its value exactly as `cxctl scorecard` prints it and its 95 % band
    (the Wilson interval of a proportion, value ± margin otherwise)."""
    if ind is None:
        return None
    low: float | None
    high: float | None
    if ind.interval is not None:
        low, high = ind.interval
    elif ind.value is not None and ind.margin is not None:
        low, high = ind.value - ind.margin, ind.value + ind.margin
    else:
        low = high = None
    return Figure(
        name,
        format_value(ind, DIGITS[name]),
        ind.value,
        ind.margin,
        low,
        high,
        ind.n,
        ind.insufficient,
        ind.target,
        ind.target_met,
        ind.change,
        ind.significant,
    )


def figures(row: ScoreRow | None) -> dict[str, Figure]:
    if row is None:
        return {}
    return {k: f for k in INDICATORS if (f := figure(k, row.indicators.get(k))) is not None}


def period_labels(since: str, until: str, granularity: str) -> list[str]:
    """Every period label from `since` to `until` in order (empty periods included: a gap in a chart)."""
    day, last, out = period_start(date.fromisoformat(since), granularity), date.fromisoformat(until), []
    while day <= last:
        out.append(period_label(day, granularity))
        day = period_start(day + timedelta(days=32 if granularity == "month" else 7), granularity)
    return out


def build_report(
    ws: Workspace,
    db: sqlite_utils.Database,
    now: datetime,
    *,
    since: str | None = None,
    until: str | None = None,
    moment: str | None = None,
    by: str | None = None,
    lang: str | None = None,
    granularity: str | None = None,
    ops: list[str] | None = None,
) -> Report:
    """The report's data for local days `since`..`until` (the scorecard's defaults: from the first
    response to the day of `now`). `by` adds a breakdown of each moment by a contact column or attribute;
    `granularity` (week or month) defaults to weeks up to 13 weeks, months beyond; `ops` adds
    operational indicators (`START..END` or an event type) beside the moments they concern."""
    language = lang or ws.settings.default_language
    if language not in ("fr", "en"):
        raise UsageError(f"unknown --lang {language!r}: use fr or en")
    if granularity is not None and granularity not in GRANULARITIES:
        raise UsageError(f"unknown --period {granularity!r}: use week or month")
    card = compute_scorecard(ws, db, now, by=["moment"], since=since, until=until, moment=moment)
    since_day, until_day = card.since, card.until
    if granularity is None:
        span = (date.fromisoformat(until_day) - date.fromisoformat(since_day)).days
        granularity = "week" if span <= 91 else "month"
    common = {"since": since, "until": until, "moment": moment}
    headline_rows = compute_scorecard(ws, db, now, by=["all"], **common).rows
    periods = period_labels(since_day, until_day, granularity)
    moments = [moment] if moment else list(ws.moments)
    by_moment = {row.group["moment"]: row for row in card.rows}
    timed: dict[str, dict[str, ScoreRow]] = defaultdict(dict)
    for row in compute_scorecard(ws, db, now, by=["moment", granularity], **common).rows:
        assert row.period is not None, "a scorecard by period labels each row with its period"
        timed[row.group["moment"]][row.period] = row
    ages = open_followup_ages(ws, db, now, since_day, until_day, moments)
    extra = beside_scorecard(ws, db, ops, granularity, since_day, until_day) if ops else []
    breakdown: dict[str, list] = defaultdict(list)
    if by:
        for row in compute_scorecard(ws, db, now, by=["moment", by], **common).rows:
            breakdown[row.group["moment"]].append((row.group[by] or "(none)", figures(row), row.responses))
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    for r in reason_counts(ws, db, moment, since_day, until_day):
        label = next(
            (
                localise(c.label, language, ws.settings.default_language)
                for c in ws.questions[r.question].choices
                if c.id == r.reason
            ),
            r.reason,
        )
        reasons[r.moment][label] += r.count
    values = _value_counts(ws, db, moments, since_day, until_day)
    sections = []
    for mid in moments:
        spec = ws.moments[mid]
        moment_row = by_moment.get(mid)
        section = Section(
            "moment",
            mid,
            localise(spec.name, language, ws.settings.default_language) or mid,
            f"{localise(ws.journeys[spec.journey].name, language, ws.settings.default_language)} · {spec.stage}",
            moment_row.responses if moment_row else 0,
            moment_row.sent if moment_row else 0,
            figures(moment_row),
        )
        section.trends = _trends(timed.get(mid, {}), periods)
        section.distributions = _distributions(ws, values.get(mid, {}))
        section.reasons = reasons[mid].most_common()
        section.themes = themes(ws, db, mid, since_day, until_day)
        attached = [o for o in extra if spec.trigger is not None and spec.trigger.event in o.types]
        if spec.trigger is not None and not any(o.kind == "count" and o.spec == spec.trigger.event for o in attached):
            attached.insert(
                0,
                OpsIndicator(
                    spec.trigger.event, "count", counts(ws, db, spec.trigger.event, granularity, since_day, until_day)
                ),
            )
        section.ops = attached
        section.breakdown = breakdown.get(mid, [])
        section.open_followups = ages.by_moment.get(mid, {})
        sections.append(section)
    attached_specs = {o.spec for s in sections for o in s.ops}
    stages = _stage_sections(ws, db, now, common, granularity, periods, language)
    report = Report(
        ws.settings.name,
        language,
        since_day,
        until_day,
        now.isoformat(),
        granularity,
        periods,
        card.min_responses,
        by,
        figures(headline_rows[0] if headline_rows else None),
        sections,
        stages,
        ages,
        [o for o in extra if o.spec not in attached_specs],
    )
    report.closed_loop = card.closed_loop
    return report


def _trends(rows: dict[str, ScoreRow], periods: list[str]) -> dict[str, list[Point]]:
    out: dict[str, list[Point]] = {}
    for name in INDICATORS:
        points = [Point(p, figure(name, rows[p].indicators.get(name)) if p in rows else None) for p in periods]
        if any(p.figure is not None for p in points):
            out[name] = points
    return out


def _stage_sections(
    ws: Workspace, db, now: datetime, common: dict, granularity: str, periods: list[str], language: str
) -> list[Section]:
    """One section per journey stage that has a moment: its figures and trends, moments together."""
    current = {
        (r.group["journey"], r.group["stage"]): r
        for r in compute_scorecard(ws, db, now, by=["journey", "stage"], **common).rows
    }
    timed: dict[tuple, dict[str, ScoreRow]] = defaultdict(dict)
    for timed_row in compute_scorecard(ws, db, now, by=["journey", "stage", granularity], **common).rows:
        assert timed_row.period is not None, "a scorecard by period labels each row with its period"
        timed[(timed_row.group["journey"], timed_row.group["stage"])][timed_row.period] = timed_row
    out = []
    for jid, journey in ws.journeys.items():
        for stage in journey.stages:
            row = current.get((jid, stage))
            if row is None:
                continue
            names = [mid for mid, m in ws.moments.items() if m.journey == jid and m.stage == stage]
            section = Section(
                "stage",
                f"{jid}/{stage}",
                f"{localise(journey.name, language, ws.settings.default_language)} · {stage}",
                ", ".join(names),
                row.responses,
                row.sent,
                figures(row),
            )
            section.trends = _trends(timed.get((jid, stage), {}), periods)
            out.append(section)
    return out


def _value_counts(
    ws: Workspace, db, moments: list[str], since: str, until: str
) -> dict[str, dict[str, dict[int, int]]]:
    """Answers per value of each moment's indicator questions (the first of each type, as the scorecard
    counts them), from the rollups over the period: moment → question → value → count."""
    out: dict[str, dict[str, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    for mid in moments:
        kinds: dict[str, str] = {}
        for qid in ws.moments[mid].questions:
            if ws.questions[qid].type in ("nps", "csat", "ces"):
                kinds.setdefault(ws.questions[qid].type, qid)
        for qid in kinds.values():
            for value, n in db.execute(
                "SELECT value, SUM(n) FROM score_rollup WHERE moment = ? AND day BETWEEN ? AND ? "
                "AND question = ? GROUP BY value HAVING SUM(n) <> 0 ORDER BY value",
                [mid, since, until, qid],
            ).fetchall():
                out[mid][qid][value] = n
    return out


def _distributions(ws: Workspace, values: dict[str, dict[int, int]]) -> list[Distribution]:
    out = []
    for qid, counts_ in values.items():
        question = ws.questions[qid]
        total = sum(counts_.values())
        if not total:
            continue
        if question.type == "nps":
            parts = [
                ("detractors", sum(n for v, n in counts_.items() if v <= 6)),
                ("passives", sum(n for v, n in counts_.items() if 7 <= v <= 8)),
                ("promoters", sum(n for v, n in counts_.items() if v >= 9)),
            ]
        else:
            low, high = question.scale or (min(counts_), max(counts_))
            parts = [(str(v), counts_.get(v, 0)) for v in range(low, high + 1)]
        out.append(Distribution(question.type, total, [(label, n, 100.0 * n / total) for label, n in parts]))
    return out
