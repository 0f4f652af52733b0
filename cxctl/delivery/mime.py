"""The bytes of an invitation email, built by hand for speed and checked by parsing in the tests.

The constant headers (From, Reply-To) are encoded once per run and only what varies (recipient,
subject, ids, bodies) per message, with RFC 2047 encoded words for non-ASCII text and quoted-printable
bodies: the standard EmailMessage API caps at ~300 messages/s on a small machine, this at thousands.
Every header value goes through `clean_header_text`, so no input can add a header.
"""

from __future__ import annotations

import binascii
import email.utils
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from cxctl.workspace.loader import Workspace


@dataclass(frozen=True)
class Rendered:
    """The three rendered parts of one message (what render produces and MIME assembles)."""

    subject: str
    text: str
    html: str


_SPECIALS = set('()<>[]:;@\\,."')


def clean_header_text(value: str) -> str:
    """One line of header text: any line break or control character becomes a space, so a name or
    subject containing a newline can never add a header."""
    if value.isprintable():
        return value.strip()
    return " ".join("".join(ch if ch.isprintable() else " " for ch in value).split())


def _encoded_words(text: str, first_line_used: int = 0) -> list[str]:
    """RFC 2047 base64 encoded words, one per folded line of at most 78 characters (the first line
    also holds the header name, `first_line_used` characters), never splitting a character."""

    def budget(used: int) -> int:  # bytes that fit: 12 characters of =?utf-8?b?...?= overhead, 4 base64 per 3 bytes
        return max(3, min(45, (78 - used - 12) // 4 * 3))

    words: list[str] = []
    chunk: list[str] = []
    size, limit = 0, budget(first_line_used)
    for ch in text:
        n = len(ch.encode("utf-8"))
        if chunk and size + n > limit:
            words.append("".join(chunk))
            chunk, size, limit = [], 0, budget(1)
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
    return "\r\n ".join(_encoded_words(text, name_length + 2))


def encode_address(name: str, address: str, name_length: int = 4) -> str:
    """`Display Name <addr>` with the name quoted or encoded as needed (never able to break the line)."""
    display = clean_header_text(name or "")
    if not display:
        return f"<{address}>"
    if display.isascii() and "=?" not in display:
        if any(ch in _SPECIALS for ch in display):
            display = '"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{display} <{address}>"
    words = _encoded_words(display, name_length + 2)
    last_line = len(words[-1]) + (name_length + 2 if len(words) == 1 else 1)
    fold = "\r\n " if last_line + 3 + len(address) > 78 else " "
    return "\r\n ".join(words) + f"{fold}<{address}>"


def _qp(text: str) -> bytes:
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(data, quotetabs=False, istext=True, header=False).replace(b"\n", b"\r\n")


class MessageBuilder:
    """Builds the bytes of a multipart/alternative message; the constant headers are encoded once."""

    def __init__(self, ws: Workspace):
        settings = ws.settings
        self.sender = settings.sender.address
        self.domain = self.sender.rpartition("@")[2] or "cxctl.invalid"
        head = [f"From: {encode_address(settings.sender.name, settings.sender.address, 4)}"]
        if settings.sender.reply_to:
            head.append(f"Reply-To: {settings.sender.reply_to}")
        self._constant = ("\r\n".join(head) + "\r\n").encode("utf-8")
        self._mailto = settings.unsubscribe_mailto
        self._https = bool(settings.unsubscribe_url)

    def message_id(self, invitation_id: int | str, token: str) -> str:
        """Stable per invitation: a retried message keeps its Message-ID, so mail clients dedupe it."""
        return f"<cx.{invitation_id}.{token.split('.')[0]}@{self.domain}>"

    def build(
        self,
        *,
        invitation_id: int | str,
        token: str,
        to_name: str,
        to_address: str,
        rendered: Rendered,
        date: datetime,
        unsubscribe_url: str,
    ) -> tuple[str, bytes]:
        """(Message-ID, message bytes with CRLF line ends)."""
        message_id = self.message_id(invitation_id, token)
        unsubscribe = []
        if self._mailto:
            unsubscribe.append(f"<mailto:{self._mailto}?subject=unsubscribe%20{quote(token, safe='')}>")
        if self._https or not self._mailto:
            unsubscribe.append(f"<{unsubscribe_url}>")
        boundary = "=_cx" + secrets.token_hex(12)
        head = [
            f"To: {encode_address(to_name, to_address, 2)}",
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
        middle = (
            f"\r\n--{boundary}\r\n"
            'Content-Type: text/html; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        data = b"".join(
            (
                self._constant,
                "\r\n".join(head).encode("utf-8"),
                _qp(rendered.text),
                middle.encode("ascii"),
                _qp(rendered.html),
                f"\r\n--{boundary}--\r\n".encode("ascii"),
            )
        )
        return message_id, data
