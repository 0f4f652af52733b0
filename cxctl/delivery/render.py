"""Rendering invitations: jinja2 templates (sandboxed, StrictUndefined, HTML autoescaped) and the
variables they see, plus `check_templates` for `cxctl validate`.

Templates are `<name>.<lang>.subject.j2`, `<name>.<lang>.txt.j2`, `<name>.<lang>.html.j2`, looked up
in the workspace's templates folder first, then in cxctl's bundled defaults. A missing variable is an
error (StrictUndefined), never a blank in a sent message.
The MIME bytes are built in cxctl.delivery.mime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from cxctl.core import tokens
from cxctl.core.errors import CxError
from cxctl.core.resources import default_templates_dir
from cxctl.delivery.mime import MessageBuilder, Rendered
from cxctl.workspace.model import DEFAULT_SCALES, localise

if TYPE_CHECKING:
    from cxctl.workspace.loader import Workspace

PARTS = ("subject", "txt", "html")
SCORE_TYPES = tuple(DEFAULT_SCALES)  # nps, csat, ces: the types a one-click link can answer


class TemplateError(CxError):
    """A template is missing, does not compile, or uses a variable it is not given (exit 1: a problem
    of the workspace's templates or of one contact's data, never a crash of cxctl)."""


def _html_name(name: str | None) -> bool:
    return name is not None and name.endswith(".html.j2")


def make_environment(ws: Workspace) -> SandboxedEnvironment:
    """A sandboxed environment: workspace templates first, then the bundled defaults."""
    search = [str(ws.templates_dir), str(default_templates_dir())]
    return SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(search, encoding="utf-8"),
        undefined=jinja2.StrictUndefined,
        autoescape=_html_name,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
        cache_size=400,
    )


class Renderer:
    """Picks and caches the compiled templates of each (moment, kind, language)."""

    def __init__(self, ws: Workspace, secret: bytes):
        self.ws = ws
        self.secret = secret
        self.env = make_environment(ws)
        self._sets: dict[tuple[str, bool, str], tuple[str, tuple[jinja2.Template, ...]]] = {}
        self._existing = set(self.env.list_templates(extensions=["j2"]))
        self._moment_vars: dict[tuple[str, str], dict[str, Any]] = {}
        self._score: dict[tuple[str, str], dict[str, Any] | None] = {}

    # --- template choice --------------------------------------------------------------------

    def has(self, filename: str) -> bool:
        """Whether a template file exists, in the workspace's folder or the bundled defaults."""
        return filename in self._existing

    def language_for(self, wanted: str | None) -> str:
        """The contact's language if the workspace speaks it (or its base), else the default."""
        settings = self.ws.settings
        if wanted:
            for candidate in (wanted, wanted.split("-")[0].lower()):
                if candidate in settings.languages:
                    return candidate
        return settings.default_language

    def templates(self, moment_id: str, reminder: bool, language: str) -> tuple[str, tuple[jinja2.Template, ...]]:
        """(language used, compiled subject/txt/html); raises TemplateError when none exists."""
        key = (moment_id, reminder, language)
        found = self._sets.get(key)
        if found is None:
            found = self._find(moment_id, reminder, language)
            self._sets[key] = found
        return found

    def _find(self, moment_id: str, reminder: bool, language: str) -> tuple[str, tuple[jinja2.Template, ...]]:
        name = self.ws.moments[moment_id].template
        names = [f"{name}_reminder", name] if reminder else [name]
        languages = [language, self.ws.settings.default_language]
        for lang in dict.fromkeys(languages):
            for base in names:
                files = [f"{base}.{lang}.{part}.j2" for part in PARTS]
                if all(f in self._existing for f in files):
                    try:
                        return lang, tuple(self.env.get_template(f) for f in files)
                    except jinja2.TemplateSyntaxError as exc:
                        raise TemplateError(
                            f"{exc.filename or exc.name}:{exc.lineno}: {exc.message}: fix the template syntax"
                        ) from None
        wanted = ", ".join(f"{names[-1]}.{lang}.{{subject,txt,html}}.j2" for lang in dict.fromkeys(languages))
        raise TemplateError(
            f"moment {moment_id!r}: no complete template set {wanted} in {self.ws.templates_dir} or the bundled "
            f"defaults: add the three files, or set the moment's template: to an existing name"
        )

    # --- variables --------------------------------------------------------------------------

    def link(self, template: str, token: str, moment_id: str, lang: str) -> str:
        return (
            template.replace("{token}", quote(token, safe=""))
            .replace("{moment}", quote(moment_id, safe=""))
            .replace("{lang}", quote(lang, safe=""))
        )

    def moment_vars(self, moment_id: str, lang: str) -> dict[str, Any]:
        key = (moment_id, lang)
        found = self._moment_vars.get(key)
        if found is None:
            ws, moment = self.ws, self.ws.moments[moment_id]
            default = ws.settings.default_language
            journey = ws.journeys.get(moment.journey)
            journey_name = localise(journey.name, lang, default) if journey else moment.journey
            found = {
                "id": moment_id,
                "name": localise(moment.name, lang, default) or journey_name,
                "kind": moment.kind,
                "journey": moment.journey,
                "journey_name": journey_name,
                "stage": moment.stage,
            }
            self._moment_vars[key] = found
        return found

    def score_question(self, moment_id: str, lang: str) -> dict[str, Any] | None:
        """The moment's first question when it is NPS, CSAT or CES (one-click links), else None."""
        key = (moment_id, lang)
        if key not in self._score:
            ws, moment = self.ws, self.ws.moments[moment_id]
            question = ws.questions.get(moment.questions[0]) if moment.questions else None
            if question is None or question.type not in SCORE_TYPES:
                self._score[key] = None
            else:
                default = ws.settings.default_language
                labels = {k: localise(v, lang, default) for k, v in question.labels.items()}
                scale = question.scale
                assert scale is not None, "Question's validator gives NPS, CSAT and CES questions a min and a max"
                low, high = scale
                self._score[key] = {
                    "id": moment.questions[0],
                    "type": question.type,
                    "text": localise(question.text, lang, default),
                    "min": low,
                    "max": high,
                    "labels": labels,
                    "low_label": labels.get(low, ""),
                    "high_label": labels.get(high, ""),
                }
        return self._score[key]

    def variables(
        self,
        *,
        token: str,
        moment_id: str,
        lang: str,
        reminder: bool,
        contact: dict[str, Any],
        event: dict[str, Any] | None,
        scores: bool = True,
    ) -> dict[str, Any]:
        """Everything a template may use (documented in docs/sending.md, "Messages and templates").
        `scores=False` leaves out the signed one-click links (an SMS has room for one link only)."""
        settings = self.ws.settings
        assert settings.survey_url is not None, "set by the settings' validator (default_links) or refused"
        survey_url = self.link(settings.survey_url, token, moment_id, lang)
        unsubscribe_url = unsubscribe_link(self.ws, token, moment_id, lang)
        score = self.score_question(moment_id, lang) if scores else None
        if score is not None:
            sep = "&" if "?" in survey_url else "?"
            qid = quote(score["id"], safe="")
            score = dict(
                score,
                scores=[
                    {
                        "value": n,
                        "label": score["labels"].get(n, ""),
                        "url": f"{survey_url}{sep}q={qid}&score={n}&sig={tokens.sign_value(self.secret, token, str(n))}",
                    }
                    for n in range(score["min"], score["max"] + 1)
                ],
            )
        return {
            "contact": contact,
            "event": event if event is not None else {},
            "moment": self.moment_vars(moment_id, lang),
            "survey_url": survey_url,
            "score_question": score,
            "unsubscribe_url": unsubscribe_url,
            "sender": {"name": settings.sender.name, "address": settings.sender.address},
            "workspace": {"name": settings.name},
            # The company as customers know it, in the message's language ("" when unset: templates say so).
            "company": localise(settings.company, lang, settings.default_language),
            "reminder": reminder,
            "lang": lang,
            "token": token,
        }

    def render(self, templates: tuple[jinja2.Template, ...], variables: dict[str, Any]) -> Rendered:
        """Render the three parts; raises TemplateError naming the template and the missing variable."""
        subject_t, text_t, html_t = templates
        current = subject_t
        try:
            subject = " ".join(subject_t.render(variables).split())
            current = text_t
            text = text_t.render(variables)
            current = html_t
            html = html_t.render(variables)
        except jinja2.UndefinedError as exc:
            raise TemplateError(
                f"{self._where(current, exc)}: {exc.message}: give the variable a default "
                f"({{{{ x | default('') }}}}) or use one listed in docs/sending.md (Messages and templates)"
            ) from None
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(
                f"{self._where(current, exc)}: unsafe operation refused by the sandbox ({exc})"
            ) from None
        except jinja2.TemplateError as exc:
            raise TemplateError(f"{self._where(current, exc)}: {exc}") from None
        except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
            # e.g. `{{ event.amount + 1 }}` on a text attribute: a problem of this message, not a crash of the run
            raise TemplateError(
                f"{self._where(current, exc)}: {type(exc).__name__}: {exc}: fix the expression"
            ) from None
        return Rendered(subject, text, html)

    def _where(self, template: jinja2.Template, exc: BaseException) -> str:
        """`file:line` of the failing template line (jinja maps template lines into the traceback)."""
        path = template.filename or template.name
        assert path is not None, "templates come from the loader, which names them"
        try:
            shown = str(Path(path).relative_to(self.ws.root))
        except ValueError:
            shown = str(path)
        line = None
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == template.filename:
                line = tb.tb_lineno
            tb = tb.tb_next
        return f"{shown}:{line}" if line else shown


