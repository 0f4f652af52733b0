"""Survey-tool exports: detect the tool from the headers and read the rows with each tool's quirks.

Every reader yields plain rows (line number, field list) over one list of column names, plus what the
tool's conventions say: which column holds the response id, the submission time (and in which time
zone), the email, the external reference, whether a row is finished, and which rows never count
(Qualtrics previews, tests, spam). `cxctl.results.importer` maps columns to questions and matches the rows.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from cxctl.audience.csvio import open_csv
from cxctl.audience.values import impossible_in_format
from cxctl.core.errors import ImportFileError, UsageError
from cxctl.core.timeutil import nonexistent_date, to_db

FORMATS = ("qualtrics", "surveymonkey", "google_forms", "typeform", "limesurvey", "generic", "jsonl")


@dataclass
class Convention:
    """Where a tool puts the fields every response has (candidate column names, first present wins)."""

    response_id: tuple[str, ...] = ()
    submitted: tuple[str, ...] = ()
    started: tuple[str, ...] = ()
    email: tuple[str, ...] = ()
    external_id: tuple[str, ...] = ()
    token: tuple[str, ...] = ("token", "t", "tok", "invitation_token")
    moment: tuple[str, ...] = ()
    finished: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    utc: bool = False  # the tool writes submission times in UTC
    partial_without_submit: bool = False  # an empty submission time means a partial response (Typeform)
    date_order: str | None = None  # the order of its year-last slash dates, when the tool always writes one


CONVENTIONS = {
    "qualtrics": Convention(
        response_id=("ResponseId", "ResponseID", "Response ID"),
        submitted=("RecordedDate", "EndDate", "Recorded Date", "End Date"),
        started=("StartDate", "Start Date"),
        email=("RecipientEmail", "Recipient Email", "EmailAddress"),
        external_id=("ExternalReference", "ExternalDataReference", "External Data Reference"),
        finished=("Finished",),
        status=("Status", "Response Type"),
    ),
    "surveymonkey": Convention(
        response_id=("Respondent ID",),
        submitted=("End Date",),
        started=("Start Date",),
        email=("Email Address",),
        external_id=("Custom Data 1",),
        date_order="month_first",
    ),
    "google_forms": Convention(
        submitted=("Timestamp", "Horodateur", "Horodatage", "Marca temporal"),
        email=(
            "Email Address",
            "Email address",
            "Email",
            "E-mail",
            "Adresse e-mail",
            "Adresse email",
            "Adresse mail",
            "Courriel",
            "Dirección de correo electrónico",
        ),
    ),
    "typeform": Convention(
        response_id=("#", "Response ID", "Token"),
        submitted=("Submit Date (UTC)", "Submitted At"),
        started=("Start Date (UTC)", "Stage Date (UTC)", "Started At"),
        finished=("Response Type",),
        email=("email", "Email"),
        external_id=("external_id", "customer_id"),
        utc=True,
        partial_without_submit=True,
    ),
    "limesurvey": Convention(
        response_id=("id", "Response ID"),
        submitted=("submitdate", "Date submitted"),
        started=("startdate", "Date started", "datestamp", "Date last action"),
        email=("email", "Email address"),
        external_id=("external_id",),
        token=("token", "Token", "Access code", "t"),
    ),
    "generic": Convention(
        response_id=("response_id", "id"),
        submitted=("submitted_at", "submitted", "timestamp", "date"),
        email=("email",),
        external_id=("external_id",),
        moment=("moment",),
        finished=("complete", "finished"),
    ),
}
CONVENTIONS["jsonl"] = CONVENTIONS["generic"]

# Qualtrics `Status`: text or numeric codes. Previews, tests and spam never count.
QUALTRICS_SKIP = {
    "survey preview": "preview",
    "survey test": "test",
    "spam": "spam",
    "preview spam": "spam",
    "imported spam": "spam",
    "offline survey preview": "preview",
    "1": "preview",
    "2": "test",
    "8": "spam",
    "9": "spam",
    "12": "spam",
    "17": "preview",
}


@dataclass
class Export:
    """An opened export: its format, column names, rows and the time zone its times are written in."""

    path: Path
    format: str
    columns: list[str]
    question_texts: dict[str, str]
    rows: Iterator[tuple[int, list[str], str | None]]
    sha256: str
    time_zone: str | None = None
    convention: Convention = field(default_factory=Convention)
    _close: Callable[[], None] | None = None
    named: bool = False  # the format was given (--format), not detected

    def close(self) -> None:
        if self._close is not None:
            self._close()

    def column(self, names: tuple[str, ...] | list[str], given: str | None = None) -> int | None:
        """Index of the column `given` (exact, then case-insensitive), else of the first convention name present."""
        lowered = [c.strip().lower() for c in self.columns]
        for name in [given] if given else list(names):
            if name in self.columns:
                return self.columns.index(name)
            if name.strip().lower() in lowered:
                return lowered.index(name.strip().lower())
            if name in self.question_texts.values():
                return next(i for i, c in enumerate(self.columns) if self.question_texts.get(c) == name)
        if given:
            raise ImportFileError(
                f"{self.path}: no column {given!r} in the export: fix responses.*_column in the workspace "
                f"or export the column (columns: {', '.join(self.columns[:12])}…)"
            )
        return None

    def skip_reason(self, fields: list[str], status_index: int | None) -> str | None:
        """Why a row never counts (a preview, a test, spam), or None."""
        if status_index is None or self.format != "qualtrics":
            return None
        return QUALTRICS_SKIP.get(fields[status_index].strip().lower())


SURVEYMONKEY_PARTS = {"response", "open-ended response", "réponse", "réponse ouverte", "other (please specify)"}


def detect(header: list[str], second: list[str] | None, third: list[str] | None) -> str:
    """Name the tool from the header rows; generic CSV when nothing specific is recognised (`cxctl.responses`
    then requires a generic date column, so another tool's export is not read as a plain CSV)."""
    lowered = {h.strip().lower() for h in header}
    first = header[0].strip().lower() if header else ""
    below = {c.strip().lower() for c in second or []}
    if {"responseid", "finished"} <= lowered or (third and third[0].startswith('{"ImportId"')):
        return "qualtrics"
    if first == "v1" and {"responseid", "finished"} <= below:
        return "qualtrics"  # the legacy export: V1…V10 on row 1, the field names on row 2
    if {"respondent id", "collector id"} <= lowered:
        return "surveymonkey"
    if ("respondent id" in lowered or {"start date", "end date"} <= lowered) and below & SURVEYMONKEY_PARTS:
        return "surveymonkey"  # trimmed of some columns; its row of question parts still says what it is
    if first == "#" and any(h.lower().startswith("submit date") for h in header):
        return "typeform"
    if second and second[0].strip() == "#" and any(c.lower().startswith("submit date") for c in second):
        return "typeform"  # a row of question groups above the header
    if first in GOOGLE_FORMS_FIRST:
        return "google_forms"
    if (
        {"submitdate", "lastpage"} <= lowered
        or {"response id", "date submitted", "last page"} <= lowered
        or ("token" in lowered and "startlanguage" in lowered)
    ):
        return "limesurvey"
    return "generic"


GOOGLE_FORMS_FIRST = ("timestamp", "horodateur", "horodatage", "marca temporal")
LOOKED_FOR = (
    "Qualtrics (ResponseId and Finished columns, or the ImportId row; legacy V1… with ResponseID on row 2), "
    "SurveyMonkey (Respondent ID and Collector ID, or its row of Response / Open-Ended Response), "
    "Typeform ('#' first and a Submit Date (UTC) column), Google Forms (Timestamp or Horodateur first), "
    "LimeSurvey (submitdate and lastpage), generic CSV (a submitted_at, submitted, timestamp or date column)"
)


def not_recognised(export: Export) -> str:
    """The message for an export no tool's headers were found in: what was looked for, and how to name it."""
    shown = ", ".join(repr(c) for c in export.columns[:8]) + ("…" if len(export.columns) > 8 else "")
    return (
        f"{export.path}: export format not recognised (columns {shown}); looked for {LOOKED_FOR}: name the "
        f"format with --format ({', '.join(FORMATS)}), or for a generic CSV name its submission date column "
        f"submitted_at (or set responses.submitted_column on the moment)"
    )


def open_export(
    path: Path | str, format: str | None = None, encoding: str | None = None, delimiter: str | None = None
) -> Export:
    """Open an export, detect its format unless given, and consume the tool's extra header rows."""
    path = Path(path)
    if format is not None and format not in FORMATS:
        raise UsageError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise UsageError(f"{path}: no such file: check the path")
    if format == "jsonl" or (format is None and _looks_like_jsonl(path)):
        return _open_jsonl(path)
    table = open_csv(path, encoding=encoding, delimiter=delimiter)
    rows = table.rows()
    buffered: list[tuple[int, list[str], str | None]] = []
    for item in rows:
        buffered.append(item)
        if len(buffered) == 2:
            break
    second = buffered[0][1] if buffered else None
    third = buffered[1][1] if len(buffered) > 1 else None
    name = format or detect(table.header, second, third)
    columns = list(table.header)
    texts: dict[str, str] = {}
    time_zone = None
    skip = 0
    if name == "qualtrics" and second is not None and columns[:1] == ["V1"] and third is not None:
        # Legacy export: row 1 is V1…Vn then question ids (Q1…), row 2 the field names and question texts.
        legacy = [c.strip() for c in second]
        columns = [
            legacy[i] if re.fullmatch(r"V\d+", c.strip()) and i < len(legacy) else c for i, c in enumerate(columns)
        ]
        texts = {c: t for c, t in zip(columns, second, strict=False) if t and c not in legacy}
        skip = 1
    elif name == "typeform" and second is not None and columns[:1] != ["#"]:
        columns = [c.strip() for c in second]  # row 1 holds the question groups
        skip = 1
    elif name == "qualtrics" and second is not None:
        # Row 2: question texts; row 3: {"ImportId": ..., "timeZone": ...} (absent in legacy exports).
        texts = {c: t for c, t in zip(columns, second) if t}
        skip = 1
        if third and third[0].startswith('{"ImportId"'):
            skip = 2
            for cell in third:
                with contextlib.suppress(ValueError, AttributeError):
                    time_zone = json.loads(cell).get("timeZone") or time_zone
    elif name == "surveymonkey" and second is not None:
        # Row 2 names the parts of multi-column questions; "Response" means the question itself.
        current, named = "", []
        for index, head in enumerate(columns):
            sub = second[index].strip() if index < len(second) else ""
            current = head or current
            plain = sub in ("", "Response", "Open-Ended Response", "Réponse", "Réponse ouverte")
            named.append(head if head and plain else f"{current} / {sub}")
        columns = named
        skip = 1
    rest = buffered[skip:]

    def chained() -> Iterator[tuple[int, list[str], str | None]]:
        yield from rest
        yield from rows

    return Export(
        path,
        name,
        columns,
        texts,
        chained(),
        table.sha256,
        time_zone,
        CONVENTIONS[name],
        table.close,
        named=format is not None,
    )


def _looks_like_jsonl(path: Path) -> bool:
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return True
    try:
        with open(path, "rb") as handle:
            start = handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError:
        return False
    return start.startswith(b"{")


def _open_jsonl(path: Path) -> Export:
    """JSON Lines: one object per line; the keys of all objects become the columns (first seen order)."""
    import hashlib

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read the file ({exc.strerror}): check the path") from None
    objects: list[tuple[int, dict]] = []
    columns: dict[str, None] = {}
    bad: list[tuple[int, str]] = []
    for number, line in enumerate(raw.decode("utf-8-sig", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.append((number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        except ValueError as exc:  # e.g. an integer of more than 4300 digits: no `msg` nor `colno`
            bad.append((number, f"not valid JSON ({exc})"))
            continue
        if not isinstance(value, dict):
            bad.append((number, "not a JSON object"))
            continue
        flat = {}
        for key, item in value.items():
            if isinstance(item, dict):  # hidden fields / answers nested one level: {"hidden": {"t": ...}}
                flat.update({k: v for k, v in item.items()})
            else:
                flat[key] = item
        objects.append((number, flat))
        columns.update(dict.fromkeys(flat))
    names = list(columns)

    def text(v: object) -> str:
        if v is None:
            return ""
        if isinstance(v, list):
            return ";".join(str(x) for x in v)
        if isinstance(v, bool):
            return "1" if v else "0"
        return str(v)

    def rows() -> Iterator[tuple[int, list[str], str | None]]:
        for number, reason in bad:
            yield number, [], reason
        for number, obj in objects:
            yield number, [text(obj.get(c)) for c in names], None

    return Export(path, "jsonl", names, {}, rows(), hashlib.sha256(raw).hexdigest(), None, CONVENTIONS["jsonl"])


# --- times ------------------------------------------------------------------------------------

_SLASH = re.compile(
    r"^(\d{1,4})[/.](\d{1,2})[/.](\d{2,4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?)?\s*(?:(?:GMT|UTC)\s*([+-]\d{1,2})(?::?(\d{2}))?)?$"
)

# A file's date order, for dates written with the year last: day first (25/12/2026) or month first (12/25/2026).
DAY_FIRST, MONTH_FIRST = "day_first", "month_first"
ORDER_NAMES = {DAY_FIRST: "day first (dd/mm/yyyy)", MONTH_FIRST: "month first (mm/dd/yyyy)"}


def slash_evidence(text: str) -> str | None:
    """What one cell says about its file's date order: DAY_FIRST when its first number cannot be a month
    (25/12/2026), MONTH_FIRST when its second cannot (12/25/2026), "either" when both can (7/1/2024), None
    when it is no year-last slash date (ISO, 2026/12/25, unreadable) or when neither reading can be right."""
    match = _SLASH.match(text.strip())
    if not match or len(match.group(1)) == 4:
        return None
    first, second = int(match.group(1)), int(match.group(2))
    if first > 12 and second > 12:
        return None
    if first > 12:
        return DAY_FIRST
    if second > 12:
        return MONTH_FIRST
    return "either"


def strptime_for(text: str, order: str) -> str:
    """The strptime format of a year-last slash date in `order`, for the fix of an error message."""
    match = _SLASH.match(text.strip())
    if not match:
        return "%d/%m/%Y %H:%M" if order == DAY_FIRST else "%m/%d/%Y %H:%M"
    a, _, c, hh, _, ss, ampm, off_h, _ = match.groups()
    sep = text.strip()[len(a)]
    pattern = sep.join(("%d", "%m") if order == DAY_FIRST else ("%m", "%d")) + sep + ("%Y" if len(c) == 4 else "%y")
    if hh is not None:
        pattern += " " + ("%I" if ampm else "%H") + ":%M" + (":%S" if ss is not None else "") + (" %p" if ampm else "")
    if off_h is not None:
        pattern += " GMT%z"
    return pattern


def parse_time(
    text: str, tz: ZoneInfo, *, utc: bool = False, order: str | None = None, date_format: str | None = None
) -> datetime:
    """A tool's date-time → aware UTC datetime. Naive times are read in `tz` (UTC when `utc`).

    Accepts ISO 8601 (with or without offset), `yyyy/mm/dd hh:mm:ss AM GMT+1` (Google Forms) and the
    year-last slash dates `dd/mm/yyyy hh:mm` or `mm/dd/yy h:mm AM` in the file's `order` (DAY_FIRST or
    MONTH_FIRST). Without an order, a slash date is read only when it can be read one way (25/12/2026);
    never guessed. `date_format` (strptime) is tried first when given. Raises ValueError saying why.
    """
    value = text.strip()
    zone = UTC if utc else tz
    if date_format:
        try:
            parsed = datetime.strptime(value, date_format)
        except ValueError as exc:
            parsed = None
            strptime_error = exc
        if parsed is not None:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=zone)
            return parsed.astimezone(UTC)
    if len(value) >= 10 and value[4] == "-":
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=zone)
            return parsed.astimezone(UTC)
    if date_format:
        impossible = "out of range" in str(strptime_error) and impossible_in_format(value, date_format)
        raise ValueError(
            impossible
            or f"unreadable date {text!r}: it does not match the declared format {date_format} "
            f"(--date-format or responses.date_format): fix the row or the format"
        )
    match = _SLASH.match(value)
    if not match:
        raise ValueError(f"unreadable date {text!r}: use ISO 8601 (2026-11-20 14:05:00) or dd/mm/yyyy hh:mm")
    a, b, c, hh, mm, ss, ampm, off_h, off_m = match.groups()
    if len(a) == 4:
        year, month, day = int(a), int(b), int(c)
    else:
        first, second, year = int(a), int(b), int(c)
        year += 2000 if year < 100 else 0
        evidence = (
            None
            if first > 12 and second > 12
            else DAY_FIRST
            if first > 12
            else MONTH_FIRST
            if second > 12
            else "either"
        )
        if order is None and evidence == "either":
            raise ValueError(
                f"ambiguous date {text!r}: {first}/{second} reads day first and month first: "
                f"give --date-format {strptime_for(value, DAY_FIRST)!r} or {strptime_for(value, MONTH_FIRST)!r}"
            )
        if order is not None and evidence not in ("either", order, None):
            raise ValueError(
                f"date {text!r} cannot be read {ORDER_NAMES[order]}, the order of the file's other dates: "
                f"a file has one date order; fix the row, or give --date-format if the file is "
                f"{ORDER_NAMES[evidence]}"
            )
        if (order or evidence) == MONTH_FIRST:
            month, day = first, second
        else:
            day, month = first, second
    hour, minute, second_ = int(hh or 0), int(mm or 0), int(ss or 0)
    if ampm:
        hour = hour % 12 + (12 if ampm.lower() == "pm" else 0)
    impossible = nonexistent_date(value, year, month, day)
    if impossible:
        raise ValueError(impossible)
    try:
        parsed = datetime(year, month, day, hour, minute, second_)
    except ValueError as exc:  # 25:00, month 13: Python's own words, with the value and the fix
        raise ValueError(f"unreadable date {text!r} ({exc}): check the day, month and time") from None
    if off_h is not None:
        from datetime import timedelta

        sign = -1 if off_h.startswith("-") else 1
        offset = timedelta(hours=abs(int(off_h)), minutes=int(off_m or 0)) * sign
        return (parsed - offset).replace(tzinfo=UTC)
    return parsed.replace(tzinfo=zone).astimezone(UTC)


@dataclass
class DateOrderScan:
    """What the dates of a file say about its order: the order (or None when no date needs one), the row
    that decided it, and an ambiguous sample when nothing decided."""

    order: str | None
    evidence: tuple[int, str] | None = None
    ambiguous: tuple[int, str] | None = None
    ambiguous_count: int = 0


def scan_date_order(
    rows: Iterator[tuple[int, list[str], str | None]], indexes: list[int], *, give_up_after: int = 1000
) -> DateOrderScan:
    """Read the date cells at `indexes` until one decides the file's order (its first number above 12, or
    its second). Stops after `give_up_after` dates that are not year-last slash dates (an ISO file needs no
    order, and a million-row file is not read twice for nothing)."""
    plain = ambiguous_count = 0
    ambiguous = None
    for number, fields, problem in rows:
        if problem:
            continue
        for index in indexes:
            if index >= len(fields) or not fields[index].strip():
                continue
            evidence = slash_evidence(fields[index])
            if evidence in (DAY_FIRST, MONTH_FIRST):
                return DateOrderScan(evidence, (number, fields[index].strip()), ambiguous, ambiguous_count)
            if evidence == "either":
                ambiguous_count += 1
                ambiguous = ambiguous or (number, fields[index].strip())
            else:
                plain += 1
        if ambiguous is None and plain >= give_up_after:
            break
    return DateOrderScan(None, None, ambiguous, ambiguous_count)


# `:MM:SS` / `:MM` endings of ISO local times → the store's `:MM:SS` (a whole-hour UTC shift leaves them as they are).
_TAILS = {f":{m:02d}:{sec:02d}": f":{m:02d}:{sec:02d}" for m in range(60) for sec in range(60)}
_TAILS.update({f":{m:02d}": f":{m:02d}:00" for m in range(60)})


def _utc_offset(naive: datetime, tz: ZoneInfo) -> timedelta:
    offset = naive.replace(tzinfo=tz).utcoffset()
    assert offset is not None, "a datetime with a ZoneInfo always has an offset"
    return offset


class Clock:
    """Export times → (UTC store text, local day), fast: the UTC offset is cached per local hour, since a
    zone's offset only changes at whole-hour transitions (a million-row import parses a million times).
    With a whole-hour offset the UTC text is the cached UTC hour plus the minutes and seconds as written."""

    def __init__(
        self, tz: ZoneInfo, local: ZoneInfo, *, utc: bool, order: str | None = None, date_format: str | None = None
    ):
        self.tz, self.local, self.utc, self.order, self.date_format = tz, local, utc, order, date_format
        self.same_zone = not utc and str(tz) == str(local) and not date_format
        self.offsets: dict[str, timedelta] = {}
        self.hours: dict[
            str, str | None
        ] = {}  # local 'YYYY-MM-DD HH' → UTC 'YYYY-MM-DD HH', None: not a whole-hour shift

    def read(self, text: str) -> tuple[str, str]:
        if self.same_zone and len(text) in (16, 19) and text[4] == "-" and text[10] in " T":
            hour = text[:13]
            tail = _TAILS.get(text[13:])
            if tail is not None:
                utc_hour = self.hours.get(hour, "")
                if utc_hour == "":
                    utc_hour = self.hours[hour] = self._utc_hour(hour)
                if utc_hour is not None:
                    return utc_hour + tail, text[:10]
            offset = self.offsets.get(hour)
            try:
                naive = datetime.fromisoformat(text)
            except ValueError:
                naive = None
            if naive is not None:
                if offset is None:
                    offset = self.offsets[hour] = _utc_offset(naive, self.tz)
                return (naive - offset).isoformat(" "), text[:10]
        when = parse_time(text, self.tz, utc=self.utc, order=self.order, date_format=self.date_format)
        if self.order is None and not self.date_format:
            # A file has one date order: the first date that can be read one way only fixes it for the rest.
            evidence = slash_evidence(text)
            if evidence in (DAY_FIRST, MONTH_FIRST):
                self.order = evidence
        return to_db(when), when.astimezone(self.local).date().isoformat()

    def _utc_hour(self, hour: str) -> str | None:
        try:
            naive = datetime.fromisoformat(hour + ":00")
        except ValueError:
            return None
        offset = self.offsets.get(hour)
        if offset is None:
            offset = self.offsets[hour] = _utc_offset(naive, self.tz)
        if offset.total_seconds() % 3600:
            return None
        return (naive - offset).isoformat(" ")[:13]
