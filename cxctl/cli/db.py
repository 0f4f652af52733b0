"""`cxctl db …`: the store's schema version and row counts (and retention pruning)."""

from __future__ import annotations

from typing import Annotated

import typer

from cxctl import store
from cxctl.cli.common import DryRunOption, JsonOption, NowOption, WorkspaceOption, now_for, open_workspace
from cxctl.core import output

db_app = typer.Typer(help="The SQLite store: schema version, row counts, retention.", no_args_is_help=True)


@db_app.command("status")
def status_command(
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
    now: NowOption = None,
    days: Annotated[int, typer.Option("--days", min=1, help="Bounce and complaint rates over this many days.")] = 14,
) -> None:
    """Show the schema version, the row count of each table, and the bounce and complaint rates per moment
    and day against the bulk-sender thresholds.

    Example: cxctl db status --json
    """
    from dataclasses import asdict
    from datetime import timedelta

    from cxctl.cli.send import print_rates
    from cxctl.delivery.rates import delivery_rates

    ws = open_workspace(workspace)
    db = store.connect(ws.database)
    result = store.status(db, ws.database)
    when = now_for(ws, now)
    rates = delivery_rates(ws, db, when - timedelta(days=days), when)
    if json_:
        output.print_json({**asdict(result), "rates": rates})  # rates: a key added, the others unchanged
        return
    output.stdout.print(f"database: {result.path}\nschema version: {result.version} (latest {result.latest})")
    output.print_table(None, ["table", "rows"], sorted(result.counts.items()))
    print_rates(rates, f"bounces and complaints, last {days} days (by the day messages went)")


@db_app.command("prune")
def prune_command(
    workspace: WorkspaceOption = None, now: NowOption = None, dry_run: DryRunOption = False, json_: JsonOption = False
) -> None:
    """Erase the personal data older than the workspace's retention periods (run it from cron).

    Periods come from `workspace.retention` (responses, events, invitations, contacts_inactive);
    scores are kept, so scorecards do not change.

    Example: cxctl db prune --dry-run
    """
    from cxctl.privacy import retention

    ws = open_workspace(workspace)
    db = store.connect(ws.database)
    result = retention.prune(ws, db, now_for(ws, now), dry_run=dry_run)
    if json_:
        output.print_json(result)
        return
    rows: list[tuple[str, str | None, str | None, str, int | str]] = []
    for rule in result.rules:
        if rule.period is None:
            rows.append((rule.name, "not set", "", "", ""))
        for table, count in rule.changes.items():
            rows.append((rule.name, rule.period, rule.cutoff, table, count))
    output.print_table(
        "would erase" if dry_run else "erased", ["retention", "period", "before (UTC)", "table", "rows"], rows
    )
    if result.files:
        output.info(
            f"{'would delete' if dry_run else 'deleted'} {len(result.files)} rendered message(s) from the outbox"
        )
    if all(rule.period is None for rule in result.rules):
        output.info(
            "no retention period is set: add `retention:` (e.g. responses: 104w) under `workspace:` in cxctl.yaml"
        )
    elif dry_run:
        output.info("dry run: nothing changed; run again without --dry-run to erase")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