def unsubscribe_link(ws: Workspace, token: str, moment_id: str, lang: str) -> str:
    """The https unsubscribe link, or a mailto: link when the workspace only has an address."""
    settings = ws.settings
    if settings.unsubscribe_url:
        return (
            settings.unsubscribe_url.replace("{token}", quote(token, safe=""))
            .replace("{moment}", quote(moment_id, safe=""))
            .replace("{lang}", quote(lang, safe=""))
        )
    address = settings.unsubscribe_mailto or settings.sender.reply_to or settings.sender.address
    return f"mailto:{address}?subject={quote('unsubscribe ' + token)}"


def contact_vars(row: dict[str, Any]) -> dict[str, Any]:
    """Template view of a contact row (attributes decoded; names never None)."""
    attributes = row.get("attributes") or "{}"
    if isinstance(attributes, str):
        try:
            attributes = json.loads(attributes)
        except ValueError:
            attributes = {}
    first, last = row.get("first_name") or "", row.get("last_name") or ""
    return {
        "id": row.get("id"),
        "external_id": row.get("external_id") or "",
        "email": row.get("email") or "",
        "first_name": first,
        "last_name": last,
        "name": " ".join(p for p in (first, last) if p),
        "language": row.get("language") or "",
        "company": row.get("company") or "",
        "role": row.get("role") or "",
        "segment": row.get("segment") or "",
        "country": row.get("country") or "",
        "attributes": attributes,
    }


