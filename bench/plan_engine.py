"""Benchmark of the solicitation engine and of `cxctl plan --json` over 1,000,000 contacts, 2,000,000 events
and 10,000,000 past invitations at --scale 1 (issue 4: under 15 s and 1 GB; issue 18: the whole
`plan --json` command under 10 s and 600 MB).

    python bench/plan_engine.py [--scale 0.1] [--rounds 3]

The data is generated straight into SQLite with recursive CTEs (no Python loop per row), once per
scale, under bench/data/plan/. Each round runs, in this order:
  1. the baseline: one SQL anti-join of the fatigue rule (every contact without a live invitation in the
     quiet period) over the same store, in this process: the machine's speed at the engine's kind of work;
  2. compute_plan counting exclusions (what `send` does), in a fresh process;
  3. compute_plan listing every exclusion, in a fresh process;
  4. `cxctl plan --json`, the whole command, output to /dev/null.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import harness
from harness import Row, Sample

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)

WORKSPACE = """\
workspace:
  name: Plan benchmark
  default_language: fr
  languages: [fr, en]
  timezone: Europe/Paris
  sender: {name: Service Client, address: avis@boutique.example}
  survey_url: "https://survey.example/s/{moment}?t={token}"
rules:
  quiet_period: 30d
  cap: {max: 3, window: 90d}
  max_reminders: 2
  daily_cap: 60000
  priority: [support, delivery, nps]
  send_window: {days: [mon, tue, wed, thu, fri, sat], hours: '09:00-19:00'}
  suppression_sources: [{attribute: ne_pas_contacter}]
questions:
  csat: {type: csat, text: {fr: Satisfait ?, en: Satisfied?}}
journeys:
  shop: {name: Shop, stages: [delivery, support, loyalty]}
moments:
  delivery:
    journey: shop
    stage: delivery
    kind: transactional
    trigger: {event: order_delivered, delay: 2d, expires: 14d}
    questions: [csat]
    reminders: {count: 2, after: 3d}
    audience: {event: {channel: [web, store]}}
  support:
    journey: shop
    stage: support
    kind: transactional
    trigger: {event: ticket_closed, delay: 1h, expires: 7d}
    questions: [csat]
    recontact: 60d
    reminders: {count: 1, after: 2d}
  nps:
    journey: shop
    stage: loyalty
    kind: relational
    schedule: {every: quarter}
    questions: [csat]
    sample: 0.5
    daily_cap: 20000
    audience: {segment: [B2C, B2B]}
