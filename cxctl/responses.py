"""`cxctl responses import`: read a survey-tool export, tie each row to its invitation, store the answers.

Python streams the file once (parsing values against each question's scale, reading tokens); the rows go
to a temporary staging table and SQLite does the rest set-based: matching tokens, emails and external
references to invitations, replacing newer versions, choosing the one response that counts per
invitation, quarantining what matches nothing, and adding the new rows to the scorecard rollups.
Nothing is dropped: every row lands, is skipped for a stated reason (preview, test, spam), or goes to
the quarantine table with its reason.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import sqlite_utils

from cxctl import tokens
from cxctl.campaign import Moment, Question, localise
from cxctl.emails import normalise
from cxctl.errors import ImportFileError, UsageError
from cxctl.formats import Export, open_export, parse_time
from cxctl.loader import Workspace
from cxctl.timeutil import to_db

# Labels tools write instead of numbers (compared without accents, case or punctuation).
BUILTIN_LABELS = {
    "csat": {
        "tres satisfait": 5, "very satisfied": 5, "extremement satisfait": 5, "extremely satisfied": 5,
        "satisfait": 4, "satisfied": 4, "plutot satisfait": 4, "somewhat satisfied": 4,
        "neutre": 3, "neutral": 3, "ni satisfait ni insatisfait": 3, "neither satisfied nor dissatisfied": 3,
        "insatisfait": 2, "dissatisfied": 2, "plutot insatisfait": 2, "peu satisfait": 2, "somewhat dissatisfied": 2,
        "tres insatisfait": 1, "very dissatisfied": 1, "pas du tout satisfait": 1, "extremely dissatisfied": 1,
    },
    "ces": {
        "tout a fait d accord": 7, "strongly agree": 7, "d accord": 6, "agree": 6,
        "plutot d accord": 5, "somewhat agree": 5, "ni d accord ni pas d accord": 4,
        "neither agree nor disagree": 4, "neutre": 4, "neutral": 4, "plutot pas d accord": 3,
        "somewhat disagree": 3, "pas d accord": 2, "disagree": 2, "pas du tout d accord": 1, "strongly disagree": 1,
    },
    "nps": {
        "extremely likely": 10, "extremement probable": 10, "tres probable": 10,
        "not at all likely": 0, "pas du tout probable": 0, "tres improbable": 0,
    },
}
INDICATORS = {"nps": 0, "csat": 1, "ces": 2}
FALSE_WORDS = {"0", "false", "faux", "no", "non", "n", "f"}


def _fold(text: str) -> str:
    """Label key: accents, case and punctuation removed (`Très satisfait !` → `tres satisfait`)."""
    text = unicodedata.normalize("NFKD", text.strip().lower())
    text = "".join(ch if ch.isalnum() else " " for ch in text if not unicodedata.combining(ch))
    return " ".join(text.split())


class ValueProblem(ValueError):
    """A value that does not fit its question; the message says why and what is accepted."""


@dataclass
class QuestionReader:
    """Turns one export cell into (value_num, value_text) for one question, or raises ValueProblem."""

    id: str
    question: Question
    index: int
    labels: dict[str, int] = field(default_factory=dict)
    choices: dict[str, str] = field(default_factory=dict)
    indicator: int | None = None  # 0 nps, 1 csat, 2 ces: this answer is the moment's indicator
    # Cell text → reading, for the questions whose answers repeat (scales, choices): a million rows hold a
    # handful of distinct cells. Open answers are not cached.
    cache: dict[str, tuple[float | None, str | None] | None] | None = None

    @classmethod
    def build(cls, qid: str, question: Question, index: int) -> "QuestionReader":
        reader = cls(qid, question, index)
        if question.type in ("nps", "csat", "ces", "rating", "single_choice"):
            reader.cache = {}
        reader.labels.update(BUILTIN_LABELS.get(question.type, {}))
        for value, text in question.labels.items():
            for wording in (text.values() if isinstance(text, dict) else [text]):
                reader.labels[_fold(wording)] = value
        for choice in question.choices:
            reader.choices[_fold(choice.id)] = choice.id
            for wording in (choice.label.values() if isinstance(choice.label, dict) else [choice.label]):
                reader.choices[_fold(wording)] = choice.id
        return reader

    def read(self, cell: str) -> tuple[float | None, str | None] | None:
        """None for an empty cell (no answer)."""
        cache = self.cache
        if cache is not None:
            if cell in cache:
                return cache[cell]
            value = self._read(cell)
            if len(cache) < 4096:
                cache[cell] = value
            return value
        return self._read(cell)

    def _read(self, cell: str) -> tuple[float | None, str | None] | None:
        text = cell.strip()
        if not text:
            return None
        q = self.question
        if q.type in ("nps", "csat", "ces", "rating"):
            try:
                number = float(text.replace(",", "."))
            except ValueError:
                number = self._label(text)
            if number != int(number):
                raise ValueProblem(f"{self.id}: {text!r} is not a whole number of the {q.min}–{q.max} scale")
            if not q.min <= number <= q.max:
                raise ValueProblem(f"{self.id}: {text!r} is outside the {q.min}–{q.max} scale")
            return float(number), None
        if q.type == "single_choice":
            return None, self._choice(text)
        if q.type == "multiple_choice":
            key = _fold(text)
            if key in self.choices:
                return None, json.dumps([self.choices[key]])
            parts = [p for p in (text.replace("|", ";").replace(",", ";").split(";")) if p.strip()]
            return None, json.dumps([self._choice(p) for p in parts])
        return None, text

    def _label(self, text: str) -> float:
        key = _fold(text)
        if key in self.labels:
            return float(self.labels[key])
        head = key.split(" ", 1)[0]
        # `10 - Extremely likely`, `5 (Très satisfait)`: the number leads the label.
        if head.isdigit():
            return float(head)
        raise ValueProblem(f"{self.id}: {text!r} is neither a number nor a known label of the {self.question.min}–"
                           f"{self.question.max} scale: add it to the question's labels")

    def _choice(self, text: str) -> str:
        key = _fold(text)
        if key not in self.choices:
            known = ", ".join(c.id for c in self.question.choices)
            raise ValueProblem(f"{self.id}: {text.strip()!r} is not one of the choices ({known}): add it to the question's choices")
        return self.choices[key]


# `:MM:SS` / `:MM` endings of ISO local times → the store's `:MM:SS` (a whole-hour UTC shift leaves them as they are).
_TAILS = {f":{m:02d}:{sec:02d}": f":{m:02d}:{sec:02d}" for m in range(60) for sec in range(60)}
_TAILS.update({f":{m:02d}": f":{m:02d}:00" for m in range(60)})


class _Clock:
    """Export times → (UTC store text, local day), fast: the UTC offset is cached per local hour, since a
    zone's offset only changes at whole-hour transitions (a million-row import parses a million times).
    With a whole-hour offset the UTC text is the cached UTC hour plus the minutes and seconds as written."""

    def __init__(self, tz: ZoneInfo, local: ZoneInfo, *, utc: bool, us_dates: bool, day_first: bool):
        self.tz, self.local, self.utc, self.us_dates, self.day_first = tz, local, utc, us_dates, day_first
        self.same_zone = not utc and str(tz) == str(local)
        self.offsets: dict[str, timedelta] = {}
        self.hours: dict[str, str | None] = {}  # local 'YYYY-MM-DD HH' → UTC 'YYYY-MM-DD HH', None: not a whole-hour shift

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
                    offset = self.offsets[hour] = naive.replace(tzinfo=self.tz).utcoffset()
                return (naive - offset).isoformat(" "), text[:10]
        when = parse_time(text, self.tz, utc=self.utc, us_dates=self.us_dates, day_first=self.day_first)
        return to_db(when), when.astimezone(self.local).date().isoformat()

    def _utc_hour(self, hour: str) -> str | None:
        try:
            naive = datetime.fromisoformat(hour + ":00")
        except ValueError:
            return None
        offset = self.offsets.get(hour)
        if offset is None:
            offset = self.offsets[hour] = naive.replace(tzinfo=self.tz).utcoffset()
        if offset.total_seconds() % 3600:
            return None
        return (naive - offset).isoformat(" ")[:13]


@dataclass
class Problem:
    """One row that did not land, with its place."""

    row: int
    kind: str
    reason: str


@dataclass
class ImportReport:
    """What `responses import` did with each row of the file."""

    file: str
    format: str
    moment: str | None
    rows_read: int = 0
    inserted: int = 0
    replaced: int = 0
    unchanged: int = 0
    counted: int = 0
    partial: int = 0
    duplicates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())


@dataclass
class _Plan:
    """Per moment: which column answers which question, and how rows are matched."""

    moment_id: str
    moment: Moment
    readers: list[QuestionReader]


def _token_from(cell: str) -> str:
    """A token cell may hold the token or the survey URL carrying it (`…?t=TOKEN`)."""
    value = cell.strip()
    if "://" in value or value.startswith("?"):
        query = parse_qs(urlsplit(value).query)
        for name in ("t", "token"):
            if query.get(name):
                return query[name][0].strip()
        return ""
    return value


def _plan_for(ws: Workspace, export: Export, moment_id: str) -> _Plan:
    moment = ws.moments[moment_id]
    mapping = moment.responses
    # The declared columns describe the moment's own tool; another tool's export is matched by question id or text.
    declared = mapping.columns if mapping.format in (None, export.format) else {}
    readers = []
    for qid in moment.questions:
        question = ws.questions[qid]
        column = declared.get(qid)
        if column is not None:
            readers.append(QuestionReader.build(qid, question, export.column((), column)))
            continue
        wordings = [qid] + ([question.text] if isinstance(question.text, str) else list(question.text.values()))
        index = export.column(wordings)
        if index is not None:
            readers.append(QuestionReader.build(qid, question, index))
    seen = set()
    for reader in readers:
        kind = reader.question.type
        if kind in INDICATORS and kind not in seen and moment.questions.index(reader.id) == min(
                moment.questions.index(q) for q in moment.questions if ws.questions[q].type == kind):
            reader.indicator = INDICATORS[kind]
            seen.add(kind)
    if not readers:
        raise ImportFileError(
            f"{export.path}: no column answers a question of moment {moment_id!r} ({', '.join(moment.questions)}): "
            f"map them under moments.{moment_id}.responses.columns (question id: export column)")
    return _Plan(moment_id, moment, readers)


def _choose_moment(ws: Workspace, export: Export, moment: str | None, moment_index: int | None,
                   token_index: int | None, db: sqlite_utils.Database) -> str | None:
    """The moment named on the command line, or found from a moment column / the first known token."""
    if moment is not None:
        if moment not in ws.moments:
            from cxctl.loader import did_you_mean

            raise UsageError(f"unknown moment {moment!r}{did_you_mean(moment, ws.moments)}: use one of {', '.join(ws.moments)}")
        return moment
    if moment_index is not None:
        return None
    by_format = [m for m, spec in ws.moments.items() if spec.responses.format == export.format]
    if len(by_format) == 1:
        return by_format[0]
    if token_index is not None:
        return "?"  # decided from the first known token while reading
    raise UsageError(f"{export.path}: the file does not say which moment it answers: name it with --moment "
                     f"(one of {', '.join(ws.moments)})")


STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS stage (
    row_number INTEGER PRIMARY KEY, response_key TEXT, content_hash TEXT, moment TEXT, token TEXT,
    email TEXT, external_id TEXT, submitted_at TEXT, day TEXT, complete INTEGER, status TEXT,
    score_nps INTEGER, score_csat INTEGER, score_ces INTEGER,
    invitation_id INTEGER, contact_id INTEGER, invitation_moment TEXT, outcome TEXT, existing_id INTEGER,
    existing_invitation INTEGER, fields TEXT)
;
CREATE TEMP TABLE IF NOT EXISTS stage_answers (row_number INTEGER, question TEXT, value_num REAL, value_text TEXT)
"""


