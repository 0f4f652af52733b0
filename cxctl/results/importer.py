"""`cxctl responses import`: read a survey-tool export, tie each row to its invitation, store the answers.

Python streams the file once (parsing values against each question's scale, reading tokens); the rows go
to a temporary staging table and SQLite does the rest set-based (`cxctl.results.response_store`): matching tokens,
emails and external references to invitations, replacing newer versions, choosing the one response that
counts per invitation, quarantining what matches nothing, and adding the new rows to the scorecard rollups.
Nothing is dropped: every row lands, is skipped for a stated reason (preview, test, spam), or goes to
the quarantine table with its reason. Big files are read by a forked worker while this process writes.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import cast
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import sqlite_utils

from cxctl.audience.contact_bulk import in_worker, parallel_possible
from cxctl.core import tokens
from cxctl.core.emails import normalise
from cxctl.core.errors import ImportFileError, UsageError, did_you_mean
from cxctl.core.timeutil import to_db
from cxctl.results.answers import INDICATORS, QuestionReader, ValueProblem
from cxctl.results.formats import (
    DAY_FIRST,
    MONTH_FIRST,
    Clock,
    Export,
    not_recognised,
    open_export,
    scan_date_order,
    strptime_for,
)
from cxctl.results.quarantine import QuarantineRow, list_quarantine, row_digest  # noqa: F401 (list_quarantine: public here too)
from cxctl.results.response_store import (  # noqa: F401 (public here too)
    STAGE_DDL,
    Facts,
    ImportReport,
    Problem,
    rebuild_rollups,
    settle,
)
from cxctl.workspace.loader import Workspace
from cxctl.workspace.model import Moment, localise

LOOSE_TOKEN_NAMES = {"t", "tok"}  # short names a column may have for another reason
FALSE_WORDS = {"0", "false", "faux", "no", "non", "n", "f", "partial"}


# A staging batch: (rows of temp.stage, rows of temp.stage_answers).
_Batch = tuple[list[tuple], list[tuple]]


@dataclass
class _Tally:
    """What reading the rows learnt besides the batches (sent back from the worker process at the end)."""

    rows_read: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    quarantine: list[tuple] = field(default_factory=list)
    moment: str | None = None
    notes: list[str] = field(default_factory=list)
    facts: Facts = field(default_factory=Facts)


# `in_worker` is annotated with the contacts import's batch and tally types, but it only passes on what `produce`
# yields (marshal) and what `finish` returns (pickle): these tuples and `_Tally` travel the same way.
_in_worker = cast(
    "Callable[[Callable[[], Iterator[_Batch]], Callable[[], _Tally]], tuple[Iterator[_Batch], Callable[[], _Tally]]]",
    in_worker,
)


@dataclass
class _Plan:
    """Per moment: which column answers which question, and how rows are matched."""

    moment_id: str
    moment: Moment
    readers: list[QuestionReader]
    # How the rows are read (which column answers which question, on which scale, with which labels): part of
    # each stored response's content hash, so a re-import after a mapping change re-reads the rows (issue 12).
    signature: str = ""
    notes: list[str] = field(default_factory=list)
    # (score slot, question) of the moment's indicators: their answer rows are written from the staged scores.
    indicators: list[tuple[int, str]] = field(init=False)

    def __post_init__(self) -> None:
        self.indicators = [(r.indicator, r.id) for r in self.readers if r.indicator is not None]


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
    """Which column answers which question of the moment. A question that matches no column is an error (its
    answers would be silently unread: issue 12), except a secondary question of a generic CSV or JSON Lines
    file, which the team builds with the columns it has: a note then. `columns: {question: "-"}` says that
    the moment's tool does not export that question."""
    moment = ws.moments[moment_id]
    mapping = moment.responses
    # The declared columns describe the moment's own tool; another tool's export is matched by question id or text.
    declared = mapping.columns if mapping.format in (None, export.format) else {}
    readers = []
    missing: list[str] = []
    for qid in moment.questions:
        question = ws.questions[qid]
        column = declared.get(qid)
        if column is not None and column.strip() == NOT_EXPORTED:
            continue
        if column is not None:
            given = export.column((), column)
            if given is None:  # an empty name: Export.column has nothing to look for
                raise ImportFileError(
                    f"{export.path}: moments.{moment_id}.responses.columns.{qid} is empty: name the export column "
                    f'that answers it, or write {qid}: "{NOT_EXPORTED}" if this export does not hold it'
                )
            readers.append(QuestionReader.build(qid, question, given))
            continue
        wordings = [qid] + ([question.text] if isinstance(question.text, str) else list(question.text.values()))
        index = export.column(wordings)
        if index is not None:
            readers.append(QuestionReader.build(qid, question, index))
        else:
            missing.append(qid)
    seen = set()
    for reader in readers:
        kind = reader.question.type
        if (
            kind in INDICATORS
            and kind not in seen
            and moment.questions.index(reader.id)
            == min(moment.questions.index(q) for q in moment.questions if ws.questions[q].type == kind)
        ):
            reader.indicator = INDICATORS[kind]
            seen.add(kind)
    if not readers:
        raise ImportFileError(
            f"{export.path}: no column answers a question of moment {moment_id!r} ({', '.join(moment.questions)}): "
            f"map them under moments.{moment_id}.responses.columns (question id: export column)"
        )
    indicators = {
        min((q for q in moment.questions if ws.questions[q].type == kind), key=moment.questions.index)
        for kind in INDICATORS
        if any(ws.questions[q].type == kind for q in moment.questions)
    }
    lenient = export.format in ("generic", "jsonl")
    errors = [qid for qid in missing if not lenient or qid in indicators]
    described = {qid: _unread(ws, export, moment_id, qid) for qid in missing}
    if errors:
        raise ImportFileError(
            f"{export.path}: "
            + "; ".join(described[qid] for qid in errors)
            + f" (columns: {', '.join(export.columns[:15])}{'…' if len(export.columns) > 15 else ''})"
        )
    notes = [described[qid] + " — its answers are not read" for qid in missing]
    signature = hashlib.sha1(
        repr(
            [
                (
                    r.id,
                    r.index,
                    export.columns[r.index],
                    r.question.type,
                    r.question.min,
                    r.question.max,
                    sorted(r.labels.items()),
                    sorted(r.choices.items()),
                )
                for r in readers
            ]
        ).encode()
    ).hexdigest()
    return _Plan(moment_id, moment, readers, signature, notes)


