"""Benchmark of `forget`, `export-person` and `db prune` on a store of realistic size.

Run: python bench/privacy_forget.py [--scale 0.1] [--rounds 3]   (--scale 1 = 100,000 contacts; data under
bench/data/privacy/). Each contact has 2 events, 1 invitation; 40 % answered (a score and, for a third, a
comment). Baseline, in every round, first: one full scan of every text column of every table (what any
"find this address anywhere" check costs), so the figures can be compared across machines. Each round
forgets other people; `db prune` runs once, after the rounds (it changes the store).
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

import harness
from harness import Row

from cxctl import store
from cxctl.privacy import erasure as privacy
from cxctl.privacy import retention
from cxctl.validation import load_workspace

YAML = """\
workspace:
  name: Bench
  sender: {name: Bench, address: bench@example.com}
  survey_url: "https://s.example/{token}"
  retention: {responses: 52w, events: 26w, invitations: 52w, contacts_inactive: 104w}
journeys:
  j: {name: J, stages: [s]}
questions:
  nps: {type: nps, text: NPS}
  why: {type: open, text: Why}
moments:
  m:
    journey: j
    stage: s
    kind: transactional
    trigger: {event: order_delivered}
    questions: [nps, why]
"""


def build(n: int) -> tuple[object, object]:
    ROOT = harness.data_dir("privacy")
    (ROOT / "cxctl.yaml").write_text(YAML, encoding="utf-8")
    for suffix in ("", "-wal", "-shm"):
        Path(str(ROOT / "cxctl.db") + suffix).unlink(missing_ok=True)
    ws = load_workspace(ROOT)
    db = store.connect(ws.database)
    rng = random.Random(7)
    conn = db.conn
    conn.execute("BEGIN")
    days = [f"20{y}-{m:02d}-{d:02d} 10:00:00" for y in (24, 25, 26) for m in range(1, 13) for d in (3, 17)]
    conn.executemany(
        "INSERT INTO contacts (id, external_id, email, email_hash, first_name, last_name, language, country, segment, attributes, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, 'fr', 'FR', 'retail', ?, ?, ?)",
        (
            (
                i,
                f"C{i}",
                f"person{i}@example.com",
                store.email_hash(f"person{i}@example.com"),
                f"Prénom{i}",
                f"Nom{i}",
                json.dumps({"phone": f"06{i:08d}"}),
                d,
                d,
            )
            for i in range(1, n + 1)
            for d in [rng.choice(days)]
        ),
    )
    conn.executemany(
        "INSERT INTO events (event_key, contact_id, type, occurred_at, attributes, imported_at) VALUES (?, ?, 'order_delivered', ?, ?, ?)",
        (
            (f"E{i}-{k}", i, d, json.dumps({"order": f"CMD-{i}-{k}"}), d)
            for i in range(1, n + 1)
            for k in (1, 2)
            for d in [rng.choice(days)]
        ),
    )
    conn.executemany(
        "INSERT INTO invitations (id, dedupe_key, token, contact_id, moment, event_id, email, send_at, status, sent_at, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, 'm', ?, ?, ?, 'sent', ?, ?, ?)",
        (
            (i, f"m|{i}|e{2 * i - 1}", f"tok{i}.sig", i, 2 * i - 1, f"person{i}@example.com", d, d, d, d)
            for i in range(1, n + 1)
            for d in [rng.choice(days)]
        ),
    )
    answered = [i for i in range(1, n + 1) if rng.random() < 0.4]
    response_columns = {c.name for c in db["responses"].columns}
    extra = [c for c in ("content_hash", "day", "status") if c in response_columns]
    conn.executemany(
        f"INSERT INTO responses (id, response_key, invitation_id, contact_id, moment, source, submitted_at, imported_at{''.join(', ' + c for c in extra)}) "
        f"VALUES (?, ?, ?, ?, 'm', 'bench', ?, ?{', ?' * len(extra)})",
        (
            (i, f"r{i}", i, i, d, d, *[{"content_hash": f"h{i}", "day": d[:10], "status": "counted"}[c] for c in extra])
            for i in answered
            for d in [rng.choice(days)]
        ),
    )
    conn.executemany(
        "INSERT INTO answers (response_id, question, value_num, value_text) VALUES (?, 'nps', ?, NULL)",
        ((i, rng.randint(0, 10)) for i in answered),
    )
    conn.executemany(
        "INSERT INTO answers (response_id, question, value_num, value_text) VALUES (?, 'why', NULL, ?)",
        ((i, f"Commentaire de Prénom{i}") for i in answered if i % 3 == 0),
    )
    conn.execute("COMMIT")
    return ws, db


def run(scale: float, rounds: int) -> list[Row]:
    n = harness.scaled(100_000, scale, 500)
    found: dict = {}
    built = harness.timed(lambda: found.update(zip(("ws", "db"), build(n))))
    ws, db = found["ws"], found["db"]
    harness.say(f"built the store ({n:,} contacts) in {built.seconds:.1f} s")
    now = datetime(2026, 11, 22, 9, tzinfo=UTC)

    def full_scan() -> int:
        total = 0
        for table in db.table_names():
            for column in db[table].columns:
                total += db.execute(
                    f"SELECT COUNT(*) FROM [{table}] WHERE [{column.name}] LIKE ?", ["%person77@example.com%"]
                ).fetchone()[0]
        return total

    people = iter(range(n // 2, n))  # a different person in every round
    series = harness.alternate(
        {
            "scan": lambda: harness.timed(full_scan),
            "export-person": lambda: harness.timed(
                lambda: privacy.export_person(db, f"person{n // 2}@example.com", now)
            ),
            "forget --dry-run": lambda: harness.timed(
                lambda: privacy.forget(ws, db, f"person{n // 2}@example.com", now, dry_run=True)
            ),
            "forget": lambda: harness.timed(lambda: privacy.forget(ws, db, f"person{next(people)}@example.com", now)),
            "forget by id": lambda: harness.timed(lambda: privacy.forget(ws, db, f"C{next(people)}", now)),
            "prune --dry-run": lambda: harness.timed(lambda: retention.prune(ws, db, now, dry_run=True)),
        },
        rounds,
    )
    result = []
    prune = harness.timed(lambda: result.append(retention.prune(ws, db, now)))
    base = series["scan"]
    base.label = "LIKE scan of every column of every table"
    text = f"{n:,} contacts, {2 * n:,} events, {n:,} invitations"
    rows = [
        Row("privacy", f"`{name}`", text, series[name], base)
        for name in ("export-person", "forget --dry-run", "forget", "forget by id", "prune --dry-run")
    ]
    rows.append(
        Row(
            "privacy",
            "`db prune`",
            text,
            harness.Series("prune", [prune]),
            base,
            note=f"{result[0].total:,} rows changed; once",
        )
    )
    return rows


if __name__ == "__main__":
    harness.cli(run, __doc__)
