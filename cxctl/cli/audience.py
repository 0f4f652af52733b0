"""`cxctl contacts …`, `cxctl events …`, `cxctl suppress …`: bring people and what happened to them in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cxctl import store
from cxctl.audience.csvscan import CELL_LIMIT
from cxctl.audience.values import ATTRIBUTE_LIMIT, FIELD_LIMIT
from cxctl.cli.common import DryRunOption, JsonOption, NowOption, WorkspaceOption, now_for, open_workspace
from cxctl.core import output

contacts_app = typer.Typer(help="Contacts: import CRM/spreadsheet exports, list them.", no_args_is_help=True)
events_app = typer.Typer(
    help="Events that trigger key moments (order_delivered, ticket_closed…).", no_args_is_help=True
)
suppress_app = typer.Typer(help="Suppressions: opt-outs, bounces, complaints, do-not-contact.", no_args_is_help=True)

# The limits are the checks' own constants, so the help cannot drift from them.
FileArgument = Annotated[
    Path,
    typer.Argument(
        help=(
            f"CSV file as exported (any of UTF-8, UTF-8 BOM, Windows-1252; , ; or tab). Rows are rejected, never cut, when a "
            f"cell holds a control character other than tab and line breaks, or more than {CELL_LIMIT:,} characters; contact "
            f"fields and event ids and types hold at most {FIELD_LIMIT:,}, attributes and notes {ATTRIBUTE_LIMIT:,}."
        )
    ),
]
MappingOption = Annotated[
    Optional[str], typer.Option("--mapping", help="A mapping id declared under `mappings:` in the workspace.")
]
EncodingOption = Annotated[
    Optional[str],
    typer.Option("--encoding", help="Force the encoding (utf-8, utf-8-sig, cp1252, latin-1). Default: detected."),
]
DelimiterOption = Annotated[
    Optional[str], typer.Option("--delimiter", help="Force the delimiter (',' ';' 'tab' '|'). Default: sniffed.")
]
DecimalCommaOption = Annotated[
    Optional[bool], typer.Option("--decimal-comma/--no-decimal-comma", help="Read 1 234,50 as 1234.50 in attributes.")
]
DateFormatOption = Annotated[
    Optional[str], typer.Option("--date-format", help="strptime format of dates, e.g. %d/%m/%Y or %m/%d/%Y %H:%M.")
]


def _render(result, json_: bool) -> int:
    """Print the summary (table or JSON), the notes and the rejects; exit 1 when rows were rejected."""
    if json_:
        output.print_json(result)
    else:
        title = f"{result.kind} import of {Path(result.file).name}" + (
            " (dry run: nothing written)" if result.dry_run else ""
        )
        output.print_table(title, list(result.counts()), [list(result.counts().values())])
        output.info(
            f"read as {result.encoding}, delimiter {'tab' if result.delimiter == chr(9) else repr(result.delimiter)}"
            + (f", preset {result.preset}" if result.preset else "")
        )
    if result.previously_imported:
        output.info(f"note: this exact file was already imported at {result.previously_imported} UTC")
    if result.footer:
        output.info(f"footer skipped: {' | '.join(result.footer)}")
    for note in result.notes:
        output.warn(note)
    if result.rejected:
        for item in result.rejects[:5]:
            output.warn(f"{result.file}:{item['row']}: {item['reason']}")
        where = result.rejects_file or "(not written: dry run)"
        output.warn(
            f"{result.rejected} row(s) rejected; every one with its row and reason is in {where}: fix them and import the file again"
        )
        return 1
    return 0


@contacts_app.command("import")
def contacts_import(
    file: FileArgument,
    mapping: MappingOption = None,
    preset: Annotated[
        Optional[str],
        typer.Option(
            "--preset",
            help="salesforce_report, salesforce_dataloader, hubspot or dynamics. Default: detected from the headers.",
        ),
    ] = None,
    encoding: EncodingOption = None,
    delimiter: DelimiterOption = None,
    date_format: DateFormatOption = None,
    decimal_comma: DecimalCommaOption = None,
    dry_run: DryRunOption = False,
    json_: JsonOption = False,
    now: NowOption = None,
    workspace: WorkspaceOption = None,
) -> int:
    """Import contacts from a CSV export; merge by external id, then email; reject bad rows to FILE.rejects.csv.

    Example: cxctl contacts import export_salesforce.csv --preset salesforce_report
    """
    from cxctl.audience.contacts import import_contacts

    ws = open_workspace(workspace)
    db = store.connect(ws.database)
    with output.working(f"importing contacts from {file}…"):
        result = import_contacts(
            ws,
            db,
            file,
            now_for(ws, now),
            mapping_id=mapping,
            preset=preset,
            encoding=encoding,
            delimiter=delimiter,
            date_format=date_format,
            decimal_comma=decimal_comma,
            dry_run=dry_run,
        )
    raise typer.Exit(_render(result, json_))


@contacts_app.command("list")
def contacts_list(
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many contacts (newest first).")] = 50,
    search: Annotated[
        Optional[str], typer.Option("--search", help="Only contacts whose email, name or external id contains this.")
    ] = None,
    json_: JsonOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """List contacts with their main fields.

    Example: cxctl contacts list --search dupont
    """
    from cxctl.audience.contacts import list_contacts

    ws = open_workspace(workspace)
    rows = list_contacts(store.read(ws.database), limit=limit, search=search)
    if json_:
        output.print_json(rows)
        return
    columns = ["id", "external_id", "email", "first_name", "last_name", "language", "country", "segment", "suppressed"]
    output.print_table(None, columns, [[r[c] for c in columns] for r in rows])


@events_app.command("import")
def events_import(
    file: FileArgument,
    type_: Annotated[
        Optional[str], typer.Option("--type", help="Event type for every row, when the file has no type column.")
    ] = None,
    create_contacts: Annotated[
        bool, typer.Option("--create-contacts", help="Create unknown contacts when the row carries an email.")
    ] = False,
    mapping: MappingOption = None,
    encoding: EncodingOption = None,
    delimiter: DelimiterOption = None,
    date_format: DateFormatOption = None,
    decimal_comma: DecimalCommaOption = None,
    dry_run: DryRunOption = False,
    json_: JsonOption = False,
    now: NowOption = None,
    workspace: WorkspaceOption = None,
) -> int:
    """Import events (order delivered, ticket closed…) for known contacts; times stored in UTC.

    Example: cxctl events import livraisons.csv --type order_delivered
    """
    from cxctl.audience.events import import_events

    ws = open_workspace(workspace)
    db = store.connect(ws.database)
    with output.working(f"importing events from {file}…"):
        result = import_events(
            ws,
            db,
            file,
            now_for(ws, now),
            event_type=type_,
            create_contacts=create_contacts,
            mapping_id=mapping,
            encoding=encoding,
            delimiter=delimiter,
            date_format=date_format,
            decimal_comma=decimal_comma,
            dry_run=dry_run,
        )
    raise typer.Exit(_render(result, json_))


ReasonOption = Annotated[str, typer.Option("--reason", help="opt_out, bounce, complaint or do_not_contact.")]


@suppress_app.command("add")
def suppress_add(
    email: Annotated[str, typer.Argument(help="The address to suppress.")],
    reason: ReasonOption = "opt_out",
    note: Annotated[Optional[str], typer.Option("--note", help="Free text kept with the suppression.")] = None,
    json_: JsonOption = False,
    now: NowOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Never invite this address again (until `suppress remove`).

    Example: cxctl suppress add jeanne.martin@example.fr --reason opt_out --note "phone call 12/03"
    """
    from cxctl.audience.suppressions import add

    ws = open_workspace(workspace)
    outcome = add(store.connect(ws.database), email, reason, now_for(ws, now), note=note)
    if json_:
        output.print_json(outcome)
    elif outcome.changed:
        output.stdout.print(f"suppressed {outcome.email} ({outcome.reason})", markup=False)
    else:
        output.stdout.print(f"{outcome.email} was already suppressed ({outcome.reason}); nothing changed", markup=False)