NOT_EXPORTED = "-"  # under responses.columns: this tool's export does not hold the question


def _unread(ws: Workspace, export: Export, moment_id: str, qid: str) -> str:
    """What to say about a question of the moment that no column of the export answers, with the fix."""
    text = ws.questions[qid].text
    wordings = [text] if isinstance(text, str) else list(text.values())
    guess = did_you_mean(wordings[0], export.columns) or did_you_mean(qid, export.columns)
    return (
        f"question {qid!r} of moment {moment_id!r} ({wordings[0]!r}) matches no column of the export{guess}: map it "
        f'under moments.{moment_id}.responses.columns ({qid}: <export column>), or write {qid}: "{NOT_EXPORTED}" '
        f"there if this export does not hold it"
    )


def _choose_moment(
    ws: Workspace,
    export: Export,
    moment: str | None,
    moment_index: int | None,
    token_index: int | None,
    db: sqlite_utils.Database,
) -> str | None:
    """The moment named on the command line, or found from a moment column / the first known token."""
    if moment is not None:
        if moment not in ws.moments:
            raise UsageError(
                f"unknown moment {moment!r}{did_you_mean(moment, ws.moments)}: use one of {', '.join(ws.moments)}"
            )
        return moment
    if moment_index is not None:
        return None
    by_format = [m for m, spec in ws.moments.items() if spec.responses.format == export.format]
    if len(by_format) == 1:
        return by_format[0]
    if token_index is not None:
        return "?"  # decided from the first known token while reading
    raise UsageError(
        f"{export.path}: the file does not say which moment it answers: name it with --moment "
        f"(one of {', '.join(ws.moments)})"
    )


