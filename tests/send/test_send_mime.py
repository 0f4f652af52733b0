"""The hand-built MIME bytes parse back, with the standard library, to exactly what was meant."""

from __future__ import annotations

import email
import email.policy
import types
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from cxctl.delivery.mime import MessageBuilder, Rendered, clean_header_text
from cxctl.workspace.model import Settings

EXPECTED_HEADERS = [
    "From",
    "Reply-To",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "X-Cxctl-Invitation",
    "MIME-Version",
    "Content-Type",
]

WS = types.SimpleNamespace(
    settings=Settings(
        name="Boutique",
        sender={
            "name": "Service Client Élodie",
            "address": "avis@boutique.example",
            "reply_to": "service@boutique.example",
        },
        survey_url="https://survey.example/s?t={token}",
        unsubscribe_url="https://boutique.example/u?t={token}",
        unsubscribe_mailto="desinscription@boutique.example",
    )
)

header_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=120)


def build(ws, name: str, subject: str, text: str = "Bonjour", html: str = "<p>Bonjour</p>"):
    builder = MessageBuilder(ws)
    _, data = builder.build(
        invitation_id=7,
        token="abc.def",
        to_name=name,
        to_address="zoe@example.fr",
        rendered=Rendered(subject, text, html),
        date=datetime(2026, 11, 23, 10, tzinfo=UTC),
        unsubscribe_url="https://boutique.example/u?t=abc.def",
    )
    return data, email.message_from_bytes(data, policy=email.policy.default)


@settings(max_examples=150, deadline=None)
@given(name=header_text, subject=header_text)
def test_any_name_or_subject_round_trips_and_cannot_add_a_header(name, subject):
    ws = WS
    data, message = build(ws, name, subject)
    assert list(message.keys()) == EXPECTED_HEADERS
    assert message.defects == []
    assert str(message["Subject"]) == clean_header_text(subject)
    assert message["To"].addresses[0].addr_spec == "zoe@example.fr"
    display = message["To"].addresses[0].display_name
    if clean_header_text(name).isascii():
        assert display == clean_header_text(name)
    else:
        # CPython's address parser puts a space between adjacent encoded words of a display name,
        # where RFC 2047 (and mail clients) join them; its own EmailMessage output does the same.
        assert display.replace(" ", "") == clean_header_text(name).replace(" ", "")
    # RFC 5322: lines of at most 998 characters, and 78 where folding can help (not inside a URL).
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert all(len(line) <= 998 for line in head)
    folded = b"\r\n".join(head).split(b"\r\nDate:")[0].split(b"\r\n")  # From, Reply-To, To, Subject
    assert all(len(line) <= 78 for line in folded)
    assert data.isascii()


def test_a_newline_in_a_name_stays_in_the_name():
    ws = WS
    _, message = build(ws, "Zoé\r\nBcc: victim@example.com", "Votre avis\nX-Evil: 1")
    assert "Bcc" not in message and "X-Evil" not in message
    assert message["To"].addresses[0].display_name == "Zoé Bcc: victim@example.com"
    assert message["Subject"] == "Votre avis X-Evil: 1"


@settings(max_examples=60, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=400))
def test_bodies_round_trip_through_quoted_printable(text):
    ws = WS
    _, message = build(ws, "Zoé", "Avis", text=text, html="<p>" + text + "</p>")
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    # MIME text lines end in CRLF on the wire; the parser hands them back as they are.
    assert message.get_body(("plain",)).get_content().replace("\r\n", "\n") == expected
    assert message.get_body(("html",)).get_content().replace("\r\n", "\n") == "<p>" + expected + "</p>"


def test_long_ascii_subject_is_folded_not_encoded():
    ws = WS
    subject = "Your opinion on the delivery of your order placed last week " * 3
    data, message = build(ws, "John", subject)
    assert b"=?utf-8?" not in data.split(b"\r\n\r\n", 1)[0].split(b"Subject:")[1].split(b"\r\nDate")[0]
    assert message["Subject"] == subject.strip()