@suppress_app.command("import")
def suppress_import(
    file: FileArgument,
    reason: ReasonOption = "opt_out",
    encoding: EncodingOption = None,
    delimiter: DelimiterOption = None,
    dry_run: DryRunOption = False,
    json_: JsonOption = False,
    now: NowOption = None,
    workspace: WorkspaceOption = None,
) -> int:
    """Suppress every address of a file (an email column; optional reason, date and note columns).

    Example: cxctl suppress import desinscrits.csv --reason opt_out
    """
    from cxctl.audience.suppressions import import_suppressions

    ws = open_workspace(workspace)
    result = import_suppressions(
        store.connect(ws.database),
        file,
        now_for(ws, now),
        reason=reason,
        encoding=encoding,
        delimiter=delimiter,
        time_zone=ws.settings.timezone,
        dry_run=dry_run,
    )
    raise typer.Exit(_render(result, json_))


@suppress_app.command("remove")
def suppress_remove(
    email: Annotated[str, typer.Argument(help="The address to invite again.")],
    json_: JsonOption = False,
    workspace: WorkspaceOption = None,
) -> int:
    """Lift a suppression — only when the person asked for it.

    Example: cxctl suppress remove jeanne.martin@example.fr
    """
    from cxctl.audience.suppressions import remove

    ws = open_workspace(workspace)
    outcome = remove(store.connect(ws.database), email)
    if json_:
        output.print_json(outcome)
    elif outcome.changed:
        output.stdout.print(f"{outcome.email} is no longer suppressed (was {outcome.reason})", markup=False)
    else:
        output.warn(
            f"{outcome.email} is not suppressed: nothing to remove (check the spelling with `cxctl suppress list`)"
        )
    raise typer.Exit(0 if outcome.changed else 1)


@suppress_app.command("list")
def suppress_list(
    reason: Annotated[Optional[str], typer.Option("--reason", help="Only this reason.")] = None,
    json_: JsonOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """List suppressed addresses, newest first.

    Example: cxctl suppress list --reason bounce --json
    """
    from cxctl.audience.suppressions import list_suppressions

    ws = open_workspace(workspace)
    rows = list_suppressions(store.read(ws.database), reason)
    if json_:
        output.print_json(rows)
        return
    output.print_table(
        None,
        ["email", "reason", "source", "note", "since (UTC)"],
        [[r.email or "(erased)", r.reason, r.source, r.note, r.created_at] for r in rows],
    )


def register(app: typer.Typer) -> None:
    app.add_typer(contacts_app, name="contacts")
    app.add_typer(events_app, name="events")
    app.add_typer(suppress_app, name="suppress")
