"""Benchmark of the results area (run on demand: `python bench/results_scorecard.py [--scale 0.1] [--import-only [--reuse]]`).

Three measurements, each against the baseline the issue names, in the same run, on generated data under
bench/data/results/ (git-ignored):

1. import: `cxctl responses import` of N_IMPORT responses (generic CSV with tokens) vs the sqlite3
   shell's `.import` of the same file into an empty table;
2. scorecard by moment × month over N_SCORE responses vs the plain GROUP BY over the raw response rows
   run by the sqlite3 shell on the same database file;
3. scorecard broken down by an arbitrary contact attribute (JSON) over the same N_SCORE responses.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from cxctl import store  # noqa: E402
from cxctl.core import tokens  # noqa: E402
from cxctl.validation import load_workspace  # noqa: E402

SECRET = "bench-secret-not-for-production"
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


def timed(label: str, function):
    start = time.perf_counter()
    result = function()
    elapsed = time.perf_counter() - start
    print(f"  {label}: {elapsed:.2f} s", file=sys.stderr, flush=True)
    return elapsed, result


def shell(db_path: Path, *commands: str) -> float:
    start = time.perf_counter()
    subprocess.run(["sqlite3", str(db_path), *commands], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


# The writes any importer must make, done by the sqlite3 shell alone (C, no checks, no rollups, no
# quarantine): stage the file, match each token to its invitation, write responses (with the indexes
# the scorecard and follow-ups read through) and their NPS answers, commit. Run on a copy of the
# pre-import database: the floor of the import in this store, whatever the language.
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
COMMIT;
"""


