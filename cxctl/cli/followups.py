"""`cxctl followups …`: the call-back cases — list them (overdue first), show one with its history,
assign, contact, resolve; tell owners (alerts, digest)."""

from __future__ import annotations

import csv
import getpass
import os
import sys
from typing import Annotated, Optional

import typer

from cxctl import store
from cxctl.cli.common import JsonOption, MomentOption, NowOption, WorkspaceOption, now_for, open_workspace
from cxctl.core import output

# No help= here: the callback's docstring (with its example) is the group's help.
followups_app = typer.Typer(invoke_without_command=True)

IdArgument = Annotated[int, typer.Argument(help="The case ID (as listed by `cxctl followups`).")]
ByOption = Annotated[
    Optional[str], typer.Option("--by", help="Who made the change (recorded in the history). Default: $USER.")
]
NoteOption = Annotated[Optional[str], typer.Option("--note", help="What was said or done.")]
CSV_COLUMNS = [
    "id",
    "submitted_at",
    "moment",
    "reasons",
    "scores",
    "comment",
    "external_id",
    "name",
    "email",
    "segment",
    "event",
    "event_attributes",
    "done",
    "note",
    "chosen_reasons",
    # New columns go at the end: scripts reading the CSV by position keep working.
    "status",
    "owner",
    "due_at",
    "overdue",
    "opened_at",
    "first_contact_at",
    "outcome",
]


def who(by: str | None) -> str:
    """--by, else the login name ($USER), else the account's name."""
    if by:
        return by
    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:  # no login name on this account (a container): still recorded, as unknown
        return "unknown"


def _states(values: list[str] | None) -> list[str] | None:
    return [s.strip() for v in values for s in v.split(",") if s.strip()] if values else None