def import_responses(
    ws: Workspace,
    db: sqlite_utils.Database,
    path: Path | str,
    now: datetime,
    *,
    format: str | None = None,
    moment: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    date_format: str | None = None,
    reread: bool = False,
) -> ImportReport:
    """Import one export; return what landed, what was skipped and what went to quarantine.

    `date_format` (strptime) says how the file writes its dates; without it, the order of dd/mm versus
    mm/dd dates is decided once for the whole file. `reread` reads again the rows already stored unchanged
    (a changed mapping is noticed by itself; this is for anything else, such as a newer cxctl). Raises ImportFileError when the file cannot be read,
    its columns do not fit the moment or its dates read both ways; UsageError for an unknown moment or a
    file that does not say its moment.
    """
    export = open_export(path, format=format, encoding=encoding, delimiter=delimiter)
    try:
        return _import(
            ws,
            db,
            export,
            now,
            moment,
            date_format,
            lambda: open_export(path, format=export.format, encoding=encoding, delimiter=delimiter),
            reread,
        )
    finally:
        export.close()


def _date_order(export: Export, reopen, indexes: list[int | None], known: str | None) -> str | None:
    """The file's date order, decided once from its dates (the first that reads one way only), else the
    tool's known order; None when no date needs one. An ambiguous file is refused: issue 12 found a US
    Google Forms export read day first for 993 rows and month first for 12."""
    present = [i for i in indexes if i is not None]
    if not present:
        return known
    again = reopen()
    try:
        scan = scan_date_order(again.rows, present)
    finally:
        again.close()
    if scan.order is not None or scan.ambiguous is None or known is not None:
        return scan.order or known
    number, text = scan.ambiguous
    names = " / ".join(repr(export.columns[i]) for i in present)
    raise ImportFileError(
        f"{export.path}:{number}: the dates of column {names} read both day first and month first (none of "
        f"{scan.ambiguous_count} has a number above 12, e.g. {text!r}), and cxctl does not guess: give "
        f"--date-format {strptime_for(text, MONTH_FIRST)!r} (month first, as US exports) or "
        f"--date-format {strptime_for(text, DAY_FIRST)!r} (day first), or set responses.date_format on the moment"
    )


