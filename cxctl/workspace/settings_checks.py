"""Checks of what the workspace's YAML points to outside itself: template files, import mappings
(fields, date formats, presets), secrets written in clear, and settings that cannot work together.
Called by `cxctl.workspace.checks.cross_check`; each returns Problems with the place of the offending key."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from cxctl.core.errors import Problem, UsageError, did_you_mean
from cxctl.workspace.loader import Declared, secret_in_clear
from cxctl.workspace.model import CONTACT_FIELDS, EVENT_FIELDS, Settings
from cxctl.workspace.yamlfile import ParsedFile, format_path, mark_for

TEMPLATE_PARTS = ("subject", "txt", "html")
REQUIRED_TEMPLATE_PARTS = ("subject", "txt")
_URL_CREDENTIALS = re.compile(r"://[^/\s:@{}]+:[^/\s@{}]+@")


def problem_at(parsed: ParsedFile, path: tuple, message: str, severity: str = "error") -> Problem:
    line, col = mark_for(parsed, path)
    return Problem(parsed.display, line, col, format_path(path), message, severity)


def raw_get(raw: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(raw, dict):
            return None
        raw = raw.get(key)
    return raw


def find_secrets(parsed: ParsedFile) -> list[Problem]:
    """A secret written in clear is an error: secrets come from environment variables only."""
    found = []

    def walk(value: Any, path: tuple) -> None:
        if isinstance(value, dict):
            for key, child in value.items():
                if secret_in_clear(path, key, child):
                    found.append(
                        problem_at(
                            parsed,
                            path + (key,),
                            f"a secret is written in clear: delete it (and rotate it, it is in your git history), "
                            f"then name an environment variable instead, e.g. {key.lower().replace('-', '_')}_env: "
                            f"CXCTL_{key.upper().replace('-', '_')}",
                        )
                    )
                else:
                    walk(child, path + (key,))
        elif isinstance(value, list):
            for i, child in enumerate(value):
                walk(child, path + (i,))
        elif isinstance(value, str) and _URL_CREDENTIALS.search(value):
            found.append(
                problem_at(
                    parsed,
                    path,
                    "a password is written in clear in this URL: remove user:password@ and give credentials "
                    "through environment variables",
                )
            )

    walk(parsed.data, ())
    return found


class TemplateFiles:
    """Which template files exist, in the workspace's folder or among cxctl's bundled defaults."""

    def __init__(self, folder: Path):
        self.folders = [folder]
        try:
            from cxctl.core.resources import default_templates_dir

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


def template_problems(
    name: str, default_language: str, languages: list[str], templates: TemplateFiles
) -> list[tuple[str, str]]:
    if not templates.complete:
        return []
    missing = [p for p in REQUIRED_TEMPLATE_PARTS if not templates.has(name, default_language, p)]
    if missing:
        files = " and ".join(f"{name}.{default_language}.{p}.j2" for p in missing)
        return [
            (
                f"unknown template {name!r}: {files} not found in {templates.folders[0].name}/ nor in cxctl's "
                f"bundled templates; create it, or use template: invitation",
                "error",
            )
        ]
    found: list[tuple[str, str]] = []
    if not templates.has(name, default_language, "html"):
        found.append(
            (f"template {name!r} has no {name}.{default_language}.html.j2: messages go as plain text only", "warning")
        )
    for language in languages:
        if language != default_language and not templates.has(name, language, "txt"):
            found.append(
                (
                    f"template {name!r} has no {language} version ({name}.{language}.txt.j2): "
                    f"{language}-speaking contacts get the {default_language} one",
                    "warning",
                )
            )
    return found


def check_mappings(declared: Declared) -> list[Problem]:
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
                if isinstance(target, str) and target.startswith("attributes.") and '"' in target:
                    problems.append(
                        problem_at(
                            parsed,
                            base + ("columns", column),
                            f"attribute name {target[len('attributes.') :]!r} contains a double quote, which attribute "
                            f"names cannot hold: map the column to another name",
                        )
                    )
                elif isinstance(target, str) and not _known_field(target, fields):
                    problems.append(
                        problem_at(
                            parsed,
                            base + ("columns", column),
                            f"column {column!r} maps to unknown {kind[:-1] if kind in ('contacts', 'events') else ''} field "
                            f"{target!r}"
                            + did_you_mean(target, fields)
                            + f": use one of {', '.join(fields)}, attributes.<name> for any other value, or - to skip it",
                        )
                    )
        values = raw.get("values")
        if isinstance(values, dict):
            for target in values:
                if isinstance(target, str) and not _known_field(target, fields):
                    problems.append(
                        problem_at(
                            parsed,
                            base + ("values", target),
                            f"unknown field {target!r}"
                            + did_you_mean(target, fields)
                            + f": use one of {', '.join(fields)}",
                        )
                    )
        preset = raw.get("preset")
        if isinstance(preset, str):
            from cxctl.workspace.presets import PRESETS  # the built-in export formats

            if preset.strip().lower().replace("-", "_") not in PRESETS:
                problems.append(
                    problem_at(
                        parsed,
                        base + ("preset",),
                        f"unknown preset {preset!r}"
                        + did_you_mean(preset, PRESETS)
                        + f": use one of {', '.join(PRESETS)}",
                    )
                )
        date_format = raw.get("date_format")
        if isinstance(date_format, str):
            reason = date_format_problem(date_format)
            if reason:
                problems.append(problem_at(parsed, base + ("date_format",), reason))
        from cxctl.core.csvnames import parse_delimiter, parse_encoding  # the same checks as --encoding and --delimiter

        for key, parse in (("encoding", parse_encoding), ("delimiter", parse_delimiter)):
            if isinstance(raw.get(key), str):
                try:
                    parse(raw[key])
                except UsageError as exc:
                    problems.append(problem_at(parsed, base + (key,), str(exc)))
    return problems


IGNORE_TARGETS = ("-", "ignore")
LOOPBACK = ("127.0.0.1", "localhost", "::1")  # cxctl.workspace.presets: the column is skipped on import


def _known_field(target: str, fields: tuple[str, ...]) -> bool:
    if target in fields or target in IGNORE_TARGETS:
        return True
    prefix, _, name = target.partition(".")
    return prefix == "attributes" and bool(name.strip())


def date_format_problem(date_format: str) -> str | None:
    """Why `date_format` is not a usable strptime format, or None when it is."""
    if "%" not in date_format:
        return (
            f"date_format {date_format!r} has no % code: write strptime codes, "
            "e.g. %d/%m/%Y for 22/11/2026 or %d/%m/%Y %H:%M"
        )
    sample = datetime(2026, 11, 22, 9, 30, 15)
    try:
        datetime.strptime(sample.strftime(date_format), date_format)
    except ValueError as exc:
        return f"invalid date_format {date_format!r} ({exc}): use strptime codes such as %d/%m/%Y %H:%M"
    if not any(code in date_format for code in ("%d", "%j", "%x", "%c", "%U", "%W", "%V")):
        return f"date_format {date_format!r} has no day: add %d, e.g. %d/%m/%Y"
    return None


def check_settings(settings: Settings | None, place: ParsedFile | None) -> list[Problem]:
    problems: list[Problem] = []
    if settings is None or place is None:
        return problems
    from cxctl.core.emails import normalise

    for key, address in (
        ("address", settings.sender.address),
        ("reply_to", settings.sender.reply_to),
        ("unsubscribe_mailto", settings.unsubscribe_mailto),
    ):
        if address is None:
            continue
        try:
            normalise(address)
        except ValueError as exc:
            where = ("workspace", "sender", key) if key != "unsubscribe_mailto" else ("workspace", key)
            problems.append(
                problem_at(place, where, f"{str(exc).rstrip('.')}: write a full address such as avis@example.com")
            )
    if settings.default_language not in settings.languages:
        problems.append(
            problem_at(
                place,
                ("workspace", "default_language"),
                f"default language {settings.default_language!r} is not in languages {settings.languages}: add it there",
            )
        )
    if settings.smtp.password_env and not settings.smtp.username_env:
        problems.append(
            problem_at(
                place,
                ("workspace", "smtp", "password_env"),
                "password_env is set but username_env is not: add username_env",
            )
        )
    if settings.smtp.username_env and settings.smtp.security == "none" and settings.smtp.host not in LOOPBACK:
        # The login (AUTH PLAIN) would cross the network in clear, readable by anyone on the path.
        where = (
            ("workspace", "smtp", "security")
            if "security" in place.data.get("workspace", {}).get("smtp", {})
            else ("workspace", "smtp", "username_env")
        )
        problems.append(
            problem_at(
                place,
                where,
                f"a login to {settings.smtp.host} without encryption would send the password in clear: set security: "
                f"starttls (usually port 587) or tls (port 465); only a relay on this machine (127.0.0.1) may go without",
            )
        )
    problems += _public_url_problems(settings, place)
    for key in ("survey_url", "unsubscribe_url"):
        url = getattr(settings, key)
        if url is not None and "{token}" not in url:
            problems.append(
                problem_at(
                    place,
                    ("workspace", key),
                    f"{key} has no {{token}}: responses and opt-outs cannot be tied to the invitation; add ?t={{token}}",
                    "warning",
                )
            )
    if settings.transport == "smtp" and "smtp" not in place.data.get("workspace", {}):
        problems.append(
            problem_at(
                place,
                ("workspace", "transport"),
                "transport is smtp but there is no smtp block: add smtp: {host: ..., port: ...}",
                "warning",
            )
        )
    return problems


def check_dimensions(declared: Declared, settings: Settings | None, place: ParsedFile | None) -> list[Problem]:
    """`dimensions:` entries that cannot be what was meant: a built-in breakdown (nothing to keep), a contact
    field scorecards do not break down by, an empty event attribute, a name listed twice, or a name that no
    mapping imports but that is close to one that is (a typo: its rollups would count everyone under '')."""
    from cxctl.store.dimensions import BUILTIN, CONTACT_COLUMNS, EVENT_PREFIX

    problems: list[Problem] = []
    if settings is None or place is None or not settings.dimensions:
        return problems
    mapped: set[str] = set()
    for _, raw in declared.raw["mappings"].values():
        columns = raw.get("columns") if isinstance(raw, dict) else None
        if isinstance(columns, dict):
            prefix = EVENT_PREFIX if raw.get("kind") == "events" else ""
            mapped |= {
                prefix + t[len("attributes.") :]
                for t in columns.values()
                if isinstance(t, str) and t.startswith("attributes.")
            }
    known = [*CONTACT_COLUMNS, *sorted(mapped)]
    seen: set[str] = set()
    for index, name in enumerate(settings.dimensions):
        where = ("workspace", "dimensions", index)
        if name in seen:
            problems.append(problem_at(place, where, f"dimension {name!r} is listed twice: remove one"))
        seen.add(name)
        if name in BUILTIN:
            message = f"{name!r} needs no dimension: scorecards by {', '.join(BUILTIN)} already read rollups; remove it"
        elif name in CONTACT_FIELDS and name not in CONTACT_COLUMNS:
            message = (
                f"{name!r} is a contact field scorecards do not break down by: list an attribute, one of "
                f"{', '.join(CONTACT_COLUMNS)}, or event.<attribute>"
            )
        elif not name.strip() or name.startswith(EVENT_PREFIX) and not name[len(EVENT_PREFIX) :].strip():
            message = f"dimension {name!r} names no attribute: write the attribute, or event.<attribute> for an event's"
        elif name not in known and did_you_mean(name, known):
            message = (
                f"unknown dimension {name!r}{did_you_mean(name, known)}: no mapping imports it; list a contact "
                f"attribute, one of {', '.join(CONTACT_COLUMNS)}, or event.<attribute>"
            )
        elif name not in known and not name.startswith(EVENT_PREFIX):
            # Unmapped columns are kept as attributes under their normalised header, so this may be right; but a
            # name no export carries counts every response under '' (no value), which must not pass unsaid.
            problems.append(
                problem_at(
                    place,
                    where,
                    f"no mapping names the attribute {name!r}: it must be a column of your contact exports, under its "
                    f"normalised header (accents removed, lower case, '_' between words: 'Région' is 'region'); "
                    f"otherwise every response counts under no value",
                    severity="warning",
                )
            )
            continue
        else:
            continue
        problems.append(problem_at(place, where, message))
    return problems


def _public_url_problems(settings: Settings, place: ParsedFile) -> list[Problem]:
    """workspace.public_url and the links that point at it: an absolute http(s) address without query, https
    beyond this machine (RFC 8058 one-click unsubscribe and mail providers require it), and links under
    it that name cxctl's own pages."""
    from urllib.parse import urlsplit

    from cxctl.workspace.fields import SURVEY_PATH, UNSUBSCRIBE_PATH

    public = settings.public_url
    if public is None:
        return []
    where = ("workspace", "public_url")
    parts = urlsplit(public)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [
            problem_at(
                place,
                where,
                f"public_url {public!r} is not an http(s) address: write the address at which "
                f"`cxctl serve` is reached, e.g. https://avis.example.fr",
            )
        ]
    if parts.query or parts.fragment or "{" in public:
        return [
            problem_at(
                place,
                where,
                f"public_url {public!r} carries a query, a fragment or a placeholder: write the "
                f"address alone (cxctl adds /s/{{token}} and /u/{{token}})",
            )
        ]
    problems = []
    if parts.scheme == "http" and parts.hostname not in LOOPBACK:
        problems.append(
            problem_at(
                place,
                where,
                f"public_url {public!r} is not https: links would carry tokens in clear and mail providers refuse one-click "
                f"unsubscribe (RFC 8058) over http; put a TLS proxy in front of `cxctl serve` and write https://",
                "warning",
            )
        )
    base = public.rstrip("/")
    raw = raw_get(place.data, "workspace") or {}
    for key, path in (("survey_url", SURVEY_PATH), ("unsubscribe_url", UNSUBSCRIBE_PATH)):
        given = raw.get(key) if isinstance(raw, dict) else None
        if isinstance(given, str) and given.startswith(base + "/") and not given.startswith(base + path):
            problems.append(
                problem_at(
                    place,
                    ("workspace", key),
                    f"{key} points at public_url but not at cxctl's page {base + path}: write that, or remove {key} "
                    f"(it defaults to it)",
                )
            )
    return problems
