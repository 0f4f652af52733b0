"""Solicitation rules as data: the exclusion reasons in the order they are applied, the audience
filters as bound SQL fragments, and the deterministic sampling draw.

The order is the contract documented in docs/planning.md ("The rules, in order"): the first rule that fails names the reason.
"""

from __future__ import annotations

import hashlib
import struct
from datetime import timedelta
from typing import Any

from cxctl.core.durations import format_duration
from cxctl.workspace.model import AttributeFilter, Audience, SuppressionSource

# Rule order. `expired` is decided when events are gathered; the rule-based reasons below are applied
# in this order by one SQL CASE; `lower_priority` and `daily_cap` are decided over the whole run.
REASONS = (
    "expired",  # the event's expiry passed before an invitation could be planned
    "forgotten",  # the person was forgotten (GDPR erasure): never contacted again
    "suppressed",  # the address is suppressed (opt-out, bounce, complaint, CRM flag)
    "no_email",  # no address to write to
    "no_channel",  # none of the moment's channels reaches the person (no SMS consent, email refused...)
    "already_invited",  # an invitation exists for this event / this wave
    "quiet_period",  # invited by any moment less than rules.quiet_period ago
    "cap",  # rules.cap.max invitations already in the rolling window
    "recontact",  # invited for this moment less than its recontact period ago
    "not_sampled",  # the hash draw is not below the moment's sample share
    "lower_priority",  # a higher-priority invitation is planned for this person in this run
    "daily_cap",  # the moment's or the workspace's daily volume is reached for that day
)

# Statuses of an invitation that count toward fatigue rules (see docs/DESIGN.md): the ones sent or on
# their way, including a failed send that will be tried again (it will go out; without it a person
# whose first survey failed at 09:00 got a second one at 09:10, quiet period or not).


def live_sql(alias: str = "") -> str:
    """The SQL condition of a live invitation. Written exactly as the WHERE of the partial index
    invitations_fatigue (migration 6), so that SQLite can use that index."""
    a = f"{alias}." if alias else ""
    return f"({a}status IN ('planned','sending','sent','in_doubt') OR ({a}status = 'failed' AND {a}next_attempt_at IS NOT NULL))"


def given_up_sql(alias: str) -> str:
    """The SQL condition of an invitation that never reached the server and whose retries are over (the
    retry clock ran out, or the server refused the message itself), not yet planned again. A failure on
    the server's side is not the person's: such an invitation does not count as `already_invited`, and the
    plan plans it again — once; after that only `cxctl send --retry-failed` does (issue 12, item 7)."""
    a = f"{alias}."
    return f"({a}status = 'failed' AND {a}next_attempt_at IS NULL AND {a}sent_at IS NULL AND {a}reopened = 0)"


# Contact columns an audience `contact:` filter may name directly; anything else is a JSON attribute.
CONTACT_COLUMNS = {
    "external_id": "c.external_id",
    "email": "c.email",
    "first_name": "c.first_name",
    "last_name": "c.last_name",
    "language": "c.language",
    "timezone": "c.timezone",
    "country": "c.country",
    "segment": "c.segment",
    "company": "c.company",
    "role": "c.role",
}


def span(delta: timedelta) -> str:
    """A period as people write it in rules: `30d` rather than `4w2d`, `36h`, `90m`."""
    seconds = int(delta.total_seconds())
    if seconds and seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    return format_duration(delta)


_SHA256 = hashlib.sha256
_FIRST_8_BYTES = struct.Struct(">Q").unpack_from
_TWO_TO_MINUS_64 = 2.0**-64


def draw(contact_id: int, moment: str, key: str) -> float:
    """Uniform [0, 1) draw from sha256(contact|moment|wave-or-event): same on every run and machine.

    The first 8 bytes of the digest, big-endian, over 2**64. Called once per sampled candidate (713,000
    times in a 1M-contact wave): the struct read and the power-of-two product give the same float as
    `int.from_bytes(digest[:8], "big") / 2**64` in 20 % less time."""
    return _FIRST_8_BYTES(_SHA256(f"{contact_id}|{moment}|{key}".encode()).digest())[0] * _TWO_TO_MINUS_64


def json_path(name: str) -> str:
    """The JSON path of an attribute, bound as a parameter (names are never spliced into SQL)."""
    return '$."' + name.replace('"', '""') + '"'


def _texts(value: AttributeFilter) -> list[str]:
    """Accepted values as lower-case text: attributes come from CSV, so `1`, `true` and `oui` compare as text."""
    values = value if isinstance(value, list) else [value]
    out: list[str] = []
    for v in values:
        if isinstance(v, bool):
            out.extend(["1", "true"] if v else ["0", "false"])
        elif isinstance(v, float) and v.is_integer():
            out.extend([str(int(v)), str(v)])
        else:
            out.append(str(v).lower())
    return out


def _in_list(expr: str, values: list[str], params: list[Any]) -> str:
    params.extend(values)
    return f"lower(CAST({expr} AS TEXT)) IN ({','.join('?' * len(values))})"


def audience_sql(audience: Audience, *, with_event: bool) -> tuple[str, list[Any]]:
    """A WHERE fragment over contacts `c` (and events `e`) for the moment's audience, and its parameters."""
    terms: list[str] = []
    params: list[Any] = []
    for column, values in (("c.segment", audience.segment), ("c.country", audience.country), ("c.role", audience.role)):
        if values:
            terms.append(_in_list(column, [str(v).lower() for v in values], params))
    if audience.language:
        wanted = [v.lower() for v in audience.language]
        full = _in_list("c.language", wanted, params)
        base = _in_list("substr(c.language, 1, instr(c.language || '-', '-') - 1)", wanted, params)
        terms.append(f"({full} OR {base})")
    for name, value in audience.contact.items():
        expr = CONTACT_COLUMNS.get(name)
        if expr is None:
            params.append(json_path(name))
            expr = "json_extract(c.attributes, ?)"
        terms.append(_in_list(expr, _texts(value), params))
    if with_event:
        for name, value in audience.event.items():
            params.append(json_path(name))
            terms.append(_in_list("json_extract(e.attributes, ?)", _texts(value), params))
    return (" AND ".join(terms) or "1"), params


def suppression_source_sql(sources: list[SuppressionSource]) -> tuple[str, list[Any]]:
    """A SQL expression over contacts `c`: NULL, or why a CRM attribute says do-not-contact; and its parameters."""
    if not sources:
        return "NULL", []
    cases: list[str] = []
    params: list[Any] = []
    for source in sources:
        params.append(json_path(source.attribute))
        cases.append(
            f"WHEN {_in_list('json_extract(c.attributes, ?)', [v.lower() for v in source.values], params)} THEN ?"
        )
        params.append(f"contact attribute {source.attribute!r} marks the person {source.reason}")
    return "CASE " + " ".join(cases) + " END", params


def pick_language(language: str | None, languages: list[str], default: str) -> str:
    """The template language for a contact: theirs if the workspace has it (or its base), else the default."""
    if language:
        lowered = {lang.lower(): lang for lang in languages}
        if language.lower() in lowered:
            return lowered[language.lower()]
        base = language.split("-")[0].lower()
        if base in lowered:
            return lowered[base]
    return default
