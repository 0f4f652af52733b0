"""Cross-file checks: global ids, references between objects, secrets in clear, and warnings.

Each check returns Problems with the place of the offending key, so `cxctl validate` can report
all of them at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cxctl.campaign import Rules, WorkspaceFile
from cxctl.errors import Problem
from cxctl.loader import (
    SECTIONS,
    WORKSPACE_FILE,
    ParsedFile,
    Workspace,
    did_you_mean,
    format_path,
    mark_for,
)

SECRET_KEYS = {"password", "passwd", "secret", "api_key", "apikey", "token_secret", "smtp_password"}


def _problem(parsed: ParsedFile, path: tuple, message: str, severity: str = "error") -> Problem:
    line, col = mark_for(parsed, path)
    return Problem(parsed.display, line, col, format_path(path), message, severity)


def find_secrets(parsed: ParsedFile) -> list[Problem]:
    """A secret written in clear is an error: secrets come from environment variables only."""
    found = []

    def walk(value: Any, path: tuple) -> None:
        if isinstance(value, dict):
            for key, child in value.items():
                if isinstance(key, str) and key.lower() in SECRET_KEYS and isinstance(child, (str, int)) and child != "":
                    found.append(_problem(parsed, path + (key,),
                        f"a secret is written in clear: remove it and name an environment variable instead "
                        f"({key}_env: CXCTL_{str(key).upper()})"))
                else:
                    walk(child, path + (key,))
        elif isinstance(value, list):
            for i, child in enumerate(value):
                walk(child, path + (i,))

    walk(parsed.data, ())
    return found


def cross_check(root: Path, files: list[tuple[ParsedFile, WorkspaceFile]], had_errors: bool) -> tuple[Workspace | None, list[Problem]]:
    """Merge the files into one workspace and check every reference across them."""
    problems: list[Problem] = []
    for parsed, _ in files:
        problems.extend(find_secrets(parsed))

    settings = None
    settings_place: ParsedFile | None = None
    rules: Rules | None = None
    merged: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    owner: dict[tuple[str, str], ParsedFile] = {}
    places: dict[str, tuple[str, int, int]] = {}
    all_ids: dict[str, tuple[str, ParsedFile]] = {}

    for parsed, model in files:
        if model.workspace is not None:
            if settings is not None:
                problems.append(_problem(parsed, ("workspace",), f"a second workspace block (the first is in {settings_place.display}): keep one, in {WORKSPACE_FILE}"))
            else:
                settings, settings_place = model.workspace, parsed
        if model.rules is not None:
            if rules is not None:
                problems.append(_problem(parsed, ("rules",), "a second rules block: solicitation rules are declared once per workspace"))
            else:
                rules = model.rules
        for section in SECTIONS:
            for obj_id, obj in getattr(model, section).items():
                if obj_id in merged[section]:
                    first = owner[(section, obj_id)]
                    line, _ = mark_for(first, (section, obj_id))
                    problems.append(_problem(parsed, (section, obj_id), f"duplicate {section[:-1]} id {obj_id!r}, first declared at {first.display}:{line}: rename one"))
                    continue
                merged[section][obj_id] = obj
                owner[(section, obj_id)] = parsed
                line, col = mark_for(parsed, (section, obj_id))
                places[f"{section}.{obj_id}"] = (parsed.display, line, col)
                all_ids.setdefault(obj_id, (section, parsed))

    if settings is None and not had_errors:
        display = str(root / WORKSPACE_FILE)
        problems.append(Problem(display, 1, 1, "workspace", f"no workspace settings found: create {WORKSPACE_FILE} with a `workspace:` block (`cxctl init` writes one)"))

    journeys, moments, questions = merged["journeys"], merged["moments"], merged["questions"]

    for moment_id, moment in moments.items():
        parsed = owner[("moments", moment_id)]
        base = ("moments", moment_id)
        journey = journeys.get(moment.journey)
        if journey is None:
            problems.append(_problem(parsed, base + ("journey",), f"unknown journey {moment.journey!r}" + did_you_mean(moment.journey, journeys)))
        elif moment.stage not in journey.stages:
            problems.append(_problem(parsed, base + ("stage",), f"journey {moment.journey!r} has no stage {moment.stage!r}" + did_you_mean(moment.stage, journey.stages)))
        if journey is not None and moment.channel != "email" and journey.channels and moment.channel not in journey.channels:
            problems.append(_problem(parsed, base + ("channel",), f"journey {moment.journey!r} has no channel {moment.channel!r}" + did_you_mean(moment.channel, journey.channels)))
        asked: list[str] = []
        for i, qid in enumerate(moment.questions):
            if qid not in questions:
                problems.append(_problem(parsed, base + ("questions", i), f"unknown question {qid!r}" + did_you_mean(qid, questions)))
            elif qid in asked:
                problems.append(_problem(parsed, base + ("questions", i), f"question {qid!r} is listed twice"))
            else:
                cond = questions[qid].ask_if
                if cond is not None and cond.question in questions and cond.question not in asked:
                    problems.append(_problem(parsed, base + ("questions", i), f"question {qid!r} follows up {cond.question!r}, which this moment does not ask before it: list {cond.question!r} first"))
            asked.append(qid)
        for qid in moment.responses.columns:
            if qid not in moment.questions:
                problems.append(_problem(parsed, base + ("responses", "columns", qid), f"question {qid!r} is not asked by this moment" + did_you_mean(qid, moment.questions)))
        # Warnings: legal but probably not what the team wants.
        if all(v is None for v in moment.targets.model_dump().values()):
            problems.append(_problem(parsed, base, f"moment {moment_id!r} has no target: add targets (nps, csat, ces) to read it against a goal", "warning"))
        if moment.kind == "in_the_moment" and moment.reminders is not None and moment.reminders.count > 0:
            problems.append(_problem(parsed, base + ("reminders",), "a reminder on an in-the-moment survey arrives long after the moment: remove it", "warning"))
        if moment.trigger is not None and moment.trigger.expires <= moment.trigger.delay:
            problems.append(_problem(parsed, base + ("trigger", "expires"), "the survey expires before it is due (expires ≤ delay): lengthen expires"))
        if rules is not None and moment.reminders is not None and moment.reminders.count > rules.max_reminders:
            problems.append(_problem(parsed, base + ("reminders", "count"), f"{moment.reminders.count} reminders exceed rules.max_reminders ({rules.max_reminders})"))

    for question_id, question in questions.items():
        parsed = owner[("questions", question_id)]
        cond = question.ask_if
        if cond is not None and cond.question not in questions:
            problems.append(_problem(parsed, ("questions", question_id, "ask_if", "question"), f"follow-up condition on unknown question {cond.question!r}" + did_you_mean(cond.question, questions)))
        if settings is not None and isinstance(question.text, dict) and settings.default_language not in question.text:
            problems.append(_problem(parsed, ("questions", question_id, "text"), f"no wording in the default language {settings.default_language!r}"))

    rules_parsed = next((p for p, m in files if m.rules is not None), None)
    if rules is not None and rules_parsed is not None:
        for i, moment_id in enumerate(rules.priority):
            if moment_id not in moments:
                problems.append(_problem(rules_parsed, ("rules", "priority", i), f"unknown moment {moment_id!r}" + did_you_mean(moment_id, moments)))

    if settings is not None and settings_place is not None:
        for i, lang in enumerate(settings.languages):
            pass
        if settings.default_language not in settings.languages:
            problems.append(_problem(settings_place, ("workspace", "default_language"), f"default language {settings.default_language!r} is not in languages {settings.languages}"))
        if settings.smtp.password_env and not settings.smtp.username_env:
            problems.append(_problem(settings_place, ("workspace", "smtp", "username_env"), "password_env is set but username_env is not"))

    if settings is None:
        return None, problems
    workspace = Workspace(
        root=root,
        settings=settings,
        journeys=journeys,
        moments=moments,
        questions=questions,
        rules=rules or Rules(),
        mappings=merged["mappings"],
        places=places,
    )
    return workspace, problems
