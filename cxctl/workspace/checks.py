"""Cross-file checks: global ids, references between objects, follow-ups, priorities, and warnings.

References are checked on the raw YAML data, not only on the objects that passed the schema: a
moment with a schema error still reports its unknown journey, and an id declared by an invalid
object still counts as declared (so fixing one typo never reveals a second wave of errors).
Each check returns Problems with the place of the offending key, so `cxctl validate` reports all
of them at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from cxctl.core.errors import Problem, did_you_mean
from cxctl.workspace.channel_checks import check_channels, check_consent_mappings
from cxctl.workspace.deliverability_model import Deliverability
from cxctl.workspace.fields import is_language
from cxctl.workspace.followup_checks import check_followups
from cxctl.workspace.followup_model import FollowupSettings
from cxctl.workspace.loader import SECTIONS, WORKSPACE_FILE, Declared, Workspace, collect_declared
from cxctl.workspace.model import Rules, Settings, WorkspaceFile
from cxctl.workspace.settings_checks import (
    TemplateFiles,
    check_dimensions,
    check_mappings,
    check_settings,
    date_format_problem,
    find_secrets,
    problem_at,
    raw_get,
    template_problems,
)
from cxctl.workspace.yamlfile import ParsedFile, Path_, mark_for

SCORED_TYPES = ("nps", "csat", "ces", "rating")
CHOICE_TYPES = ("single_choice", "multiple_choice")
# An in-the-moment survey that waits longer than this is no longer "in the moment".
IN_THE_MOMENT_MAX_DELAY = timedelta(hours=24)


def _str_list(value: Any) -> list[tuple[int, str]]:
    return [(i, v) for i, v in enumerate(value) if isinstance(v, str)] if isinstance(value, list) else []


def _check_moments(
    declared: Declared, incomplete: bool, settings_raw: Any, templates: TemplateFiles | None, rules: Rules | None
) -> list[Problem]:
    problems: list[Problem] = []
    journeys = declared.raw["journeys"]
    questions = declared.raw["questions"]
    default_language = raw_get(settings_raw, "default_language")
    default_language = default_language if isinstance(default_language, str) else "fr"
    languages = [lang for _, lang in _str_list(raw_get(settings_raw, "languages")) if is_language(lang)] or [
        default_language
    ]
    template_verdicts: dict[str, list[tuple[str, str]]] = {}  # template -> (message, severity)

    for moment_id, (parsed, raw) in declared.raw["moments"].items():
        if not isinstance(raw, dict):
            continue
        base = ("moments", moment_id)
        journey_id = raw.get("journey")
        journey_raw = None
        if isinstance(journey_id, str):
            if journey_id in journeys:
                journey_raw = journeys[journey_id][1]
            elif not incomplete:
                problems.append(
                    problem_at(
                        parsed,
                        base + ("journey",),
                        f"unknown journey {journey_id!r}"
                        + did_you_mean(journey_id, journeys)
                        + _declare_hint("journeys", journeys),
                    )
                )
        stage = raw.get("stage")
        stages = [s for _, s in _str_list(raw_get(journey_raw, "stages"))]
        if isinstance(stage, str) and stages and stage not in stages:
            problems.append(
                problem_at(
                    parsed,
                    base + ("stage",),
                    f"journey {journey_id!r} has no stage {stage!r}"
                    + did_you_mean(stage, stages)
                    + f": use one of {', '.join(stages)}",
                )
            )
        channel = raw.get("channel")
        channels = [c for _, c in _str_list(raw_get(journey_raw, "channels"))]
        if isinstance(channel, str) and channel != "email" and channels and channel not in channels:
            problems.append(
                problem_at(
                    parsed,
                    base + ("channel",),
                    f"journey {journey_id!r} has no channel {channel!r}"
                    + did_you_mean(channel, channels)
                    + f": use one of {', '.join(channels)} or add it to the journey",
                )
            )

        asked: list[str] = []
        for i, question_id in _str_list(raw.get("questions")):
            place = base + ("questions", i)
            if question_id not in questions:
                if not incomplete:
                    problems.append(
                        problem_at(
                            parsed,
                            place,
                            f"unknown question {question_id!r}"
                            + did_you_mean(question_id, questions)
                            + _declare_hint("questions", questions),
                        )
                    )
            elif question_id in asked:
                problems.append(problem_at(parsed, place, f"question {question_id!r} is listed twice: remove one"))
            else:
                follows = raw_get(questions[question_id][1], "ask_if", "question")
                if isinstance(follows, str) and follows in questions and follows not in asked:
                    problems.append(
                        problem_at(
                            parsed,
                            place,
                            f"question {question_id!r} follows up {follows!r}, which this moment does not ask before it: "
                            f"list {follows!r} first",
                        )
                    )
            asked.append(question_id)

        columns = raw_get(raw, "responses", "columns")
        if isinstance(columns, dict) and isinstance(raw.get("questions"), list):
            for question_id in columns:
                if question_id not in asked:
                    problems.append(
                        problem_at(
                            parsed,
                            base + ("responses", "columns", question_id),
                            f"question {question_id!r} is not asked by this moment"
                            + did_you_mean(question_id, asked)
                            + ": map only the moment's questions",
                        )
                    )
        date_format = raw_get(raw, "responses", "date_format")
        if isinstance(date_format, str):
            reason = date_format_problem(date_format)
            if reason:
                problems.append(problem_at(parsed, base + ("responses", "date_format"), reason))

        template = raw.get("template", "invitation")
        if templates is not None and isinstance(template, str):
            if template not in template_verdicts:
                template_verdicts[template] = template_problems(template, default_language, languages, templates)
            for message, severity in template_verdicts[template]:
                problems.append(
                    problem_at(parsed, base + ("template",) if "template" in raw else base, message, severity)
                )

    for moment_id, moment in declared.models["moments"].items():
        parsed, _ = declared.raw["moments"][moment_id]
        base = ("moments", moment_id)
        # Warnings: legal but probably not what the team wants.
        if all(v is None for v in moment.targets.model_dump().values()):
            problems.append(
                problem_at(
                    parsed,
                    base,
                    f"moment {moment_id!r} has no target: add targets (nps, csat, ces) to read it against a goal",
                    "warning",
                )
            )
        if moment.kind == "in_the_moment":
            if moment.reminders is not None and moment.reminders.count > 0:
                problems.append(
                    problem_at(
                        parsed,
                        base + ("reminders",),
                        "a reminder on an in-the-moment survey arrives long after the moment: remove it",
                        "warning",
                    )
                )
            if moment.trigger is not None and moment.trigger.delay > IN_THE_MOMENT_MAX_DELAY:
                problems.append(
                    problem_at(
                        parsed,
                        base + ("trigger", "delay"),
                        "an in-the-moment survey should go within "
                        "24h of the interaction: shorten the delay or make it transactional",
                        "warning",
                    )
                )
        if moment.trigger is not None and moment.trigger.expires <= moment.trigger.delay:
            problems.append(
                problem_at(
                    parsed,
                    base + ("trigger", "expires"),
                    "the survey expires before it is due (expires ≤ delay): lengthen expires",
                )
            )
        if rules is not None and moment.reminders is not None and moment.reminders.count > rules.max_reminders:
            problems.append(
                problem_at(
                    parsed,
                    base + ("reminders", "count"),
                    f"{moment.reminders.count} reminders exceed rules.max_reminders ({rules.max_reminders}): lower count",
                )
            )
    return problems


def _declare_hint(section: str, known: dict) -> str:
    return "" if known else f": declare it under `{section}:` in any file of the workspace"


def _check_questions(declared: Declared, incomplete: bool, settings: Settings | None) -> list[Problem]:
    problems: list[Problem] = []
    questions = declared.raw["questions"]
    asked = {q for _, raw in declared.raw["moments"].values() for _, q in _str_list(raw_get(raw, "questions"))}
    for question_id, (parsed, raw) in questions.items():
        base = ("questions", question_id)
        condition = raw_get(raw, "ask_if")
        target = raw_get(condition, "question")
        if isinstance(target, str):
            if target not in questions:
                if not incomplete:
                    problems.append(
                        problem_at(
                            parsed,
                            base + ("ask_if", "question"),
                            f"follow-up condition on unknown question {target!r}" + did_you_mean(target, questions),
                        )
                    )
            else:
                problems.extend(_check_condition(parsed, base, condition, target, questions[target][1]))
        if question_id not in declared.models["questions"]:
            problems.extend(_raw_scale(parsed, base, raw))
        if question_id not in asked and declared.raw["moments"] and not incomplete:
            problems.append(
                problem_at(
                    parsed,
                    base,
                    f"question {question_id!r} is not asked by any moment: add it to a moment's questions or remove it",
                    "warning",
                )
            )
    if settings is not None:
        for question_id, question in declared.models["questions"].items():
            parsed, _ = questions[question_id]
            if isinstance(question.text, dict):
                if settings.default_language not in question.text:
                    problems.append(
                        problem_at(
                            parsed,
                            ("questions", question_id, "text"),
                            f"no wording in the default language {settings.default_language!r}: add "
                            f"{settings.default_language}: ...",
                        )
                    )
                for language in question.text:
                    if language not in settings.languages:
                        problems.append(
                            problem_at(
                                parsed,
                                ("questions", question_id, "text", language),
                                f"language {language!r} is not in workspace.languages {settings.languages}: add it there "
                                "or remove this wording",
                                "warning",
                            )
                        )
    return problems


def _raw_scale(parsed: ParsedFile, base: tuple, raw: Any) -> list[Problem]:
    """The impossible-scale rule for a question whose other errors kept the model from checking it."""
    low, high = raw_get(raw, "min"), raw_get(raw, "max")
    if isinstance(low, int) and isinstance(high, int) and low >= high:
        return [problem_at(parsed, base + ("min",), f"impossible scale {low}–{high}: min must be below max")]
    return []


def _check_condition(parsed: ParsedFile, base: tuple, condition: dict, target_id: str, target: Any) -> list[Problem]:
    """A follow-up condition must be able to match the answer of the question it watches."""
    problems = []
    kind = raw_get(target, "type")
    numeric = [k for k in ("at_most", "at_least") if k in condition]
    if numeric and kind not in SCORED_TYPES:
        problems.append(
            problem_at(
                parsed,
                base + ("ask_if", numeric[0]),
                f"{numeric[0]} compares a score but {target_id!r} is {_article(kind)} {kind} question: use equals or any_of",
            )
        )
    if kind in CHOICE_TYPES:
        choice_ids = [c.get("id") for c in raw_get(target, "choices") or [] if isinstance(c, dict)]
        any_of = condition.get("any_of")
        values = any_of if isinstance(any_of, list) else []
        pairs: list[tuple[Path_, Any]] = [(("any_of", i), v) for i, v in enumerate(values)]
        if "equals" in condition:
            pairs.append((("equals",), condition["equals"]))
        for where, value in pairs:
            if choice_ids and str(value) not in choice_ids:
                problems.append(
                    problem_at(
                        parsed,
                        base + ("ask_if",) + where,
                        f"{target_id!r} has no choice {value!r}"
                        + did_you_mean(value, choice_ids)
                        + f": use one of {', '.join(map(str, choice_ids))}",
                    )
                )
    return problems


def _check_rules(declared: Declared, incomplete: bool, rules_place: ParsedFile | None) -> list[Problem]:
    problems: list[Problem] = []
    if rules_place is None:
        return problems
    moments = declared.raw["moments"]
    seen: set[str] = set()
    for i, moment_id in _str_list(raw_get(rules_place.data, "rules", "priority")):
        place = ("rules", "priority", i)
        if moment_id not in moments:
            if not incomplete:
                problems.append(
                    problem_at(
                        rules_place,
                        place,
                        f"unknown moment {moment_id!r}"
                        + did_you_mean(moment_id, moments)
                        + ": list declared moment ids only",
                    )
                )
        elif moment_id in seen:
            problems.append(problem_at(rules_place, place, f"moment {moment_id!r} is listed twice: remove one"))
        seen.add(moment_id)
    return problems


def cross_check(
    root: Path,
    files: list[tuple[ParsedFile, WorkspaceFile]],
    had_errors: bool,
    incomplete: bool = False,
    render_templates: Callable[[Workspace], list[tuple[str, str, str]]] | None = None,
) -> tuple[Workspace | None, list[Problem]]:
    """Merge the files into one workspace and check every reference across them.

    `incomplete` means some file could not be parsed: unknown-id errors are then not reported, since
    the missing ids may well be in that file. `render_templates` (the sending stage's template check,
    passed in by cxctl.validation so this stage does not import it) returns (moment id, message, severity) triples.
    """
    problems: list[Problem] = []
    for parsed, _ in files:
        problems.extend(find_secrets(parsed))

    settings: Settings | None = None
    settings_place: ParsedFile | None = None
    settings_raw: Any = None
    rules: Rules | None = None
    rules_place: ParsedFile | None = None
    once: dict[str, tuple[ParsedFile, Any]] = {}  # followups, deliverability: declared once per workspace
    for parsed, model in files:
        for section in ("followups", "deliverability"):
            if section in parsed.data:
                if section in once:
                    problems.append(
                        problem_at(
                            parsed,
                            (section,),
                            f"a second {section} block (the first is in "
                            f"{once[section][0].display}): declare it once per workspace; merge them",
                        )
                    )
                else:
                    once[section] = (parsed, getattr(model, section))
        if "workspace" in parsed.data:
            if settings_place is not None:
                problems.append(
                    problem_at(
                        parsed,
                        ("workspace",),
                        f"a second workspace block (the first is in "
                        f"{settings_place.display}): keep one, in {WORKSPACE_FILE}",
                    )
                )
            else:
                settings, settings_place, settings_raw = model.workspace, parsed, parsed.data["workspace"]
        if "rules" in parsed.data:
            if rules_place is not None:
                problems.append(
                    problem_at(
                        parsed,
                        ("rules",),
                        f"a second rules block (the first is in {rules_place.display}): "
                        "solicitation rules are declared once per workspace; merge them",
                    )
                )
            else:
                rules, rules_place = model.rules, parsed

    if settings_place is None and not had_errors:
        display = str(root / WORKSPACE_FILE)
        problems.append(
            Problem(
                display,
                1,
                1,
                "workspace",
                f"no workspace settings found: create {WORKSPACE_FILE} with "
                "a `workspace:` block (`cxctl init` writes one)",
            )
        )

    declared = collect_declared(files, problems)
    templates = None
    if settings_place is not None:
        folder = raw_get(settings_raw, "templates")
        folder = Path(folder) if isinstance(folder, str) else Path("templates")
        templates = TemplateFiles(folder if folder.is_absolute() else root / folder)
    problems.extend(_check_moments(declared, incomplete, settings_raw, templates, rules))
    problems.extend(_check_questions(declared, incomplete, settings))
    problems.extend(_check_rules(declared, incomplete, rules_place))
    problems.extend(check_mappings(declared))
    problems.extend(check_settings(settings, settings_place))
    problems.extend(check_dimensions(declared, settings, settings_place))
    problems.extend(check_channels(declared, settings, settings_place, templates, rules))
    problems.extend(check_consent_mappings(declared))
    followups_place, followups = once.get("followups", (None, None))
    problems.extend(check_followups(declared, followups_place, followups, incomplete))

    if settings is None:
        return None, problems
    places = {}
    for section in SECTIONS:
        for obj_id, (parsed, _) in declared.raw[section].items():
            line, col = mark_for(parsed, (section, obj_id))
            places[f"{section}.{obj_id}"] = (parsed.display, line, col)
    workspace = Workspace(
        root=root,
        settings=settings,
        journeys=declared.models["journeys"],
        moments=declared.models["moments"],
        questions=declared.models["questions"],
        rules=rules or Rules(),
        mappings=declared.models["mappings"],
        places=places,
        followups=followups or FollowupSettings(),
        deliverability=once.get("deliverability", (None, None))[1] or Deliverability(),
    )
    if render_templates is not None and not any(p.severity == "error" for p in problems):
        for moment_id, message, severity in render_templates(workspace):
            parsed, raw = declared.raw["moments"][moment_id]
            problems.append(
                problem_at(
                    parsed, ("moments", moment_id) + (("template",) if "template" in raw else ()), message, severity
                )
            )
    return workspace, problems


def _article(word: Any) -> str:
    return "an" if str(word)[:1] in "aeiou" else "a"
