"""Benchmark of the results area: responses import and scorecards (run on demand:
`python bench/results_scorecard.py [--scale 0.1] [--rounds 3]`; --scale 1 = 1,000,000 imported and
5,000,000 scored responses).

Generated data under bench/data/results/ (git-ignored, reused by later runs of the same scale). Each
round runs every contender once, baselines first:

Import (N_IMPORT responses, generic CSV with tokens, answering N_IMPORT sent invitations):
  - the sqlite3 shell's `.import` of the file into an empty table (the baseline issue 9 named);
  - the floor: the same writes done by the sqlite3 shell alone on a copy of the pre-import store (token
    join, responses with their indexes, NPS and comment answers, the rollups' increments, commit; in C,
    no checks, no quarantine);
  - `cxctl responses import` (the CLI, a fresh process), on another copy of the same store.
Scorecards (N_SCORE counted responses over two years, six moments, N_SCORE/10 contacts):
  - three plain-SQL baselines for moment × month, weakest to strongest: responses joined to answers
    (the baseline issue 9 named; first round only, it is slow); the GROUP BY on the responses' own score columns (through the store's covering index); the same
    with an expression index on the month (built untimed, dropped after);
  - `compute_scorecard(by=moment,month)` in a warm process and `cxctl scorecard --by moment,month`
    cold (a new process; the OS page cache is warm for every contender alike);
  - a breakdown by a contact attribute: the plain GROUP BY over responses joined to contacts
    (json_extract of the attribute) against `cxctl scorecard --by region` / `--by canal` /
    `--by segment,quarter`, each a new process.
The rollups' full rebuild (what a bulk load that bypasses the import costs) is timed once when the
store is generated.
Daily import (daily_rows, also with CXCTL_BENCH_RESULTS_PART=daily alone): 1,000 rows into the scored store
(its cases opened) against the same file into a store of its 1,000 invitations only, alternating.
Dimensions (dimension_rows): `cxctl scorecard --by region` with region declared in `dimensions:` (a copy
of the store with its rollups, built and timed once) against the same command undeclared and the plain
GROUP BY, alternating.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import harness
from harness import Row, Sample

from cxctl import store
from cxctl.core import tokens
from cxctl.validation import load_workspace

SECRET = harness.SECRET
MOMENTS = [
    ("nps_relational", "nps"),
    ("delivery_csat", "csat"),
    ("support_ces", "ces"),
    ("store_nps", "nps"),
    ("web_csat", "csat"),
    ("onboarding_nps", "nps"),
]

WORKSPACE = """\
workspace:
  name: Bench
  timezone: Europe/Paris
  sender: {name: Bench, address: bench@example.com}
  survey_url: "https://survey.example/s/{moment}?t={token}"
  min_responses: 30
journeys:
  shop: {name: Shop, stages: [buy, deliver, help, love]}
questions:
  nps: {type: nps, text: Recommend?}
  nps_why: {type: open, text: Why?}
  csat: {type: csat, text: Satisfied?}
  ces: {type: ces, text: Easy?}
moments:
"""


def write_workspace(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    text = WORKSPACE
    for moment, question in MOMENTS:
        extra = ", nps_why" if question == "nps" else ""
        text += (
            f"  {moment}:\n    journey: shop\n    stage: love\n    kind: transactional\n"
            f"    trigger: {{event: e_{moment}}}\n    questions: [{question}{extra}]\n    targets: {{}}\n"
        )
    (root / "cxctl.yaml").write_text(text, encoding="utf-8")


# The writes any importer must make, done by the sqlite3 shell alone (C, no checks, no quarantine):
# stage the file, match each token to its invitation, write responses (with the indexes the scorecard
# and follow-ups read through), their NPS and comment answers, the rollups' increments, commit. Run on a
# copy of the pre-import store: the floor of the import in this store, whatever the language.
SHELL_WRITES = """\
PRAGMA synchronous=NORMAL;
PRAGMA cache_size=-65536;
BEGIN;
CREATE TEMP TABLE stage (response_id TEXT, token TEXT, submitted_at TEXT, nps TEXT, nps_why TEXT);
.import --csv --skip 1 {export} stage
INSERT INTO responses (response_key, content_hash, invitation_id, contact_id, moment, source, submitted_at, day,
                       complete, status, score_nps, imported_at)
  SELECT s.response_id, s.response_id, i.id, i.contact_id, i.moment, 'shell', s.submitted_at, substr(s.submitted_at, 1, 10),
         1, 'counted', CAST(s.nps AS INTEGER), '2027-01-01 00:00:00'
  FROM stage s JOIN invitations i ON i.token = s.token ORDER BY s.rowid;
