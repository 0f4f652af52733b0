"""`cxctl demo`, `cxctl forget`, `cxctl export-person`: the newcomer's path and personal data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cxctl import store
from cxctl.cli.common import DryRunOption, JsonOption, NowOption, WorkspaceOption, now_for, open_workspace
from cxctl.core import output

PersonArgument = Annotated[
    str, typer.Argument(help="The person: an external id (e.g. C-1042) or an email address.", show_default=False)
]


def forget_command(
    person: PersonArgument,
    workspace: WorkspaceOption = None,
    now: NowOption = None,
    dry_run: DryRunOption = False,
    json_: JsonOption = False,
) -> None:
    """Erase a person's personal data everywhere; keep their scores anonymised and block re-import.

    Erases the address, names, company, external id, attributes, event details, open answers,
    notes, unmatched response rows and rendered messages; keeps an SHA-256 hash of the address
    so no later import brings the person back into a campaign.

    Example: cxctl forget jean.dupont@example.com --dry-run
    """
    ws = open_workspace(workspace)
    db = store.connect(ws.database)
    from cxctl.privacy import erasure as privacy

    result = privacy.forget(ws, db, person, now_for(ws, now), dry_run=dry_run)
    if json_:
        output.print_json(result)
        return
    verb = "would erase" if dry_run else "erased"
    who = f"{len(result.contacts)} contact(s)" if result.contacts else "no stored contact"
    output.info(
        f"{result.target}: {verb} the personal data of {who}"
        + (" (already forgotten before)" if result.already_forgotten else "")
    )
    output.print_table(None, ["table", "rows"], [(name, count) for name, count in result.changes.items()])
    if result.files:
        output.info(
            f"{'would delete' if dry_run else 'deleted'} {len(result.files)} rendered message(s) from the outbox"
        )
    if dry_run:
        output.info("dry run: nothing changed; run again without --dry-run to erase")
    elif result.email_hash:
        output.info(
            "the address hash is kept in `forgotten` and the suppression list: imports cannot bring this person back"
        )


def export_person_command(
    person: PersonArgument,
    workspace: WorkspaceOption = None,
    now: NowOption = None,
    output_file: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Write the JSON to this file instead of stdout.")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Accepted for scripts: the output is always JSON.")] = False,
) -> None:
    """Print everything stored about a person as JSON (GDPR subject access request).

    Example: cxctl export-person C-1042 -o C-1042.json
    """
    ws = open_workspace(workspace)
    db = store.connect(ws.database)
    from cxctl.privacy import erasure as privacy

    data = privacy.export_person(db, person, now_for(ws, now))
    if output_file is None:
        output.print_json(data)
        return
    output_file.write_text(output.to_json(data) + "\n", encoding="utf-8")
    output.info(
        f"wrote {output_file}: {len(data['contacts'])} contact(s), {len(data['invitations'])} invitation(s), "
        f"{len(data['responses'])} response(s)"
    )


def demo_command(
    folder: Annotated[Path, typer.Argument(help="Folder to create the demo workspace in.")] = Path("cxctl-demo"),
    now: Annotated[
        Optional[str],
        typer.Option(
            "--now",
            help="Pretend it is this time (ISO 8601). Default: a fixed date inside the examples' data, so the output is reproducible.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Use the folder even if it is not empty (its demo files are replaced).")
    ] = False,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Then answer as a respondent: start the survey page on 127.0.0.1 and print a link from the Maildir (Ctrl-C to stop).",
        ),
    ] = False,
    port: Annotated[
        Optional[int],
        typer.Option("--port", min=1, max=65535, help="Port of the page with --serve (default: a free one)."),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Run the whole loop on the shipped examples, in a folder of its own, with a local mail server.

    Copies the e-commerce example, validates it, imports contacts and events, plans, sends through
    an SMTP server on 127.0.0.1 into a Maildir, generates demo responses, imports them, and prints
    the scorecard and the follow-ups. Nothing leaves your machine. With --serve, the invitations link
    to cxctl's own survey page, started on 127.0.0.1 at the end: open the printed link in a browser.

    Example: cxctl demo ./cxctl-demo --serve
    """
    from cxctl.cli import demo
    from cxctl.core.timeutil import parse_now

    when = parse_now(now, demo.example_timezone()) if now else None
    if serve and json_:
        raise typer.BadParameter("--serve runs until Ctrl-C and prints a link for a person: leave out --json")
    serve_port = (port or demo.free_port()) if serve else None
    result = demo.run_demo(
        folder, now=when, force=force, progress=None if json_ else output.info, serve_port=serve_port
    )
    if json_:
        output.print_json(result)
        return
    _print_scorecard(result)
    _print_followups(result)
    output.stdout.print(result.where_to_look(), markup=False, highlight=False)
    if result.failed:
        raise typer.Exit(1)
    if serve_port is not None:
        _serve_demo(result, serve_port)


def _serve_demo(result, port: int) -> None:
    """Start the page over the demo's store, at the demo's clock (its answer windows are in the examples' dates)."""
    from datetime import datetime

    from cxctl.web.server import ServeOptions, serve

    output.stdout.print(
        f"\nThe respondent's side: open this link in a browser (Ctrl-C here to stop the page):\n  {result.link}\n"
        f"then see the answer in: cxctl scorecard -w {result.folder} --now {result.responses_now}",
        markup=False,
        highlight=False,
    )
    serve(Path(result.folder), ServeOptions(port=port), datetime.fromisoformat(result.responses_now))


INDICATORS = ("nps", "csat", "ces", "response_rate")


def _cell(indicator) -> str:
    if indicator is None or indicator.value is None:
        return ""
    text = f"{indicator.value:.1f}" if indicator.value % 1 else f"{indicator.value:.0f}"
    if indicator.target is not None:
        text += f"/{indicator.target:g}"
    return text + ("*" if indicator.insufficient else "")


def _print_scorecard(result) -> None:
    step = result.step("scorecard")
    if step is None or step.status != "ok":
        return
    card = step.details["scorecard"]
    rows = [
        (row.group.get("moment", ""), row.sent, row.responses, *(_cell(row.indicators.get(i)) for i in INDICATORS))
        for row in card.rows
    ]
    output.print_table(
        f"Scorecard {card.since} → {card.until}", ["moment", "sent", "answered", "NPS", "CSAT %", "CES", "rate %"], rows
    )
    output.stdout.print(
        f"value/target; * fewer than {card.min_responses} responses, too few to conclude "
        f"(full view: cxctl scorecard -w {result.folder} --now {result.responses_now})",
        markup=False,
        highlight=False,
    )


def _print_followups(result) -> None:
    step = result.step("follow-ups")
    if step is None or step.status != "ok" or not step.details["followups"]:
        return
    rows = []
    for item in step.details["followups"]:
        who = (
            " ".join(p for p in (item.contact.get("first_name"), item.contact.get("last_name")) if p)
            or item.contact.get("external_id")
            or ""
        )
        rows.append((item.id, item.moment, who, ", ".join(item.reasons), item.comment))
    output.print_table(
        "Follow-ups: unhappy respondents to call back", ["response", "moment", "who", "why", "comment"], rows
    )


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
    app.command("forget")(forget_command)
    app.command("export-person")(export_person_command)
