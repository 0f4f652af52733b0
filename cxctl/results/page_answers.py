"""Storing answers that arrive one by one (the survey page of `cxctl serve`) through the import's own
path: staged like an export's rows, then settled by `response_store.settle` in one transaction, so the
scorecard, follow-ups, reasons, verbatims and export-person see them exactly as imported ones."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlite_utils

from cxctl.core import tokens
from cxctl.core.timeutil import to_db
from cxctl.results.formats import Export
from cxctl.results.response_store import STAGE_DDL, Facts, ImportReport, settle
from cxctl.workspace.loader import Workspace

# The indicator columns of a response row (score_nps, score_csat, score_ces), as the import fills them.
INDICATOR_TYPES = ("nps", "csat", "ces")


@dataclass
class OneResponse:
    """One response to store: the token of the invitation it answers, its moment, and its answers as the
    import reads them (scales as numbers, a single choice as its id, several choices as a JSON list, open
    text as text)."""

    token: str
    moment: str
    answers: dict[str, tuple[float | None, str | None]]
    submitted_at: datetime
    complete: bool = True


@dataclass
class StoredResponse:
    """What became of one response."""

    outcome: str  # stored | unmatched (no invitation carries its token any more)
    response_id: int | None
    status: str | None  # counted | partial | duplicate


def store_response(
    ws: Workspace,
    db: sqlite_utils.Database,
    response: OneResponse,
    secret: tokens.Keyring | bytes,
    source: str = "cxctl",
) -> StoredResponse:
    """Store one response; see store_responses."""
    return store_responses(ws, db, [response], secret, source)[0]


def store_responses(
    ws: Workspace,
    db: sqlite_utils.Database,
    responses: list[OneResponse],
    secret: tokens.Keyring | bytes,
    source: str = "cxctl",
) -> list[StoredResponse]:
    """Store responses through the import's own path (`settle`), in one transaction: the scorecard rollups,
    follow-ups, reasons, verbatims and export-person see them at once.

    One response per invitation and source (its key is the token): storing again replaces it (the
    respondent corrected it), an identical one is left unchanged, and of two for one token in the same
    call the later wins. The caller checks the tokens' signatures and that the people are not forgotten.
    """
    local = ZoneInfo(ws.settings.timezone)
    indicators: dict[str, list[str | None]] = {}
    stage, staged_answers = [], []
    value_counts: Counter = Counter()
    day_counts: Counter = Counter()
    keys = []
    for number, response in enumerate(responses, start=1):
        moment, answers = response.moment, response.answers
        if moment not in indicators:
            questions = ws.moments[moment].questions
            indicators[moment] = [
                next((q for q in questions if ws.questions[q].type == kind), None) for kind in INDICATOR_TYPES
            ]
        scores = [
            int(score) if q in answers and (score := answers[q][0]) is not None else None for q in indicators[moment]
        ]
        submitted, day = to_db(response.submitted_at), response.submitted_at.astimezone(local).date().isoformat()
        ordered = [(qid, *answers[qid]) for qid in ws.moments[moment].questions if qid in answers]
        content_hash = hashlib.sha1(json.dumps(ordered, ensure_ascii=False).encode()).hexdigest()
        key = f"{source}:{moment}:{response.token}"
        keys.append(key)
        cells = [
            response.token,
            *(
                "" if text is None and num is None else (text if text is not None else repr(num))
                for _, num, text in ordered
            ),
        ]
        if response.complete:
            for qid, num, _ in ordered:
                if num is not None:
                    value_counts[moment, day, qid, int(num)] += 1
        day_counts[moment, day, int(response.complete)] += 1
        stage.append(
            (
                number,
                key,
                content_hash,
                moment,
                response.token,
                submitted,
                day,
                int(response.complete),
                "counted" if response.complete else "partial",
                "\x1f".join(cells),
                *scores,
            )
        )
        staged_answers += [(number, qid, num, text) for qid, num, text in ordered]
    for statement in STAGE_DDL.split(";"):
        db.execute(statement)
    db.execute("DELETE FROM temp.stage")
    db.execute("DELETE FROM temp.stage_answers")
    db.conn.executemany(
        "INSERT INTO temp.stage (row_number, response_key, content_hash, moment, token, submitted_at, day,"
        " complete, status, fields, score_nps, score_csat, score_ces) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        stage,
    )
    db.conn.executemany("INSERT INTO temp.stage_answers VALUES (?, ?, ?, ?)", staged_answers)
    repeated = len(set(keys)) < len(keys)
    facts = Facts(repeated_keys=repeated, repeated_tokens=repeated, value_counts=value_counts, day_counts=day_counts)
    columns = ["token", *dict.fromkeys(q for r in responses for q in ws.moments[r.moment].questions)]
    export = Export(path=Path(source), format=source, columns=columns, question_texts={}, rows=iter(()), sha256="")
    report = ImportReport(source, source, None, rows_read=len(responses))
    settle(
        ws,
        db,
        export,
        report,
        [],
        to_db(max(r.submitted_at for r in responses)),
        lambda: secret,
        columns,
        facts,
        log=False,
    )
    found = {
        key: (rid, status)
        for key, rid, status in db.execute(
            "SELECT response_key, id, status FROM responses WHERE response_key IN (SELECT value FROM json_each(?))",
            [json.dumps(keys)],
        ).fetchall()
    }
    return [
        StoredResponse("stored", *found[key]) if key in found else StoredResponse("unmatched", None, None)
        for key in keys
    ]
