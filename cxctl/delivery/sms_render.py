"""SMS texts: `<name>.<lang>.sms.j2` rendered in the same jinja sandbox as the emails (cxctl.delivery.render),
with the opt-out wording the workspace declares, measured (encoding, segments), checked for `validate`
and shown by `preview --channel sms`.

The link: cxctl's own survey page when the workspace declares `public_url` (`cxctl serve`, a short path
that costs the fewest characters), else the survey tool's link (`survey_url`) — see `sms_link`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jinja2

from cxctl.core import tokens
from cxctl.delivery.render import Renderer, TemplateError, contact_vars, event_vars, sample_variables
from cxctl.delivery.sms_text import SmsSize, measure, sms_file
from cxctl.workspace.fields import SURVEY_PATH
from cxctl.workspace.model import localise

if TYPE_CHECKING:
    from cxctl.workspace.loader import Workspace


@dataclass(frozen=True)
class SmsMessage:
    """One rendered SMS: its text (opt-out included) and its size."""

    text: str
    size: SmsSize
    template: str
    language: str


def sms_link(ws: Workspace, renderer: Renderer, token: str, moment_id: str, lang: str) -> str:
    """cxctl's own page (`cxctl serve`) when `workspace.public_url` is set, its short path costing the fewest
    characters, else the survey tool's link with {token}, {moment}, {lang} filled in."""
    public = ws.settings.public_url
    if public:
        return f"{public.rstrip('/')}{SURVEY_PATH.replace('{token}', quote(token, safe=''))}"
    return renderer.link(ws.settings.survey_url or "", token, moment_id, lang)  # set once loaded (default_links)


def opt_out_text(ws: Workspace, lang: str) -> str:
    settings = ws.settings
    return localise(settings.sms.opt_out, lang, settings.default_language).strip()


