"""`validate` on the `followups:` section: owner rules name declared moments, journeys and stages, owners
that receive email alerts are addresses, and every category a moment can open has a deadline."""

from __future__ import annotations

from typing import Any

from cxctl.core.emails import is_valid
from cxctl.core.errors import Problem, did_you_mean
from cxctl.workspace.followup_model import FollowupSettings
from cxctl.workspace.loader import Declared
from cxctl.workspace.settings_checks import problem_at, raw_get
from cxctl.workspace.yamlfile import ParsedFile

# Question type → the category of the case its low answers open (cxctl.results.cases decides the thresholds).
CATEGORY_OF_TYPE = {"nps": "detractor", "csat": "dissatisfied", "ces": "high_effort"}


def _names(value: Any) -> list[tuple[int | None, str]]:
    if isinstance(value, str):
        return [(None, value)]
    return [(i, v) for i, v in enumerate(value) if isinstance(v, str)] if isinstance(value, list) else []


def check_followups(
    declared: Declared, parsed: ParsedFile | None, settings: FollowupSettings | None, incomplete: bool
) -> list[Problem]:
    """Every problem of the `followups:` block (empty when there is none)."""
    if parsed is None:
        return []
    problems: list[Problem] = []
    rules = raw_get(parsed.data, "followups", "owners")
    moments, journeys = declared.raw["moments"], declared.raw["journeys"]
    all_stages = {s for _, raw in journeys.values() for _, s in _names(raw_get(raw, "stages"))}
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        when = raw_get(rule, "when")
        base = ("followups", "owners", i, "when")
        for key, known, what in (("moment", moments, "moment"), ("journey", journeys, "journey")):
            for j, name in _names(raw_get(when, key)):
                if name not in known and not incomplete:
                    problems.append(
                        problem_at(
                            parsed,
                            base + ((key,) if j is None else (key, j)),
                            f"unknown {what} {name!r}"
                            + did_you_mean(name, known)
                            + f": use one of {', '.join(known) or '(none declared)'}",
                        )
                    )
        named = [n for _, n in _names(raw_get(when, "journey")) if n in journeys]
        stages = {s for n in named for _, s in _names(raw_get(journeys[n][1], "stages"))} if named else all_stages
        for j, name in _names(raw_get(when, "stage")):
            if stages and name not in stages:
                problems.append(
                    problem_at(
                        parsed,
                        base + (("stage",) if j is None else ("stage", j)),
                        f"no journey has a stage {name!r}"
                        + did_you_mean(name, stages)
                        + f": use one of {', '.join(sorted(stages))}",
                    )
                )
        if isinstance(raw_get(when, "event"), dict) and raw_get(when, "event"):
            chosen = [n for _, n in _names(raw_get(when, "moment")) if n in moments]
            if chosen and all(raw_get(moments[n][1], "kind") == "relational" for n in chosen):
                problems.append(
                    problem_at(
                        parsed,
                        base + ("event",),
                        "a relational moment has no event behind its "
                        "survey, so this condition never holds: drop `event:` or name a "
                        "transactional moment",
                        "warning",
                    )
                )
    if settings is None:
        return problems
    if settings.alerts is not None and settings.alerts.email:
        owners = [(("followups", "default_owner"), settings.default_owner)] + [
            (("followups", "owners", i, "owner"), rule.owner) for i, rule in enumerate(settings.owners)
        ]
        for place, owner in owners:
            if owner is not None and not is_valid(owner):
                problems.append(
                    problem_at(
                        parsed,
                        place,
                        f"{owner!r} is not an email address, and alerts.email is on: "
                        f"its cases get no email alert; write an address (a team mailbox works)",
                        "warning",
                    )
                )
    asked = {raw_get(questions, "type") for _, questions in declared.raw["questions"].values()}
    for kind, category in CATEGORY_OF_TYPE.items():
        if kind in asked and category not in settings.deadlines:
            problems.append(
                problem_at(
                    parsed,
                    ("followups", "deadlines") if "deadlines" in parsed.data["followups"] else ("followups",),
                    f"no deadline for {category} cases: they are never overdue; add e.g. "
                    f"deadlines: {{{category}: 48h}}",
                    "warning",
                )
            )
    return problems
