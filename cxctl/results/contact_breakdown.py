"""Scorecards broken down by a contact column or attribute, counted fast over millions of responses.

Split from the scorecard for size: the scorecard decides what to count, this module counts it per
contact group (a packed byte vector or per-value columns, see fetch_by_contact)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

import sqlite_utils

from cxctl.workspace.loader import Workspace


def indicator_questions(ws: Workspace, moment_id: str) -> list[str | None]:
    """The moment's indicator question ids, in score column order (nps, csat, ces): the first of each type."""
    out: list[str | None] = [None, None, None]
    for qid in ws.moments[moment_id].questions:
        index = {"nps": 0, "csat": 1, "ces": 2}.get(ws.questions[qid].type)
        if index is not None and out[index] is None:
            out[index] = qid
    return out


PIVOT_LIMIT = 32  # per-value columns beat sorting millions of rows up to a few dozen values (measured at 5M)
VECTOR_VALUES = 65535
VECTOR_LIMIT = 50_000_000


def _group_table(conn, exprs: list[str], params: list) -> None:
    conn.execute("DROP TABLE IF EXISTS temp.sc_groups")
    conn.execute("CREATE TEMP TABLE sc_groups (contact_id INTEGER PRIMARY KEY, g TEXT)")
    conn.execute(f"INSERT INTO temp.sc_groups SELECT c.id, {' || char(31) || '.join(exprs)} FROM contacts c", params)


def _pivot_columns(alias: str, count: int) -> str:
    """Per-group counts read from the group vector: byte `contact_id` of :groups is the group number (0 = none).
    The numbers are generated here (1…count), never taken from the data."""
    cell = f"substr(:groups, {alias}.contact_id, 1)"
    return ", ".join(["COUNT(*)"] + [f"SUM({cell} = x'{number:02x}')" for number in range(1, count + 1)])


def _width(count: int) -> int:
    return 1 if count <= 255 else 2


def _vector_cell(alias: str, count: int) -> str:
    width = _width(count)
    return f"substr(:groups, ({alias}.contact_id - 1) * {width} + 1, {width})"


def _decode(names: list[str], cell: bytes | None) -> str:
    """A group vector cell → its group name; no contact, an unknown contact or 0 → no group."""
    number = int.from_bytes(cell, "big") if cell else 0
    return names[number] if number < len(names) else names[0]


def _unpivot(names: list[str], counts) -> list[tuple[str, int]]:
    """(total, n₁…n_k) → [(group, n)], the rows of no group (no contact, or none of the values) first. A
    column whose rows all have no contact (anonymous answers, responses.match none) sums to NULL: 0."""
    total, *parts = counts
    parts = [n or 0 for n in parts]
    return [(names[0], total - sum(parts))] + list(zip(names[1:], parts))


def _sent_query(
    conn,
    hour: str,
    first: str,
    last: str,
    groups: bytes | None,
    count: int,
    exprs: list[str],
    params: list,
    nobody: str,
):
    if groups is not None and count <= PIVOT_LIMIT:
        return conn.execute(
            f"""SELECT i.moment, {hour}, {_pivot_columns("i", count)} FROM invitations i INDEXED BY invitations_sent_hour
                WHERE i.status = 'sent' AND i.kind = 'invitation' AND +{hour} BETWEEN :first AND :last GROUP BY 1, 2""",
            {"groups": groups, "first": first, "last": last},
        ).fetchall()
    if groups is not None:
        return conn.execute(
            f"""SELECT i.moment, {hour}, {_vector_cell("i", count)}, COUNT(*) FROM invitations i INDEXED BY invitations_sent_hour
                WHERE i.status = 'sent' AND i.kind = 'invitation' AND +{hour} BETWEEN :first AND :last GROUP BY 1, 2, 3""",
            {"groups": groups, "first": first, "last": last},
        ).fetchall()
    _group_table(conn, exprs, params)
    return conn.execute(
        f"""SELECT COALESCE(g.g, ?), i.moment, {hour}, COUNT(*) FROM invitations i INDEXED BY invitations_sent_hour
            LEFT JOIN temp.sc_groups g ON g.contact_id = i.contact_id
            WHERE i.status = 'sent' AND i.kind = 'invitation' AND {hour} BETWEEN ? AND ?
            GROUP BY 1, 2, 3""",
        [nobody, first, last],
    ).fetchall()


def _sent_by_contact(
    path: str,
    first: str,
    last: str,
    groups: bytes | None,
    count: int,
    exprs: list[str],
    params: list,
    nobody: str,
    result: list,
) -> None:
    """Sent invitations per (group, moment, UTC hour), on its own read-only connection so it runs beside the
    responses query (sqlite3 releases the GIL while a statement runs: two cores, two scans)."""
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA cache_size=-262144")
            hour = "substr(COALESCE(i.sent_at, i.send_at), 1, 13)"  # as in the partial index invitations_sent_hour
            result.extend(_sent_query(conn, hour, first, last, groups, count, exprs, params, nobody))
        finally:
            conn.close()
    except Exception as exc:  # handed back to the caller's thread
        result.append(exc)


def fetch_by_contact(
    ws: Workspace,
    db: sqlite_utils.Database,
    exprs: list[str],
    params: list,
    moments: list[str],
    labels: dict[date, list[str]],
    hours: list[tuple[str, str]],
) -> dict[tuple, dict]:
    """Breakdown by contact columns/attributes: one pass over the responses' score columns (covering index) and
    one over the sent invitations (partial index), in parallel.

    Each contact's group value (the attribute read through a bound JSON path) is computed once. With few
    distinct values (the usual segment, channel or region), they are numbered and packed into a byte
    vector indexed by contact id, bound as one parameter: the scans read the group with `substr` instead of
    a B-tree look-up per row, and count per group in columns (SUM(group = n)), following the index order
    with no sort of millions of rows. Otherwise a join and a GROUP BY do the same, slower.
    """
    import threading

    width = len(exprs)
    nobody = "\x1f".join([""] * width)
    out: dict[tuple, dict] = defaultdict(lambda: {"scores": defaultdict(int), "responses": 0, "sent": 0})
    if not labels:
        return out
    by_hour: dict[str, list[str]] = defaultdict(list)
    for hour, label in hours:
        by_hour[hour].append(label)
    q = db.execute
    _group_table(db.conn, exprs, params)
    values = [row[0] for row in q("SELECT DISTINCT g FROM temp.sc_groups ORDER BY g").fetchall()]
    top = q("SELECT COALESCE(MAX(contact_id), 0) FROM temp.sc_groups").fetchone()[0]
    groups: bytes | None = None
    if len(values) <= VECTOR_VALUES and top <= VECTOR_LIMIT:
        number = {value: i + 1 for i, value in enumerate(values)}
        width = _width(len(values))
        vector = bytearray(top * width)
        for contact_id, value in q("SELECT contact_id, g FROM temp.sc_groups WHERE contact_id > 0").fetchall():
            vector[(contact_id - 1) * width : contact_id * width] = number[value].to_bytes(width, "big")
        groups = bytes(vector)
    path = db.execute("PRAGMA main.database_list").fetchone()[2]
    sent_rows: list = []
    # The sent counts are read on a second connection to the same file, in parallel. An in-memory
    # store (store.read() before the first import) has no file, and nothing sent to count.
    worker = (
        threading.Thread(
            target=_sent_by_contact,
            args=(path, min(by_hour), max(by_hour), groups, len(values), exprs, params, nobody, sent_rows),
        )
        if path
        else None
    )
    if worker is not None:
        worker.start()
    try:
        wanted = set(moments)
        indicators = {m: indicator_questions(ws, m) for m in wanted}
        by_day = {d.isoformat(): ls for d, ls in labels.items()}
        span = {"first": min(by_day), "last": max(by_day)}
        if groups is not None and len(values) > PIVOT_LIMIT:
            rows = q(
                f"""SELECT r.moment, r.day, r.score_nps, r.score_csat, r.score_ces, {_vector_cell("r", len(values))}, COUNT(*)
                         FROM responses r INDEXED BY responses_scores
                         WHERE r.status = 'counted' AND +r.day BETWEEN :first AND :last GROUP BY 1, 2, 3, 4, 5, 6""",
                {**span, "groups": groups},
            )
            names = [nobody] + values
            tallies = (
                (moment_id, day, (nps, csat, ces), [(_decode(names, cell), n)])
                for moment_id, day, nps, csat, ces, cell, n in rows.fetchall()
            )
        elif groups is not None:
            rows = q(
                f"""SELECT r.moment, r.day, r.score_nps, r.score_csat, r.score_ces, {_pivot_columns("r", len(values))}
                         FROM responses r INDEXED BY responses_scores
                         WHERE r.status = 'counted' AND +r.day BETWEEN :first AND :last GROUP BY 1, 2, 3, 4, 5""",
                {**span, "groups": groups},
            )
            # `+r.day`: the day range must not become an index search, which would lose the index order and sort.
            names = [nobody] + values
            tallies = (
                (moment_id, day, rest[:3], _unpivot(names, rest[3:])) for moment_id, day, *rest in rows.fetchall()
            )
        else:
            rows = q(
                """SELECT r.moment, r.day, r.score_nps, r.score_csat, r.score_ces, COALESCE(g.g, :nobody), COUNT(*)
                        FROM responses r INDEXED BY responses_scores LEFT JOIN temp.sc_groups g ON g.contact_id = r.contact_id
                        WHERE r.status = 'counted' AND r.day BETWEEN :first AND :last GROUP BY 1, 2, 3, 4, 5, 6""",
                {**span, "nobody": nobody},
            )
            tallies = (
                (moment_id, day, (nps, csat, ces), [(group, n)])
                for moment_id, day, nps, csat, ces, group, n in rows.fetchall()
            )
        for moment_id, day, scores, counts in tallies:
            if moment_id not in wanted:
                continue
            questions = indicators[moment_id]
            for group, n in counts:
                if not n:
                    continue
                key = tuple(group.split("\x1f"))
                for label in by_day.get(day, ()):
                    cell = out[key + (moment_id, label)]
                    cell["responses"] += n
                    for qid, value in zip(questions, scores):
                        if qid is not None and value is not None:
                            cell["scores"][(qid, value)] += n
    finally:
        if worker is not None:
            worker.join()
    if sent_rows and isinstance(sent_rows[-1], Exception):
        raise sent_rows[-1]
    names = [nobody] + values
    if groups is not None and len(values) <= PIVOT_LIMIT:
        sent_rows = [
            (group, moment, at, n) for moment, at, *counts in sent_rows for group, n in _unpivot(names, counts) if n
        ]
    elif groups is not None:
        sent_rows = [(_decode(names, cell), moment, at, n) for moment, at, cell, n in sent_rows]
    for group, moment_id, hour, n in sent_rows:
        if moment_id not in wanted:
            continue
        key = tuple(group.split("\x1f"))
        for label in by_hour.get(hour, ()):
            out[key + (moment_id, label)]["sent"] += n
    return out
