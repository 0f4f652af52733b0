"""`cxctl bounces import`: the bounces and spam complaints that arrive after the SMTP session."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from cxctl import store
from cxctl.cli.common import JsonOption, NowOption, WorkspaceOption, now_for, open_workspace
from cxctl.core import output

bounces_app = typer.Typer(
    help="Bounces and spam complaints that come back later: suppress the addresses.", no_args_is_help=True
)


@bounces_app.command("import")
def bounces_import(
    source: Annotated[
        str, typer.Argument(help="A Maildir folder, an mbox file, or imaps://[user@]host[:port]/Folder.")
    ],
    move_to: Annotated[
        Optional[str],
        typer.Option(
            "--move-to",
            help="Move the processed messages to this folder (IMAP folder, Maildir++ subfolder, or mbox file beside the source).",
        ),
    ] = None,
    user_env: Annotated[
        str,
        typer.Option(
            "--user-env", help="IMAP: the environment variable holding the login (when the address has no user@)."
        ),
    ] = "CXCTL_IMAP_USER",
    password_env: Annotated[
        str, typer.Option("--password-env", help="IMAP: the environment variable holding the password.")
    ] = "CXCTL_IMAP_PASSWORD",
    json_: JsonOption = False,
    now: NowOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Read delivery status notifications (RFC 3464), abuse reports (ARF) and the common non-standard
    bounces; suppress hard-bounced and complaining addresses (a complaint stops every moment for the
    person), count soft bounces. Importing the same mailbox again changes nothing. For cron; the IMAP
    password comes from $CXCTL_IMAP_PASSWORD.

    Example: cxctl bounces import imaps://bounces@mail.example.com/INBOX --move-to Processed
    """
    from cxctl.delivery.bounces import import_bounces
    from cxctl.delivery.mailboxes import open_source

    ws = open_workspace(workspace)
    db = store.connect(ws.database)
    mailbox = open_source(source, user_env=user_env, password_env=password_env)
    try:
        with output.working(f"reading {mailbox.name} {source.split('@')[-1]}…"):
            result = import_bounces(ws, db, mailbox, now_for(ws, now), move_to=move_to, name=mailbox.name)
    finally:
        mailbox.close()
    if json_:
        output.print_json(result)
        return
    counts = {
        "read": result.read,
        "hard": result.hard,
        "soft": result.soft,
        "complaints": result.complaints,
        "not bounces": result.not_bounces,
        "already": result.already_imported,
        "suppressed": result.suppressed,
        "moved": result.moved,
    }
    output.print_table(f"bounces from {mailbox.name}", list(counts), [list(counts.values())])
    if result.cancelled:
        output.info(f"{result.cancelled} planned invitation(s) cancelled: their person complained")
    if result.unmatched:
        output.warn(f"{result.unmatched} bounce(s) for addresses no contact has: recorded, nothing suppressed")
    if result.not_bounces:
        output.info(f"{result.not_bounces} message(s) are not bounces (auto-replies, people): left where they are")


def register(app: typer.Typer) -> None:
    app.add_typer(bounces_app, name="bounces")
