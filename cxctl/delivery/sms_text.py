"""How an SMS text travels: its encoding (GSM-7 or UCS-2) and the number of segments it is billed as.

GSM-7 (3GPP TS 23.038) holds 160 characters in one SMS, 153 per segment of a longer one; characters of
its extension table (€ [ ] { } ~ ^ | \\ and form feed) take two. One character outside GSM-7 (a ç, an ê,
a typographic apostrophe, an emoji) sends the whole text as UCS-2: 70 UTF-16 units in one SMS, 67 per
segment. That is the count providers bill (Twilio's num_segments, Brevo's smsCount).
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SmsSize:
    """A text's encoding, its length in the encoding's units, and the segments it takes."""

    encoding: str  # "GSM-7" | "UCS-2"
    units: int  # septets (GSM-7, extension characters count 2) or UTF-16 code units (UCS-2)
    segments: int
    per_segment: int  # the room of one segment for this text (160/153 or 70/67)
    outside_gsm7: str = ""  # the characters that forced UCS-2, in order of appearance

    def describe(self) -> str:
        """`GSM-7, 1 segment (112/160)` or `UCS-2 (because of 'ê'), 2 segments (84/134)`."""
        why = f" (because of {', '.join(repr(c) for c in self.outside_gsm7[:3])})" if self.outside_gsm7 else ""
        room = self.per_segment * self.segments
        return f"{self.encoding}{why}, {self.segments} segment{'s' if self.segments > 1 else ''} ({self.units}/{room})"


def measure(text: str) -> SmsSize:
    """The encoding and the segment count of `text` as a provider sends it."""
    outside = "".join(dict.fromkeys(c for c in text if c not in GSM7_BASIC and c not in GSM7_EXTENSION))
    if not outside:
        units = sum(2 if c in GSM7_EXTENSION else 1 for c in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    if units <= single:
        return SmsSize(encoding, units, 1, single, outside)
    segments = -(-units // multi)
    return SmsSize(encoding, units, segments, multi, outside)


def sms_file(invitation: str | int, to: str, sender: str, text: str) -> bytes:
    """The outbox's form of an SMS (a `.sms` file): a few headers, a blank line, the text, in UTF-8."""
    size = measure(text)
    head = (
        f"To: {to}\nFrom: {sender}\nInvitation: {invitation}\nEncoding: {size.encoding}\n"
        f"Segments: {size.segments}\nLength: {size.units}\n\n"
    )
    return (head + text + "\n").encode("utf-8")
