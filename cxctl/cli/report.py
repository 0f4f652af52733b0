"""`cxctl report` (one self-contained HTML page with charts) and `cxctl export` (the tables for a column
store or a BI tool): results people can look at and take away."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cxctl import store
from cxctl.cli.common import JsonOption, MomentOption, NowOption, WorkspaceOption, now_for, open_workspace
from cxctl.core import output


def report_command(
    since: Annotated[
        Optional[str],
        typer.Option(
            "--since",
            help="From this day (inclusive, ISO, workspace time zone). Default: the first response; with it, each figure is compared with the period of the same length before.",
        ),
    ] = None,
    until: Annotated[
        Optional[str], typer.Option("--until", help="Up to this day (inclusive). Default: today (the day of --now).")
    ] = None,
    moment: MomentOption = None,
    by: Annotated[
        Optional[str],
        typer.Option(
            "--by",
            help="Also break each moment down by segment, country, language, company, role or any contact attribute.",
        ),
    ] = None,
    lang: Annotated[
        Optional[str], typer.Option("--lang", help="fr or en. Default: the workspace's default language.")
    ] = None,
    period: Annotated[
        Optional[str],
        typer.Option("--period", help="Trends by week or month. Default: weeks up to 13 weeks, months beyond."),
    ] = None,
    ops: Annotated[
        Optional[list[str]],
        typer.Option(
            "--ops",
            help="Also show an operational indicator: START..END (hours between two events) or an event type (count). Repeatable. Each moment already shows the count of its trigger event.",
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")] = Path("report.html"),
    json_: JsonOption = False,
    now: NowOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Write the results as one HTML page to share: headline, trends with their 95 % band, distributions,
    reasons, verbatim themes, open follow-ups and operational indicators, each chart with its numbers.

    The page works offline (no script, no font, nothing fetched) and prints on A4. Its figures are the
    scorecard's: `cxctl scorecard` prints the same for the same period.

    Example: cxctl report --since 2026-01-01 --lang en -o report-2026.html
    """
    from cxctl.results.report import build_report
    from cxctl.results.report_render import render_report

    ws = open_workspace(workspace)
    db = store.read(ws.database)
    with output.working("building the report…"):
        report = build_report(
            ws,
            db,
            now_for(ws, now),
            since=since,
            until=until,
            moment=moment,
            by=by,
            lang=lang,
            granularity=period,
            ops=ops,
        )
        html = render_report(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(out)
    size = len(html.encode("utf-8"))
    summary = {
        "file": str(out),
        "bytes": size,
        "since": report.since,
        "until": report.until,
        "moments": len(report.moments),
        "granularity": report.granularity,
    }
    if json_:
        output.print_json(summary)
        return
    output.info(
        f"report {report.since} → {report.until} ({len(report.moments)} moment(s), by {report.granularity}) "
        f"written to {out} ({size // 1024} KB): open it in a browser, or print it to PDF"
    )


def export_command(
    to: Annotated[
        Path,
        typer.Option(
            "--to", help="Folder to write the tables in (created if needed; files of the same names are replaced)."
        ),
    ],
    format: Annotated[str, typer.Option("--format", help="parquet, csv or jsonl.")] = "parquet",
    since: Annotated[
        Optional[str],
        typer.Option(
            "--since",
            help="Only rows written or changed from this time (ISO day or time, workspace time zone), e.g. the exported_at of the last export.json.",
        ),
    ] = None,
    with_personal_data: Annotated[
        bool, typer.Option("--with-personal-data", help="Add names, addresses, CRM ids (never for forgotten people).")
    ] = False,
    secret_env: Annotated[
        str, typer.Option("--secret-env", help="Environment variable holding the pseudonym key.")
    ] = "CXCTL_EXPORT_SECRET",
    json_: JsonOption = False,
    now: NowOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Export responses, answers, invitations, events, contacts and their attributes for a column store
    or a BI tool (DuckDB, Spark, BigQuery, Power BI, Metabase).

    Each contact appears as a keyed pseudonym (HMAC with the secret in $CXCTL_EXPORT_SECRET), the same in
    every export, so tables and exports join. The schema is documented and versioned (docs/export-schema.md);
    export.json records the version, the time and the rows of each table.

    Example: cxctl export --to exports/2026-11 --format parquet
    """
    from cxctl.results.export import export_store

    ws = open_workspace(workspace)
    db = store.read(ws.database)
    with output.working(f"exporting to {to}…"):
        result = export_store(
            ws,
            db,
            to,
            now_for(ws, now),
            format=format,
            since=since,
            with_personal_data=with_personal_data,
            secret_env=secret_env,
        )
    if json_:
        output.print_json(result)
        return
    output.print_table(
        f"export to {result.folder} (schema version {result.schema_version}, {result.format})",
        ["table", "file", "rows"],
        [[t.name, t.file, t.rows] for t in result.tables],
    )
    if with_personal_data and result.forgotten_withheld:
        output.info(
            f"personal data withheld for {result.forgotten_withheld} forgotten person(s), whatever --with-personal-data says"
        )


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
    app.command("export")(export_command)