def bench_import(data: Path, n: int, reuse: bool = False) -> dict:
    """1,000,000 responses: cxctl import vs sqlite3 `.import` of the same CSV."""
    ws_root = data / f"import_ws_{n}"
    export = data / f"responses_{n}.csv"
    base = data / f"import_base_{n}.db"
    if reuse and export.exists() and base.exists():
        # Same generated data as the last run: copy the pre-import database instead of regenerating it.
        write_workspace(ws_root)
        ws = load_workspace(ws_root)
        for suffix in ("", "-wal", "-shm"):
            Path(str(ws.database) + suffix).unlink(missing_ok=True)
        shutil.copyfile(base, ws.database)
        db = store.connect(ws.database)
    else:
        generate_import(data, ws_root, export, base, n)
        ws = load_workspace(ws_root)
        db = store.connect(ws.database)
    baseline_db = data / "shell_import.db"
    baseline_db.unlink(missing_ok=True)
    shell_s = shell(baseline_db, ".mode csv", f".import {export} raw_responses")
    print(f"  sqlite3 .import: {shell_s:.2f} s", file=sys.stderr, flush=True)
    floor_db = data / "shell_writes.db"
    shutil.copyfile(base, floor_db)
    start = time.perf_counter()
    subprocess.run(
        ["sqlite3", str(floor_db)],
        input=SHELL_WRITES.format(export=export),
        text=True,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    floor_s = time.perf_counter() - start
    floor_db.unlink()
    print(f"  the same writes in the sqlite3 shell alone: {floor_s:.2f} s", file=sys.stderr, flush=True)
    os.environ["CXCTL_SECRET"] = SECRET
    from cxctl.results.importer import import_responses

    cx_s, report = timed(
        "cxctl responses import",
        lambda: import_responses(ws, db, export, datetime(2027, 1, 1, tzinfo=UTC), moment="nps_relational"),
    )
    assert report.counted == n, (report.counted, report.quarantined, report.problems[:3])
    db.conn.close()
    return {"rows": n, "shell_s": shell_s, "cxctl_s": cx_s, "ratio": cx_s / shell_s, "floor_s": floor_s}


def generate_import(data: Path, ws_root: Path, export: Path, base: Path, n: int) -> None:
    """Contacts, sent invitations and an n-row export answering them; `base` keeps the pre-import database."""
    shutil.rmtree(ws_root, ignore_errors=True)
    write_workspace(ws_root)
    ws = load_workspace(ws_root)
    db = store.connect(ws.database)
    rng = random.Random(1)
    secret = SECRET.encode()
    print(f"generating {n:,} contacts, invitations and a {n:,}-row export…", file=sys.stderr, flush=True)
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


def generate_scored_store(data: Path, n: int, folder: str = "score_ws"):
    """A workspace under `data/folder` with n counted responses over two years (one per sent invitation,
    n // 10 contacts with a segment and JSON attributes, an open comment on every fifth NPS response),
    rollups built and ANALYZE run. Returns the loaded workspace (its database is closed). Reused by
    bench/export_report.py."""
    ws_root = data / folder
    shutil.rmtree(ws_root, ignore_errors=True)
    write_workspace(ws_root)
    ws = load_workspace(ws_root)
    db = store.connect(ws.database)
    contacts = max(1000, n // 10)
    print(f"generating {contacts:,} contacts, {n:,} invitations and responses…", file=sys.stderr, flush=True)
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
    from cxctl.results.importer import rebuild_rollups

    timed("rollups built (what imports keep up to date)", lambda: rebuild_rollups(db))
    q("ANALYZE")
    db.conn.close()
    return ws


def bench_scorecard(data: Path, n: int) -> dict:
    """5,000,000 responses: scorecard by moment × month (rollups) vs the shell's GROUP BY over raw rows."""
    ws = generate_scored_store(data, n)
    raw_sql = (
        "SELECT r.moment, strftime('%Y-%m', r.submitted_at) AS month, a.question, a.value_num, COUNT(*) "
        "FROM responses r JOIN answers a ON a.response_id = r.id "
        "WHERE r.status = 'counted' AND a.value_num IS NOT NULL GROUP BY 1, 2, 3, 4;"
    )
    db_path = ws.database
    shell(db_path, "SELECT COUNT(*) FROM answers;")  # warm the page cache for both sides alike
    shell_s = shell(db_path, raw_sql)
    print(f"  sqlite3 GROUP BY over raw rows: {shell_s:.2f} s", file=sys.stderr, flush=True)
    from cxctl.results.scorecard import compute_scorecard

    db = store.connect(db_path)
    now = datetime(2027, 1, 5, tzinfo=UTC)
    compute_scorecard(ws, db, now, by=["moment", "month"])  # first call: temp tables and page cache
    card_s, card = timed(
        "cxctl scorecard --by moment,month", lambda: compute_scorecard(ws, db, now, by=["moment", "month"])
    )
    total = sum(r.responses for r in card.rows)
    assert total == n, (total, n)
    attr_s, attr = timed(
        "cxctl scorecard --by canal (JSON attribute)", lambda: compute_scorecard(ws, db, now, by=["canal"])
    )
    assert sum(r.responses for r in attr.rows) == n
    seg_s, _ = timed(
        "cxctl scorecard --by segment,quarter", lambda: compute_scorecard(ws, db, now, by=["segment", "quarter"])
    )
    return {
        "rows": n,
        "shell_groupby_s": shell_s,
        "scorecard_s": card_s,
        "speedup": shell_s / card_s,
        "attribute_s": attr_s,
        "segment_quarter_s": seg_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help="1.0 = 1,000,000 imported and 5,000,000 scored responses"
    )
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument("--skip-scorecard", action="store_true")
    parser.add_argument(
        "--import-only", action="store_true", help="only the import measurement (same as --skip-scorecard)"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="reuse the import data generated by an earlier run of the same scale"
    )
    args = parser.parse_args()
    data = ROOT / "data" / "results"
    data.mkdir(parents=True, exist_ok=True)
    results = {}
    if not args.skip_import:
        results["import"] = bench_import(data, int(1_000_000 * args.scale), args.reuse)
    if not (args.skip_scorecard or args.import_only):
        results["scorecard"] = bench_scorecard(data, int(5_000_000 * args.scale))
    print("| measurement | rows | baseline (sqlite3 shell) | cxctl | ratio | goal |")
    print("|---|---|---|---|---|---|")
    if "import" in results:
        r = results["import"]
        print(
            f"| responses import (generic CSV) vs `.import` | {r['rows']:,} | {r['shell_s']:.2f} s | {r['cxctl_s']:.2f} s "
            f"| {r['ratio']:.2f}× the shell | ≤ 3× |"
        )
        print(
            f"| the same writes by the sqlite3 shell alone (token join, responses + indexes, answers, commit) | {r['rows']:,} "
            f"| {r['shell_s']:.2f} s | {r['floor_s']:.2f} s | {r['floor_s'] / r['shell_s']:.2f}× the shell | (floor, no checks) |"
        )
    if "scorecard" in results:
        r = results["scorecard"]
        print(
            f"| scorecard --by moment,month vs raw GROUP BY | {r['rows']:,} | {r['shell_groupby_s']:.2f} s | "
            f"{r['scorecard_s']:.3f} s | {r['speedup']:.0f}× faster | < 1 s and ≥ 5× |"
        )
        print(f"| scorecard --by canal (JSON attribute) | {r['rows']:,} | — | {r['attribute_s']:.2f} s | — | < 10 s |")
        print(f"| scorecard --by segment,quarter | {r['rows']:,} | — | {r['segment_quarter_s']:.2f} s | — | — |")


if __name__ == "__main__":
    main()
