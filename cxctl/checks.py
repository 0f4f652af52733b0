"""Cross-file checks: global ids, references between objects, templates, mappings, secrets, warnings.

References are checked on the raw YAML data, not only on the objects that passed the schema: a
moment with a schema error still reports its unknown journey, and an id declared by an invalid
object still counts as declared (so fixing one typo never reveals a second wave of errors).
Each check returns Problems with the place of the offending key, so `cxctl validate` reports all
of them at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cxctl.campaign import CONTACT_FIELDS, EVENT_FIELDS, Rules, Settings, WorkspaceFile, is_language
from cxctl.errors import Problem
from cxctl.loader import (
    SECRET_KEYS,
    SECTIONS,
    WORKSPACE_FILE,
    ParsedFile,
    Workspace,
    did_you_mean,
    format_path,
    mark_for,
)

TEMPLATE_PARTS = ("subject", "txt", "html")
REQUIRED_TEMPLATE_PARTS = ("subject", "txt")
SCORED_TYPES = ("nps", "csat", "ces", "rating")
CHOICE_TYPES = ("single_choice", "multiple_choice")
# An in-the-moment survey that waits longer than this is no longer "in the moment".
IN_THE_MOMENT_MAX_DELAY = timedelta(hours=24)
_URL_CREDENTIALS = re.compile(r"://[^/\s:@{}]+:[^/\s@{}]+@")


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
                        f"a secret is written in clear: delete it (and rotate it, it is in your git history), "
                        f"then name an environment variable instead, e.g. {key.lower()}_env: CXCTL_{key.upper()}"))
                else:
                    walk(child, path + (key,))
        elif isinstance(value, list):
            for i, child in enumerate(value):
                walk(child, path + (i,))
        elif isinstance(value, str) and _URL_CREDENTIALS.search(value):
            found.append(_problem(parsed, path,
                "a password is written in clear in this URL: remove user:password@ and give credentials "
                "through environment variables"))

    walk(parsed.data, ())
    return found


@dataclass
class _Declared:
    """Every id declared in the raw data, valid or not, with the file that declared it first."""

    raw: dict[str, dict[str, tuple[ParsedFile, Any]]] = field(default_factory=lambda: {s: {} for s in SECTIONS})
    models: dict[str, dict[str, Any]] = field(default_factory=lambda: {s: {} for s in SECTIONS})


def _collect(files: list[tuple[ParsedFile, WorkspaceFile]], problems: list[Problem]) -> _Declared:
    declared = _Declared()
    for parsed, model in files:
        for section in SECTIONS:
            items = parsed.data.get(section)
            if not isinstance(items, dict):
                continue
            valid = getattr(model, section)
            for obj_id, raw in items.items():
                if obj_id in declared.raw[section]:
                    first, _ = declared.raw[section][obj_id]
                    line, _ = mark_for(first, (section, obj_id))
                    problems.append(_problem(parsed, (section, obj_id),
                        f"duplicate {section[:-1]} id {obj_id!r}, first declared at {first.display}:{line}: rename one"))
                    continue
                declared.raw[section][obj_id] = (parsed, raw)
                if obj_id in valid:
                    declared.models[section][obj_id] = valid[obj_id]
    return declared


def _get(raw: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(raw, dict):
            return None
        raw = raw.get(key)
    return raw


def _str_list(value: Any) -> list[tuple[int, str]]:
    return [(i, v) for i, v in enumerate(value) if isinstance(v, str)] if isinstance(value, list) else []


class _Templates:
    """Which template files exist, in the workspace's folder or among cxctl's bundled defaults."""

    def __init__(self, folder: Path):
        self.folders = [folder]
        try:
            from cxctl.resources import default_templates_dir

            self.folders.append(default_templates_dir())
        except FileNotFoundError:
            pass
        self._names: set[str] | None = None

    def _load(self) -> set[str]:
        if self._names is None:
            self._names = {p.name for folder in self.folders if folder.is_dir() for p in folder.iterdir()}
        return self._names

    def has(self, name: str, language: str, part: str) -> bool:
        return f"{name}.{language}.{part}.j2" in self._load()

    @property
    def complete(self) -> bool:
        """False when cxctl's own bundled templates are absent (a broken install or a checkout being
        built): then a missing template cannot be blamed on the workspace, so it is not reported."""
        return len(self.folders) > 1 and any(n.endswith(".j2") for n in self._names_in(self.folders[1]))

    @staticmethod
    def _names_in(folder: Path) -> list[str]:
        return [p.name for p in folder.iterdir()] if folder.is_dir() else []


def _check_moments(declared: _Declared, incomplete: bool, settings_raw: Any, templates: _Templates | None,
                   rules: Rules | None) -> list[Problem]:
    problems: list[Problem] = []
    journeys = declared.raw["journeys"]
    questions = declared.raw["questions"]
    default_language = _get(settings_raw, "default_language")
    default_language = default_language if isinstance(default_language, str) else "fr"
    languages = [lang for _, lang in _str_list(_get(settings_raw, "languages")) if is_language(lang)] or [default_language]
    template_verdicts: dict[str, list[Problem]] = {}

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
                problems.append(_problem(parsed, base + ("journey",),
                    f"unknown journey {journey_id!r}" + did_you_mean(journey_id, journeys) + _declare_hint("journeys", journeys)))
        stage = raw.get("stage")
        stages = [s for _, s in _str_list(_get(journey_raw, "stages"))]
        if isinstance(stage, str) and stages and stage not in stages:
            problems.append(_problem(parsed, base + ("stage",),
                f"journey {journey_id!r} has no stage {stage!r}" + did_you_mean(stage, stages)
                + f": use one of {', '.join(stages)}"))
        channel = raw.get("channel")
        channels = [c for _, c in _str_list(_get(journey_raw, "channels"))]
        if isinstance(channel, str) and channel != "email" and channels and channel not in channels:
            problems.append(_problem(parsed, base + ("channel",),
                f"journey {journey_id!r} has no channel {channel!r}" + did_you_mean(channel, channels)
                + f": use one of {', '.join(channels)} or add it to the journey"))

        asked: list[str] = []
        for i, question_id in _str_list(raw.get("questions")):
            place = base + ("questions", i)
            if question_id not in questions:
                if not incomplete:
                    problems.append(_problem(parsed, place, f"unknown question {question_id!r}"
                        + did_you_mean(question_id, questions) + _declare_hint("questions", questions)))
            elif question_id in asked:
                problems.append(_problem(parsed, place, f"question {question_id!r} is listed twice: remove one"))
            else:
                follows = _get(questions[question_id][1], "ask_if", "question")
                if isinstance(follows, str) and follows in questions and follows not in asked:
                    problems.append(_problem(parsed, place,
                        f"question {question_id!r} follows up {follows!r}, which this moment does not ask before it: "
                        f"list {follows!r} first"))
            asked.append(question_id)

        columns = _get(raw, "responses", "columns")
        if isinstance(columns, dict) and isinstance(raw.get("questions"), list):
            for question_id in columns:
                if question_id not in asked:
                    problems.append(_problem(parsed, base + ("responses", "columns", question_id),
                        f"question {question_id!r} is not asked by this moment" + did_you_mean(question_id, asked)
                        + ": map only the moment's questions"))

        template = raw.get("template", "invitation")
        if templates is not None and isinstance(template, str):
            if template not in template_verdicts:
                template_verdicts[template] = _template_problems(template, default_language, languages, templates)
            for message, severity in template_verdicts[template]:
                problems.append(_problem(parsed, base + ("template",) if "template" in raw else base, message, severity))

    for moment_id, moment in declared.models["moments"].items():
        parsed, _ = declared.raw["moments"][moment_id]
        base = ("moments", moment_id)
        # Warnings: legal but probably not what the team wants.
        if all(v is None for v in moment.targets.model_dump().values()):
            problems.append(_problem(parsed, base, f"moment {moment_id!r} has no target: add targets (nps, csat, ces) "
                                     "to read it against a goal", "warning"))
        if moment.kind == "in_the_moment":
            if moment.reminders is not None and moment.reminders.count > 0:
                problems.append(_problem(parsed, base + ("reminders",), "a reminder on an in-the-moment survey arrives "
                                         "long after the moment: remove it", "warning"))
            if moment.trigger is not None and moment.trigger.delay > IN_THE_MOMENT_MAX_DELAY:
                problems.append(_problem(parsed, base + ("trigger", "delay"), "an in-the-moment survey should go within "
                                         "24h of the interaction: shorten the delay or make it transactional", "warning"))
        if moment.trigger is not None and moment.trigger.expires <= moment.trigger.delay:
            problems.append(_problem(parsed, base + ("trigger", "expires"),
                                     "the survey expires before it is due (expires ≤ delay): lengthen expires"))
        if rules is not None and moment.reminders is not None and moment.reminders.count > rules.max_reminders:
            problems.append(_problem(parsed, base + ("reminders", "count"),
                f"{moment.reminders.count} reminders exceed rules.max_reminders ({rules.max_reminders}): lower count"))
    return problems


def _declare_hint(section: str, known: dict) -> str:
    return "" if known else f": declare it under `{section}:` in any file of the workspace"


def _template_problems(name: str, default_language: str, languages: list[str],
                       templates: _Templates) -> list[tuple[str, str]]:
    if not templates.complete:
        return []
    missing = [p for p in REQUIRED_TEMPLATE_PARTS if not templates.has(name, default_language, p)]
    if missing:
        files = " and ".join(f"{name}.{default_language}.{p}.j2" for p in missing)
        return [(f"unknown template {name!r}: {files} not found in {templates.folders[0].name}/ nor in cxctl's "
                 f"bundled templates; create it, or use template: invitation", "error")]
    found: list[tuple[str, str]] = []
    if not templates.has(name, default_language, "html"):
        found.append((f"template {name!r} has no {name}.{default_language}.html.j2: messages go as plain text only",
                      "warning"))
    for language in languages:
        if language != default_language and not templates.has(name, language, "txt"):
            found.append((f"template {name!r} has no {language} version ({name}.{language}.txt.j2): "
                          f"{language}-speaking contacts get the {default_language} one", "warning"))
    return found


def _check_questions(declared: _Declared, incomplete: bool, settings: Settings | None) -> list[Problem]:
    problems: list[Problem] = []
    questions = declared.raw["questions"]
    asked = {q for _, raw in declared.raw["moments"].values() for _, q in _str_list(_get(raw, "questions"))}
    for question_id, (parsed, raw) in questions.items():
        base = ("questions", question_id)
        condition = _get(raw, "ask_if")
        target = _get(condition, "question")
        if isinstance(target, str):
            if target not in questions:
                if not incomplete:
                    problems.append(_problem(parsed, base + ("ask_if", "question"),
                        f"follow-up condition on unknown question {target!r}" + did_you_mean(target, questions)))
            else:
                problems.extend(_check_condition(parsed, base, condition, target, questions[target][1]))
        if question_id not in declared.models["questions"]:
            problems.extend(_raw_scale(parsed, base, raw))
        if question_id not in asked and declared.raw["moments"] and not incomplete:
            problems.append(_problem(parsed, base, f"question {question_id!r} is not asked by any moment: "
                                     "add it to a moment's questions or remove it", "warning"))
    if settings is not None:
        for question_id, question in declared.models["questions"].items():
            parsed, _ = questions[question_id]
            if isinstance(question.text, dict):
                if settings.default_language not in question.text:
                    problems.append(_problem(parsed, ("questions", question_id, "text"),
                        f"no wording in the default language {settings.default_language!r}: add "
                        f"{settings.default_language}: ..."))
                for language in question.text:
                    if language not in settings.languages:
                        problems.append(_problem(parsed, ("questions", question_id, "text", language),
                            f"language {language!r} is not in workspace.languages {settings.languages}: add it there "
                            "or remove this wording", "warning"))
    return problems


def _raw_scale(parsed: ParsedFile, base: tuple, raw: Any) -> list[Problem]:
    """The impossible-scale rule for a question whose other errors kept the model from checking it."""
    low, high = _get(raw, "min"), _get(raw, "max")
    if isinstance(low, int) and isinstance(high, int) and low >= high:
        return [_problem(parsed, base + ("min",), f"impossible scale {low}–{high}: min must be below max")]
    return []


def _check_condition(parsed: ParsedFile, base: tuple, condition: dict, target_id: str, target: Any) -> list[Problem]:
    """A follow-up condition must be able to match the answer of the question it watches."""
    problems = []
    kind = _get(target, "type")
    numeric = [k for k in ("at_most", "at_least") if k in condition]
    if numeric and kind not in SCORED_TYPES:
        problems.append(_problem(parsed, base + ("ask_if", numeric[0]),
            f"{numeric[0]} compares a score but {target_id!r} is {_article(kind)} {kind} question: use equals or any_of"))
    if kind in CHOICE_TYPES:
        choice_ids = [c.get("id") for c in _get(target, "choices") or [] if isinstance(c, dict)]
        values = condition.get("any_of") if isinstance(condition.get("any_of"), list) else []
        pairs = [(("any_of", i), v) for i, v in enumerate(values)]
        if "equals" in condition:
            pairs.append((("equals",), condition["equals"]))
        for where, value in pairs:
            if choice_ids and str(value) not in choice_ids:
                problems.append(_problem(parsed, base + ("ask_if",) + where,
                    f"{target_id!r} has no choice {value!r}" + did_you_mean(value, choice_ids)
                    + f": use one of {', '.join(map(str, choice_ids))}"))
    return problems


def _check_rules(declared: _Declared, incomplete: bool, rules_place: ParsedFile | None) -> list[Problem]:
    problems: list[Problem] = []
    if rules_place is None:
        return problems
    moments = declared.raw["moments"]
    seen: set[str] = set()
    for i, moment_id in _str_list(_get(rules_place.data, "rules", "priority")):
        place = ("rules", "priority", i)
        if moment_id not in moments:
            if not incomplete:
                problems.append(_problem(rules_place, place, f"unknown moment {moment_id!r}" + did_you_mean(moment_id, moments)
                                         + ": list declared moment ids only"))
        elif moment_id in seen:
            problems.append(_problem(rules_place, place, f"moment {moment_id!r} is listed twice: remove one"))
        seen.add(moment_id)
    return problems


def _check_mappings(declared: _Declared) -> list[Problem]:
    problems: list[Problem] = []
    for mapping_id, (parsed, raw) in declared.raw["mappings"].items():
        if not isinstance(raw, dict):
            continue
        base = ("mappings", mapping_id)
        kind = raw.get("kind", "contacts")
        fields = EVENT_FIELDS if kind == "events" else CONTACT_FIELDS
        columns = raw.get("columns")
        if isinstance(columns, dict):
            for column, target in columns.items():
                if isinstance(target, str) and not _known_field(target, fields):
                    problems.append(_problem(parsed, base + ("columns", column),
                        f"column {column!r} maps to unknown {kind[:-1] if kind in ('contacts', 'events') else ''} field "
                        f"{target!r}" + did_you_mean(target, fields)
                        + f": use one of {', '.join(fields)}, attributes.<name> for any other value, or - to skip it"))
        values = raw.get("values")
        if isinstance(values, dict):
            for target in values:
                if isinstance(target, str) and not _known_field(target, fields):
                    problems.append(_problem(parsed, base + ("values", target),
                        f"unknown field {target!r}" + did_you_mean(target, fields) + f": use one of {', '.join(fields)}"))
        preset = raw.get("preset")
        if isinstance(preset, str):
            from cxctl.presets import PRESETS  # the audience area's built-in export formats

            if preset.strip().lower().replace("-", "_") not in PRESETS:
                problems.append(_problem(parsed, base + ("preset",), f"unknown preset {preset!r}"
                                         + did_you_mean(preset, PRESETS) + f": use one of {', '.join(PRESETS)}"))
        date_format = raw.get("date_format")
        if isinstance(date_format, str):
            reason = date_format_problem(date_format)
            if reason:
                problems.append(_problem(parsed, base + ("date_format",), reason))
    return problems


IGNORE_TARGETS = ("-", "ignore")  # cxctl.presets: the column is skipped on import


def _known_field(target: str, fields: tuple[str, ...]) -> bool:
    if target in fields or target in IGNORE_TARGETS:
        return True
    prefix, _, name = target.partition(".")
    return prefix == "attributes" and bool(name.strip())


def date_format_problem(date_format: str) -> str | None:
    """Why `date_format` is not a usable strptime format, or None when it is."""
    if "%" not in date_format:
        return (f"date_format {date_format!r} has no % code: write strptime codes, "
                "e.g. %d/%m/%Y for 22/11/2026 or %d/%m/%Y %H:%M")
    sample = datetime(2026, 11, 22, 9, 30, 15)
    try:
        datetime.strptime(sample.strftime(date_format), date_format)
    except ValueError as exc:
        return f"invalid date_format {date_format!r} ({exc}): use strptime codes such as %d/%m/%Y %H:%M"
    if not any(code in date_format for code in ("%d", "%j", "%x", "%c", "%U", "%W", "%V")):
        return f"date_format {date_format!r} has no day: add %d, e.g. %d/%m/%Y"
    return None


def _check_settings(settings: Settings | None, place: ParsedFile | None) -> list[Problem]:
    problems: list[Problem] = []
    if settings is None or place is None:
        return problems
    if settings.default_language not in settings.languages:
        problems.append(_problem(place, ("workspace", "default_language"),
            f"default language {settings.default_language!r} is not in languages {settings.languages}: add it there"))
    if settings.smtp.password_env and not settings.smtp.username_env:
        problems.append(_problem(place, ("workspace", "smtp", "password_env"),
                                 "password_env is set but username_env is not: add username_env"))
    for key in ("survey_url", "unsubscribe_url"):
        url = getattr(settings, key)
        if url is not None and "{token}" not in url:
            problems.append(_problem(place, ("workspace", key),
                f"{key} has no {{token}}: responses and opt-outs cannot be tied to the invitation; add ?t={{token}}",
                "warning"))
    if settings.transport == "smtp" and "smtp" not in place.data.get("workspace", {}):
        problems.append(_problem(place, ("workspace", "transport"),
            "transport is smtp but there is no smtp block: add smtp: {host: ..., port: ...}", "warning"))
    return problems


def cross_check(root: Path, files: list[tuple[ParsedFile, WorkspaceFile]], had_errors: bool,
                incomplete: bool = False) -> tuple[Workspace | None, list[Problem]]:
    """Merge the files into one workspace and check every reference across them.

    `incomplete` means some file could not be parsed: unknown-id errors are then not reported, since
    the missing ids may well be in that file.
    """
    problems: list[Problem] = []
    for parsed, _ in files:
        problems.extend(find_secrets(parsed))

    settings: Settings | None = None
    settings_place: ParsedFile | None = None
    settings_raw: Any = None
    rules: Rules | None = None
    rules_place: ParsedFile | None = None
    for parsed, model in files:
        if "workspace" in parsed.data:
            if settings_place is not None:
                problems.append(_problem(parsed, ("workspace",), f"a second workspace block (the first is in "
                                         f"{settings_place.display}): keep one, in {WORKSPACE_FILE}"))
            else:
                settings, settings_place, settings_raw = model.workspace, parsed, parsed.data["workspace"]
        if "rules" in parsed.data:
            if rules_place is not None:
                problems.append(_problem(parsed, ("rules",), f"a second rules block (the first is in {rules_place.display}): "
                                         "solicitation rules are declared once per workspace; merge them"))
            else:
                rules, rules_place = model.rules, parsed

    if settings_place is None and not had_errors:
        display = str(root / WORKSPACE_FILE)
        problems.append(Problem(display, 1, 1, "workspace", f"no workspace settings found: create {WORKSPACE_FILE} with "
                                "a `workspace:` block (`cxctl init` writes one)"))

    declared = _collect(files, problems)
    templates = None
    if settings_place is not None:
        folder = _get(settings_raw, "templates")
        folder = Path(folder) if isinstance(folder, str) else Path("templates")
        templates = _Templates(folder if folder.is_absolute() else root / folder)
    problems.extend(_check_moments(declared, incomplete, settings_raw, templates, rules))
    problems.extend(_check_questions(declared, incomplete, settings))
    problems.extend(_check_rules(declared, incomplete, rules_place))
    problems.extend(_check_mappings(declared))
    problems.extend(_check_settings(settings, settings_place))

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
    )
    if not any(p.severity == "error" for p in problems):  # render each moment's templates (send area)
        from cxctl.render import check_templates
        for moment_id, message in check_templates(workspace):
            parsed, raw = declared.raw["moments"][moment_id]
            problems.append(_problem(parsed, ("moments", moment_id) + (("template",) if "template" in raw else ()), message))
    return workspace, problems


def _article(word: Any) -> str:
    return "an" if str(word)[:1] in "aeiou" else "a"
