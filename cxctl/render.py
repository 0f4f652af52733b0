"""Rendering invitations: jinja2 templates (sandboxed, StrictUndefined, HTML autoescaped) and the
variables they see, plus `check_templates` for `cxctl validate`.

Templates are `<name>.<lang>.subject.j2`, `<name>.<lang>.txt.j2`, `<name>.<lang>.html.j2`, looked up
in the workspace's templates folder first, then in cxctl's bundled defaults. A missing variable is an
error (StrictUndefined), never a blank in a sent message.

The MIME bytes are built by hand (`MessageBuilder`): the constant headers are encoded once per run and
only what varies (recipient, subject, ids, bodies) per message, with RFC 2047 encoded words and
quoted-printable bodies — the standard EmailMessage API caps at ~300 messages/s, this at several thousand.
"""

from __future__ import annotations

import binascii
import email.utils
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from cxctl import tokens
from cxctl.campaign import DEFAULT_SCALES, localise
from cxctl.loader import Workspace
from cxctl.resources import default_templates_dir

PARTS = ("subject", "txt", "html")
SCORE_TYPES = tuple(DEFAULT_SCALES)  # nps, csat, ces: the types a one-click link can answer


class TemplateError(Exception):
    """A template is missing, does not compile, or uses a variable it is not given."""


@dataclass(frozen=True)
class Rendered:
    """The three rendered parts of one message."""

    subject: str
    text: str
    html: str


def _html_name(name: str | None) -> bool:
    return bool(name) and name.endswith(".html.j2")


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
                        raise TemplateError(f"{exc.filename or exc.name}:{exc.lineno}: {exc.message}: fix the template syntax") from None
        wanted = ", ".join(f"{names[-1]}.{lang}.{{subject,txt,html}}.j2" for lang in dict.fromkeys(languages))
        raise TemplateError(
            f"moment {moment_id!r}: no complete template set {wanted} in {self.ws.templates_dir} or the bundled "
            f"defaults: add the three files, or set the moment's template: to an existing name"
        )

    # --- variables --------------------------------------------------------------------------

    def link(self, template: str, token: str, moment_id: str, lang: str) -> str:
        return (template.replace("{token}", quote(token, safe=""))
                .replace("{moment}", quote(moment_id, safe=""))
                .replace("{lang}", quote(lang, safe="")))

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
                self._score[key] = {
                    "id": moment.questions[0],
                    "type": question.type,
                    "text": localise(question.text, lang, default),
                    "min": question.min,
                    "max": question.max,
                    "labels": labels,
                    "low_label": labels.get(question.min, ""),
                    "high_label": labels.get(question.max, ""),
                }
        return self._score[key]

    def variables(self, *, token: str, moment_id: str, lang: str, reminder: bool,
                  contact: dict[str, Any], event: dict[str, Any] | None) -> dict[str, Any]:
        """Everything a template may use (documented in docs/send.md)."""
        settings = self.ws.settings
        survey_url = self.link(settings.survey_url, token, moment_id, lang)
        unsubscribe_url = unsubscribe_link(self.ws, token, moment_id, lang)
        score = self.score_question(moment_id, lang)
        if score is not None:
            sep = "&" if "?" in survey_url else "?"
            qid = quote(score["id"], safe="")
            score = dict(score, scores=[
                {
                    "value": n,
                    "label": score["labels"].get(n, ""),
                    "url": f"{survey_url}{sep}q={qid}&score={n}&sig={tokens.sign_value(self.secret, token, str(n))}",
                }
                for n in range(score["min"], score["max"] + 1)
            ])
        return {
            "contact": contact,
            "event": event if event is not None else {},
            "moment": self.moment_vars(moment_id, lang),
            "survey_url": survey_url,
            "score_question": score,
            "unsubscribe_url": unsubscribe_url,
            "sender": {"name": settings.sender.name, "address": settings.sender.address},
            "workspace": {"name": settings.name},
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
            raise TemplateError(f"{current.name}: {exc.message}: give the variable a default "
                                f"({{{{ x | default('') }}}}) or use one listed in docs/send.md") from None
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(f"{current.name}: unsafe operation refused by the sandbox ({exc})") from None
        except jinja2.TemplateError as exc:
            raise TemplateError(f"{current.name}: {exc}") from None
        return Rendered(subject, text, html)


def unsubscribe_link(ws: Workspace, token: str, moment_id: str, lang: str) -> str:
    """The https unsubscribe link, or a mailto: link when the workspace only has an address."""
    settings = ws.settings
    if settings.unsubscribe_url:
        return (settings.unsubscribe_url.replace("{token}", quote(token, safe=""))
                .replace("{moment}", quote(moment_id, safe="")).replace("{lang}", quote(lang, safe="")))
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
    "id": 1, "external_id": "C-0001", "email": "camille.dupont@example.com", "first_name": "Camille",
    "last_name": "Dupont", "language": "fr", "company": "Exemple SA", "role": "buyer", "segment": "b2c",
    "country": "FR", "attributes": {},
}


def sample_variables(renderer: Renderer, moment_id: str, lang: str, reminder: bool, token: str) -> dict[str, Any]:
    """Variables for previews and checks: a sample contact and an event that has every attribute."""
    event = _AnyAttributes(type="sample", occurred_at="2026-01-01 09:00:00", attributes={})
    contact = contact_vars(dict(SAMPLE_CONTACT, language=lang))
    contact["attributes"] = _AnyAttributes()
    return renderer.variables(token=token, moment_id=moment_id, lang=lang, reminder=reminder, contact=contact, event=event)