"""


def generate(folder: Path, contacts: int, events: int, invitations: int) -> None:
    from cxctl import store

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cxctl.yaml").write_text(WORKSPACE, encoding="utf-8")
    path = folder / "cxctl.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    db = store.connect(path)
    conn = db.conn
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-400000")
    tables = ("contacts", "events", "invitations", "responses", "suppressions")
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN (?, ?, ?, ?, ?)",
        tables,
    ).fetchall()
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")
    conn.execute("BEGIN")
    # A multiplicative hash gives a stable pseudo-random spread without Python.
    seq = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
    conn.execute(
        f"{seq} INSERT INTO contacts (id, external_id, email, email_hash, language, timezone, segment, attributes,"
        " created_at, updated_at)"
        " SELECT i, 'C' || i, CASE WHEN i % 100 = 7 THEN NULL ELSE 'c' || i || '@example.com' END,"
        " CASE WHEN i % 100 = 7 THEN NULL ELSE printf('%064x', i) END,"
        " CASE WHEN i % 5 = 0 THEN 'en' ELSE 'fr' END,"
        " CASE i % 10 WHEN 1 THEN 'America/Montreal' WHEN 2 THEN 'Europe/Brussels' ELSE NULL END,"
        " CASE WHEN i % 3 = 0 THEN 'B2B' ELSE 'B2C' END,"
        ' CASE WHEN i % 250 = 0 THEN \'{"ne_pas_contacter":"oui"}\' ELSE \'{"fidélité":"gold"}\' END,'
        " '2025-01-01 00:00:00', '2025-01-01 00:00:00' FROM n",
        [contacts],
    )
    conn.execute(
        f"{seq} INSERT INTO suppressions (email_hash, reason, created_at)"
        " SELECT printf('%064x', i * 199 % ? + 1), 'opt_out', '2026-01-01 00:00:00' FROM n",
        [contacts // 100, contacts],
    )
    # Events over the last year; 60 % deliveries, 40 % closed tickets.
    conn.execute(
        f"{seq} INSERT INTO events (id, event_key, contact_id, type, occurred_at, attributes, imported_at)"
        " SELECT i, 'E' || i, (i * 2654435761) % ? + 1, CASE WHEN i % 5 < 3 THEN 'order_delivered' ELSE 'ticket_closed' END,"
        " datetime('2026-11-20 10:00:00', printf('-%d seconds', (i * 40503) % 31536000)),"
        ' CASE WHEN i % 4 = 0 THEN \'{"channel":"store"}\' WHEN i % 4 = 3 THEN \'{"channel":"phone"}\''
        " ELSE '{\"channel\":\"web\"}' END, '2026-11-20 00:00:00' FROM n",
        [events, contacts],
    )
    # Past invitations over two years; the recent ones partly still planned; 15 % reminders.
    conn.execute(
        f"{seq} INSERT INTO invitations (id, dedupe_key, token, contact_id, moment, event_id, wave, kind, parent_id, language,"
        " email, send_at, status, sent_at, created_at, updated_at)"
        " SELECT i, 'B|' || i, 'T' || i, (i * 48271) % ? + 1, m, NULL,"
        " CASE WHEN m = 'nps' THEN strftime('%Y', t) || 'Q' || ((CAST(strftime('%m', t) AS INTEGER) + 2) / 3) END,"
        " CASE WHEN i % 20 < 3 THEN 'reminder' ELSE 'invitation' END, NULL, 'fr', 'x@example.com', t,"
        " CASE WHEN t > '2026-11-20 10:00:00' THEN 'planned' WHEN i % 50 = 0 THEN 'bounced' ELSE 'sent' END,"
        " CASE WHEN t > '2026-11-20 10:00:00' THEN NULL ELSE t END, t, t"
        " FROM (SELECT i, CASE i % 3 WHEN 0 THEN 'delivery' WHEN 1 THEN 'support' ELSE 'nps' END AS m,"
        " datetime('2026-11-21 10:00:00', printf('-%d seconds', (i * 69621) % 63072000)) AS t FROM n)",
        [invitations, contacts],
    )
    columns = {row[1] for row in conn.execute("PRAGMA table_info(responses)")}
    values = {
        "response_key": "'R' || i",
        "content_hash": "'h'",
        "invitation_id": "i * 3",
        "contact_id": "NULL",
        "moment": "'delivery'",
        "source": "'bench'",
        "submitted_at": "'2026-11-01 00:00:00'",
        "day": "'2026-11-01'",
        "status": "'counted'",
        "imported_at": "'2026-11-01 00:00:00'",
    }
    chosen = {k: v for k, v in values.items() if k in columns}
    conn.execute(
        f"{seq} INSERT INTO responses ({', '.join(chosen)}) SELECT {', '.join(chosen.values())} FROM n",
        [invitations // 10],
    )
    conn.execute("COMMIT")
    for _, sql in indexes:
        conn.execute(sql)
    conn.execute("ANALYZE")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


def measure(folder: Path, list_exclusions: bool) -> dict:
    """Child process: time compute_plan on the generated store; report peak RSS."""
    from cxctl import store
    from cxctl.planning.engine import compute_plan
    from cxctl.validation import load_workspace

    ws = load_workspace(folder)
    db = store.connect(ws.database)
    started, cpu = time.perf_counter(), time.process_time()
    plan = compute_plan(ws, db, NOW, list_exclusions=list_exclusions)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak_mb = harness.own_peak_mb()
    return {
        "seconds": round(elapsed, 4),
        "cpu": round(cpu, 4),
        "peak_mb": round(peak_mb),
        "planned": len(plan.planned),
        "reminders": sum(1 for p in plan.planned if p.kind == "reminder"),
        "exclusions_listed": len(plan.exclusions),
        "excluded": sum(plan.counts.values()),
        "counts": plan.counts,
    }


# The fatigue rule as one anti-join: contacts with no sent or planned invitation in the 30-day quiet period.
ANTI_JOIN = """
SELECT COUNT(*) FROM contacts c
WHERE NOT EXISTS (SELECT 1 FROM invitations i WHERE i.contact_id = c.id AND i.send_at >= ? AND i.status IN ('sent', 'planned'))
"""


def anti_join(folder: Path) -> Sample:
    conn = sqlite3.connect(folder / "cxctl.db")
    start = time.perf_counter()
    conn.execute(ANTI_JOIN, ["2026-10-21 10:00:00"]).fetchone()
    elapsed = time.perf_counter() - start
    conn.close()
    return Sample(elapsed)


def engine(folder: Path, mode: str, found: dict) -> Sample:
    """compute_plan in a fresh process: the engine's own seconds, the process's peak RSS."""
    measured = harness.run_measured([sys.executable, __file__, "--child", mode, "--folder", str(folder)])
    result = json.loads(measured.stdout)
    found[mode] = result
    return Sample(result["seconds"], peak_mb=measured.peak_mb, cpu=result["cpu"])


def plan_json(folder: Path) -> Sample:
    command = harness.cxctl_command("plan", "-w", str(folder), "--now", NOW.isoformat(), "--json")
    with open(os.devnull, "w") as sink:
        return harness.run_measured(command, harness.cxctl_env(), stdout=sink)


def run(scale: float, rounds: int) -> list[Row]:
    contacts = harness.scaled(1_000_000, scale, 2_000)
    events, invitations = 2 * contacts, 10 * contacts
    folder = harness.data_dir("plan") / f"{contacts}-{events}-{invitations}"
    if not (folder / "cxctl.db").exists():
        started = time.perf_counter()
        generate(folder, contacts, events, invitations)
        harness.say(f"generated {folder} in {time.perf_counter() - started:.0f} s")
    anti_join(folder)  # untimed: the page cache warm for every contender alike
    found: dict = {}
    series = harness.alternate(
        {
            "anti-join": lambda: anti_join(folder),
            "counts": lambda: engine(folder, "counts", found),
            "list": lambda: engine(folder, "list", found),
            "plan --json": lambda: plan_json(folder),
        },
        rounds,
    )
    harness.say(f"  exclusions: {found['list']['counts']}")
    data = f"{contacts:,} contacts, {events:,} events, {invitations:,} invitations"
    base = series["anti-join"]
    base.label = "SQL anti-join of the quiet period"
    planned = f"{found['list']['planned']:,} planned, {found['list']['excluded']:,} excluded"
    return [
        Row(
            "plan",
            "compute_plan, exclusions counted (what `send` does)",
            data,
            series["counts"],
            base,
            "< 15 s, < 1 GB at 1M",
            planned,
        ),
        Row("plan", "compute_plan, every exclusion listed", data, series["list"], base, "< 15 s, < 1 GB at 1M"),
        Row(
            "plan",
            "`cxctl plan --json` to /dev/null (whole command)",
            data,
            series["plan --json"],
            base,
            "< 10 s, < 600 MB at 1M",
        ),
    ]


def main() -> None:
    parser = harness.arguments(__doc__.splitlines()[0])
    parser.add_argument("--child", choices=["list", "counts"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("CXCTL_SECRET", harness.SECRET)
    if args.child:
        print(json.dumps(measure(args.folder, args.child == "list")))
        return
    harness.cli(run, __doc__)


if __name__ == "__main__":
    main()
