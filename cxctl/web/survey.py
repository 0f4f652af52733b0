"""What the survey and unsubscribe pages need from the store and the workspace, without HTTP: the
invitation behind a token, the questions of its moment in the contact's language, the answers read from
a submitted form (or the field each problem is about), storing them and recording an opt-out.

A token is checked against the secret before the store is asked, so a forged link costs no query. A
reminder's link answers its invitation: the response is stored under the invitation's token, so the
same person answering from the invitation and then from the reminder corrects one response.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlite_utils

from cxctl.core import tokens
from cxctl.core.timeutil import to_db
from cxctl.results.page_answers import OneResponse, StoredResponse, store_responses
from cxctl.store import email_hash
from cxctl.web.texts import page_language, say
from cxctl.workspace.loader import Workspace
from cxctl.workspace.model import DEFAULT_SCALES, AskIf, Question, localise

MAX_TEXT = 2000  # characters of one open answer (a long complaint fits; a pasted file does not)
SCALE_TYPES = ("nps", "csat", "ces", "rating")
# Invitations whose message may have reached the person; any other state (planned, failed, bounced,
# cancelled, expired) never delivered its link, so the page reads as closed.
DELIVERED = ("sent", "sending", "in_doubt")
SOURCE = "cxctl"  # responses.source of the answers taken by cxctl's own page
# Control characters (C0 but tab and line feed, DEL, C1): invisible in a comment, refused rather than kept.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")

_INVITATION_SQL = """
SELECT i.id, i.token, i.moment, i.kind, i.status, COALESCE(i.sent_at, i.send_at), i.language, i.email,
       p.id, p.token, p.status, COALESCE(p.sent_at, p.send_at),
       c.id, c.language, c.email, c.email_hash, c.forgotten_at