def _import(
    ws: Workspace,
    db: sqlite_utils.Database,
    export: Export,
    now: datetime,
    moment: str | None,
    date_format: str | None = None,
    reopen=None,
    reread: bool = False,
) -> ImportReport:
    conv = export.convention
    mapping0 = ws.moments[moment].responses if moment in ws.moments else None

    def col(names, attribute):
        own = mapping0 is not None and mapping0.format in (None, export.format)
        given = getattr(mapping0, attribute) if own else None
        return export.column(names, given)

    if (
        export.format == "generic"
        and not export.named
        and export.column(conv.submitted) is None
        and not any(
            spec.responses.submitted_column and export.column([spec.responses.submitted_column]) is not None
            for spec in ws.moments.values()
        )
    ):
        # Another tool's export that was not recognised must not be read as a plain CSV (issue 12: it went to the
        # only generic moment and failed on that moment's column).
        raise ImportFileError(not_recognised(export))
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
    # A column merely named `t` (or `tok`) may hold something else — an hour, a test flag: issue 12 found every row
    # of such a file quarantined as forged. Its cells count as tokens only when shaped like one.
    declared_token = mapping0 is not None and bool(mapping0.token_column)
    loose = (
        set()
        if declared_token
        else {i for i in token_columns if export.columns[i].strip().lower() in LOOSE_TOKEN_NAMES}
    )
    rid_i = col(conv.response_id, "response_id_column")
    sub_i = col(conv.submitted, "submitted_column")
    start_i = export.column(conv.started) if conv.started else None
    email_i = col(conv.email, "email_column")
    ext_i = col(conv.external_id, "external_id_column")
    fin_i = export.column(conv.finished) if conv.finished else None
    status_i = export.column(conv.status) if conv.status else None
    tz = ZoneInfo(export.time_zone or ws.settings.timezone)
    local = ZoneInfo(ws.settings.timezone)
    if date_format is None and mapping0 is not None and mapping0.format in (None, export.format):
        date_format = mapping0.date_format
    order = None if date_format or reopen is None else _date_order(export, reopen, [sub_i, start_i], conv.date_order)
    clock = Clock(tz, local, utc=conv.utc, order=order, date_format=date_format)
    reading = date_format or order or ""
    report = ImportReport(str(export.path), export.format, None if chosen == "?" else chosen)
    plans: dict[str, _Plan] = {}
    if chosen not in (None, "?"):
        plans[chosen] = _plan_for(ws, export, chosen)
    columns = export.columns
    from cxctl.delivery.signing import keyring

    # Links signed before a secret rotation still verify during its grace period; a changed secret is refused.
    # The keys are asked for only when a token must be verified: an export without tokens needs no secret (issue 12).
    secret = functools.cache(lambda: keyring(ws, db, now, record=False)[0])
    imported_at = to_db(now)

    # Staging a million rows: keep temporary tables in memory and give SQLite a real page cache.
    db.execute("PRAGMA temp_store=MEMORY")
    db.execute("PRAGMA cache_size=-262144")
    for statement in STAGE_DDL.split(";"):
        db.execute(statement)
    db.execute("DELETE FROM temp.stage")
    db.execute("DELETE FROM temp.stage_answers")
    tally = _Tally()

    def produce() -> Iterator[_Batch]:
        """Read and check every row; yield the staging batches (response rows, answer rows). What else it
        learns (quarantined rows, counts) goes to `tally`, since this may run in a forked worker."""
        nonlocal chosen, tally
        stage: list[tuple] = []
        answers: list[tuple] = []
        quarantine: list[tuple] = []
        skipped: Counter = Counter()
        keys_seen: set[str] = set()
        tokens_seen: set[str] = set()
        # The rollup counts of the staged rows, exact when every staged row lands as staged (the usual bulk case).
        value_counts: Counter = Counter()
        day_counts: Counter = Counter()
        staged = tokenless = rows_read = 0
        not_tokens: dict[str, tuple[str, int]] = {}  # loose token column → (a sample cell, cells that are no token)
        check_skip = status_i is not None and export.format == "qualtrics"

        def quarantine_row(number: int, fields: list[str], kind: str, reason: str, moment_id: str | None) -> None:
            raw = json.dumps(dict(zip(columns, fields)), ensure_ascii=False)
            key = "q:" + row_digest("\x1f".join(fields))
            quarantine.append((key, export.format, moment_id, export.path.name, number, kind, reason, raw, imported_at))

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
                if token and index in loose and not tokens.looks_like_token(token):
                    not_tokens[columns[index]] = not_tokens.get(columns[index]) or (token, 0)
                    not_tokens[columns[index]] = (not_tokens[columns[index]][0], not_tokens[columns[index]][1] + 1)
                    token = ""
                if token:
                    break
            if chosen == "?":
                found = (
                    db.execute("SELECT moment FROM invitations WHERE token = ?", [token]).fetchone() if token else None
                )
                if found is None:
                    quarantine_row(
                        number,
                        fields,
                        "unmatched",
                        "no known invitation token, and the file does not say its moment: give --moment",
                        None,
                    )
                    continue
                chosen = found[0]
                plans[chosen] = _plan_for(ws, export, chosen)
            moment_id = fields[moment_i].strip() if moment_i is not None else chosen
            assert moment_id is not None, (
                "no moment column: _choose_moment named the moment, or the first known token did (above)"
            )
            plan = plans.get(moment_id)
            if plan is None:
                if moment_id not in ws.moments:
                    quarantine_row(
                        number,
                        fields,
                        "invalid",
                        f"unknown moment {moment_id!r}: use a moment id of the workspace",
                        None,
                    )
                    continue
                plan = plans[moment_id] = _plan_for(ws, export, moment_id)
            joined = "\x1f".join(fields)
            # The stored hash covers the cells and how they are read: a changed mapping re-reads the row.
            content_hash = hashlib.sha1(f"{joined}\x1e{plan.signature}\x1e{reading}".encode()).hexdigest()
            raw_id = fields[rid_i].strip() if rid_i is not None else ""
            # The row's own digest names a response without an id; otherwise settle computes it from the staged
            # cells only if a quarantined row may have to leave (`cx_row_digest`): a hash per row saved.
            row_hash = None if raw_id else row_digest(joined)
            response_id = raw_id or f"h{row_hash}"
            response_key = f"{export.format}:{moment_id}:{response_id}"
            complete, incomplete = 1, None
            if fin_i is not None and fields[fin_i].strip().lower() in FALSE_WORDS:
                complete, incomplete = 0, "partial" if conv.partial_without_submit else "unfinished"
            when_text = fields[sub_i].strip() if sub_i is not None else ""
            if not when_text and start_i is not None:
                # No submission time: a partial response (Typeform leaves Submit Date empty), dated by its start.
                when_text, complete, incomplete = fields[start_i].strip(), 0, incomplete or "partial"
            if not when_text:
                if complete == 0 or (sub_i is not None and conv.partial_without_submit):
                    skipped[incomplete or "partial"] += 1  # never counts, and has no time to be stored with
                    continue
                quarantine_row(
                    number, fields, "invalid", "no submission time: export the submission date column", moment_id
                )
                continue
            try:
                submitted, day = clock.read(when_text)
            except ValueError as exc:
                quarantine_row(number, fields, "invalid", str(exc), moment_id)
                continue
            values = []
            errors = []
            scores: list[int | None] = [None, None, None]
            for reader in plan.readers:
                try:
                    value = reader.read(fields[reader.index])
                except ValueProblem as exc:
                    errors.append(str(exc))
                    continue
                if value is not None:
                    if reader.indicator is not None:
                        # Staged as the row's score only: settle writes its answer row in SQL (stage_indicators).
                        assert value[0] is not None, "an indicator (nps, csat, ces) reads as a number"
                        scores[reader.indicator] = int(value[0])
                    else:
                        values.append((number, reader.id, value[0], value[1]))
            if errors:
                quarantine_row(number, fields, "invalid", "; ".join(errors), moment_id)
                continue
            if complete:
                for slot, qid in plan.indicators:
                    if scores[slot] is not None:
                        value_counts[moment_id, day, qid, scores[slot]] += 1
                for _, qid, value_num, _ in values:
                    if value_num is not None:
                        value_counts[moment_id, day, qid, int(value_num)] += 1
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
            stage.append(
                (
                    number,
                    response_key,
                    content_hash,
                    row_hash,
                    moment_id,
                    token or None,
                    email or None,
                    (fields[ext_i].strip() or None) if ext_i is not None else None,
                    submitted,
                    day,
                    complete,
                    "counted" if complete else "partial",
                    incomplete,
                    joined,
                    *scores,
                )
            )
            answers.extend(values)
            if len(stage) >= 20000:
                yield stage, answers
                stage, answers = [], []
        if stage:
            yield stage, answers
        tally = _Tally(
            rows_read=rows_read,
            skipped=dict(skipped),
            quarantine=quarantine,
            moment=chosen,
            notes=[f"{export.path}: {note}" for plan in plans.values() for note in plan.notes]
            + [
                f"{export.path}: column {name!r} holds no invitation tokens ({n} cell(s), e.g. {sample!r}): not read "
                f"as the token; those rows are matched by email or external reference (name the token column "
                f"with responses.token_column if it is another)"
                for name, (sample, n) in not_tokens.items()
            ],
            facts=Facts(
                repeated_keys=len(keys_seen) < staged,
                tokenless=tokenless > 0,
                repeated_tokens=len(tokens_seen) < staged - tokenless,
                value_counts=value_counts,
                day_counts=day_counts,
                id_column=columns[rid_i] if rid_i is not None else None,
                indicators=[(m, slot, qid) for m, plan in plans.items() for slot, qid in plan.indicators],
                digests_in_sql=True,
            ),
        )

    if chosen != "?" and parallel_possible(export.path.stat().st_size):
        # Big files: a forked worker reads and checks while this process writes the staging batches.
        batches, finish = _in_worker(produce, lambda: tally)
    else:
        batches, finish = produce(), lambda: tally
    try:
        for stage, answers in batches:
            # One transaction per batch (not one commit per row).
            db.execute("BEGIN")
            db.conn.executemany(
                "INSERT INTO temp.stage (row_number, response_key, content_hash, row_hash, moment, token, email,"
                " external_id, submitted_at, day, complete, status, incomplete, fields, score_nps, score_csat, score_ces)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                stage,
            )
            db.conn.executemany("INSERT INTO temp.stage_answers VALUES (?,?,?,?)", answers)
            db.execute("COMMIT")
    finally:
        if hasattr(batches, "close"):
            batches.close()
    result = finish()
    report.rows_read, report.skipped, quarantine, facts = (
        result.rows_read,
        result.skipped,
        result.quarantine,
        result.facts,
    )
    report.notes.extend(result.notes)
    if report.moment is None and result.moment not in (None, "?"):
        report.moment = result.moment
    settle(ws, db, export, report, quarantine, imported_at, secret, columns, facts, reread=reread)
    return report


def question_label(ws: Workspace, qid: str) -> str:
    return localise(ws.questions[qid].text, ws.settings.default_language, ws.settings.default_language)
