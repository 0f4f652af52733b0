"""Cell values of imported files: languages, time zones, day-first dates, decimal commas.

Shared by contacts and events imports. Each function returns the stored form or raises ValueError
whose message is the reject reason (it names the value and ends with the fix).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

from cxctl.core.timeutil import nonexistent_date

# Sizes a value may have once imported (the cells of any file are also capped at csvio.CELL_LIMIT and may
# hold no control character). A name goes into a To header and a Subject: 256 characters is far more
# than any real one, and a 10 MB first_name imported fine and failed only at send (issue 14).
FIELD_LIMIT = 256  # contact fields (names, company, role, segment, country, ids), event ids and types
ATTRIBUTE_LIMIT = 4_096  # an attribute of a contact or an event, a suppression's note


def check_length(value: str, column: str, limit: int) -> str:
    """`value`, or ValueError (the reject reason) when it holds more than `limit` characters."""
    if len(value) > limit:
        raise ValueError(
            f"{column} holds {len(value):,} characters, more than the {limit:,} allowed: is it the right "
            f"column? shorten it in the source and export again"
        )
    return value


LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
LANGUAGE_NAMES = {
    "francais": "fr",
    "français": "fr",
    "french": "fr",
    "fra": "fr",
    "fre": "fr",
    "anglais": "en",
    "english": "en",
    "eng": "en",
    "allemand": "de",
    "german": "de",
    "deutsch": "de",
    "deu": "de",
    "ger": "de",
    "espagnol": "es",
    "spanish": "es",
    "español": "es",
    "espanol": "es",
    "spa": "es",
    "italien": "it",
    "italian": "it",
    "italiano": "it",
    "ita": "it",
    "neerlandais": "nl",
    "néerlandais": "nl",
    "dutch": "nl",
    "nederlands": "nl",
    "nld": "nl",
    "portugais": "pt",
    "portuguese": "pt",
    "português": "pt",
    "por": "pt",
}


@lru_cache(maxsize=1024)
def language(value: str) -> str:
    """`fr`, `fr_FR`, `FR-fr`, `Français`, `English` → BCP 47 (`fr`, `fr-FR`, `en`)."""
    text = value.strip()
    named = LANGUAGE_NAMES.get(text.lower())
    if named:
        return named
    text = text.replace("_", "-")
    if not LANGUAGE.match(text):
        raise ValueError(
            f"unknown language {value!r}: use a code such as fr, en or fr-CA, or map it in the mapping's values"
        )
    head, *rest = text.split("-")
    return "-".join([head.lower(), *(p.upper() if len(p) == 2 else p for p in rest)])


@lru_cache(maxsize=1024)
def timezone(value: str) -> str:
    """An IANA time zone name; HubSpot's `europe_slash_paris` form is accepted."""
    text = value.strip()
    if "_slash_" in text:
        text = "/".join("_".join(w.capitalize() for w in part.split("_")) for part in text.split("_slash_"))
    try:
        ZoneInfo(text)
    except Exception:
        raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Europe/Paris") from None
    return text


_DECIMAL_COMMA = re.compile(r"^[-+]?\d{1,3}(?:[ \u00a0\u202f.]\d{3})*,\d+$|^[-+]?\d+,\d+$")


def decimal_comma(value: str) -> str:
    """`1 234,50` → `1234.50` when the value is a number written with a decimal comma; else unchanged."""
    if "," in value and _DECIMAL_COMMA.match(value):
        return re.sub(r"[ \u00a0\u202f.]", "", value).replace(",", ".")
    return value


def dated(value: str, date_format: str) -> str:
    """A value in the declared date format → ISO 8601 text (date, or date and time); else unchanged."""
    try:
        parsed = datetime.strptime(value, date_format)
    except ValueError:
        return value
    if parsed.time() == time(0) and not any(d in date_format for d in ("%H", "%I", "%M", "%S")):
        return parsed.date().isoformat()
    return parsed.isoformat()