@followups_app.callback()
def followups_list(
    ctx: typer.Context,
    since: Annotated[
        Optional[str], typer.Option("--since", help="Answers from this day (inclusive, ISO, workspace time zone).")
    ] = None,
    moment: MomentOption = None,
    state: Annotated[
        Optional[list[str]],
        typer.Option(
            "--state",
            help="Only these states: open, contacted, unreachable, resolved, no_action (repeatable or comma-separated). Default: the active ones.",
        ),
    ] = None,
    owner: Annotated[Optional[str], typer.Option("--owner", help="Only this owner's cases.")] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only the cases past their due date.")] = False,
    all_: Annotated[bool, typer.Option("--all", help="Include the closed ones (resolved, no_action).")] = False,
    json_: JsonOption = False,
    csv_: Annotated[bool, typer.Option("--csv", help="Print CSV for a CRM import or a spreadsheet.")] = False,
    now: NowOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Cases to call back — detractors (NPS ≤ 6), dissatisfied (CSAT bottom two), high effort (CES ≤ 3) — overdue
    first, then by due date, with the score, the reasons chosen and the comment.

    Example: cxctl followups --owner lyon-cx@example.com --csv > a_rappeler.csv
    """
    if ctx.invoked_subcommand is not None:
        return
    from cxctl.results.alerts import plan_case_alerts
    from cxctl.results.followups import list_followups

    ws = open_workspace(workspace)
    result = list_followups(
        ws,
        store.read(ws.database),
        since=since,
        moment=moment,
        include_done=all_,
        now=now_for(ws, now),
        states=_states(state),
        owner=owner,
        overdue_only=overdue,
        on_open=plan_case_alerts(ws),
    )
    if json_:
        output.print_json(result.items)
        return
    if csv_:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(_csv_row(f) for f in result.items)
        return
    output.print_renderable(followups_table(ws, result.items))
    if not result.items:
        output.info(
            "nobody to call back"
            + (f" for {moment}" if moment else "")
            + (f" since {since}" if since else "")
            + (f" owned by {owner}" if owner else "")
            + ("" if all_ or state else " (closed ones are hidden: --all shows them)")
        )


def _csv_row(f) -> list:
    attributes = (
        output.to_json((f.event or {}).get("attributes", {})).replace("\n", "").replace("  ", "") if f.event else ""
    )
    return [
        f.id,
        f.submitted_at,
        f.moment,
        ",".join(f.reasons),
        " ".join(f"{k}={v:g}" for k, v in f.scores.items()),
        f.comment,
        f.contact["external_id"] or "",
        " ".join(x for x in (f.contact["first_name"], f.contact["last_name"]) if x),
        f.contact["email"] or "",
        f.contact["segment"] or "",
        (f.event or {}).get("type", ""),
        attributes,
        "yes" if f.done else "",
        f.note or "",
        " | ".join(c["label"] for c in f.chosen_reasons),
        f.status,
        f.owner or "",
        f.due_at or "",
        "yes" if f.overdue else "",
        f.opened_at or "",
        f.first_contact_at or "",
        f.outcome or "",
    ]


def followups_table(ws, items):
    """One card per case, stacked so that it reads at 80 columns: when, moment and why; state, owner and
    due date; who; the reasons the customer chose; the comment; the event behind the survey."""
    from zoneinfo import ZoneInfo

    from cxctl.core.timeutil import from_db

    local = ZoneInfo(ws.settings.timezone)

    def at(text: str | None) -> str:
        moment = from_db(text)
        return moment.astimezone(local).strftime("%Y-%m-%d %H:%M") if moment else ""

    rows = []
    for f in items:
        scores = ", ".join(f"{k} {v:g}" for k, v in f.scores.items())
        lines = [f"{at(f.submitted_at)} · {f.moment} · {', '.join(f.reasons)}" + (f" ({scores})" if scores else "")]
        state = [("OVERDUE " if f.overdue else "") + f.status, f.owner or "no owner"]
        if f.due_at and f.status in ("open", "contacted", "unreachable"):
            state.append(f"due {at(f.due_at)}")
        lines.append(" · ".join(state))
        name = " ".join(x for x in (f.contact["first_name"], f.contact["last_name"]) if x)
        lines.append(
            " · ".join(x for x in (name, f.contact["email"], f.contact["external_id"], f.contact["segment"]) if x)
        )
        if f.chosen_reasons:
            lines.append("chose: " + ", ".join(c["label"] for c in f.chosen_reasons))
        if f.comment:
            lines.append(f"“{f.comment}”")
        if f.event:
            # The caller needs the order number or the store at hand: the event's attributes go with its type.
            lines.append(
                " · ".join([f.event["type"]] + [f"{k}: {v}" for k, v in (f.event.get("attributes") or {}).items()])
            )
        if f.outcome or f.note:
            lines.append(("outcome: " + f.outcome) if f.outcome else f"note: {f.note}")
        rows.append([f.id, "\n".join(lines)])
    return output.table(
        f"{len(items)} follow-up(s) · times in {ws.settings.timezone}",
        ["id", "follow-up"],
        rows,
        compact=True,
        lines=True,
    )


def _change(id: int, action: str, by: str | None, now: str | None, workspace, json_: bool, **values) -> None:
    from cxctl.results.alerts import deliver_alerts, plan_case_alerts
    from cxctl.results.cases import change_case

    ws = open_workspace(workspace)
    db = store.connect(ws.database)
    change = change_case(ws, db, id, action, now_for(ws, now), who(by), on_assign=plan_case_alerts(ws), **values)
    if action == "assign" and ws.followups.alerts is not None:
        _report_alerts(deliver_alerts(ws, db, now_for(ws, now)))
    if json_:
        output.print_json(change)
        return
    text = {
        "assign": f"assigned to {change.owner}",
        "contact": "contacted",
        "unreachable": "unreachable",
        "resolve": "resolved",
        "no_action": "closed with no action",
    }[action]
    output.info(
        f"case {id}: {change.previous_status} → {change.status} ({text}) by {change.by}"
        + (" (outcome replaced)" if change.replaced else "")
    )


@followups_app.command("assign")
def followups_assign(
    id: IdArgument,
    to: Annotated[str, typer.Option("--to", help="The new owner (an address gets the alert).")],
    note: NoteOption = None,
    by: ByOption = None,
    json_: JsonOption = False,
    now: NowOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Give a case to another owner (who is told, when alerts are on); the due date stays.

    Example: cxctl followups assign 42 --to marie@example.com --note "client Premium"
    """
    _change(id, "assign", by, now, workspace, json_, owner=to, note=note)


@followups_app.command("contact")
def followups_contact(
    id: IdArgument,
    note: NoteOption = None,
    unreachable: Annotated[
        bool,
        typer.Option("--unreachable", help="Tried, but nobody answered: the case stays owed (and overdue once due)."),
    ] = False,
    by: ByOption = None,
    json_: JsonOption = False,
    now: NowOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Record a call-back: the customer was reached (contacted), or --unreachable.

    Example: cxctl followups contact 42 --note "rappel demain 10h, attend un avoir"
    """
    _change(id, "unreachable" if unreachable else "contact", by, now, workspace, json_, note=note)


@followups_app.command("resolve")
def followups_resolve(
    id: IdArgument,
    outcome: Annotated[Optional[str], typer.Option("--outcome", help="What was done for the customer.")] = None,
    no_action: Annotated[
        bool, typer.Option("--no-action", help="Close without acting (e.g. the customer declined the call).")
    ] = False,
    note: NoteOption = None,
    by: ByOption = None,
    json_: JsonOption = False,
    now: NowOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Close a case: resolved with its outcome, or --no-action. Resolving again replaces the outcome.

    Example: cxctl followups resolve 42 --outcome "avoir de 20 €, livraison reprogrammée"
    """
    _change(id, "no_action" if no_action else "resolve", by, now, workspace, json_, outcome=outcome, note=note)


@followups_app.command("done")
def followups_done(
    id: IdArgument,
    note: NoteOption = None,
    by: ByOption = None,
    json_: JsonOption = False,
    now: NowOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Record that a follow-up was done: the case is resolved with the note as its outcome (a second call
    replaces it). Kept for scripts written before cases; `resolve` says the same.

    Example: cxctl followups done 42 --note "Rappelé, geste commercial de 10 €"
    """
    from cxctl.results.followups import mark_done

    ws = open_workspace(workspace)
    done = mark_done(ws, store.connect(ws.database), id, note, now_for(ws, now), who(by))
    if json_:
        output.print_json(done)
        return
    output.info(f"follow-up {id} marked done" + (" (note replaced)" if done["replaced"] else ""))


@followups_app.command("show")
def followups_show(
    id: IdArgument, json_: JsonOption = False, now: NowOption = None, workspace: WorkspaceOption = None
) -> None:
    """One case with its history: every change, who made it and when.

    Example: cxctl followups show 42
    """
    from cxctl.results.cases import case_history
    from cxctl.results.followups import list_followups

    ws = open_workspace(workspace)
    db = store.read(ws.database)
    found = [f for f in list_followups(ws, db, include_done=True, now=now_for(ws, now)).items if f.id == id]
    if not found:
        from cxctl.core.errors import UsageError

        raise UsageError(f"no follow-up {id}: take the ID from `cxctl followups --all`")
    history = case_history(db, id)
    if json_:
        output.print_json({"case": found[0], "history": history})
        return
    output.print_renderable(followups_table(ws, found))
    output.print_table(
        "history (UTC)",
        ["at", "by", "action", "state", "owner", "note"],
        [
            [
                h.at,
                h.by or "",
                h.action,
                f"{h.from_status or ''} → {h.to_status or ''}".strip(" →"),
                h.owner or "",
                h.note or "",
            ]
            for h in history
        ],
        compact=True,
    )


def tell_owners(ws, db, now) -> None:
    """After answers were stored (`responses import`): open their cases and alert the owners; what the
    alerts did goes to stderr (the import's own output is unchanged)."""
    from cxctl.results.alerts import answers_stored

    done = answers_stored(ws, db, now)
    if done.opened:
        output.info(f"{len(done.opened)} follow-up case(s) opened: `cxctl followups` lists them")
    if done.alerts is not None:
        _report_alerts(done.alerts)


def _report_alerts(report) -> None:
    if report.sent or report.failed or report.retry:
        output.info(
            f"alerts: {report.sent} sent"
            + (f", {report.failed} failed" if report.failed else "")
            + (f", {report.retry} to retry" if report.retry else "")
        )
    for error in report.errors[:10]:
        output.warn(
            f"alert {error['alert']} ({error['channel']}): {error['error']}"
            + (" — tried again by the next `cxctl followups alerts`" if error["retry"] else "")
        )
    if report.in_doubt:
        output.warn(
            f"{report.in_doubt} alert(s) in doubt after a crash (ids {', '.join(map(str, report.in_doubt_ids[:20]))}): "
            f"they may have gone; `cxctl followups alerts --resend-in-doubt` sends them again, "
            f"--accept-in-doubt counts them as sent"
        )


@followups_app.command("alerts")
def followups_alerts(
    resend_in_doubt: Annotated[
        bool,
        typer.Option("--resend-in-doubt", help="The alerts in doubt after a crash did not arrive: send them again."),
    ] = False,
    accept_in_doubt: Annotated[
        bool, typer.Option("--accept-in-doubt", help="The alerts in doubt did arrive: count them as sent.")
    ] = False,
    json_: JsonOption = False,
    now: NowOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Send the alerts still due: cases opened by answers stored elsewhere, retries, and after a crash (cron).

    Exit 1 when an alert failed or is in doubt.

    Example: cxctl followups alerts
    """
    from cxctl.results.alerts import answers_stored, deliver_alerts

    ws = open_workspace(workspace)
    db = store.connect(ws.database)
    at = now_for(ws, now)
    answers_stored(ws, db, at, deliver=False)
    report = deliver_alerts(ws, db, at, resend_in_doubt=resend_in_doubt, accept_in_doubt=accept_in_doubt)
    if json_:
        output.print_json(report)
    else:
        _report_alerts(report)
        if report.ok and not report.sent:
            output.info("no alert to send")
    raise typer.Exit(0 if report.ok else 1)


@followups_app.command("digest")
def followups_digest(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the overdue cases per owner; send nothing.")] = False,
    json_: JsonOption = False,
    now: NowOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Tell each owner (email) and each chat channel of the cases overdue now — once a day, for cron.

    Example: cxctl followups digest -w /srv/cx   (from cron, e.g. weekdays at 8:30: 30 8 * * 1-5)
    """
    from cxctl.results.alerts import digest

    ws = open_workspace(workspace)
    result = digest(ws, store.connect(ws.database), now_for(ws, now), dry_run=dry_run)
    if json_:
        output.print_json(result)
    else:
        output.print_table(
            f"overdue cases on {result.day}",
            ["owner", "cases", "ids"],
            [[owner or "(no owner)", len(ids), " ".join(map(str, ids))] for owner, ids in result.overdue.items()],
        )
        if ws.followups.alerts is None:
            output.info("no alert is configured (followups.alerts): nothing was sent")
        elif not dry_run:
            _report_alerts(result.report)
    raise typer.Exit(0 if result.report.ok else 1)


def register(app: typer.Typer) -> None:
    app.add_typer(followups_app, name="followups")