class SmsRenderer:
    """Picks, caches and renders the SMS template of each (moment, kind, language)."""

    def __init__(self, ws: Workspace, renderer: Renderer):
        self.ws, self.renderer = ws, renderer
        self._found: dict[tuple[str, bool, str], tuple[str, jinja2.Template]] = {}

    def template(self, moment_id: str, reminder: bool, language: str) -> tuple[str, jinja2.Template]:
        """(language used, compiled template): `<name>_reminder` then `<name>`, the language then the default."""
        key = (moment_id, reminder, language)
        if key not in self._found:
            name = self.ws.moments[moment_id].template
            names = [f"{name}_reminder", name] if reminder else [name]
            for lang in dict.fromkeys([language, self.ws.settings.default_language]):
                for base in names:
                    filename = f"{base}.{lang}.sms.j2"
                    if self.renderer.has(filename):
                        try:
                            self._found[key] = (lang, self.renderer.env.get_template(filename))
                        except jinja2.TemplateSyntaxError as exc:
                            raise TemplateError(
                                f"{exc.filename or exc.name}:{exc.lineno}: {exc.message}: fix the template syntax"
                            ) from None
                        return self._found[key]
            raise TemplateError(
                f"moment {moment_id!r}: no SMS template {name}.{self.ws.settings.default_language}.sms.j2 "
                f"in {self.ws.templates_dir} or the bundled defaults: add it"
            )
        return self._found[key]

    def variables(
        self,
        *,
        token: str,
        moment_id: str,
        lang: str,
        reminder: bool,
        contact: dict[str, Any],
        event: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The email's variables, with the SMS link as `survey_url` and the opt-out wording as `opt_out`."""
        variables = self.renderer.variables(
            token=token, moment_id=moment_id, lang=lang, reminder=reminder, contact=contact, event=event, scores=False
        )
        variables["survey_url"] = sms_link(self.ws, self.renderer, token, moment_id, lang)
        variables["opt_out"] = opt_out_text(self.ws, lang)
        return variables

    def render(self, template: jinja2.Template, variables: dict[str, Any]) -> SmsMessage:
        """The text, lines stripped, ending with the opt-out wording (added when the template does not write it)."""
        try:
            raw = template.render(variables)
        except jinja2.UndefinedError as exc:
            raise TemplateError(
                f"{template.name}: {exc.message}: give the variable a default "
                f"({{{{ x | default('') }}}}) or use one listed in docs/sending.md"
            ) from None
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(f"{template.name}: unsafe operation refused by the sandbox ({exc})") from None
        except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
            raise TemplateError(f"{template.name}: {type(exc).__name__}: {exc}: fix the expression") from None
        text = "\n".join(" ".join(line.split()) for line in raw.strip().splitlines()).strip()
        opt_out = variables.get("opt_out") or ""
        if opt_out and opt_out not in text:
            text = f"{text}\n{opt_out}"
        return SmsMessage(text, measure(text), str(template.name), variables["lang"])


def render_for_row(sms: SmsRenderer, row: dict[str, Any], lang: str, contact: dict[str, Any]) -> SmsMessage:
    """The SMS of one due invitation row (cxctl.delivery.send)."""
    reminder = row["kind"] == "reminder"
    used, template = sms.template(row["moment"], reminder, lang)
    variables = sms.variables(
        token=row["token"],
        moment_id=row["moment"],
        lang=used,
        reminder=reminder,
        contact=contact,
        event=event_vars(row["event_type"], row["event_occurred_at"], row["event_attributes"]),
    )
    return sms.render(template, variables)


@dataclass
class SmsCheck:
    """What `validate` shows of one SMS template: the sample's encoding and segments."""

    moment: str
    template: str
    language: str
    reminder: bool
    encoding: str
    units: int
    segments: int
    summary: str


def check_sms_templates(
    ws: Workspace, secret: bytes = b"check-templates"
) -> tuple[list[tuple[str, str, str]], list[SmsCheck]]:
    """Render each SMS moment's templates (every language, invitation and reminder) with sample data:
    ([(moment id, message, severity)], what each measures). A template past workspace.sms.max_segments warns."""
    renderer = Renderer(ws, secret)
    sms = SmsRenderer(ws, renderer)
    token = tokens.new_token(secret)
    problems: list[tuple[str, str, str]] = []
    checks: list[SmsCheck] = []
    limit = ws.settings.sms.max_segments
    for moment_id, moment in ws.moments.items():
        if "sms" not in moment.channels:
            continue
        seen: set[tuple[str, bool]] = set()
        reminders = [False] + ([True] if moment.reminders and moment.reminders.count else [])
        for lang in dict.fromkeys([ws.settings.default_language, *ws.settings.languages]):
            for reminder in reminders:
                try:
                    used, template = sms.template(moment_id, reminder, lang)
                    if (str(template.name), reminder) in seen:
                        continue
                    seen.add((str(template.name), reminder))
                    base = sample_variables(renderer, moment_id, used, reminder, token)
                    variables = sms.variables(
                        token=token,
                        moment_id=moment_id,
                        lang=used,
                        reminder=reminder,
                        contact=base["contact"],
                        event=base["event"],
                    )
                    message = sms.render(template, variables)
                except TemplateError as exc:
                    if (moment_id, str(exc), "error") not in problems:
                        problems.append((moment_id, str(exc), "error"))
                    continue
                size = message.size
                checks.append(
                    SmsCheck(
                        moment_id,
                        message.template,
                        used,
                        reminder,
                        size.encoding,
                        size.units,
                        size.segments,
                        size.describe(),
                    )
                )
                if size.segments > limit:
                    problems.append(
                        (
                            moment_id,
                            f"{message.template}{' (reminder)' if reminder else ''} takes "
                            f"{size.describe()} with sample data, more than workspace.sms.max_segments ({limit}): "
                            f"shorten it" + (", or remove the characters outside GSM-7" if size.outside_gsm7 else ""),
                            "warning",
                        )
                    )
    return problems, checks


# --- preview ----------------------------------------------------------------------------------


@dataclass
class SmsPreview:
    """An SMS as `cxctl preview --channel sms` shows it, and where its .sms file was written."""

    moment: str
    language: str
    reminder: bool
    contact: str
    to: str
    text: str
    encoding: str
    segments: int
    units: int
    summary: str
    path: str
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def preview_sms(
    ws: Workspace,
    db: Any,
    moment_id: str,
    now: datetime,
    *,
    contact: str | None = None,
    lang: str | None = None,
    reminder: bool = False,
    out_dir: Path | None = None,
) -> SmsPreview:
    """Render one moment's SMS for a stored contact (id or external id) or a sample one, with a throw-away
    token; write it as a .sms file into `out_dir` (default: <sms outbox>/preview)."""
    from cxctl.core.errors import UsageError

    if moment_id not in ws.moments:
        raise UsageError(
            f"unknown moment {moment_id!r}: the workspace defines {', '.join(sorted(ws.moments)) or 'none'}"
        )
    if "sms" not in ws.moments[moment_id].channels:
        raise UsageError(
            f"moment {moment_id!r} sends no SMS (channels: {', '.join(ws.moments[moment_id].channels)}): "
            f"add sms to its channels, or preview its email"
        )
    secret = ws.secret()
    renderer = Renderer(ws, secret)
    sms = SmsRenderer(ws, renderer)
    token = tokens.new_token(secret)
    if contact is None:
        used, template = sms.template(moment_id, reminder, renderer.language_for(lang))
        base = sample_variables(renderer, moment_id, used, reminder, token)
        person, event, who, to = (
            base["contact"],
            {"type": "sample", "occurred_at": "", "attributes": {}},
            "sample contact",
            "+33612345678",
        )
    else:
        row = (
            db.execute(
                "SELECT * FROM contacts WHERE external_id = ? OR CAST(id AS TEXT) = ? ORDER BY external_id = ? "
                "DESC LIMIT 1",
                [contact, contact, contact],
            ).fetchone()
            if db is not None
            else None
        )
        if row is None:
            raise UsageError(
                f"no contact with id or external id {contact!r}: check `cxctl contacts list`, or omit "
                f"--contact for a sample"
            )
        names = [d[0] for d in db.execute("SELECT * FROM contacts LIMIT 0").description]
        stored = dict(zip(names, row, strict=True))
        person = contact_vars(stored)
        event = None
        trigger = ws.moments[moment_id].trigger
        if trigger is not None:
            found = db.execute(
                "SELECT type, occurred_at, attributes FROM events WHERE contact_id = ? AND type = ? "
                "ORDER BY occurred_at DESC LIMIT 1",
                [stored["id"], trigger.event],
            ).fetchone()
            event = event_vars(*found) if found is not None else None
        used, template = sms.template(moment_id, reminder, renderer.language_for(lang or person["language"]))
        who, to = f"contact {person['external_id'] or person['id']}", stored.get("phone") or "(no mobile number)"
    variables = sms.variables(
        token=token, moment_id=moment_id, lang=used, reminder=reminder, contact=person, event=event
    )
    message = sms.render(template, variables)
    warnings = []
    if message.size.segments > ws.settings.sms.max_segments:
        warnings.append(
            f"{message.size.segments} segments, more than workspace.sms.max_segments "
            f"({ws.settings.sms.max_segments}): shorten the template"
        )
    folder = Path(out_dir) if out_dir is not None else ws.root / ws.settings.sms.outbox / "preview"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (f"{moment_id}.{used}" + (".reminder" if reminder else "") + ".sms")
    sender = ws.settings.sms.sender or ws.settings.sender.name
    path.write_bytes(sms_file("preview", to, sender, message.text))
    size = message.size
    return SmsPreview(
        moment_id,
        used,
        reminder,
        who,
        to,
        message.text,
        size.encoding,
        size.segments,
        size.units,
        size.describe(),
        str(path),
        warnings,
    )
