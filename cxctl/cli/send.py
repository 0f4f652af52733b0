"""`cxctl send` (plan and deliver the due invitations and reminders) and `cxctl preview`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from cxctl import store
from cxctl.cli.common import (
    DryRunOption,
    JsonOption,
    MomentOption,
    NowOption,
    WorkspaceOption,
    now_for,
    open_workspace,
)
from cxctl.core import output

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID  # annotations only: __enter__ imports it when a terminal needs it


class _Progress:
    """A rich progress bar on a terminal; plain log lines (every 10 %) under cron and CI."""

    def __init__(self) -> None:
        self.terminal = output.stderr.is_terminal
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.next_log = 0
        self.started = time.monotonic()

    def __enter__(self) -> _Progress:
        if self.terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("sending"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=output.stderr,
                transient=True,
            )
            self.bar.__enter__()
        return self

    def __call__(self, done: int, total: int) -> None:
        if self.bar is not None:
            if self.task is None:
                self.task = self.bar.add_task("send", total=total)
            self.bar.update(self.task, completed=done, total=total)
        elif total and done >= self.next_log:
            elapsed = time.monotonic() - self.started
            output.info(f"send: {done}/{total} done ({elapsed:.1f} s)")
            self.next_log = done + max(1, total // 10)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def send_command(
    workspace: WorkspaceOption = None,
    now: NowOption = None,
    moment: MomentOption = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=0, help="Send at most N messages in this run.")] = None,
    dry_run: DryRunOption = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="If another send runs on this database, wait for it instead of exiting.")
    ] = False,
    transport: Annotated[
        Optional[str], typer.Option("--transport", help="Override workspace.transport: outbox or smtp.")
    ] = None,
    resend_in_doubt: Annotated[
        Optional[str],
        typer.Option(
            "--resend-in-doubt",
            metavar="IDS|all",
            help="These messages in doubt did not arrive (e.g. 744,745): send them again.",
        ),
    ] = None,
    accept_in_doubt: Annotated[
        Optional[str],
        typer.Option(
            "--accept-in-doubt",
            metavar="IDS|all",
            help="These messages in doubt did arrive (the server's log says so): count them as sent.",
        ),
    ] = None,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Plan again the failed, never-delivered invitations (of --moment, failed --since) with a fresh retry clock.",
        ),
    ] = False,
    since: Annotated[
        Optional[str],
        typer.Option(
            "--since",
            help="With --retry-failed: only those that failed from this time (ISO; naive = workspace time zone).",
        ),
    ] = None,
    rotate_secret: Annotated[
        bool,
        typer.Option(
            "--rotate-secret",
            help="CXCTL_SECRET was changed on purpose: record the new key; the old one (in CXCTL_SECRET_PREVIOUS) still verifies for workspace.token_grace_period.",
        ),
    ] = False,
    json_: JsonOption = False,
) -> None:
    """Plan and send the due invitations and reminders (exit 1 if stopped, failed or in doubt).

    Example: cxctl send --limit 500
    """
    from cxctl.core.errors import UsageError
    from cxctl.delivery.in_doubt import parse_ids
    from cxctl.delivery.send import RetryFailed, send_campaign
    from cxctl.delivery.transport import make_transport

    if since is not None and not retry_failed:
        raise UsageError(
            "--since goes with --retry-failed (which failures to retry): add --retry-failed, or drop --since"
        )
    resend_ids = parse_ids(resend_in_doubt, "--resend-in-doubt")
    accept_ids = parse_ids(accept_in_doubt, "--accept-in-doubt")
    ws = open_workspace(workspace)
    when = now_for(ws, now)
    db = store.connect(ws.database)
    chosen = make_transport(ws, transport)
    retry = RetryFailed(now_for(ws, since)) if retry_failed and since else RetryFailed() if retry_failed else None
    with _Progress() as progress:
        report = send_campaign(
            ws,
            db,
            when,
            chosen,
            limit=limit,
            moment=moment,
            dry_run=dry_run,
            progress=None if json_ else progress,
            wait=wait,
            resend_in_doubt=resend_ids,
            accept_in_doubt=accept_ids,
            retry_failed=retry,
            rotate_secret=rotate_secret,
        )
    if json_:
        output.print_json({**report.__dict__, "ok": report.ok})
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(report) -> None:
    title = f"send via {report.transport}" + (" (dry run: nothing sent, nothing changed)" if report.dry_run else "")
    rows = [("newly planned", report.planned), ("due", report.due)]
    if report.dry_run:
        rows.append(("would send", report.would_send))
    else:
        rows += [("sent", report.sent), ("  of which reminders", report.reminders)]
    rows += [("failed", report.failed), ("bounced", report.bounced), ("in doubt", report.in_doubt)]
    rows += [(f"skipped: {reason}", count) for reason, count in report.skipped.items()]
    output.print_table(title, ["", "count"], rows)
    for problem in report.errors[:10]:
        retry = f" (next try {problem['next_attempt_at']} UTC)" if problem.get("next_attempt_at") else ""
        output.warn(f"invitation {problem['invitation']} {problem['status']}: {problem['error']}{retry}")
    if report.resent_in_doubt or report.accepted_in_doubt:
        output.info(f"in doubt: {report.resent_in_doubt} sent again, {report.accepted_in_doubt} accepted as delivered")
    if report.retried_failed:
        output.info(f"--retry-failed: {report.retried_failed} failed invitation(s) planned again")
    if report.in_doubt:
        ids = ",".join(str(i) for i in report.in_doubt_ids[:20]) + (",…" if report.in_doubt > 20 else "")
        output.warn(
            f"{report.in_doubt} message(s) were in flight when a previous run died ({ids}): they may or may not "
            f"have arrived, so they are not re-sent, and every run reports them (exit 1) until each is settled: "
            f"`cxctl reconcile --relay-log FILE` (or --mailbox PATH) decides each from the server's evidence; or "
            f"by hand, --accept-in-doubt IDS (they arrived) and --resend-in-doubt IDS (they did not)"
        )
    print_rates(report.rates, "bounces and complaints (by the day messages went)")
    for moment, why in report.stopped_moments.items():
        output.error(
            f"{moment} not sent: {why}; its invitations stay planned — find the cause (list, content, "
            f"frequency) before you raise the ceiling"
        )
    if report.stopped:
        output.error(f"stopped: {report.stopped}")


def print_rates(rates, title: str) -> None:
    """Rates per moment and day against the bulk-sender thresholds (complaints under 0.3 %)."""
    if not rates:
        return

    def pct(value):
        return "" if value is None else f"{value:.2f}"

    output.print_table(
        title,
        ["moment", "day", "sent", "hard", "soft", "compl.", "bounce %", "compl. %", ""],
        [
            [
                r.moment,
                r.day or "total",
                r.sent,
                r.hard_bounces,
                r.soft_bounces,
                r.complaints,
                pct(r.bounce_rate),
                pct(r.complaint_rate),
                "" if r.verdict == "ok" else r.verdict.upper(),
            ]
            for r in rates
        ],
        compact=True,
    )
    output.info(
        "thresholds: complaints under 0.3 % (Gmail, Yahoo bulk-sender rules; aim under 0.1 %: watch), "
        "hard bounces under 2 %"
    )


def preview_command(
    moment: Annotated[str, typer.Argument(help="The key moment (id) whose message to render.")],
    contact: Annotated[
        Optional[str], typer.Option("--contact", help="A stored contact (external id or id); default a sample contact.")
    ] = None,
    lang: Annotated[
        Optional[str],
        typer.Option("--lang", help="Language of the message (default the contact's, else the workspace's)."),
    ] = None,
    reminder: Annotated[
        bool, typer.Option("--reminder", help="Render the reminder instead of the invitation.")
    ] = False,
    out: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Folder for the .eml and .html files (default <outbox>/preview)."),
    ] = None,
    channel: Annotated[
        str, typer.Option("--channel", help="email, or sms: the SMS text with its encoding and segments.")
    ] = "email",
    workspace: WorkspaceOption = None,
    now: NowOption = None,
    json_: JsonOption = False,
) -> None:
    """Render a moment's message in the terminal and write it as .eml and .html (or .sms with --channel sms).

    Example: cxctl preview delivery_csat --contact C-1042 --lang fr
    """
    from cxctl.core.errors import UsageError
    from cxctl.delivery.render import preview

    if channel not in ("email", "sms"):
        raise UsageError(f"--channel {channel!r}: use email or sms")
    ws = open_workspace(workspace)
    db = store.read(ws.database) if contact is not None else None
    if channel == "sms":
        from cxctl.delivery.sms_render import preview_sms

        sms = preview_sms(ws, db, moment, now_for(ws, now), contact=contact, lang=lang, reminder=reminder, out_dir=out)
        if json_:
            output.print_json(sms.to_dict())
            return
        output.stdout.print(
            f"{sms.moment} ({sms.language}{', reminder' if sms.reminder else ''}) SMS for {sms.contact} "
            f"to {sms.to}: {sms.summary}",
            markup=False,
            highlight=False,
        )
        output.stdout.print("")
        output.stdout.print(sms.text, markup=False, highlight=False)
        for warning in sms.warnings:
            output.warn(warning)
        output.info(f"written: {sms.path}")
        return
    result = preview(ws, db, moment, now_for(ws, now), contact=contact, lang=lang, reminder=reminder, out_dir=out)
    if json_:
        output.print_json(result)
        return
    output.print_table(
        f"{result.moment} ({result.language}{', reminder' if result.reminder else ''}) for {result.contact}",
        ["header", "value"],
        list(result.headers.items()),
    )
    output.stdout.print("")
    output.stdout.print(result.text, markup=False, highlight=False)
    output.info(f"written: {result.eml_path} and {result.html_path}")


def reconcile_command(
    relay_log: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--relay-log", help="The relay's mail log (Postfix, Exim, Sendmail), covering the crash; repeatable."
        ),
    ] = None,
    mailbox: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--mailbox", help="A Maildir, mbox file or folder of .eml files that got a BCC/journal copy; repeatable."
        ),
    ] = None,
    assume_complete: Annotated[
        bool,
        typer.Option(
            "--assume-complete", help="The evidence holds every message the server accepted: one absent did not arrive."
        ),
    ] = False,
    dry_run: DryRunOption = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="If a send runs on this database, wait for it instead of exiting.")
    ] = False,
    moment: MomentOption = None,
    workspace: WorkspaceOption = None,
    now: NowOption = None,
    json_: JsonOption = False,
) -> None:
    """Settle the messages in doubt after a crash from the server's evidence, one by one (exit 1 if some stay in doubt).

    A message whose Message-ID is in the relay log or the mailbox arrived: counted as sent. One absent
    from evidence that covers the crash did not: planned again for the next `cxctl send`.

    Example: cxctl reconcile --relay-log /var/log/mail.log
    """
    from cxctl.delivery.in_doubt import reconcile

    ws = open_workspace(workspace)
    db = store.connect(ws.database)
    report = reconcile(
        db,
        now_for(ws, now),
        list(relay_log or []),
        list(mailbox or []),
        assume_complete=assume_complete,
        dry_run=dry_run,
        moment=moment,
        wait=wait,
    )
    if json_:
        output.print_json(
            {
                "sources": report.sources,
                "accepted_ids": report.accepted_ids,
                "applied": report.applied,
                "delivered": report.delivered,
                "not_delivered": report.not_delivered,
                "undecided": report.undecided,
                "decisions": [d.__dict__ for d in report.decisions],
                "ok": report.ok,
            }
        )
    else:
        title = "reconcile" + (" (dry run: nothing changed)" if dry_run else "")
        output.print_table(
            title, ["invitation", "verdict", "why"], [(d.invitation, d.verdict, d.why) for d in report.decisions]
        )
        output.info(
            f"evidence: {'; '.join(report.sources)}; {report.accepted_ids} Message-ID(s) accepted by the server"
        )
        if dry_run:
            output.info(
                f"would settle: {report.delivered} delivered (counted as sent), {report.not_delivered} not "
                f"delivered (planned again); {report.undecided} would stay in doubt"
            )
        else:
            output.info(
                f"{report.delivered} delivered (now sent), {report.not_delivered} not delivered (planned again: "
                f"run `cxctl send`), {report.undecided} still in doubt"
            )
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("send")(send_command)
    app.command("reconcile")(reconcile_command)
    app.command("preview")(preview_command)