FROM invitations i JOIN contacts c ON c.id = i.contact_id LEFT JOIN invitations p ON p.id = i.parent_id
WHERE i.token = ?
"""


@dataclass
class Invitation:
    """The invitation a link answers (a reminder's parent), and what the pages need to know of its person."""

    id: int
    token: str  # the token answers are stored under
    moment: str
    language: str  # the workspace language the questions are shown in
    page_lang: str  # fr or en: the page's own wording
    contact_id: int
    addresses: list[str]
    address_hash: str | None
    forgotten: bool
    delivered: bool
    opens: datetime | None
    closes: datetime | None

    def is_open(self, now: datetime) -> bool:
        return self.delivered and self.closes is not None and now <= self.closes


def check_token(keys: tokens.Keyring, token: str) -> bool:
    """The token's signature under the current secret, or a previous one still in its rotation's grace
    period (the one place this package asks tokens.py)."""
    return tokens.verify_with_keys(keys, token)


def check_score(keys: tokens.Keyring, token: str, value: str, tag: str) -> bool:
    return tokens.verify_value_with_keys(keys, token, value, tag)


def find_invitation(ws: Workspace, db: sqlite_utils.Database, token: str, secret: tokens.Keyring) -> Invitation | None:
    """The invitation behind a link's token, or None for a forged or unknown one (and for a reminder of an
    invitation pruned since)."""
    if len(token) > 100 or not check_token(secret, token):
        return None
    row = db.execute(_INVITATION_SQL, [token]).fetchone()
    if row is None:
        return None
    (
        own_id,
        own_token,
        moment,
        kind,
        own_status,
        own_sent,
        own_lang,
        own_email,
        parent_id,
        parent_token,
        parent_status,
        parent_sent,
        contact_id,
        contact_lang,
        contact_email,
        contact_hash,
        forgotten_at,
    ) = row
    if moment not in ws.moments:
        return None
    if kind == "reminder" and parent_id is not None:
        answered_id, answered_token, status, sent = parent_id, parent_token, parent_status, parent_sent
        delivered = own_status in DELIVERED or parent_status in DELIVERED
    else:
        answered_id, answered_token, status, sent = own_id, own_token, own_status, own_sent
        delivered = status in DELIVERED
    language = _language(ws, own_lang or contact_lang)
    # The store's UTC text, read the fast way (this runs for every page and answer).
    opens = datetime.fromisoformat(sent[:19]).replace(tzinfo=UTC) if sent else None
    closes = opens + ws.moments[moment].responses.match_window if opens else None
    addresses = list(dict.fromkeys(a for a in (own_email, contact_email) if a))
    return Invitation(
        answered_id,
        answered_token,
        moment,
        language,
        page_language(language, ws.settings.default_language),
        contact_id,
        addresses,
        contact_hash,
        forgotten_at is not None,
        delivered,
        opens,
        closes,
    )


def _language(ws: Workspace, wanted: str | None) -> str:
    """The contact's language if the workspace speaks it (or its base), else the workspace default."""
    settings = ws.settings
    if wanted:
        for candidate in (wanted, wanted.split("-")[0].lower()):
            if candidate in settings.languages:
                return candidate
    return settings.default_language


def answered(db: sqlite_utils.Database, invitation: Invitation) -> bool:
    return (
        db.execute("SELECT EXISTS (SELECT 1 FROM responses WHERE invitation_id = ?)", [invitation.id]).fetchone()[0]
        == 1
    )


# --- the questions ----------------------------------------------------------------------------------


@dataclass
class Field:
    """One question as the page shows it."""

    id: str
    type: str
    text: str
    required: bool
    points: list[tuple[int, str]] = field(default_factory=list)  # scale: (value, label or "")
    low: str = ""
    high: str = ""
    choices: list[tuple[str, str]] = field(default_factory=list)  # (id, label)
    multiple: bool = False
    max_chars: int = MAX_TEXT


def _scale(q: Question) -> tuple[int, int]:
    """The bounds of a scale question (nps, csat, ces, rating)."""
    assert q.scale is not None, "Question's validator gives every scale question its min and max, or refuses it"
    return q.scale


def fields_for(ws: Workspace, moment: str, language: str, page_lang: str) -> list[Field]:
    """The moment's questions, in order, worded in `language` (then the workspace default)."""
    default = ws.settings.default_language
    fields = []
    for qid in ws.moments[moment].questions:
        q = ws.questions[qid]
        item = Field(qid, q.type, localise(q.text, language, default), q.required and q.ask_if is None)
        if q.type in SCALE_TYPES:
            labels = {k: localise(v, language, default) for k, v in q.labels.items()}
            low, high = _scale(q)
            item.points = [(n, labels.get(n, "")) for n in range(low, high + 1)]
            fallback = q.type in DEFAULT_SCALES and (low, high) == DEFAULT_SCALES[q.type]
            item.low = labels.get(low) or (say(page_lang, f"low_{q.type}") if fallback else "")
            item.high = labels.get(high) or (say(page_lang, f"high_{q.type}") if fallback else "")
        elif q.type in ("single_choice", "multiple_choice"):
            item.choices = [(c.id, localise(c.label, language, default)) for c in q.choices]
            item.multiple = q.type == "multiple_choice"
        fields.append(item)
    return fields


def preselected(
    ws: Workspace, invitation: Invitation, link_token: str, query: dict[str, str], secret: tokens.Keyring
) -> dict[str, str]:
    """{question: score} from a one-click link whose score signature holds (a score altered in the link, or
    one for another question, pre-selects nothing)."""
    qid, score, tag = query.get("q"), query.get("score"), query.get("sig")
    if not (qid and score and tag) or len(tag) > 64 or len(score) > 3:
        return {}
    questions = ws.moments[invitation.moment].questions
    if qid != questions[0] or ws.questions[qid].type not in DEFAULT_SCALES:
        return {}
    if not score.isdigit() or not check_score(secret, link_token, score, tag):
        return {}
    q = ws.questions[qid]
    low, high = _scale(q)
    return {qid: score} if low <= int(score) <= high else {}


# --- reading a submitted form ---------------------------------------------------------------------------


@dataclass
class Reading:
    """The answers of a form as the store takes them, the values to show again, and the problems by field
    (question id, or "" for the form as a whole)."""

    answers: dict[str, tuple[float | None, str | None]] = field(default_factory=dict)
    values: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def read_form(ws: Workspace, moment: str, pairs: list[tuple[str, str]], page_lang: str) -> Reading:
    """Check every field of a submitted form against its question; nothing is guessed: a value that does not
    fit is an error named by its field, and the form is stored only when there is none."""
    reading = Reading()
    questions = ws.moments[moment].questions
    for name, value in pairs:
        if name not in questions:
            reading.errors.setdefault("", say(page_lang, "err_unknown", name=name[:40]))
            continue
        reading.values.setdefault(name, []).append(value)
    for qid in questions:
        q = ws.questions[qid]
        given = (
            [v for v in reading.values.get(qid, []) if v.strip()] if q.type != "open" else reading.values.get(qid, [])
        )
        if q.type in SCALE_TYPES:
            if len(given) > 1:
                reading.errors[qid] = say(page_lang, "err_one")
            elif given:
                text = given[0].strip()
                low, high = _scale(q)
                if not (text.isascii() and text.isdigit() and low <= int(text) <= high):
                    reading.errors[qid] = say(page_lang, "err_scale", min=low, max=high)
                else:
                    reading.answers[qid] = (float(int(text)), None)
        elif q.type in ("single_choice", "multiple_choice"):
            known = [c.id for c in q.choices]
            if any(v not in known for v in given):
                reading.errors[qid] = say(page_lang, "err_choice")
            elif q.type == "single_choice" and len(given) > 1:
                reading.errors[qid] = say(page_lang, "err_one")
            elif given and q.type == "single_choice":
                reading.answers[qid] = (None, given[0])
            elif given:
                reading.answers[qid] = (None, json.dumps([c for c in known if c in given]))
        else:
            if len(given) > 1:
                reading.errors[qid] = say(page_lang, "err_one")
            elif given:
                text = given[0].replace("\r\n", "\n").strip()
                if len(text) > MAX_TEXT:
                    reading.errors[qid] = say(page_lang, "err_long", n=MAX_TEXT, given=len(text))
                elif _CONTROL.search(text):
                    reading.errors[qid] = say(page_lang, "err_control")
                elif text:
                    reading.answers[qid] = (None, unicodedata.normalize("NFC", text))
    for qid in questions:
        q = ws.questions[qid]
        if (
            q.required
            and qid not in reading.answers
            and qid not in reading.errors
            and _asked(q.ask_if, reading.answers)
        ):
            reading.errors[qid] = say(page_lang, "err_required")
    if not reading.answers and not reading.errors:
        reading.errors[""] = say(page_lang, "err_empty")
    return reading


def _asked(condition: AskIf | None, answers: dict[str, tuple[float | None, str | None]]) -> bool:
    """Whether a question with this ask_if is asked, given the other answers (always, without one)."""
    if condition is None:
        return True
    if condition.question not in answers:
        return False
    number, text = answers[condition.question]
    chosen = json.loads(text) if text and text.startswith("[") else [text]
    if condition.at_most is not None and not (number is not None and number <= condition.at_most):
        return False
    if condition.at_least is not None and not (number is not None and number >= condition.at_least):
        return False
    if condition.equals is not None and str(condition.equals) not in (
        text,
        None if number is None else str(int(number)),
        None if number is None else str(number),
    ):
        return False
    return condition.any_of is None or bool(set(condition.any_of) & set(chosen))


# --- writing -------------------------------------------------------------------------------------------


def response_of(invitation: Invitation, reading: Reading, now: datetime) -> OneResponse:
    """The response to store for a form read without error."""
    return OneResponse(invitation.token, invitation.moment, reading.answers, now)


def record_answers(
    ws: Workspace, db: sqlite_utils.Database, responses: list[OneResponse], secret: tokens.Keyring
) -> list[StoredResponse]:
    """Store answers through the import's path, in one transaction (one response per invitation: again replaces)."""
    return store_responses(ws, db, responses, secret, source=SOURCE)


def unsubscribe(db: sqlite_utils.Database, invitation: Invitation, now: datetime) -> int:
    """Suppress the addresses this invitation went to (an opt-out, as `cxctl suppress add` records it);
    returns how many were new. A forgotten person's address survives as its hash only: suppressed by it."""
    stamp = to_db(now)
    note = f"one-click unsubscribe (invitation {invitation.id})"
    rows: list[tuple[str, str | None]] = [(email_hash(address), address) for address in invitation.addresses]
    if not rows and invitation.address_hash:
        rows = [(invitation.address_hash, None)]
    added = 0
    db.execute("BEGIN IMMEDIATE")
    try:
        for hashed, address in rows:
            added += db.execute(
                "INSERT OR IGNORE INTO suppressions (email_hash, email, reason, source, note, created_at)"
                " VALUES (?, ?, 'opt_out', 'web', ?, ?)",
                [hashed, address, note, stamp],
            ).rowcount
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return added