INSERT INTO answers SELECT r.id, 'nps', r.score_nps, NULL FROM responses r;
INSERT INTO answers SELECT r.id, 'nps_why', NULL, s.nps_why FROM stage s JOIN responses r ON r.response_key = s.response_id
  WHERE s.nps_why <> '';
INSERT INTO score_rollup (moment, day, question, value, n)
  SELECT moment, day, 'nps', score_nps, COUNT(*) FROM responses WHERE status = 'counted' GROUP BY 1, 2, 3, 4
  ON CONFLICT DO UPDATE SET n = n + excluded.n;
INSERT INTO response_rollup (moment, day, n)
  SELECT moment, day, COUNT(*) FROM responses WHERE status = 'counted' GROUP BY 1, 2
  ON CONFLICT DO UPDATE SET n = n + excluded.n;
COMMIT;
"""

# Moment × month in plain SQL, weakest to strongest.
JOIN_SQL = (
    "SELECT r.moment, strftime('%Y-%m', r.submitted_at) AS month, a.question, a.value_num, COUNT(*) "
    "FROM responses r JOIN answers a ON a.response_id = r.id "
    "WHERE r.status = 'counted' AND a.value_num IS NOT NULL GROUP BY 1, 2, 3, 4;"
)
DIRECT_SQL = (
    "SELECT moment, substr(day, 1, 7) AS month, score_nps, score_csat, score_ces, COUNT(*) "
    "FROM responses WHERE status = 'counted' GROUP BY 1, 2, 3, 4, 5;"
)
MONTH_INDEX = (
    "CREATE INDEX bench_month ON responses(status, moment, substr(day, 1, 7), score_nps, score_csat, score_ces);"
)
# The breakdown by a contact attribute in plain SQL.
ATTRIBUTE_SQL = (
    "SELECT json_extract(c.attributes, '$.region') AS region, r.score_nps, r.score_csat, r.score_ces, COUNT(*) "
    "FROM responses r JOIN contacts c ON c.id = r.contact_id WHERE r.status = 'counted' GROUP BY 1, 2, 3, 4;"
)
NOW = "2027-01-05T00:00:00+00:00"


def import_rows(n: int, rounds: int) -> list[Row]:
    data = harness.data_dir("results")
    ws_root = data / f"import_ws_{n}"
    export = data / f"responses_{n}.csv"
    base = data / f"import_base_{n}.db"
    if not (export.exists() and base.exists()):
        started = time.perf_counter()
        generate_import(data, ws_root, export, base, n)
        harness.say(f"generated the import data ({n:,} rows) in {time.perf_counter() - started:.0f} s")
    write_workspace(ws_root)
    database = load_workspace(ws_root).database
    raw_db, floor_db = data / "shell_import.db", data / "shell_writes.db"

    def dot_import() -> Sample:
        harness.remove_db(raw_db)
        return harness.shell(raw_db, ".mode csv", f".import {export} raw_responses")

    def floor() -> Sample:
        harness.remove_db(floor_db)
        shutil.copyfile(base, floor_db)
        return harness.shell(floor_db, stdin=SHELL_WRITES.format(export=export))

    def cxctl() -> Sample:
        harness.remove_db(database)
        shutil.copyfile(base, database)
        command = harness.cxctl_command(
            "responses",
            "import",
            str(export),
            "-w",
            str(ws_root),
            "--moment",
            "nps_relational",
            "--now",
            "2027-01-01",
            "--json",
        )
        sample = harness.run_measured(command, harness.cxctl_env())
        report = json.loads(sample.stdout)
        assert report["counted"] == n, {k: v for k, v in report.items() if not isinstance(v, list)}
        return sample

    series = harness.alternate({".import": dot_import, "floor": floor, "cxctl": cxctl}, rounds)
    for path in (raw_db, floor_db):
        harness.remove_db(path)
    dot, floor_series = series[".import"], series["floor"]
    dot.label = "sqlite3 `.import`"
    data_text = f"{n:,} responses (generic CSV)"
    floor_series.label = "the same writes by the sqlite3 shell alone"
    return [
        Row(
            "results",
            "floor: the import's writes by the sqlite3 shell (rollups included)",
            data_text,
            floor_series,
            dot,
            "",
            "C, no checks",
        ),
        Row(
            "results",
            "`cxctl responses import` (CLI, rollups maintained)",
            data_text,
            series["cxctl"],
            dot,
            "≤ 3× (issue 9)",
        ),
        Row(
            "results",
            "`cxctl responses import` against its floor",
            data_text,
            series["cxctl"],
            floor_series,
            "≤ 1.5× the floor",
        ),
    ]


DAILY = 1000  # rows of the daily import


def daily_rows(n: int, rounds: int) -> list[Row]:
    """A daily import of 1,000 rows into the scored store of n responses (its cases opened and checked
    already, as a store in use) against the same file into a store holding only its 1,000 invitations:
    what the import pays for the history. Each round imports into a fresh copy of each store."""
    data = harness.data_dir("results")
    big_root, small_root = data / f"daily_ws_{n}", data / "daily_ws_empty"
    export, big_base, small_base = (
        data / f"daily_{DAILY}.csv",
        data / f"daily_base_{n}.db",
        data / "daily_base_empty.db",
    )
    if not (export.exists() and big_base.exists() and small_base.exists()):
        started = time.perf_counter()
        generate_daily(data, n, big_root, small_root, export, big_base, small_base)
        harness.say(f"generated the daily import data in {time.perf_counter() - started:.0f} s")

    def contender(root: Path, base: Path) -> Callable[[], Sample]:
        def run() -> Sample:
            database = load_workspace(root).database
            harness.remove_db(database)
            shutil.copyfile(base, database)
            os.sync()  # the copy's writeback (900 MB at 1M responses) must not land inside the timed run
            command = harness.cxctl_command(
                "responses", "import", str(export), "-w", str(root), "--moment", "nps_relational",
                "--now", "2027-01-01", "--json",
            )  # fmt: skip
            sample = harness.run_measured(command, harness.cxctl_env())
            assert json.loads(sample.stdout)["counted"] == DAILY, sample.stdout[:500]
            return sample

        return run

    series = harness.alternate(
        {"empty": contender(small_root, small_base), "big": contender(big_root, big_base)}, rounds
    )
    series["empty"].label = f"the same import into a store of its {DAILY:,} invitations only"
    return [
        Row(
            "results",
            f"`cxctl responses import` of {DAILY:,} rows into a store of {n:,} responses",
            f"{DAILY:,} responses (generic CSV)",
            series["big"],
            series["empty"],
            "≤ 1.5× (cost of the file, not of the store)",
        )
    ]


def generate_daily(
    data: Path, n: int, big_root: Path, small_root: Path, export: Path, big_base: Path, small_base: Path
) -> None:
    """The scored store of n responses with 1,000 more sent invitations and its cases opened (the check
    recorded), a store of those 1,000 invitations only, and the 1,000-row export answering them."""
    from cxctl.results.cases import open_cases

    ws_big, _ = generate_scored_store(data, n)
    rng = random.Random(2)
    secret = SECRET.encode()
    toks = [tokens.new_token(secret) for _ in range(DAILY)]
    first = n // 10 + 1_000_000  # contact ids above the scored store's
    when = datetime(2027, 1, 1, tzinfo=UTC)
    for root, source in ((big_root, ws_big.database), (small_root, None)):
        shutil.rmtree(root, ignore_errors=True)
        write_workspace(root)
        ws = load_workspace(root)
        if source is not None:
            shutil.copyfile(source, ws.database)
        db = store.connect(ws.database)
        db.execute("BEGIN")
        db.conn.executemany(
            "INSERT INTO contacts (id, external_id, email, segment, attributes, created_at, updated_at)"
            " VALUES (?, ?, ?, 'pro', '{}', '2026-12-01 00:00:00', '2026-12-01 00:00:00')",
            ((first + i, f"D{i}", f"d{i}@example.com") for i in range(DAILY)),
        )
        db.conn.executemany(
            "INSERT INTO invitations (dedupe_key, token, contact_id, moment, send_at, status, sent_at, created_at,"
            " updated_at) VALUES (?, ?, ?, 'nps_relational', ?, 'sent', ?, ?, ?)",
            ((f"daily{i}", toks[i], first + i, t, t, t, t) for i in range(DAILY) for t in ["2026-12-30 08:00:00"]),
        )
        db.execute("COMMIT")
        started = time.perf_counter()
        opened = open_cases(ws, db, when)
        harness.say(f"  {root.name}: {len(opened):,} cases opened in {time.perf_counter() - started:.1f} s")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.conn.close()
        shutil.copyfile(ws.database, big_base if source is not None else small_base)
    with open(export, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["response_id", "token", "submitted_at", "nps", "nps_why"])
        for i in range(DAILY):
            writer.writerow([f"d{i}", toks[i], "2026-12-31 10:00:00", rng.randint(0, 10), "Trop cher" if i % 5 else ""])


def generate_import(data: Path, ws_root: Path, export: Path, base: Path, n: int) -> None:
    """Contacts, sent invitations and an n-row export answering them; `base` keeps the pre-import database."""
    shutil.rmtree(ws_root, ignore_errors=True)
    write_workspace(ws_root)
    ws = load_workspace(ws_root)
    db = store.connect(ws.database)
    rng = random.Random(1)
    secret = SECRET.encode()
    harness.say(f"generating {n:,} contacts, invitations and a {n:,}-row export…")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    toks = [tokens.new_token(secret) for _ in range(n)]
    db.execute("BEGIN")
    db.conn.executemany(
        "INSERT INTO contacts (id, external_id, email, segment, attributes, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, '{}', '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
        ((i, f"C{i}", f"c{i}@example.com", "pro") for i in range(1, n + 1)),
    )
    db.conn.executemany(
        "INSERT INTO invitations (dedupe_key, token, contact_id, moment, send_at, status, sent_at, created_at, updated_at)"
        " VALUES (?, ?, ?, 'nps_relational', ?, 'sent', ?, ?, ?)",
        (
            (f"k{i}", toks[i - 1], i, t, t, t, t)
            for i in range(1, n + 1)
            for t in [(start + timedelta(minutes=i % 400000)).strftime("%Y-%m-%d %H:%M:%S")]
        ),
    )
    db.execute("COMMIT")
    with open(export, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["response_id", "token", "submitted_at", "nps", "nps_why"])
        for i in range(1, n + 1):
            when = (start + timedelta(minutes=i % 400000, hours=30)).strftime("%Y-%m-%d %H:%M:%S")
            writer.writerow([f"r{i}", toks[i - 1], when, rng.randint(0, 10), "Livraison rapide" if i % 5 == 0 else ""])
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()
    shutil.copyfile(ws.database, base)


def generate_scored_store(data: Path, n: int, folder: str | None = None):
    """A workspace under `data/folder` with n counted responses over two years (one per sent invitation,
    n // 10 contacts with a segment and JSON attributes, an open comment on every fifth NPS response),
    rollups built and ANALYZE run. Returns the loaded workspace (its database closed) and the timings of
    the generation and of the rollups' rebuild, or None when a complete store of that size was reused.
    Reused by bench/export_report.py.

    Everything is set-based SQL; the secondary indexes are dropped for the load and built once after, in
    sorted order (a random-order insert into five indexes is what made this take minutes)."""
    ws_root = data / (folder or f"score_ws_{n}")
    if (ws_root / "complete").exists():
        return load_workspace(ws_root), None
    started = time.perf_counter()
    shutil.rmtree(ws_root, ignore_errors=True)
    write_workspace(ws_root)
    ws = load_workspace(ws_root)
    db = store.connect(ws.database)
    contacts = max(1000, n // 10)
    harness.say(f"generating {contacts:,} contacts, {n:,} invitations and responses…")
    tables = ("contacts", "invitations", "responses", "answers")
    indexes = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN (?, ?, ?, ?)",
        tables,
    ).fetchall()
    for name, _ in indexes:
        db.execute(f"DROP INDEX {name}")
    q = db.execute
    q("PRAGMA cache_size=-400000")
    q("BEGIN")
    q("CREATE TEMP TABLE moments_list (k INTEGER PRIMARY KEY, moment TEXT, question TEXT)")
    db.conn.executemany(
        "INSERT INTO temp.moments_list VALUES (?, ?, ?)", [(k, m, qn) for k, (m, qn) in enumerate(MOMENTS)]
    )
    q(f"""WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {contacts})
          INSERT INTO contacts (id, external_id, email, segment, attributes, created_at, updated_at)
          SELECT i, 'C' || i, 'c' || i || '@example.com', CASE i % 4 WHEN 0 THEN 'pro' WHEN 1 THEN 'particulier'
                 WHEN 2 THEN 'premium' ELSE 'entreprise' END,
                 json_object('canal', CASE i % 3 WHEN 0 THEN 'web' WHEN 1 THEN 'magasin' ELSE 'téléphone' END,
                             'region', 'R' || (i % 13)), '2025-01-01 00:00:00', '2025-01-01 00:00:00' FROM seq""")
    # Two years of invitations, one response each (the response rate is not what is measured here).
    q(f"""WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {n})
          INSERT INTO invitations (id, dedupe_key, token, contact_id, moment, send_at, status, sent_at, created_at, updated_at)
          SELECT i, 'k' || i, 't' || i, 1 + (i * 7919) % {contacts}, m.moment, ts, 'sent', ts, ts, ts
          FROM (SELECT i, datetime('2025-01-01', '+' || (i * 104729 % 63072000) || ' seconds') AS ts FROM seq) s
          JOIN temp.moments_list m ON m.k = s.i % 6""")
    q("""INSERT INTO responses (id, response_key, content_hash, invitation_id, contact_id, moment, source, submitted_at, day,
                                complete, status, imported_at, score_nps, score_csat, score_ces)
         SELECT id, 'generic:' || i.moment || ':' || id, '', id, contact_id, i.moment, 'generic',
                datetime(sent_at, '+1 day'), date(datetime(sent_at, '+1 day'), '+1 hour'), 1, 'counted', sent_at,
                CASE m.question WHEN 'nps' THEN abs(random()) % 11 END, CASE m.question WHEN 'csat' THEN 1 + abs(random()) % 5 END,
                CASE m.question WHEN 'ces' THEN 1 + abs(random()) % 7 END
         FROM invitations i JOIN temp.moments_list m ON m.moment = i.moment""")
    q("""INSERT INTO answers (response_id, question, value_num, value_text)
         SELECT r.id, m.question, COALESCE(r.score_nps, r.score_csat, r.score_ces), NULL
         FROM responses r JOIN temp.moments_list m ON m.moment = r.moment""")
    q("""INSERT INTO answers (response_id, question, value_num, value_text)
         SELECT r.id, 'nps_why', NULL, 'Livraison rapide, service client aimable'
         FROM responses r WHERE r.id % 5 = 0 AND r.moment IN ('nps_relational', 'store_nps', 'onboarding_nps')""")
    q("COMMIT")
    for _, sql in indexes:
        q(sql)
    generate = Sample(time.perf_counter() - started)
    from cxctl.results.importer import rebuild_rollups

    rollups = harness.timed(lambda: rebuild_rollups(db))
    harness.say(f"  rollups rebuilt in {rollups.seconds:.1f} s")
    started = time.perf_counter()
    q("ANALYZE")
    q("PRAGMA wal_checkpoint(TRUNCATE)")
    generate.seconds += time.perf_counter() - started
    db.conn.close()
    (ws_root / "complete").write_text("generated\n", encoding="utf-8")
    harness.say(f"  generated in {generate.seconds:.1f} s (rollups apart)")
    return ws, {"generate": generate, "rollups": rollups}


def scorecard_rows(n: int, rounds: int) -> list[Row]:
    data = harness.data_dir("results")
    ws, generated = generate_scored_store(data, n)
    db_path = ws.database
    harness.shell(db_path, "SELECT COUNT(*) FROM answers;", "SELECT COUNT(*) FROM responses;")  # warm the page cache

    def with_month_index() -> Sample:
        harness.shell(db_path, MONTH_INDEX)
        try:
            return harness.shell(db_path, DIRECT_SQL)
        finally:
            harness.shell(db_path, "DROP INDEX bench_month;")

    from cxctl.results.scorecard import compute_scorecard

    now = datetime.fromisoformat(NOW)
    warm_db = store.connect(db_path)
    compute_scorecard(ws, warm_db, now, by=["moment", "month"])  # first call: temp tables and page cache

    def warm() -> Sample:
        sample = harness.timed(lambda: found.update(card=compute_scorecard(ws, warm_db, now, by=["moment", "month"])))
        assert sum(r.responses for r in found["card"].rows) == n
        return sample

    def cold(by: str) -> Sample:
        command = harness.cxctl_command("scorecard", "-w", str(ws.root), "--by", by, "--now", NOW, "--json")
        sample = harness.run_measured(command, harness.cxctl_env())
        json.loads(sample.stdout)
        return sample

    found: dict = {}
    series = harness.alternate(
        {
            "join": lambda: harness.shell(db_path, JOIN_SQL),
            "direct": lambda: harness.shell(db_path, DIRECT_SQL),
            "month index": with_month_index,
            "warm": warm,
            "moment,month": lambda: cold("moment,month"),
            "attribute SQL": lambda: harness.shell(db_path, ATTRIBUTE_SQL),
            "region": lambda: cold("region"),
            "canal": lambda: cold("canal"),
            "segment,quarter": lambda: cold("segment,quarter"),
        },
        rounds,
        once=["join"],  # the weakest baseline, 12 s a million rows: once is enough to show it
    )
    warm_db.conn.close()
    series["join"].label = "responses ⋈ answers GROUP BY"
    series["direct"].label = "GROUP BY on the responses' score columns"
    series["month index"].label = "the same with an expression index on the month"
    series["attribute SQL"].label = "responses ⋈ contacts GROUP BY json_extract(region)"
    text = f"{n:,} responses, {max(1000, n // 10):,} contacts"
    strongest = series["month index"]
    rows = [
        Row(
            "results",
            "plain SQL: GROUP BY on the score columns",
            text,
            series["direct"],
            series["join"],
            "",
            "the store's covering index",
        ),
        Row(
            "results",
            "plain SQL: with an expression index on the month",
            text,
            strongest,
            series["join"],
            "",
            "index built untimed",
        ),
        Row(
            "results",
            "`compute_scorecard(by=moment,month)`, warm process",
            text,
            series["warm"],
            strongest,
            "< 1 s at 5M",
            "rollups",
        ),
        Row(
            "results",
            "`cxctl scorecard --by moment,month` (new process)",
            text,
            series["moment,month"],
            strongest,
            "< 1 s at 5M",
        ),
        Row(
            "results",
            "`cxctl scorecard --by region` (JSON attribute, 13 values; new process)",
            text,
            series["region"],
            series["attribute SQL"],
            "< 2 s at 5M",
        ),
        Row(
            "results",
            "`cxctl scorecard --by canal` (JSON attribute, 3 values; new process)",
            text,
            series["canal"],
            series["attribute SQL"],
            "< 2 s at 5M",
        ),
        Row(
            "results",
            "`cxctl scorecard --by segment,quarter` (new process)",
            text,
            series["segment,quarter"],
            series["attribute SQL"],
            "< 2 s at 5M",
        ),
    ]
    if generated:
        rows.append(
            Row(
                "results",
                "store generation (bulk SQL, indexes built after)",
                text,
                harness.Series("generation", [generated["generate"]]),
                note="once, reused by later runs",
            )
        )
        rows.append(
            Row(
                "results",
                "rollups rebuilt from the raw rows (`rebuild_rollups`)",
                text,
                harness.Series("rebuild", [generated["rollups"]]),
                note="once; what a load that bypasses the import costs",
            )
        )
    return rows


# --- the breakdown by a declared dimension (issue 18: `dimensions:` in cxctl.yaml) ------------------------------


def dimension_rows(n: int, rounds: int) -> list[Row]:
    """`cxctl scorecard --by region` with `region` declared (its rollups) against the same command on the raw
    path and the plain GROUP BY, alternating. The declared workspace reads a copy of the generated store with
    the rollups built (timed once: what declaring a dimension costs); the raw one reads the original, where
    no dimension is declared, so neither command changes the other's store."""
    from cxctl.store.dimensions import sync

    data = harness.data_dir("results")
    ws, _ = generate_scored_store(data, n)
    declared = data / f"score_ws_{n}_dimensions"
    build: Sample | None = None
    if not (declared / "complete").exists():
        shutil.rmtree(declared, ignore_errors=True)
        write_workspace(declared)
        config = declared / "cxctl.yaml"
        config.write_text(
            config.read_text().replace("  min_responses: 30\n", "  min_responses: 30\n  dimensions: [region, canal]\n"),
            encoding="utf-8",
        )
        shutil.copyfile(ws.database, declared / "cxctl.db")
        db = store.connect(declared / "cxctl.db")
        found: dict = {}
        build = harness.timed(lambda: found.update(result=sync(db, ["region", "canal"])))
        assert found["result"].built == ["region", "canal"]
        db.execute("ANALYZE")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.conn.close()
        (declared / "complete").write_text("generated\n", encoding="utf-8")
        harness.say(f"  dimensions region and canal built in {build.seconds:.1f} s")
    for path in (ws.database, declared / "cxctl.db"):
        harness.shell(path, "SELECT COUNT(*) FROM responses;")  # warm the page cache alike

    def cold(root: Path, by: str, code: str | None = None) -> Sample:
        command = harness.cxctl_command("scorecard", "-w", str(root), "--by", by, "--now", NOW, "--json")
        env = harness.cxctl_env() if code is None else {**harness.cxctl_env(), "PYTHONPATH": code}
        sample = harness.run_measured(command, env)
        assert sum(row["responses"] for row in json.loads(sample.stdout)["rows"]) == n
        return sample

    contenders = {
        "attribute SQL": lambda: harness.shell(ws.database, ATTRIBUTE_SQL),
        "raw": lambda: cold(ws.root, "region"),
        "declared": lambda: cold(declared, "region"),
        "declared canal": lambda: cold(declared, "canal"),
    }
    # CXCTL_BENCH_BEFORE=<a checkout of the code before a change> adds the declared command run by that code,
    # in the same rounds (run the bench from outside both trees: `python -m` puts the current folder first).
    before = os.environ.get("CXCTL_BENCH_BEFORE")
    if before:
        contenders["declared, before"] = lambda: cold(declared, "region", before)
    series = harness.alternate(contenders, rounds)
    series["attribute SQL"].label = "responses ⋈ contacts GROUP BY json_extract(region)"
    text = f"{n:,} responses, {max(1000, n // 10):,} contacts"
    rows = [
        Row(
            "results",
            "`cxctl scorecard --by region`, region declared in `dimensions:` (new process)",
            text,
            series["declared"],
            series["attribute SQL"],
            "< 2 s at 5M",
            "its rollups",
        ),
        Row(
            "results",
            "`cxctl scorecard --by canal`, canal declared (new process)",
            text,
            series["declared canal"],
            series["attribute SQL"],
            "< 2 s at 5M",
            "its rollups",
        ),
        Row(
            "results",
            "`cxctl scorecard --by region`, not declared (new process)",
            text,
            series["raw"],
            series["attribute SQL"],
            "",
            "scans the responses",
        ),
    ]
    if before:
        rows.append(
            Row(
                "results",
                f"`cxctl scorecard --by region`, region declared, the code of {before} (new process)",
                text,
                series["declared, before"],
                series["attribute SQL"],
                "",
                "its rollups",
            )
        )
    if build is not None:
        rows.append(
            Row(
                "results",
                "building the rollups of two dimensions (`sync`, region and canal)",
                text,
                harness.Series("build", [build]),
                note="once, when they are declared",
            )
        )
    return rows


def run(scale: float, rounds: int) -> list[Row]:
    os.environ.setdefault("CXCTL_SECRET", SECRET)
    # CXCTL_BENCH_RESULTS_PART=import (or daily, scorecard, dimensions) runs one part only, e.g. while working
    # on the import.
    part = os.environ.get("CXCTL_BENCH_RESULTS_PART", "")
    if part == "dimensions":
        return dimension_rows(harness.scaled(5_000_000, scale, 5_000), rounds)
    rows = [] if part in ("scorecard", "daily") else import_rows(harness.scaled(1_000_000, scale, 2_000), rounds)
    if part in ("", "import", "daily"):
        rows += daily_rows(harness.scaled(5_000_000, scale, 5_000), rounds)
    if part == "daily":
        return rows
    if part != "import":
        rows += scorecard_rows(harness.scaled(5_000_000, scale, 5_000), rounds)
    if part != "import":
        rows += dimension_rows(harness.scaled(5_000_000, scale, 5_000), rounds)
    return rows


if __name__ == "__main__":
    harness.cli(run, __doc__)