def event_vars(event_type: str | None, occurred_at: str | None, attributes: Any) -> dict[str, Any] | None:
    """Template view of the triggering event: its attributes at top level, plus type and occurred_at."""
    if event_type is None:
        return None
    if isinstance(attributes, str):
        try:
            attributes = json.loads(attributes or "{}")
        except ValueError:
            attributes = {}
    view = dict(attributes or {})
    view.setdefault("type", event_type)
    view.setdefault("occurred_at", occurred_at or "")
    view["attributes"] = attributes or {}
    return view


class _AnyAttributes(dict):
    """Sample event for check_templates: event attributes vary per import, so any name is accepted."""

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return "sample"

    def __getitem__(self, name: Any) -> Any:
        return dict.get(self, name, "sample")

    def __contains__(self, name: object) -> bool:
        return True


SAMPLE_CONTACT = {
    "id": 1,
    "external_id": "C-0001",
    "email": "camille.dupont@example.com",
    "first_name": "Camille",
    "last_name": "Dupont",
    "language": "fr",
    "company": "Exemple SA",
    "role": "buyer",
    "segment": "b2c",
    "country": "FR",
    "attributes": {},
}


def sample_variables(renderer: Renderer, moment_id: str, lang: str, reminder: bool, token: str) -> dict[str, Any]:
    """Variables for previews and checks: a sample contact and an event that has every attribute."""
    event = _AnyAttributes(type="sample", occurred_at="2026-01-01 09:00:00", attributes={})
    contact = contact_vars(dict(SAMPLE_CONTACT, language=lang))
    contact["attributes"] = _AnyAttributes()
    return renderer.variables(
        token=token, moment_id=moment_id, lang=lang, reminder=reminder, contact=contact, event=event
    )


def check_templates(ws: Workspace, secret: bytes = b"check-templates") -> list[tuple[str, str]]:
    """Compile and render each moment's templates (every language, invitation and reminder) against
    sample variables with StrictUndefined; return (moment id, message) for each problem."""
    renderer = Renderer(ws, secret)
    token = tokens.new_token(secret)
    problems: list[tuple[str, str]] = []
    for moment_id, moment in ws.moments.items():
        # Every invitation is an email, whatever touchpoint (`channel`) the moment measures.
        reminders = [False] + ([True] if moment.reminders and moment.reminders.count else [])
        seen: set[tuple[str | None, ...]] = set()
        for lang in dict.fromkeys([ws.settings.default_language, *ws.settings.languages]):
            for reminder in reminders:
                try:
                    used, templates = renderer.templates(moment_id, reminder, lang)
                    names = tuple(t.name for t in templates) + (str(reminder),)
                    if names in seen:
                        continue
                    seen.add(names)
                    renderer.render(templates, sample_variables(renderer, moment_id, used, reminder, token))
                except TemplateError as exc:
                    message = str(exc)
                    if (moment_id, message) not in problems:
                        problems.append((moment_id, message))
    return [(m, msg) for m, msg in dict.fromkeys(problems)]


