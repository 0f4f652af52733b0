"""What an alert says, and on which wire: an email to the owner (through the workspace's transport), a
Slack incoming-webhook message (`text` plus `blocks`), or a Microsoft Teams incoming-webhook message
(an Adaptive Card attachment). Texts are in the team's language (French or English).

Personal data: an email goes to the case's owner, inside the company, and carries what the call needs
(the customer's name and reference, score, chosen reasons, comment). A chat message lands in a
third-party service read by a whole channel: it carries the case number, moment, score, reasons,
owner and due date — never a name, an address, a reference or the comment.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

from cxctl.core.timeutil import from_db
from cxctl.results.followups import Followup

TEXTS = {
    "fr": {
        "opened": "Nouveau cas à rappeler",
        "assigned": "Cas qui vous est confié",
        "digest": "Cas en retard",
        "detractor": "détracteur",
        "dissatisfied": "insatisfait",
        "high_effort": "effort élevé",
        "due": "à rappeler avant le",
        "no_due": "sans échéance",
        "owner": "responsable",
        "nobody": "personne",
        "chose": "a choisi",
        "comment": "commentaire",
        "customer": "client",
        "case": "cas",
        "overdue_since": "en retard depuis",
        "see": "Voir le cas : cxctl followups show {id}",
        "digest_intro": "{n} cas en retard à la date du {day} :",
        "sent_by": "Message automatique de cxctl : ne pas répondre.",
    },
    "en": {
        "opened": "New case to call back",
        "assigned": "Case assigned to you",
        "digest": "Overdue cases",
        "detractor": "detractor",
        "dissatisfied": "dissatisfied",
        "high_effort": "high effort",
        "due": "call back before",
        "no_due": "no due date",
        "owner": "owner",
        "nobody": "nobody",
        "chose": "chose",
        "comment": "comment",
        "customer": "customer",
        "case": "case",
        "overdue_since": "overdue since",
        "see": "See the case: cxctl followups show {id}",
        "digest_intro": "{n} overdue case(s) on {day}:",
        "sent_by": "Automatic message from cxctl: do not reply.",
    },
}


def texts(language: str) -> dict[str, str]:
    return TEXTS.get(language.split("-")[0].lower(), TEXTS["en"])


@dataclass
class AlertText:
    """One alert, ready for any channel: a subject line, the lines for the owner, the lines for a chat."""

    subject: str
    private_lines: list[str]
    chat_title: str
    chat_lines: list[str]


def _when(text: str | None, tz: ZoneInfo) -> str:
    moment = from_db(text)
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M") if moment else ""


def _why(case: Followup, t: dict[str, str]) -> str:
    scores = ", ".join(f"{k} {v:g}" for k, v in case.scores.items())
    return ", ".join(t.get(r, r) for r in case.reasons) + (f" ({scores})" if scores else "")


def case_text(case: Followup, event: str, language: str, tz: ZoneInfo) -> AlertText:
    """The alert of one case (opened or assigned)."""
    t = texts(language)
    due = f"{t['due']} {_when(case.due_at, tz)}" if case.due_at else t["no_due"]
    headline = f"{t[event]} #{case.id} · {case.moment} · {_why(case, t)}"
    chosen = ", ".join(c["label"] for c in case.chosen_reasons)
    common = [f"{t['owner']}: {case.owner or t['nobody']} · {due}"] + ([f"{t['chose']}: {chosen}"] if chosen else [])
    name = " ".join(x for x in (case.contact.get("first_name"), case.contact.get("last_name")) if x)
    customer = " · ".join(x for x in (name, case.contact.get("external_id")) if x)
    private = (
        [headline, *common]
        + ([f"{t['customer']}: {customer}"] if customer else [])
        + ([f"{t['comment']}: “{case.comment}”"] if case.comment else [])
        + ["", t["see"].format(id=case.id)]
    )
    return AlertText(f"[cxctl] {headline} · {due}", private, headline, common + [t["see"].format(id=case.id)])


def digest_text(cases: list[Followup], day: str, language: str, tz: ZoneInfo, private: bool) -> AlertText:
    """The digest of overdue cases on `day`; `private` adds the customer's name (for the owner's email)."""
    t = texts(language)
    title = f"{t['digest']} · {day}"
    lines = [t["digest_intro"].format(n=len(cases), day=day)]
    for case in cases:
        line = (
            f"#{case.id} · {case.moment} · {_why(case, t)} · {t['owner']}: {case.owner or t['nobody']} · "
            f"{t['overdue_since']} {_when(case.due_at, tz)}"
        )
        if private:
            name = " ".join(x for x in (case.contact.get("first_name"), case.contact.get("last_name")) if x)
            line += f" · {name}" if name else ""
        lines.append(line)
    return AlertText(f"[cxctl] {title} ({len(cases)})", lines, title, lines)


def email_bytes(
    text: AlertText, sender: str, recipient: str, message_id: str, alert_id: int, date: datetime, language: str
) -> bytes:
    """The alert as an RFC 5322 message. Auto-Submitted keeps vacation responders from answering (RFC 3834)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = text.subject
    message["Date"] = email.utils.format_datetime(date)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message["X-Cxctl-Alert"] = str(alert_id)
    message.set_content("\n".join(text.private_lines) + "\n\n-- \n" + texts(language)["sent_by"] + "\n")
    return message.as_bytes()


def _slack_escape(value: str) -> str:
    # Slack reads &, < and > as markup (<!channel> would ping everyone): a comment must not.
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(text: AlertText) -> dict[str, Any]:
    """Slack incoming webhook: `text` is the notification's fallback, `blocks` the message (Block Kit)."""
    body = "\n".join(_slack_escape(line) for line in text.chat_lines)
    return {
        "text": _slack_escape(text.chat_title),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": text.chat_title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": body[:3000]}},
        ],
    }


def teams_payload(text: AlertText) -> dict[str, Any]:
    """Microsoft Teams incoming webhook (and Workflows webhooks): a message with one Adaptive Card attachment."""
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [{"type": "TextBlock", "text": text.chat_title, "weight": "Bolder", "size": "Medium", "wrap": True}]
        + [{"type": "TextBlock", "text": line, "wrap": True, "spacing": "Small"} for line in text.chat_lines],
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }
