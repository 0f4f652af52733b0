"""The closed loop's NPS counts (after a resolved case, and the others) read the responses' local day, through
a covering index or a dimension's rollup; they must equal the count over each answer's submission time."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxctl import store
from cxctl.core.timeutil import local_midnight, to_db
from cxctl.results.closed_loop import closed_loop_figures
from cxctl.results.page_answers import OneResponse, store_responses
from cxctl.results.stats import Nps
from cxctl.store import dimensions

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
MOMENTS = ["nps_relational", "store_visit"]
# Answers around local midnight, across the October 2026 change of time (25th), as minutes from 2026-10-20 00:00 UTC.
ANSWER = st.tuples(
    st.integers(0, 5),  # contact
    st.sampled_from(MOMENTS),
    st.integers(0, 8 * 24 * 60),
    st.integers(0, 10),
    st.booleans(),  # complete (counted) or partial
)
CASE = st.tuples(st.integers(0, 40), st.sampled_from(["open", "resolved"]), st.integers(0, 8 * 24 * 60))


def _expected(ws, db, since: date, until: date, moment: str | None) -> tuple[int, ...]:
    """The six counts over each counted answer's submission time (the definition, row by row in Python)."""
    tz = ZoneInfo(ws.settings.timezone)
    start, end = to_db(local_midnight(since, tz)), to_db(local_midnight(until + timedelta(days=1), tz))
    resolved = db.execute(
        """SELECT o.contact_id, f.done_at FROM followups f JOIN responses o ON o.id = f.response_id
           WHERE f.status = 'resolved' AND f.done_at IS NOT NULL"""
    ).fetchall()
    counts = [0] * 6
    for score, submitted, contact, moment_id in db.execute(
        "SELECT score_nps, submitted_at, contact_id, moment FROM responses WHERE status = 'counted'"
    ).fetchall():
        if score is None or not start <= submitted < end or moment not in (None, moment_id):
            continue
        after = any(c == contact and done < submitted for c, done in resolved)
        counts[(0 if after else 3) + (0 if score >= 9 else 1 if score >= 7 else 2)] += 1
    return tuple(counts)


def _nps(counts) -> float | None:
    return round(Nps(*counts).score, 1) if sum(counts) else None


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    answers=st.lists(ANSWER, min_size=1, max_size=25),
    cases=st.lists(CASE, max_size=4),
    period=st.tuples(st.integers(19, 28), st.integers(0, 4)),
    moment=st.sampled_from([None, *MOMENTS]),
    declared=st.booleans(),
)
def test_closed_loop_counts_equal_the_count_by_submission_time(
    results_ws, sql, tmp_path_factory, answers, cases, period, moment, declared
):
    """Random answers near local midnights (and the night the clocks go back), resolved or open cases, a
    period, one moment or all, with or without a declared dimension: the counts equal the definition's."""
    ws, _ = results_ws
    db = store.connect(tmp_path_factory.mktemp("loop") / "cxctl.db")
    contacts = [
        sql.add_contact(db, f"C{i}", None, None, json.dumps({"region": "nord" if i % 2 else "sud"})) for i in range(6)
    ]
    start = datetime(2026, 10, 20, tzinfo=UTC)
    responses = []
    for contact, moment_id, minute, score, complete in answers:
        token = sql.add_invitation(db, contacts[contact], moment_id, "2026-10-19 08:00:00")
        when = start + timedelta(minutes=minute)
        responses.append(OneResponse(token, moment_id, {"nps": (score, None)}, when, complete))
    store_responses(ws, db, responses, sql.secret.encode())
    ids = [row[0] for row in db.execute("SELECT id FROM responses ORDER BY id").fetchall()]
    for number, status, minute in cases:
        done = to_db(start + timedelta(minutes=minute))
        db.execute(
            "INSERT OR REPLACE INTO followups (response_id, status, done_at, opened_at) VALUES (?, ?, ?, ?)",
            [ids[number % len(ids)], status, done if status == "resolved" else None, done],
        )
    if declared:
        dimensions.sync(db, ["region"])
    since = date(2026, 10, period[0])
    until = since + timedelta(days=period[1])
    loop = closed_loop_figures(ws, db, since, until, NOW, moment)
    expected = _expected(ws, db, since, until, moment)
    assert (loop.resurveyed_n, loop.others_n) == (sum(expected[:3]), sum(expected[3:]))
    assert (loop.resurveyed_nps, loop.others_nps) == (_nps(expected[:3]), _nps(expected[3:]))
    db.conn.close()