_DAY_FIRST = re.compile(
    r"^(?P<d>\d{1,2})[/.-](?P<m>\d{1,2})[/.-](?P<y>\d{4})(?:[ T](?P<H>\d{1,2})[:h](?P<M>\d{2})(?::(?P<S>\d{2}))?)?$"
)


def dst_reading(moment: datetime) -> str | None:
    """For a local time read in a zone with DST: 'ambiguous' when the wall time happens twice (the autumn
    change; the first, summer-time reading is used) or 'skipped' when it does not exist (the spring
    change; it is read one hour later); None for every other time."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return None
    if moment.replace(fold=0).utcoffset() != moment.replace(fold=1).utcoffset():
        round_trip = moment.astimezone(UTC).astimezone(moment.tzinfo)
        return "skipped" if round_trip.replace(tzinfo=None) != moment.replace(tzinfo=None) else "ambiguous"
    return None


_CODES = {"d": r"(?P<d>\d{1,2})", "m": r"(?P<m>\d{1,2})", "Y": r"(?P<Y>\d{4})", "y": r"(?P<y>\d{2})"}


def impossible_in_format(text: str, date_format: str) -> str | None:
    """Why `text`, written in `date_format` with a day the month does not have (31/11), is not a date;
    None when the cause is something else. strptime only says "day is out of range for month"."""
    pattern, index = "", 0
    while index < len(date_format):
        char = date_format[index]
        if char == "%" and index + 1 < len(date_format):
            code = date_format[index + 1]
            pattern += _CODES.get(code, "%" if code == "%" else r".+?")
            index += 2
        else:
            pattern += re.escape(char)
            index += 1
    match = re.fullmatch(pattern, text.strip())
    if not match or "d" not in match.groupdict() or "m" not in match.groupdict():
        return None
    parts = match.groupdict()
    year = int(parts["Y"]) if parts.get("Y") else 2000 + int(parts["y"]) if parts.get("y") else 2000
    return nonexistent_date(text, year, int(parts["m"]), int(parts["d"]))


def timestamp(value: str, zone: str, date_format: str | None = None) -> tuple[datetime, bool]:
    """Parse an event time → (aware datetime, read_day_first). ISO 8601 (with or without offset), the
    declared `date_format`, or dd/mm/yyyy[ HH:MM[:SS]] read day first; naive times are in `zone`."""
    text = value.strip()
    if not text:
        raise ValueError("no date: fill the date column")
    parsed: datetime | None = None
    day_first = False
    if date_format:
        try:
            parsed = datetime.strptime(text, date_format)
        except ValueError as exc:
            parsed = None
            if "out of range" in str(exc):
                impossible = impossible_in_format(text, date_format)
                if impossible:
                    raise ValueError(impossible) from None
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        except ValueError:
            parsed = None
    if parsed is None and not date_format:
        match = _DAY_FIRST.match(text)
        if match:
            g = match.groupdict()
            try:
                parsed = datetime(
                    int(g["y"]), int(g["m"]), int(g["d"]), int(g["H"] or 0), int(g["M"] or 0), int(g["S"] or 0)
                )
            except ValueError:
                impossible = nonexistent_date(text, int(g["y"]), int(g["m"]), int(g["d"]))
                if impossible:
                    raise ValueError(impossible) from None
                raise ValueError(
                    f"invalid date {value!r} read day first (dd/mm/yyyy): if the file is month-first, give --date-format %m/%d/%Y"
                ) from None
            day_first = True
    if parsed is None:
        hint = (
            f"the declared format {date_format}" if date_format else "ISO 8601 (2026-03-14T10:30+01:00) or dd/mm/yyyy"
        )
        raise ValueError(f"unreadable date {value!r}: expected {hint}; give --date-format, e.g. %d/%m/%Y %H:%M")
    if isinstance(parsed, date) and not isinstance(parsed, datetime):
        parsed = datetime.combine(parsed, time(0))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(zone))
    return parsed, day_first