def check_templates(ws: Workspace, secret: bytes = b"check-templates") -> list[tuple[str, str]]:
    """Compile and render each moment's templates (every language, invitation and reminder) against
    sample variables with StrictUndefined; return (moment id, message) for each problem."""
    renderer = Renderer(ws, secret)
    token = tokens.new_token(secret)
    problems: list[tuple[str, str]] = []
    for moment_id, moment in ws.moments.items():
        if moment.channel != "email":
            continue
        reminders = [False] + ([True] if moment.reminders and moment.reminders.count else [])
        seen: set[tuple[str, ...]] = set()
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


# --- MIME bytes -------------------------------------------------------------------------------

_SPECIALS = set('()<>[]:;@\\,."')


def clean_header_text(value: str) -> str:
    """One line of header text: any line break or control character becomes a space, so a name or
    subject containing a newline can never add a header."""
    if value.isprintable():
        return value.strip()
    return " ".join("".join(ch if ch.isprintable() else " " for ch in value).split())


def _encoded_words(text: str) -> list[str]:
    """RFC 2047 base64 encoded words of at most 75 characters, never splitting a character."""
    words, chunk, size = [], [], 0
    for ch in text:
        n = len(ch.encode("utf-8"))
        if size + n > 45:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(ch)
        size += n
    if chunk:
        words.append("".join(chunk))
    return ["=?utf-8?b?" + binascii.b2a_base64(w.encode("utf-8"), newline=False).decode("ascii") + "?=" for w in words]


def encode_unstructured(value: str, name_length: int) -> str:
    """A header value (Subject): plain folded ASCII when possible, else encoded words, folded."""
    text = clean_header_text(value)
    if text.isascii() and "=?" not in text:
        words = text.split(" ")
        lines, line = [], ""
        budget = 78 - name_length - 2
        for word in words:
            if line and len(line) + 1 + len(word) > budget:
                lines.append(line)
                line, budget = word, 77
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
        return "\r\n ".join(lines)
    return "\r\n ".join(_encoded_words(text))


def encode_address(name: str, address: str) -> str:
    """`Display Name <addr>` with the name quoted or encoded as needed (never able to break the line)."""
    display = clean_header_text(name or "")
    if not display:
        return f"<{address}>"
    if display.isascii() and "=?" not in display:
        if any(ch in _SPECIALS for ch in display):
            display = '"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{display} <{address}>"
    return "\r\n ".join(_encoded_words(display)) + f" <{address}>"


def _qp(text: str) -> bytes:
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(data, quotetabs=False, istext=True, header=False).replace(b"\n", b"\r\n")


class MessageBuilder:
    """Builds the bytes of a multipart/alternative message; the constant headers are encoded once."""

    def __init__(self, ws: Workspace):
        settings = ws.settings
        self.sender = settings.sender.address
        self.domain = self.sender.rpartition("@")[2] or "cxctl.invalid"
        head = [f"From: {encode_address(settings.sender.name, settings.sender.address)}"]
        if settings.sender.reply_to:
            head.append(f"Reply-To: {settings.sender.reply_to}")
        self._constant = ("\r\n".join(head) + "\r\n").encode("utf-8")
        self._mailto = settings.unsubscribe_mailto
        self._https = bool(settings.unsubscribe_url)

    def message_id(self, invitation_id: int | str, token: str) -> str:
        """Stable per invitation: a retried message keeps its Message-ID, so mail clients dedupe it."""
        return f"<cx.{invitation_id}.{token.split('.')[0]}@{self.domain}>"

    def build(self, *, invitation_id: int | str, token: str, to_name: str, to_address: str, rendered: Rendered,
              date: datetime, unsubscribe_url: str) -> tuple[str, bytes]:
        """(Message-ID, message bytes with CRLF line ends)."""
        message_id = self.message_id(invitation_id, token)
        unsubscribe = []
        if self._mailto:
            unsubscribe.append(f"<mailto:{self._mailto}?subject=unsubscribe%20{quote(token, safe='')}>")
        if self._https or not self._mailto:
            unsubscribe.append(f"<{unsubscribe_url}>")
        boundary = "=_cx" + secrets.token_hex(12)
        head = [
            f"To: {encode_address(to_name, to_address)}",
            f"Subject: {encode_unstructured(rendered.subject, 7)}",
            f"Date: {email.utils.format_datetime(date)}",
            f"Message-ID: {message_id}",
            "List-Unsubscribe: " + ",\r\n ".join(unsubscribe),
        ]
        if any(u.startswith("<http") for u in unsubscribe):
            head.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
        head += [
            f"X-Cxctl-Invitation: {invitation_id}",
            "MIME-Version: 1.0",
            f'Content-Type: multipart/alternative; boundary="{boundary}"',
            "",
            f"--{boundary}",
            'Content-Type: text/plain; charset="utf-8"',
            "Content-Transfer-Encoding: quoted-printable",
            "",
            "",
        ]
        middle = (f"\r\n--{boundary}\r\n"
                  'Content-Type: text/html; charset="utf-8"\r\n'
                  "Content-Transfer-Encoding: quoted-printable\r\n\r\n")
        data = b"".join((
            self._constant,
            "\r\n".join(head).encode("utf-8"),
            _qp(rendered.text),
            middle.encode("ascii"),
            _qp(rendered.html),
            f"\r\n--{boundary}--\r\n".encode("ascii"),
        ))
        return message_id, data
