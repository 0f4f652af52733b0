"""Checks of the delivery channels (issue 16): each moment's `channels`, what an SMS needs before one can go
(opt-out wording, templates per language, a sender for a provider, hours that ever open), and the consent
fields of import mappings. Called by cxctl.workspace.checks.cross_check; each returns Problems with a place.
"""

from __future__ import annotations

from typing import Any

from cxctl.core.errors import Problem
from cxctl.workspace.channels import consent_value
from cxctl.workspace.loader import Declared
from cxctl.workspace.model import Rules, Settings
from cxctl.workspace.settings_checks import TemplateFiles, problem_at, raw_get
from cxctl.workspace.yamlfile import ParsedFile

CONSENT_FIELDS = ("sms_consent", "email_consent")


def _uses_sms(raw: Any) -> bool:
    channels = raw.get("channels") if isinstance(raw, dict) else None
    return isinstance(channels, list) and "sms" in channels


def check_channels(
    declared: Declared,
    settings: Settings | None,
    settings_place: ParsedFile | None,
    templates: TemplateFiles | None,
    rules: Rules | None,
) -> list[Problem]:
    """Every problem of the moments' channels and of the SMS settings they rely on."""
    problems: list[Problem] = []
    sms_moments: list[tuple[str, ParsedFile, dict]] = []
    for moment_id, (parsed, raw) in declared.raw["moments"].items():
        if not isinstance(raw, dict):
            continue
        channels = raw.get("channels")
        if isinstance(channels, list):
            seen: set[str] = set()
            for i, channel in enumerate(channels):
                if isinstance(channel, str) and channel in seen:
                    problems.append(
                        problem_at(
                            parsed,
                            ("moments", moment_id, "channels", i),
                            f"channel {channel!r} is listed twice: keep one",
                        )
                    )
                seen.add(channel) if isinstance(channel, str) else None
        if _uses_sms(raw):
            sms_moments.append((moment_id, parsed, raw))
        elif "sms_hours" in raw:
            problems.append(
                problem_at(
                    parsed,
                    ("moments", moment_id, "sms_hours"),
                    "sms_hours is set but the moment sends no SMS: add sms to channels, or remove it",
                    "warning",
                )
            )
    if not sms_moments or settings is None or settings_place is None:
        return problems
    sms = settings.sms
    first_id, first_parsed, _ = sms_moments[0]
    where = ("workspace", "sms") if "sms" in (settings_place.data.get("workspace") or {}) else ("workspace",)
    if sms.opt_out is None:
        problems.append(
            problem_at(
                settings_place,
                where,
                f"moment {first_id!r} sends SMS, and every SMS must carry its opt-out wording: add workspace.sms.opt_out, "
                f"e.g. opt_out: {{fr: 'STOP au 36111', en: 'Reply STOP to 36111'}}",
            )
        )
    elif isinstance(sms.opt_out, dict):
        missing = [
            lang for lang in settings.languages if lang not in sms.opt_out and lang.split("-")[0] not in sms.opt_out
        ]
        if missing:
            problems.append(
                problem_at(
                    settings_place,
                    where + (("opt_out",) if where[-1] == "sms" else ()),
                    f"no opt-out wording in {', '.join(missing)}: SMS in those languages carry the "
                    f"{settings.default_language} one; add {missing[0]}: ...",
                    "warning",
                )
            )
    if sms.transport == "twilio" and not (sms.twilio.from_number or sms.twilio.messaging_service_sid or sms.sender):
        problems.append(
            problem_at(
                settings_place,
                where,
                "transport twilio needs a sender: set sms.twilio.from_number (a Twilio number or an alphanumeric id), "
                "sms.twilio.messaging_service_sid, or sms.sender",
            )
        )
    if sms.transport == "brevo" and not sms.sender:
        problems.append(
            problem_at(
                settings_place,
                where,
                "transport brevo needs a sender: set sms.sender (up to 11 letters and digits, e.g. BOUTIQUE)",
            )
        )
    window_days = set((rules.send_window.days if rules else []) or [])
    for moment_id, parsed, raw in sms_moments:
        model = declared.models["moments"].get(moment_id)
        if model is None:
            continue
        hours = model.sms_hours or sms.hours
        days = set((model.send_window.days if model.send_window else window_days) or window_days)
        if days and not days & set(hours.days):
            problems.append(
                problem_at(
                    parsed,
                    ("moments", moment_id, "channels"),
                    f"no day is both in the send window ({', '.join(sorted(days))}) and in the SMS hours "
                    f"({', '.join(hours.days)}): no SMS could ever go; widen one of them",
                )
            )
        template = raw.get("template", "invitation")
        if templates is not None and templates.complete and isinstance(template, str):
            for message, severity in sms_template_problems(template, settings, templates):
                problems.append(
                    problem_at(
                        parsed,
                        ("moments", moment_id, "template" if "template" in raw else "channels"),
                        message,
                        severity,
                    )
                )
    return problems


def sms_template_problems(name: str, settings: Settings, templates: TemplateFiles) -> list[tuple[str, str]]:
    """The SMS template of the default language is required; the others fall back to it (a warning)."""
    default = settings.default_language
    if not templates.has(name, default, "sms"):
        return [
            (
                f"moment sends SMS but template {name!r} has no {name}.{default}.sms.j2 (in "
                f"{templates.folders[0].name}/ or cxctl's bundled templates): create it, e.g. "
                '"{{ company }} : votre avis sur {{ moment.name }} ? {{ survey_url }}"',
                "error",
            )
        ]
    return [
        (f"template {name!r} has no {name}.{lang}.sms.j2: {lang}-speaking contacts get the {default} SMS", "warning")
        for lang in settings.languages
        if lang != default and not templates.has(name, lang, "sms")
    ]


def check_consent_mappings(declared: Declared) -> list[Problem]:
    """A mapping's `values` for a consent field must turn each export value into yes or no (oui/non, 1/0…)."""
    problems: list[Problem] = []
    for mapping_id, (parsed, raw) in declared.raw["mappings"].items():
        values = raw_get(raw, "values")
        if not isinstance(values, dict):
            continue
        for field in CONSENT_FIELDS:
            table = values.get(field)
            if not isinstance(table, dict):
                continue
            for written, stored in table.items():
                try:
                    consent_value(str(stored))
                except ValueError:
                    problems.append(
                        problem_at(
                            parsed,
                            ("mappings", mapping_id, "values", field, written),
                            f"{field} value {written!r} maps to {stored!r}, which is neither yes nor no: map it to oui or non "
                            f"(yes/no, 1/0)",
                        )
                    )
    return problems