# --- preview ----------------------------------------------------------------------------------


PREVIEW_KEY = "preview-contact-"  # X-Cxctl-Invitation of a stored contact's preview: PREVIEW_KEY + contact id


@dataclass
class Preview:
    """A rendered message as `cxctl preview` shows it, and where its .eml and .html were written."""

    moment: str
    language: str
    reminder: bool
    contact: str
    subject: str
    text: str
    html: str
    headers: dict[str, str]
    eml_path: str
    html_path: str


def preview(
    ws: Workspace,
    db: Any,
    moment_id: str,
    now: datetime,
    *,
    contact: str | None = None,
    lang: str | None = None,
    reminder: bool = False,
    out_dir: Path | None = None,
) -> Preview:
    """Render one moment's message for a stored contact (id or external id) or a sample one, with a
    throw-away token; write it as .eml and .html into `out_dir` (default: <outbox>/preview)."""
    import email
    import email.policy

    from cxctl.core.errors import UsageError

    if moment_id not in ws.moments:
        known = ", ".join(sorted(ws.moments)) or "none"
        raise UsageError(f"unknown moment {moment_id!r}: the workspace defines {known}")
    if lang is not None:  # EN, Fr: language tags are case-insensitive (RFC 5646)
        lang = next((known for known in ws.settings.languages if known.lower() == lang.lower()), lang)
    if lang is not None and lang not in ws.settings.languages:
        raise UsageError(
            f"language {lang!r} is not among the workspace's languages {ws.settings.languages}: pass one of them to --lang"
        )
    secret = ws.secret()
    renderer = Renderer(ws, secret)
    token = tokens.new_token(secret)
    if contact is None:
        used, templates = renderer.templates(moment_id, reminder, renderer.language_for(lang))
        variables = sample_variables(renderer, moment_id, used, reminder, token)
        variables["event"] = {"type": "sample", "occurred_at": "", "attributes": {}}
        who = "sample contact"
        to_name, to_address = variables["contact"]["name"], variables["contact"]["email"]
    else:
        row = (
            db.execute(
                "SELECT * FROM contacts WHERE external_id = ? OR CAST(id AS TEXT) = ? ORDER BY external_id = ? DESC LIMIT 1",
                [contact, contact, contact],
            ).fetchone()
            if db is not None
            else None
        )
        if row is None:
            raise UsageError(
                f"no contact with id or external id {contact!r}: check `cxctl contacts list`, or omit --contact for a sample"
            )
        names = [d[0] for d in db.execute("SELECT * FROM contacts LIMIT 0").description]
        person = contact_vars(dict(zip(names, row, strict=True)))
        event = None
        trigger = ws.moments[moment_id].trigger
        if trigger is not None:
            found = db.execute(
                "SELECT type, occurred_at, attributes FROM events WHERE contact_id = ? AND type = ? "
                "ORDER BY occurred_at DESC LIMIT 1",
                [person["id"], trigger.event],
            ).fetchone()
            if found is not None:
                event = event_vars(*found)
        used, templates = renderer.templates(moment_id, reminder, renderer.language_for(lang or person["language"]))
        variables = renderer.variables(
            token=token, moment_id=moment_id, lang=used, reminder=reminder, contact=person, event=event
        )
        who = f"contact {person['external_id'] or person['id']}"
        to_name, to_address = person["name"], person["email"] or "nobody@example.invalid"
    rendered = renderer.render(templates, variables)
    # A stored contact's preview carries their id, so that `forget` finds and erases it with their messages.
    label = "preview" if contact is None else f"{PREVIEW_KEY}{person['id']}"
    _, data = MessageBuilder(ws).build(
        invitation_id=label,
        token=token,
        to_name=to_name,
        to_address=to_address,
        rendered=rendered,
        date=now,
        unsubscribe_url=variables["unsubscribe_url"],
    )
    folder = Path(out_dir) if out_dir is not None else ws.outbox_dir / "preview"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{moment_id}.{used}" + (".reminder" if reminder else "")
    eml_path, html_path = folder / f"{stem}.eml", folder / f"{stem}.html"
    eml_path.write_bytes(data)
    html_path.write_text(rendered.html, encoding="utf-8")
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    headers = {k: str(v) for k, v in parsed.items() if k.lower() not in ("content-type", "mime-version")}
    return Preview(
        moment_id,
        used,
        reminder,
        who,
        rendered.subject,
        rendered.text,
        rendered.html,
        headers,
        str(eml_path),
        str(html_path),
    )
