"""`cxctl responses …`, `cxctl scorecard`, `cxctl followups …`, `cxctl reasons`, `cxctl verbatims`, `cxctl ops …`:
bring survey answers in, score them, and close the loop."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from cxctl import store
from cxctl.cli import followups
from cxctl.cli.common import JsonOption, MomentOption, NowOption, WorkspaceOption, now_for, open_workspace
from cxctl.core import output

if TYPE_CHECKING:
    from cxctl.results.verbatims import ReasonCount

responses_app = typer.Typer(help="Survey responses: import tool exports, review the quarantine.", no_args_is_help=True)
ops_app = typer.Typer(help="Operational indicators from events (durations, counts per period).", no_args_is_help=True)

SinceOption = Annotated[
    Optional[str], typer.Option("--since", help="From this day (inclusive, ISO, workspace time zone, e.g. 2026-01-01).")
]
UntilOption = Annotated[
    Optional[str], typer.Option("--until", help="Up to this day (inclusive). Default: today (the day of --now).")
]
OpenUntilOption = Annotated[
    Optional[str], typer.Option("--until", help="Up to this day (inclusive). Default: no limit.")
]
CsvOption = Annotated[bool, typer.Option("--csv", help="Print CSV for spreadsheets and BI tools.")]


def sync_dimensions(ws, db) -> None:
    """Build the rollups of the dimensions cxctl.yaml lists and not built yet (drop the unlisted ones), saying
    so on stderr: building reads every response once, later scorecards by them read the rollups."""
    from cxctl.store.dimensions import sync

    result = sync(db, ws.settings.dimensions)
    if result.built:
        output.info(
            f"built the rollups of dimension(s) {', '.join(result.built)} in {result.seconds:.1f} s: scorecards by "
            f"{'them' if len(result.built) > 1 else 'it'} now read counts per value"
        )
    if result.dropped:
        output.info(f"dropped the rollups of dimension(s) {', '.join(result.dropped)} (no longer in dimensions:)")


def _fmt(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


@responses_app.command("import")
def responses_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="The export: Qualtrics, SurveyMonkey, Google Forms, Typeform, LimeSurvey CSV, generic CSV or JSONL."
        ),
    ],
    format: Annotated[
        Optional[str],
        typer.Option(
            "--format",
            help="qualtrics, surveymonkey, google_forms, typeform, limesurvey, generic or jsonl. Default: detected from the headers.",
        ),
    ] = None,
    moment: MomentOption = None,
    encoding: Annotated[
        Optional[str], typer.Option("--encoding", help="Force the encoding. Default: detected.")
    ] = None,
    delimiter: Annotated[
        Optional[str], typer.Option("--delimiter", help="Force the delimiter. Default: sniffed.")
    ] = None,
    date_format: Annotated[
        Optional[str],
        typer.Option(
            "--date-format",
            help="strptime format of the dates, e.g. %m/%d/%Y %H:%M:%S. Default: the moment's responses.date_format, else one order (dd/mm or mm/dd) decided for the whole file from its dates.",
        ),
    ] = None,
    reread: Annotated[
        bool,
        typer.Option(
            "--reread",
            help="Read again the rows already imported unchanged (a changed responses mapping is noticed without it).",
        ),
    ] = False,
    json_: JsonOption = False,
    now: NowOption = None,
    workspace: WorkspaceOption = None,
) -> int:
    """Import a survey export: match each row to its invitation, keep what matches nothing in quarantine.

    Exit 1 when rows went to quarantine (they are kept: see `cxctl responses quarantine`).

    Example: cxctl responses import qualtrics_export.csv --moment nps_relational
    """
    from cxctl.core.csvnames import parse_delimiter
    from cxctl.results.importer import import_responses

    ws = open_workspace(workspace)
    db = store.connect(ws.database)
    with output.working(f"importing responses from {file}…"):
        report = import_responses(
            ws,
            db,
            file,
            now_for(ws, now),
            format=format,
            moment=moment,
            encoding=encoding,
            delimiter=parse_delimiter(delimiter),
            date_format=date_format,
            reread=reread,
        )
    if json_:
        output.print_json(report)
    else:
        counts = {
            "read": report.rows_read,
            "new": report.inserted,
            "replaced": report.replaced,
            "unchanged": report.unchanged,
            "counted": report.counted,
            "partial": report.partial,
            "duplicates": report.duplicates,
            "skipped": sum(report.skipped.values()),
            "quarantined": report.quarantined_total,
        }
        output.print_table(
            f"{report.format} responses to {report.moment or 'several moments'} from {Path(report.file).name}",
            list(counts),
            [list(counts.values())],
        )
        if report.skipped:
            output.info("skipped (never count): " + ", ".join(f"{n} {k}" for k, n in sorted(report.skipped.items())))
    for note in report.notes:
        output.warn(note)
    sync_dimensions(ws, db)
    followups.tell_owners(ws, db, now_for(ws, now))
    for problem in report.problems[:20]:
        output.warn(f"{report.file}:{problem.row}: {problem.kind}: {problem.reason}")
    if report.problems:
        output.warn(
            f"{len(report.problems)} row(s) in quarantine with their reasons: fix them (or the contacts) and import "
            f"again; list them with `cxctl responses quarantine`"
        )
        raise typer.Exit(1)
    raise typer.Exit(0)


@responses_app.command("quarantine")
def responses_quarantine(
    moment: MomentOption = None, json_: JsonOption = False, workspace: WorkspaceOption = None
) -> None:
    """List the rows kept in quarantine (unmatched or invalid) with their file, row and reason.

    Example: cxctl responses quarantine --moment delivery_csat
    """
    from cxctl.results.quarantine import list_quarantine

    ws = open_workspace(workspace)
    rows = list_quarantine(store.read(ws.database), moment, list(ws.moments))
    if json_:
        output.print_json(rows)
        return
    output.print_table(
        "quarantine",
        ["id", "file", "row", "moment", "kind", "reason"],
        [[r.id, r.file_name, r.row_number, r.moment or "", r.kind, r.reason] for r in rows],
    )


def _score_columns(card) -> tuple[list[str], list[list]]:
    """Flat columns for CSV/markdown: one row per cell, every indicator's value, margin, n, flags and
    sparkline (the trend's values are in the JSON)."""
    head = [b for b in card.by if b not in ("week", "month", "quarter")] + (
        ["period"] if any(b in ("week", "month", "quarter") for b in card.by) else []
    )
    names = ["nps", "csat", "ces", "response_rate"]
    columns = head + ["responses", "sent"]
    for n in names:
        columns += [
            n,
            f"{n}_margin",
            f"{n}_n",
            f"{n}_insufficient",
            f"{n}_target_met",
            f"{n}_change",
            f"{n}_significant",
            f"{n}_trend",
        ]
    columns += ["nps_promoters", "nps_passives", "nps_detractors", "ces_agree"]
    rows = []
    for row in card.rows:
        values = [row.group.get(b, "") for b in head if b != "period"] + ([row.period] if "period" in head else [])
        values += [row.responses, row.sent]
        for n in names:
            ind = row.indicators.get(n)
            values += (
                [""] * 8
                if ind is None
                else [
                    _fmt(ind.value),
                    _fmt(ind.margin),
                    ind.n,
                    int(ind.insufficient),
                    "" if ind.target_met is None else int(ind.target_met),
                    _fmt(ind.change),
                    "" if ind.significant is None else int(ind.significant),
                    ind.sparkline,
                ]
            )
        nps, ces = row.indicators.get("nps"), row.indicators.get("ces")
        values += [_fmt(nps.detail.get(k)) if nps else "" for k in ("promoters", "passives", "detractors")]
        values += [_fmt(ces.detail.get("agree")) if ces else ""]
        rows.append(values)
    return columns, rows


INDICATOR_LABELS = {"nps": "NPS", "csat": "CSAT %", "ces": "CES", "response_rate": "resp. %"}


def _value(ind, digits: int = 0) -> str:
    from cxctl.results.scorecard import format_value

    return format_value(ind, digits)


def _target(ind) -> str:
    if ind.target_met is None:
        return ""
    return ("✓ " if ind.target_met else "✗ ") + f"{ind.target:g}"


def _change(ind, digits: int = 0) -> str:
    return "" if ind.change is None else f"{ind.change:+.{digits}f}" + ("*" if ind.significant else "")


def scorecard_table(card, granularity: str):
    """The scorecard as people read it at 80 columns: one line per indicator, stacked under its group (and
    period), the group named once; value ± margin, n, target, change and trend in columns of their own,
    explained by the legend under the table."""
    from cxctl.results.scorecard import SPARK_PERIODS, TIME_DIMENSIONS

    head = [b for b in card.by if b not in TIME_DIMENSIONS]
    timed = len(head) != len(card.by)
    # The sparkline is SPARK_PERIODS characters: its header says what they span, on two lines of that width.
    trend = f"trend\n{SPARK_PERIODS} {granularity if timed else 'month'}s"
    columns = head + (["period"] if timed else []) + ["measure", "value", "n", "goal", "change", trend]
    rows, previous = [], None
    for row in card.rows:
        # People without the attribute (or forgotten) form a group of their own: named, not a blank cell.
        names = [row.group.get(b, "") or "(none)" for b in head] + ([row.period] if timed else [])
        for name, ind in ((k, row.indicators[k]) for k in INDICATOR_LABELS if k in row.indicators):
            digits = 2 if name == "ces" else 0
            shown = names if names != previous else [""] * len(names)
            previous = names
            rows.append(
                shown
                + [
                    INDICATOR_LABELS[name],
                    _value(ind, digits),
                    ind.n,
                    _target(ind),
                    _change(ind, digits),
                    ind.sparkline,
                ]
            )
    title = f"scorecard {card.since} → {card.until}" + (f" · moment {card.moment}" if card.moment else "")
    # The figures never wrap; when the room runs out (three dimensions at 80 columns), the names fold.
    return output.table(
        title,
        columns,
        rows,
        compact=True,
        no_wrap=columns[len(head) :],
        justify={"value": "right", "change": "right", "goal": "left", trend: "left"},
    )


def scorecard_legend(card) -> str:
    """What the table's marks mean, only those it shows."""
    shown = [ind for row in card.rows for ind in row.indicators.values()]
    parts = ["value ±95 % margin (NPS: adjusted Wald)"]
    if any(ind.insufficient for ind in shown):
        parts.append(f"too few: n under {card.min_responses}, no verdict")
    if any(ind.target_met is not None for ind in shown):
        parts.append("goal ✓ met, ✗ missed")
    if any(ind.change is not None for ind in shown):
        parts.append("change: against the previous period, * significant at 95 %")
    parts.append("trend: oldest → newest")
    if any("response_rate" in row.indicators for row in card.rows):
        parts.append("resp. %: responses ÷ invitations sent")
    return " · ".join(parts)


def scorecard_command(
    by: Annotated[
        str,
        typer.Option(
            "--by",
            help="Comma-separated: moment, journey, stage, segment, country, language, company, role, any contact attribute, and one of week, month, quarter; `all` for the whole programme in one row.",
        ),
    ] = "moment",
    since: SinceOption = None,
    until: UntilOption = None,
    moment: MomentOption = None,
    format: Annotated[str, typer.Option("--format", help="table, json, csv or markdown.")] = "table",
    ops: Annotated[
        Optional[list[str]],
        typer.Option(
            "--ops",
            help="Also show an operational indicator over the same period: START..END (median and p90 hours between two events) or an event type (count). Repeatable.",
        ),
    ] = None,
    json_: JsonOption = False,
    now: NowOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """NPS, CSAT, CES and response rate with 95 % margins, targets, change and trend.

    Cells below workspace.min_responses are marked insufficient; `*` marks a significant change (95 %).
    With --ops, the operational indicators of the same period follow, per period of --by (month by default).

    Example: cxctl scorecard --by moment,month --since 2026-01-01 --ops order_placed..order_delivered --ops complaint
    """
    from cxctl.results.operational import beside_scorecard
    from cxctl.results.scorecard import TIME_DIMENSIONS, compute_scorecard

    ws = open_workspace(workspace)
    db = store.read(ws.database)
    sync_dimensions(ws, db)
    card = compute_scorecard(ws, db, now_for(ws, now), by=by.split(","), since=since, until=until, moment=moment)
    granularity = next((b for b in card.by if b in TIME_DIMENSIONS), "month")
    assert card.since is not None and card.until is not None, "compute_scorecard resolves the period it covers"
    indicators = beside_scorecard(ws, db, ops, granularity, card.since, card.until) if ops else []
    _warn_unknown_types(ws, db, [t for indicator in indicators for t in indicator.types])
    fmt = "json" if json_ else format
    if fmt != "table":
        for note in card.notes:
            output.warn(note)
    if fmt == "json":
        output.print_json({"scorecard": card, "ops": indicators} if ops else card)
        return
    if indicators and fmt != "table":
        from cxctl.core.errors import UsageError

        raise UsageError(
            f"--ops is shown with --format table or json, not {fmt}: drop --ops here, and get the "
            f"operational figures with `cxctl ops duration|count … --json`"
        )
    if fmt in ("csv", "markdown"):
        columns, rows = _score_columns(card)
        if fmt == "csv":
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows(rows)
        else:
            sys.stdout.write("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n")
            for r in rows:
                sys.stdout.write("| " + " | ".join(str(v) for v in r) + " |\n")
        return
    if fmt != "table":
        from cxctl.core.errors import UsageError

        raise UsageError(f"unknown --format {format!r}: use table, json, csv or markdown")
    output.print_renderable(scorecard_table(card, granularity))
    if card.rows:
        from rich.text import Text

        output.print_renderable(Text(scorecard_legend(card), style="dim"))
    else:
        output.info(
            f"no response and no invitation sent between {card.since} and {card.until}"
            + (f" for {card.moment}" if card.moment else "")
            + ": widen --since/--until, or import responses"
        )
    for note in card.notes:
        output.warn(note)
    _print_closed_loop(card.closed_loop)
    for indicator in indicators:
        if indicator.kind == "duration":
            output.print_table(
                f"{indicator.spec} (hours) {card.since} → {card.until}",
                ["period", "n", "median", "p90"],
                [[r.period, r.n, _fmt(r.median_hours), _fmt(r.p90_hours)] for r in indicator.rows],
            )
        else:
            output.print_table(
                f"{indicator.spec} events {card.since} → {card.until}",
                ["period", "count"],
                [[r.period, r.count] for r in indicator.rows],
            )


def _print_closed_loop(loop) -> None:
    """The closed-loop figures under the scores, when the period has cases."""
    if loop is None or not loop.cases:
        return
    rows = [
        ["cases opened", loop.cases, ""],
        [
            "contacted within deadline",
            "" if loop.contacted_in_time_share is None else f"{loop.contacted_in_time_share:.0f} %",
            f"{loop.contacted_in_time} of {loop.with_deadline}",
        ],
        [
            "median time to first contact",
            "" if loop.median_hours_to_contact is None else f"{loop.median_hours_to_contact:g} h",
            f"n {loop.contacted}",
        ],
    ]
    if loop.resurveyed_n and loop.others_n:
        rows.append(["NPS after a resolved case", f"{loop.resurveyed_nps:g}", f"n {loop.resurveyed_n}"])
        rows.append(["NPS of the other answers", f"{loop.others_nps:g}", f"n {loop.others_n}"])
    output.print_table("closed loop", ["", "value", "of"], rows, compact=True)


def reasons_command(moment: MomentOption = None, json_: JsonOption = False, workspace: WorkspaceOption = None) -> None:
    """NPS+ reasons chosen per moment, segment and NPS category (promoter, passive, detractor), with their
    wording and the share of the category's respondents who chose each.

    Example: cxctl reasons --moment nps_relational
    """
    from cxctl.results.verbatims import explain_no_reasons, reason_counts

    ws = open_workspace(workspace)
    db = store.read(ws.database)
    rows = reason_counts(ws, db, moment)
    if not rows:
        output.info(explain_no_reasons(ws, db, moment))
    if json_:
        output.print_json(rows)
        return
    for title, part in _by_moment_and_question(rows):
        output.print_table(
            title,
            ["segment", "category", "reason", "n", "%"],
            [[r.segment or "(none)", r.category, r.label or r.reason, r.count, _fmt(r.share, 0)] for r in part],
            compact=True,
            justify={"%": "right"},
        )
    if rows:
        output.info(
            "%: share of the category's respondents (in that segment) who chose the reason; a multiple choice adds "
            "up to more than 100"
        )


def _by_moment_and_question(rows: list[ReasonCount]) -> Iterator[tuple[str, list[ReasonCount]]]:
    """The reason counts split into one table per moment and question: four columns read at 80."""
    groups: dict[tuple[str, str], list[ReasonCount]] = {}
    for r in rows:
        groups.setdefault((r.moment, r.question), []).append(r)
    for (moment_id, question), part in groups.items():
        yield f"reasons · {moment_id} · {question}", part


def verbatims_command(
    moment: MomentOption = None,
    category: Annotated[
        Optional[str], typer.Option("--category", help="Only promoter, passive or detractor answers.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many words and pairs.")] = 20,
    json_: JsonOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """The most frequent words and word pairs of open answers (French and English stop words removed).

    Example: cxctl verbatims --moment nps_relational --category detractor
    """
    from cxctl.results.verbatims import frequent_words

    ws = open_workspace(workspace)
    result = frequent_words(ws, store.read(ws.database), moment, category, limit)
    if result.note:
        output.info(result.note)
    if json_:
        output.print_json(result)
        return
    if result.words:
        output.print_table(f"words in {result.answers} answer(s)", ["word", "answers"], result.words, compact=True)
    if result.pairs:
        output.print_table("word pairs", ["pair", "answers"], result.pairs, compact=True)


def _warn_unknown_types(ws, db, types: list[str]) -> None:
    """An event type no event has reads as 'none happened': said on stderr, the output stays valid."""
    from cxctl.results.operational import unknown_types

    for warning in unknown_types(ws, db, *types):
        output.warn(warning)


def _ops_rows(workspace, compute, types: list[str]) -> list:
    """The rows of one `ops` command, over the store read-only, with the warnings about its types."""
    ws = open_workspace(workspace)
    db = store.read(ws.database)
    rows = compute(ws, db)
    _warn_unknown_types(ws, db, types)
    return rows


@ops_app.command("duration")
def ops_duration(
    start: Annotated[str, typer.Argument(help="Event type that starts the clock, e.g. order_placed.")],
    end: Annotated[str, typer.Argument(help="Event type that stops it, e.g. order_delivered.")],
    by: Annotated[str, typer.Option("--by", help="week, month or quarter.")] = "month",
    since: SinceOption = None,
    until: OpenUntilOption = None,
    json_: JsonOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Median and 90th percentile of the time from START to END (same contact), per period.

    Example: cxctl ops duration order_placed order_delivered --by month
    """
    from cxctl.results.operational import durations, explain_no_durations

    def compute(ws, db):
        found = durations(ws, db, start, end, by, since, until)
        if not found:
            output.info(explain_no_durations(ws, db, start, end, since, until))
        return found

    rows = _ops_rows(workspace, compute, [start, end])
    if json_:
        output.print_json(rows)
        return
    if rows:
        output.print_table(
            f"{start} → {end} (hours)",
            ["period", "n", "median", "p90"],
            [[r.period, r.n, _fmt(r.median_hours), _fmt(r.p90_hours)] for r in rows],
        )


@ops_app.command("count")
def ops_count(
    event_type: Annotated[str, typer.Argument(help="Event type to count, e.g. complaint.")],
    by: Annotated[str, typer.Option("--by", help="week, month or quarter.")] = "month",
    since: SinceOption = None,
    until: OpenUntilOption = None,
    json_: JsonOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Number of events of one type per period.

    Example: cxctl ops count complaint --by week
    """
    from cxctl.results.operational import counts

    rows = _ops_rows(workspace, lambda ws, db: counts(ws, db, event_type, by, since, until), [event_type])
    if json_:
        output.print_json(rows)
        return
    output.print_table(f"{event_type} per {by}", ["period", "count"], [[r.period, r.count] for r in rows])


def register(app: typer.Typer) -> None:
    app.add_typer(responses_app, name="responses")
    app.command("scorecard")(scorecard_command)
    followups.register(app)
    app.command("reasons")(reasons_command)
    app.command("verbatims")(verbatims_command)
    app.add_typer(ops_app, name="ops")