def import_responses(ws: Workspace, db: sqlite_utils.Database, path: Path | str, now: datetime, *,
                     format: str | None = None, moment: str | None = None,
                     encoding: str | None = None, delimiter: str | None = None) -> ImportReport:
    """Import one export; return what landed, what was skipped and what went to quarantine.

    Raises ImportFileError when the file cannot be read or its columns do not fit the moment,
    UsageError for an unknown moment or a file that does not say its moment.
    """
    export = open_export(path, format=format, encoding=encoding, delimiter=delimiter)
    try:
        return _import(ws, db, export, now, moment)
    finally:
        export.close()


def _import(ws: Workspace, db: sqlite_utils.Database, export: Export, now: datetime, moment: str | None) -> ImportReport:
    conv = export.convention
    mapping0 = ws.moments[moment].responses if moment in ws.moments else None

    def col(names, attribute):
        own = mapping0 is not None and mapping0.format in (None, export.format)
        given = getattr(mapping0, attribute) if own else None
        return export.column(names, given)

    token_i = col(conv.token, "token_column")
    moment_i = export.column(conv.moment) if conv.moment else None
    chosen = _choose_moment(ws, export, moment, moment_i, token_i, db)
    if chosen not in (None, "?"):
        mapping0 = ws.moments[chosen].responses
        token_i = col(conv.token, "token_column")
    # Several token-like columns (a `token` column and a `t` hidden field): the first non-empty one wins.
    token_columns = [token_i] if token_i is not None else []
    if token_i is not None and not (mapping0 is not None and mapping0.token_column):
        token_columns = [i for name in conv.token for i in [export.column([name])] if i is not None]
        token_columns = list(dict.fromkeys(token_columns))
    rid_i = col(conv.response_id, "response_id_column")
    sub_i = col(conv.submitted, "submitted_column")
    start_i = export.column(conv.started) if conv.started else None
    email_i = col(conv.email, "email_column")
    ext_i = col(conv.external_id, "external_id_column")
    fin_i = export.column(conv.finished) if conv.finished else None
    status_i = export.column(conv.status) if conv.status else None
    tz = ZoneInfo(export.time_zone or ws.settings.timezone)
    local = ZoneInfo(ws.settings.timezone)
    day_first = not ws.settings.default_language.startswith("en")
    clock = _Clock(tz, local, utc=conv.utc, us_dates=conv.us_dates, day_first=day_first)
    report = ImportReport(str(export.path), export.format, None if chosen == "?" else chosen)
    plans: dict[str, _Plan] = {}
    if chosen not in (None, "?"):
        plans[chosen] = _plan_for(ws, export, chosen)
    columns = export.columns
    secret = ws.secret()
    imported_at = to_db(now)

    # Staging a million rows: keep temporary tables in memory and give SQLite a real page cache.
    db.execute("PRAGMA temp_store=MEMORY")
    db.execute("PRAGMA cache_size=-262144")
    for statement in STAGE_DDL.split(";"):
        db.execute(statement)
    db.execute("DELETE FROM temp.stage")
    db.execute("DELETE FROM temp.stage_answers")
    stage: list[tuple] = []
    answers: list[tuple] = []
    quarantine: list[tuple] = []
    skipped: Counter = Counter()
    keys_seen: set[str] = set()
    staged = 0

    def flush() -> None:
        # Staging rows go to a temporary table in one transaction per batch (not one commit per row).
        db.execute("BEGIN")
        db.conn.executemany("INSERT INTO temp.stage (row_number, response_key, content_hash, moment, token, email, external_id,"
                            " submitted_at, day, complete, status, fields, score_nps, score_csat, score_ces)"
                            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", stage)
        db.conn.executemany("INSERT INTO temp.stage_answers VALUES (?,?,?,?)", answers)
        db.execute("COMMIT")
        stage.clear()
        answers.clear()

    def quarantine_row(number: int, fields: list[str], kind: str, reason: str, moment_id: str | None) -> None:
        raw = json.dumps(dict(zip(columns, fields)), ensure_ascii=False)
        key = "q:" + hashlib.sha1("\x1f".join(fields).encode()).hexdigest()
        quarantine.append((key, export.format, moment_id, export.path.name, number, kind, reason, raw, imported_at))

    check_skip = status_i is not None and export.format == "qualtrics"
    tokens_seen: set[str] = set()
    # The rollup counts of the staged rows, exact when every staged row lands as it was staged (the usual bulk case).
    value_counts: Counter = Counter()
    day_counts: Counter = Counter()
    tokenless = 0
    rows_read = 0
    for number, fields, problem in export.rows:
        rows_read += 1
        if problem:
            quarantine_row(number, fields, "unreadable", problem, chosen)
            continue
        if check_skip:
            why = export.skip_reason(fields, status_i)
            if why:
                skipped[why] += 1
                continue
        token = ""
        for index in token_columns:
            token = fields[index].strip()
            if "://" in token or token[:1] == "?":  # a survey URL carrying the token
                token = _token_from(token)
            if token:
                break
        if chosen == "?":
            found = db.execute("SELECT moment FROM invitations WHERE token = ?", [token]).fetchone() if token else None
            if found is None:
                quarantine_row(number, fields, "unmatched", "no known invitation token, and the file does not say its moment: "
                               "give --moment", None)
                continue
            chosen = found[0]
            report.moment = chosen
            plans[chosen] = _plan_for(ws, export, chosen)
        moment_id = fields[moment_i].strip() if moment_i is not None else chosen
        plan = plans.get(moment_id)
        if plan is None:
            if moment_id not in ws.moments:
                quarantine_row(number, fields, "invalid", f"unknown moment {moment_id!r}: use a moment id of the workspace", None)
                continue
            plan = plans[moment_id] = _plan_for(ws, export, moment_id)
        joined = "\x1f".join(fields)
        content_hash = hashlib.sha1(joined.encode()).hexdigest()
        raw_id = fields[rid_i].strip() if rid_i is not None else ""
        response_id = raw_id or "h" + content_hash
        response_key = f"{export.format}:{moment_id}:{response_id}"
        complete = 1
        if fin_i is not None and fields[fin_i].strip().lower() in FALSE_WORDS:
            complete = 0
        when_text = fields[sub_i].strip() if sub_i is not None else ""
        if not when_text and start_i is not None:
            when_text, complete = fields[start_i].strip(), 0
        if not when_text:
            quarantine_row(number, fields, "invalid", "no submission time: export the submission date column", moment_id)
            continue
        try:
            submitted, day = clock.read(when_text)
        except ValueError as exc:
            quarantine_row(number, fields, "invalid", str(exc), moment_id)
            continue
        values = []
        errors = []
        scores = [None, None, None]
        for reader in plan.readers:
            try:
                value = reader.read(fields[reader.index])
            except ValueProblem as exc:
                errors.append(str(exc))
                continue
            if value is not None:
                values.append((number, reader.id, value[0], value[1]))
                if complete and value[0] is not None:
                    value_counts[moment_id, day, reader.id, int(value[0])] += 1
                if reader.indicator is not None:
                    scores[reader.indicator] = int(value[0])
        if errors:
            quarantine_row(number, fields, "invalid", "; ".join(errors), moment_id)
            continue
        email = fields[email_i].strip() if email_i is not None else ""
        if email:
            try:
                email = normalise(email)
            except ValueError:
                email = ""
        keys_seen.add(response_key)
        staged += 1
        day_counts[moment_id, day, complete] += 1
        if token:
            tokens_seen.add(token)
        else:
            tokenless += 1
        stage.append((number, response_key, content_hash, moment_id, token or None,
                      email or None, (fields[ext_i].strip() or None) if ext_i is not None else None,
                      submitted, day, complete, "counted" if complete else "partial", joined, *scores))
        answers.extend(values)
        if len(stage) >= 20000:
            flush()
    flush()
    report.rows_read = rows_read
    report.skipped = dict(skipped)
    facts = _Facts(repeated_keys=len(keys_seen) < staged, tokenless=tokenless > 0,
                   repeated_tokens=len(tokens_seen) < staged - tokenless, value_counts=value_counts, day_counts=day_counts)
    _settle(ws, db, export, report, quarantine, imported_at, secret, columns, facts)
    return report


@dataclass
class _Facts:
    """What the streaming pass learnt about the staged rows, so the set-based pass skips the steps that
    cannot apply (each skipped step is a full scan of the staging table)."""

    repeated_keys: bool = False  # one response id on several rows of the file
    tokenless: bool = False  # some row has no token (matched by email or external reference)
    repeated_tokens: bool = False  # one token on several rows
    value_counts: Counter = field(default_factory=Counter)  # (moment, day, question, value) of complete rows
    day_counts: Counter = field(default_factory=Counter)  # (moment, day, complete) of all rows


def _settle(ws: Workspace, db: sqlite_utils.Database, export: Export, report: ImportReport,
            quarantine: list[tuple], imported_at: str, secret: bytes, columns: list[str], facts: _Facts) -> None:
    """The set-based part, in one transaction: match, quarantine, replace, insert, choose, roll up.

    Staged rows still to insert have `outcome` NULL and the status their completeness gives; the choice of
    the counting response per invitation only runs when an invitation has several responses.
    """
    q = db.execute
    keep_last = [m for m, spec in ws.moments.items() if spec.responses.keep == "last"]
    windows = {m: int(spec.responses.match_window.total_seconds()) for m, spec in ws.moments.items()}
    q("BEGIN IMMEDIATE")
    try:
        # Newer duplicates of one response id inside the file: the last row wins.
        if facts.repeated_keys:
            q("DELETE FROM temp.stage WHERE row_number NOT IN (SELECT MAX(row_number) FROM temp.stage GROUP BY response_key)")
        q("UPDATE temp.stage SET invitation_id = i.id, contact_id = i.contact_id, invitation_moment = i.moment"
          " FROM invitations i WHERE i.token = temp.stage.token")
        if facts.tokenless:
            _match_without_token(db, windows)
        removed = _quarantine_unmatched(db, export, quarantine, imported_at, secret, columns)

        stored = q("SELECT EXISTS (SELECT 1 FROM responses)").fetchone()[0]
        if stored:
            _replace_known(db, report, imported_at)
        # Every staged row lands as staged: the counts taken while reading are the rollup increments.
        intact = not (facts.repeated_keys or removed or report.unchanged or report.replaced)
        # One response counts per invitation: the first completed (or the last, with keep: last). The choice is
        # made before the new rows are written, so they go in with their final status (no second pass over them).
        q("CREATE TEMP TABLE IF NOT EXISTS target (src TEXT, id INTEGER, status TEXT)")
        q("DELETE FROM temp.target")
        if report.replaced or facts.tokenless or facts.repeated_tokens or (stored and _answered_before(db)):
            intact = False
            marks = ",".join("?" * len(keep_last)) or "NULL"
            q(f"""INSERT INTO temp.target (src, id, status)
                 SELECT src, id, CASE WHEN complete = 0 THEN 'partial' WHEN rank = 1 THEN 'counted' ELSE 'duplicate' END FROM (
                     SELECT src, id, complete, ROW_NUMBER() OVER (PARTITION BY invitation_id ORDER BY complete DESC,
                         CASE WHEN moment IN ({marks}) THEN submitted_at END DESC, submitted_at, src, id) AS rank
                     FROM (SELECT 'r' AS src, r.id, r.invitation_id, r.complete, r.moment, r.submitted_at FROM responses r
                           WHERE r.invitation_id IN (SELECT invitation_id FROM temp.stage UNION
                                                     SELECT existing_invitation FROM temp.stage WHERE outcome = 'replace')
                           UNION ALL
                           SELECT 's', row_number, invitation_id, complete, moment, submitted_at FROM temp.stage
                           WHERE outcome IS NULL))""", keep_last)
            q("CREATE INDEX IF NOT EXISTS temp.target_src_id ON target(src, id)")
            q("""UPDATE temp.stage SET status = t.status
                 FROM temp.target t WHERE t.src = 's' AND t.id = temp.stage.row_number""")
        # New rows get their ids here (last id + file row number), so their answers need no look-up by key.
        base = q("SELECT COALESCE(MAX(id), 0) FROM responses").fetchone()[0]
        # Secondary indexes are kept during the insert: rebuilding them after loading an empty table was measured
        # slower (1,000,000 rows: 3.7 s against 3.2 s), since exports arrive roughly in submission order.
        q("""INSERT INTO responses (id, response_key, content_hash, invitation_id, contact_id, moment, source, submitted_at, day,
                 complete, status, imported_at, score_nps, score_csat, score_ces)
             SELECT ? + row_number, response_key, content_hash, invitation_id, contact_id, moment, ?, submitted_at, day, complete,
                 status, ?, score_nps, score_csat, score_ces
             FROM temp.stage WHERE outcome IS NULL ORDER BY row_number""", [base, export.format, imported_at])
        report.inserted = q("SELECT changes()").fetchone()[0]
        q("""INSERT INTO answers (response_id, question, value_num, value_text)
             SELECT CASE WHEN s.outcome IS NULL THEN ? + s.row_number ELSE s.existing_id END, a.question, a.value_num, a.value_text
             FROM temp.stage s JOIN temp.stage_answers a ON a.row_number = s.row_number""", [base])
        if intact:
            _roll_up_counted(db, report, facts)
        else:
            _roll_up(db, report)
        # A row that lands now leaves the quarantine it may have been in.
        db.conn.executemany("INSERT OR IGNORE INTO quarantine (row_key, source, moment, file_name, row_number, kind, reason, raw,"
                            " imported_at) VALUES (?,?,?,?,?,?,?,?,?)", quarantine)
        if q("SELECT EXISTS (SELECT 1 FROM quarantine WHERE source = ?)", [export.format]).fetchone()[0]:
            q("""DELETE FROM quarantine WHERE source = ? AND row_key IN (
                     SELECT 'q:' || s.content_hash FROM temp.stage s)""", [export.format])
        q("""INSERT INTO import_log (kind, file_name, sha256, rows_read, inserted, updated, unchanged, duplicates, rejected, imported_at)
             VALUES ('responses', ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
          [export.path.name, export.sha256, report.rows_read, report.inserted, report.replaced, report.unchanged,
           report.duplicates, len(quarantine), imported_at])
        q("COMMIT")
    except BaseException:
        q("ROLLBACK")
        raise
    for entry in quarantine:
        report.quarantined[entry[5]] = report.quarantined.get(entry[5], 0) + 1
        report.problems.append(Problem(entry[4], entry[5], entry[6]))
    report.problems.sort(key=lambda p: p.row)


def _match_without_token(db: sqlite_utils.Database, windows: dict[str, int]) -> None:
    """No token: the contact by external reference, else by email; then its latest invitation to this moment
    sent within match_window before the response."""
    q = db.execute
    q("CREATE TEMP TABLE IF NOT EXISTS windows (moment TEXT PRIMARY KEY, seconds INTEGER)")
    q("DELETE FROM temp.windows")
    db.conn.executemany("INSERT INTO temp.windows VALUES (?, ?)", list(windows.items()))
    q("""UPDATE temp.stage SET contact_id = COALESCE(
             (SELECT c.id FROM contacts c WHERE c.external_id = temp.stage.external_id),
             (SELECT c.id FROM contacts c WHERE c.email = temp.stage.email ORDER BY c.id LIMIT 1))
         WHERE token IS NULL""")
    q("""UPDATE temp.stage SET invitation_id = (
             SELECT i.id FROM invitations i, temp.windows w
             WHERE i.contact_id = temp.stage.contact_id AND i.moment = temp.stage.moment AND i.kind = 'invitation'
               AND w.moment = i.moment AND COALESCE(i.sent_at, i.send_at) <= temp.stage.submitted_at
               AND COALESCE(i.sent_at, i.send_at) >= datetime(temp.stage.submitted_at, '-' || w.seconds || ' seconds')
             ORDER BY COALESCE(i.sent_at, i.send_at) DESC LIMIT 1),
           invitation_moment = temp.stage.moment
         WHERE token IS NULL AND contact_id IS NOT NULL""")


def _quarantine_unmatched(db: sqlite_utils.Database, export: Export, quarantine: list[tuple], imported_at: str,
                          secret: bytes, columns: list[str]) -> int:
    """Rows tied to no invitation, or to another moment's, go to quarantine with the reason (one scan); returns
    how many left the staging table."""
    rows = db.execute("SELECT row_number, token, email, external_id, contact_id, moment, invitation_moment, fields,"
                      " invitation_id IS NULL FROM temp.stage WHERE invitation_id IS NULL OR invitation_moment <> moment"
                      " ORDER BY row_number").fetchall()
    if not rows:
        return 0
    for number, token, email, external_id, contact_id, moment_id, _, fields, unmatched in rows:
        if not unmatched:
            continue
        # A token no invitation carries is checked against the secret (once per row, only here): a forged
        # link is named as such.
        if token and not tokens.verify(secret, token):
            reason = "invalid token signature (altered or forged link, or another workspace's secret)"
        elif token:
            reason = "unknown token: no invitation carries it (another database, or pruned)"
        elif contact_id is not None:
            reason = f"no invitation of moment {moment_id!r} to this contact within the match window: widen responses.match_window"
        elif email or external_id:
            reason = "no contact with this email or external reference: import the contacts, then import again"
        else:
            reason = "no token, email or external reference to match: add the token as a hidden field"
        quarantine.append(_q_entry(export, columns, number, fields, "unmatched", reason, moment_id, imported_at))
    for number, _, _, _, _, moment_id, inv_moment, fields, unmatched in rows:
        if not unmatched:
            quarantine.append(_q_entry(export, columns, number, fields, "unmatched",
                                       f"the token belongs to moment {inv_moment!r}, not {moment_id!r}: import with --moment {inv_moment}",
                                       moment_id, imported_at))
    db.execute("DELETE FROM temp.stage WHERE invitation_id IS NULL OR invitation_moment <> moment")
    return len(rows)


def _replace_known(db: sqlite_utils.Database, report: ImportReport, imported_at: str) -> None:
    """Known response ids: identical → unchanged; an older version → unchanged; otherwise replaced."""
    q = db.execute
    q("""UPDATE temp.stage SET outcome = CASE
             WHEN r.content_hash = temp.stage.content_hash OR temp.stage.submitted_at < r.submitted_at THEN 'unchanged'
             ELSE 'replace' END, existing_id = r.id, existing_invitation = r.invitation_id
         FROM responses r WHERE r.response_key = temp.stage.response_key""")
    unchanged, replaced = q("SELECT COUNT(*) FILTER (WHERE outcome = 'unchanged'), COUNT(*) FILTER (WHERE outcome = 'replace')"
                            " FROM temp.stage WHERE outcome IS NOT NULL").fetchone()
    report.unchanged, report.replaced = unchanged, replaced
    if unchanged:
        q("DELETE FROM temp.stage WHERE outcome = 'unchanged'")
    if replaced:
        # Replaced: leave the counts (trigger), swap the answers, then let the choice recount.
        q("UPDATE responses SET status = 'pending' WHERE id IN (SELECT existing_id FROM temp.stage WHERE outcome = 'replace')")
        q("DELETE FROM answers WHERE response_id IN (SELECT existing_id FROM temp.stage WHERE outcome = 'replace')")
        q("""UPDATE responses SET content_hash = s.content_hash, invitation_id = s.invitation_id, contact_id = s.contact_id,
                 submitted_at = s.submitted_at, day = s.day, complete = s.complete, imported_at = ?,
                 score_nps = s.score_nps, score_csat = s.score_csat, score_ces = s.score_ces
             FROM temp.stage s WHERE s.outcome = 'replace' AND responses.id = s.existing_id""", [imported_at])


def _roll_up_counted(db: sqlite_utils.Database, report: ImportReport, facts: _Facts) -> None:
    """The rollup increments and the report's counts from the counts taken while reading (no scan)."""
    db.conn.executemany("INSERT INTO score_rollup (moment, day, question, value, n) VALUES (?, ?, ?, ?, ?)"
                        " ON CONFLICT DO UPDATE SET n = n + excluded.n",
                        [(*key, n) for key, n in sorted(facts.value_counts.items())])
    counted: Counter = Counter()
    for (moment, day, complete), n in facts.day_counts.items():
        if complete:
            counted[moment, day] += n
            report.counted += n
        else:
            report.partial += n
    db.conn.executemany("INSERT INTO response_rollup (moment, day, n) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
                        [(*key, n) for key, n in sorted(counted.items())])


def _roll_up(db: sqlite_utils.Database, report: ImportReport) -> None:
    """Counts: new counted rows straight from the staging tables; replaced rows (pending → counted) from the
    store; every other status change of an older row goes through the triggers. Fills the report's counts."""
    q = db.execute
    q("""INSERT INTO score_rollup (moment, day, question, value, n)
         SELECT moment, day, question, value, SUM(n) FROM (
             SELECT s.moment, s.day, a.question, CAST(a.value_num AS INTEGER) AS value, COUNT(*) AS n
             FROM temp.stage s JOIN temp.stage_answers a ON a.row_number = s.row_number
             WHERE s.outcome IS NULL AND s.status = 'counted' AND a.value_num IS NOT NULL GROUP BY 1, 2, 3, 4
             UNION ALL
             SELECT r.moment, r.day, a.question, CAST(a.value_num AS INTEGER), COUNT(*)
             FROM temp.target t JOIN responses r ON r.id = t.id JOIN answers a ON a.response_id = r.id
             WHERE t.src = 'r' AND t.status = 'counted' AND r.status = 'pending' AND a.value_num IS NOT NULL
             GROUP BY 1, 2, 3, 4)
         WHERE true GROUP BY 1, 2, 3, 4
         ON CONFLICT DO UPDATE SET n = n + excluded.n""")
    # New rows per (moment, day, status): one scan gives both the response rollup and the report's counts.
    counted: Counter = Counter()
    names = {"counted": "counted", "partial": "partial", "duplicate": "duplicates"}
    for moment, day, status, n in q("SELECT moment, day, status, COUNT(*) FROM temp.stage WHERE outcome IS NULL"
                                    " GROUP BY 1, 2, 3").fetchall():
        setattr(report, names[status], getattr(report, names[status]) + n)
        if status == "counted":
            counted[moment, day] += n
    if report.replaced:
        for moment, day, n in q("""SELECT r.moment, r.day, COUNT(*) FROM temp.target t JOIN responses r ON r.id = t.id
                                   WHERE t.src = 'r' AND t.status = 'counted' AND r.status = 'pending' GROUP BY 1, 2""").fetchall():
            counted[moment, day] += n
        for status, n in q("""SELECT t.status, COUNT(*) FROM temp.stage s JOIN temp.target t ON t.src = 'r' AND t.id = s.existing_id
                              WHERE s.outcome = 'replace' GROUP BY 1""").fetchall():
            setattr(report, names[status], getattr(report, names[status]) + n)
    db.conn.executemany("INSERT INTO response_rollup (moment, day, n) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
                        [(m, d, n) for (m, d), n in counted.items()])
    q("""UPDATE responses SET status = t.status FROM temp.target t
         WHERE t.src = 'r' AND responses.id = t.id AND responses.status <> t.status""")
    if report.replaced:
        q("DELETE FROM score_rollup WHERE n = 0")


def _answered_before(db: sqlite_utils.Database) -> bool:
    """Whether an invitation of the staged rows already has a stored response (then the choice must run)."""
    return bool(db.execute("SELECT EXISTS (SELECT 1 FROM temp.stage s JOIN responses r ON r.invitation_id = s.invitation_id)")
                .fetchone()[0])


def _q_entry(export: Export, columns: list[str], number: int, joined: str, kind: str, reason: str,
             moment_id: str | None, imported_at: str) -> tuple:
    raw = json.dumps(dict(zip(columns, joined.split("\x1f"))), ensure_ascii=False)
    key = "q:" + hashlib.sha1(joined.encode()).hexdigest()
    return (key, export.format, moment_id, export.path.name, number, kind, reason, raw, imported_at)


@dataclass
class QuarantineRow:
    id: int
    source: str
    moment: str | None
    file_name: str | None
    row_number: int | None
    kind: str
    reason: str
    raw: dict


def list_quarantine(db: sqlite_utils.Database, moment: str | None = None) -> list[QuarantineRow]:
    """The rows waiting in quarantine, oldest first."""
    sql = "SELECT id, source, moment, file_name, row_number, kind, reason, raw FROM quarantine"
    params: list = []
    if moment:
        sql += " WHERE moment = ?"
        params.append(moment)
    return [QuarantineRow(*row[:7], json.loads(row[7])) for row in db.execute(sql + " ORDER BY id", params).fetchall()]


def question_label(ws: Workspace, qid: str) -> str:
    return localise(ws.questions[qid].text, ws.settings.default_language, ws.settings.default_language)


def rebuild_rollups(db: sqlite_utils.Database) -> None:
    """Recount the scorecard rollups from the raw rows (after a bulk load that bypassed the import, or to repair)."""
    q = db.execute
    q("BEGIN IMMEDIATE")
    try:
        q("DELETE FROM score_rollup")
        q("DELETE FROM response_rollup")
        q("DELETE FROM sent_rollup")
        q("""INSERT INTO score_rollup (moment, day, question, value, n)
             SELECT r.moment, r.day, a.question, CAST(a.value_num AS INTEGER), COUNT(*) FROM responses r
             JOIN answers a ON a.response_id = r.id WHERE r.status = 'counted' AND a.value_num IS NOT NULL GROUP BY 1, 2, 3, 4""")
        q("""INSERT INTO response_rollup (moment, day, n)
             SELECT moment, day, COUNT(*) FROM responses WHERE status = 'counted' GROUP BY 1, 2""")
        q("""INSERT INTO sent_rollup (moment, hour, n)
             SELECT moment, substr(COALESCE(sent_at, send_at), 1, 13), COUNT(*) FROM invitations
             WHERE status = 'sent' AND kind = 'invitation' GROUP BY 1, 2""")
        q("COMMIT")
    except BaseException:
        q("ROLLBACK")
        raise
