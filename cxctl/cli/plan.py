"""`cxctl plan`: who would get which survey now, when, and why not — without changing the store."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Annotated, Optional

import typer

from cxctl import store
from cxctl.cli.common import JsonOption, MomentOption, NowOption, WorkspaceOption, now_for, open_workspace
from cxctl.core import output


def plan_command(
    workspace: WorkspaceOption = None,
    now: NowOption = None,
    moment: MomentOption = None,
    json_: JsonOption = False,
    explain_contact: Annotated[
        Optional[str],
        typer.Option(
            "--explain", metavar="CONTACT", help="Show every rule's verdict for this contact (external id or email)."
        ),
    ] = None,
) -> None:
    """Show the invitations and reminders the rules would plan now, and who is excluded and why.

    Nothing is written: `cxctl send` runs the same engine and records the plan.

    Example: cxctl plan --now 2026-11-23T09:00 --moment delivery_csat
    """
    from cxctl.planning.engine import compute_plan

    ws = open_workspace(workspace)
    db = store.read(ws.database)
    when = now_for(ws, now)
    if explain_contact is not None:
        from cxctl.planning.explain import explain

        result = explain(ws, db, when, explain_contact, moment)
        if json_:
            output.print_json(result)
        else:
            _render_explanation(result)
        return
    if json_:
        from cxctl.planning.streamed import streamed_plan_json

        with streamed_plan_json(ws, db, when, moment) as (plan, exclusions):
            output.print_json_streamed(
                {
                    "now": plan.now,
                    "waves": plan.waves,
                    "planned": plan.planned,
                    "counts": plan.counts,
                    "by_moment": plan.by_moment,
                    "exclusions": output.EncodedItems(exclusions),
                }
            )
        return
    plan = compute_plan(ws, db, when, moment)
    _render_plan(plan)


def _render_plan(plan) -> None:
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for p in plan.planned:
        groups[(p.moment, p.kind)].append(p)
    rows = []
    for (moment, kind), items in sorted(groups.items()):
        times = sorted(p.send_at for p in items)
        languages = Counter(p.language for p in items)
        rows.append(
            [
                moment,
                kind,
                len(items),
                times[0].strftime("%Y-%m-%d %H:%M"),
                times[-1].strftime("%Y-%m-%d %H:%M"),
                " ".join(f"{lang}:{n}" for lang, n in sorted(languages.items())),
            ]
        )
    if rows:
        output.print_table(
            f"Planned at {plan.now:%Y-%m-%d %H:%M} UTC (send times in UTC)",
            ["moment", "kind", "count", "first send", "last send", "languages"],
            rows,
        )
    else:
        output.stdout.print(f"Nothing to plan at {plan.now:%Y-%m-%d %H:%M} UTC.")
    excluded = [
        [moment, reason, n]
        for moment, reasons in sorted(plan.by_moment.items())
        for reason, n in sorted(reasons.items())
    ]
    if excluded:
        output.print_table("Excluded", ["moment", "reason", "count"], excluded)
    else:
        output.stdout.print("No exclusions.")


def _render_explanation(result) -> None:
    output.stdout.print(
        f"contact #{result.contact_id} {result.external_id or ''} <{result.email or 'no email'}> "
        f"at {result.now:%Y-%m-%d %H:%M} UTC",
        markup=False,
    )
    for verdict in result.moments:
        target = f"event #{verdict.event_id}" if verdict.event_id else (f"wave {verdict.wave}" if verdict.wave else "")
        head = verdict.verdict + (f" ({verdict.reason})" if verdict.reason else "")
        if verdict.channel and any(c.rule == "channel" for c in verdict.checks):
            head += f" by {verdict.channel}"
        if verdict.send_at:
            head += f", sends {verdict.send_at:%Y-%m-%d %H:%M} UTC ({verdict.send_at_local})"
        output.print_table(
            f"{verdict.moment} {target}: {head}",
            ["rule", "verdict", "detail"],
            [[c.rule, "ok" if c.ok else "EXCLUDES", c.detail] for c in verdict.checks],
        )
    for r in result.reminders:
        if hasattr(r, "send_at"):
            output.stdout.print(
                f"reminder planned for {r.moment} (invitation #{r.parent_id}) at {r.send_at:%Y-%m-%d %H:%M} UTC",
                markup=False,
            )
        else:
            output.stdout.print(f"reminder for {r.moment} excluded ({r.reason}): {r.detail}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)
