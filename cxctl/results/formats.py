"""Survey-tool exports: detect the tool from the headers and read the rows with each tool's quirks.

Every reader yields plain rows (line number, field list) over one list of column names, plus what the
tool's conventions say: which column holds the response id, the submission time (and in which time
zone), the email, the external reference, whether a row is finished, and which rows never count
(Qualtrics previews, tests, spam). `cxctl.results.importer` maps columns to questions and matches the rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from cxctl.audience.csvio import open_csv
from cxctl.core.errors import ImportFileError, UsageError

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
    us_dates: bool = False  # slash dates are month/day/year


CONVENTIONS = {
    "qualtrics": Convention(
        response_id=("ResponseId", "ResponseID", "Response ID"),
        submitted=("RecordedDate", "EndDate", "Recorded Date", "End Date"),
        started=("StartDate", "Start Date"),
        email=("RecipientEmail", "Recipient Email"),
        external_id=("ExternalReference", "ExternalDataReference", "External Data Reference"),
        finished=("Finished",), status=("Status", "Response Type"),
    ),
    "surveymonkey": Convention(
        response_id=("Respondent ID",), submitted=("End Date",), started=("Start Date",),
        email=("Email Address",), external_id=("Custom Data 1",), us_dates=True,
    ),
    "google_forms": Convention(
        submitted=("Timestamp", "Horodateur", "Horodatage", "Marca temporal"),
        email=("Email Address", "Email address", "Adresse e-mail", "Adresse email"),
    ),
    "typeform": Convention(
        response_id=("#", "Response ID", "Token"), submitted=("Submit Date (UTC)",), started=("Start Date (UTC)",),
        email=("email", "Email"), external_id=("external_id", "customer_id"), utc=True,
    ),
    "limesurvey": Convention(
        response_id=("id", "Response ID"), submitted=("submitdate", "Date submitted"),
        started=("startdate", "Date started", "datestamp", "Date last action"),
        email=("email", "Email address"), external_id=("external_id",), token=("token", "Token", "Access code", "t"),
    ),
    "generic": Convention(
        response_id=("response_id", "id"), submitted=("submitted_at", "submitted", "timestamp", "date"),
        email=("email",), external_id=("external_id",), moment=("moment",), finished=("complete", "finished"),
    ),
}
CONVENTIONS["jsonl"] = CONVENTIONS["generic"]

# Qualtrics `Status`: text or numeric codes. Previews, tests and spam never count.
QUALTRICS_SKIP = {
    "survey preview": "preview", "survey test": "test", "spam": "spam", "preview spam": "spam",
    "imported spam": "spam", "offline survey preview": "preview",
    "1": "preview", "2": "test", "8": "spam", "9": "spam", "12": "spam", "17": "preview",
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
    _close: object = None

    def close(self) -> None:
        if self._close is not None:
            self._close()

    def column(self, names: tuple[str, ...] | list[str], given: str | None = None) -> int | None:
        """Index of the column `given` (exact, then case-insensitive), else of the first convention name present."""
        lowered = [c.strip().lower() for c in self.columns]
        for name in ([given] if given else list(names)):
            if name in self.columns:
                return self.columns.index(name)
            if name.strip().lower() in lowered:
                return lowered.index(name.strip().lower())
            if name in self.question_texts.values():
                return next(i for i, c in enumerate(self.columns) if self.question_texts.get(c) == name)
        if given:
            raise ImportFileError(f"{self.path}: no column {given!r} in the export: fix responses.*_column in the workspace "
                                  f"or export the column (columns: {', '.join(self.columns[:12])}…)")
        return None

    def skip_reason(self, fields: list[str], status_index: int | None) -> str | None:
        """Why a row never counts (a preview, a test, spam), or None."""
        if status_index is None or self.format != "qualtrics":
            return None
        return QUALTRICS_SKIP.get(fields[status_index].strip().lower())


def detect(header: list[str], second: list[str] | None, third: list[str] | None) -> str:
    """Name the tool from the header rows; generic CSV when nothing specific is recognised."""
    lowered = {h.strip().lower() for h in header}
    first = header[0].strip().lower() if header else ""
    if {"responseid", "finished"} <= lowered or (third and third[0].startswith('{"ImportId"')):
        return "qualtrics"
    if {"respondent id", "collector id"} <= lowered:
        return "surveymonkey"
    if first == "#" and any(h.lower().startswith("submit date") for h in header):
        return "typeform"
    if first in ("timestamp", "horodateur", "horodatage", "marca temporal"):
        return "google_forms"
    if {"submitdate", "lastpage"} <= lowered or {"response id", "date submitted", "last page"} <= lowered or (
        "token" in lowered and "startlanguage" in lowered
    ):
        return "limesurvey"
    return "generic"


def open_export(path: Path | str, format: str | None = None, encoding: str | None = None,
                delimiter: str | None = None) -> Export:
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
    if name == "qualtrics" and second is not None:
        # Row 2: question texts; row 3: {"ImportId": ..., "timeZone": ...} (absent in legacy exports).
        texts = {c: t for c, t in zip(columns, second) if t}
        skip = 1
        if third and third[0].startswith('{"ImportId"'):
            skip = 2
            for cell in third:
                try:
                    time_zone = json.loads(cell).get("timeZone") or time_zone
                except (ValueError, AttributeError):
                    pass
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

    return Export(path, name, columns, texts, chained(), table.sha256, time_zone, CONVENTIONS[name], table.close)


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
        except ValueError as exc:
            bad.append((number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
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

_SLASH = re.compile(r"^(\d{1,4})[/.](\d{1,2})[/.](\d{2,4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?)?\s*(?:(?:GMT|UTC)\s*([+-]\d{1,2})(?::?(\d{2}))?)?$")


def parse_time(text: str, tz: ZoneInfo, *, utc: bool = False, us_dates: bool = False, day_first: bool = True) -> datetime:
    """A tool's date-time → aware UTC datetime. Naive times are read in `tz` (UTC when `utc`).

    Accepts ISO 8601 (with or without offset), `yyyy/mm/dd hh:mm:ss AM GMT+1` (Google Forms),
    `mm/dd/yyyy hh:mm:ss AM` (SurveyMonkey, `us_dates`) and `dd/mm/yyyy hh:mm` (French exports).
    Raises ValueError with the accepted forms.
    """
    value = text.strip()
    zone = timezone.utc if utc else tz
    if len(value) >= 10 and value[4] == "-":
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=zone)
            return parsed.astimezone(timezone.utc)
    match = _SLASH.match(value)
    if not match:
        raise ValueError(f"unreadable date {text!r}: use ISO 8601 (2026-11-20 14:05:00) or dd/mm/yyyy hh:mm")
    a, b, c, hh, mm, ss, ampm, off_h, off_m = match.groups()
    if len(a) == 4:
        year, month, day = int(a), int(b), int(c)
    else:
        first, second, year = int(a), int(b), int(c)
        year += 2000 if year < 100 else 0
        if first > 12 or (second <= 12 and day_first and not us_dates):
            day, month = first, second
        else:
            month, day = first, second
    hour, minute, second_ = int(hh or 0), int(mm or 0), int(ss or 0)
    if ampm:
        hour = hour % 12 + (12 if ampm.lower() == "pm" else 0)
    try:
        parsed = datetime(year, month, day, hour, minute, second_)
    except ValueError as exc:  # 31/11, 25:00: Python's own words, with the value and the fix
        raise ValueError(f"unreadable date {text!r} ({exc}): check the day, month and time") from None
    if off_h is not None:
        from datetime import timedelta

        sign = -1 if off_h.startswith("-") else 1
        offset = timedelta(hours=abs(int(off_h)), minutes=int(off_m or 0)) * sign
        return (parsed - offset).replace(tzinfo=timezone.utc)
    return parsed.replace(tzinfo=zone).astimezone(timezone.utc)
