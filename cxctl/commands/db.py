"""`cxctl db …`: the store's schema version and row counts (and retention pruning)."""

from __future__ import annotations

import typer

from cxctl import output, store
from cxctl.commands.common import JsonOption, WorkspaceOption, open_workspace

db_app = typer.Typer(help="The SQLite store: schema version, row counts, retention.", no_args_is_help=True)


@db_app.command("status")
def status_command(workspace: WorkspaceOption = None, json_: JsonOption = False) -> None:
    """Show the schema version and the row count of each table.

    Example: cxctl db status --json
    """
    ws = open_workspace(workspace)
    db = store.connect(ws.database)
    result = store.status(db, ws.database)
    if json_:
        output.print_json(result)
        return
    output.stdout.print(f"database: {result.path}\nschema version: {result.version} (latest {result.latest})")
    output.print_table(None, ["table", "rows"], sorted(result.counts.items()))


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
