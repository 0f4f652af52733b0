"""Benchmark: `cxctl contacts import` against the sqlite3 shell's `.import` of the same file, same run.

    python bench/audience_import.py [--rows 1000000] [--keep]

Generates bench/data/contacts_<rows>.csv (10 columns, git-ignored; reused when present), then times
  1. sqlite3 new.db '.import --csv FILE contacts'   (the baseline: no checks, no merge)
  2. the same .import into a WAL database whose table has a unique id and an address index
     (like for like: the journal and the indexes a contacts store needs, still no checks)
  3. csv.reader + executemany in one transaction   (the floor of any Python import, for reference)
  4. cxctl's writes alone: the rows the importer converts, prepared beforehand (untimed), loaded by
     the importer's own bulk path into a new store (inserts, index build, commit; no parsing)
  5. cxctl contacts import FILE                    (fresh database)
  6. cxctl contacts import FILE                    (again: every row unchanged)
each in its own process, with its CPU time (including the import's worker process) and the peak
RSS of the largest process of its tree (os.wait4), and prints a table with the ratio to the baseline. The target (issue 3): ratio <= 3 and peak RSS < 500 MB for 1,000,000 rows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
FIRST = ["Jeanne", "Luc", "Amélie", "Zoé", "François", "Hélène", "Paul", "Inès", "Gérard", "Chloé", "Tom", "Anaïs"]
LAST = ["Martin", "Bernard", "Dubois", "Lefèvre", "Müller", "Moreau", "Petit", "Roux", "Côté", "Lemaître", "Durand"]
COUNTRIES = ["FR", "BE", "CH", "CA", "LU", "DE"]
SEGMENTS = ["b2c", "b2b", "vip"]
CITIES = ["Paris", "Lyon", "Marseille", "Lille", "Nantes", "Bordeaux", "Montréal", "Genève", "Bruxelles"]
WORKSPACE = """\
workspace:
  name: Benchmark
  timezone: Europe/Paris
  sender: {name: Bench, address: bench@example.com}
  survey_url: "https://survey.example/s/{moment}?t={token}"
"""


def ascii_name(name: str) -> str:
    """Addresses are ASCII in real exports even when names are not (Zoé → zoe)."""
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()


PLAIN = """
import csv, sqlite3, sys
conn = sqlite3.connect(sys.argv[2], isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
with open(sys.argv[1], encoding="utf-8", newline="") as handle:
    reader = csv.reader(handle)
    header = next(reader)
    conn.execute("CREATE TABLE contacts (" + ", ".join(f"c{i} TEXT" for i in range(len(header))) + ")")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO contacts VALUES (" + ", ".join("?" * len(header)) + ")", reader)
    conn.execute("COMMIT")
"""


# Like for like: .import into a WAL table with the unique id and one address index (cxctl's store
# has the same journal and indexes on external_id and email_hash).
INDEXED = [
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "CREATE TABLE contacts (external_id TEXT UNIQUE, email TEXT, first_name TEXT, last_name TEXT, language TEXT, "
    "country TEXT, segment TEXT, company TEXT, loyalty_tier TEXT, city TEXT)",
]

# cxctl's converted rows, prepared once (untimed): what the import's worker hands its writer.
PREPARE = """
import marshal, sys
from pathlib import Path
from cxctl.audience import contacts as audience
from cxctl.audience import contact_bulk
from cxctl.audience.contact_rows import build_converter
from cxctl.workspace.presets import resolve
with audience.open_input(Path(sys.argv[1]), None, None, None) as table:
    resolved = resolve(table.header, table.keys, "contacts", None, None)
    convert, staged, _ = build_converter(resolved, None, set())
    log = audience.ImportLog(Path(sys.argv[1]), table.header, True)
    with open(sys.argv[2], "wb") as out:
        for item in [staged, *contact_bulk.converted_batches(table, convert, log, contact_bulk.Tally(), {})]:
            data = marshal.dumps(item, 2)  # framed: marshal.load() on a file reads it in tiny pieces
            out.write(len(data).to_bytes(8, "little") + data)
"""

# The writes alone, through the importer's own bulk path (load_fresh) in one transaction.
WRITES = """
import gc, marshal, sys
from cxctl.audience import contact_bulk
from cxctl import store
gc.disable()  # as the importer does
def batches(handle):
    while size := handle.read(8):
        yield marshal.loads(handle.read(int.from_bytes(size, "little")))
db = store.connect(sys.argv[2])
with open(sys.argv[1], "rb") as handle:
    staged = next(batches(handle))
    db.execute("BEGIN IMMEDIATE")
    db.execute("PRAGMA main.cache_size = -65536")
    contact_bulk.load_fresh(db, batches(handle), staged, "2026-01-01 10:00:00", contact_bulk.Tally)
    db.execute("COMMIT")
"""


def generate(path: Path, rows: int) -> None:
    """A realistic 10-column export (accents, quoted commas in company names), deterministic."""
    rng = random.Random(42)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write("external_id,email,first_name,last_name,language,country,segment,company,loyalty_tier,city\r\n")
        lines = []
        for n in range(rows):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            lines.append(
                f"C{n:07d},{ascii_name(first)}.{ascii_name(last)}.{n}@example{n % 97}.fr,{first},{last},{rng.choice(('fr', 'en'))},"
                f'{rng.choice(COUNTRIES)},{rng.choice(SEGMENTS)},"{last} & Fils, SARL",{rng.choice(("gold", "silver", "bronze"))},'
                f"{rng.choice(CITIES)}\r\n"
            )
            if len(lines) == 10_000:
                handle.writelines(lines)
                lines = []
        handle.writelines(lines)
    tmp.rename(path)


def run(command: list[str], env: dict | None = None) -> tuple[float, float, int, str]:
    """Run one process; return (wall seconds, CPU seconds, peak RSS in MB of that process, stdout)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out = process.stdout.read()
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0,):
        sys.exit(f"{' '.join(command)} failed ({process.returncode}):\n{err.decode()[-2000:]}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024, out.decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the databases in bench/data/")
    args = parser.parse_args()
    source = DATA / f"contacts_{args.rows}.csv"
    if not source.exists():
        print(f"generating {source} …", file=sys.stderr)
        generate(source, args.rows)
    size_mb = source.stat().st_size / 1e6

    baseline_db = DATA / "baseline.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(baseline_db) + suffix).unlink(missing_ok=True)
    sqlite3 = shutil.which("sqlite3")
    if sqlite3 is None:
        sys.exit("the sqlite3 command-line shell is needed for the baseline: apt-get install sqlite3")
    base_s, base_cpu, base_rss, _ = run([sqlite3, str(baseline_db), f".import --csv {source} contacts"])

    indexed_db = DATA / "indexed.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(indexed_db) + suffix).unlink(missing_ok=True)
    indexed_s, indexed_cpu, indexed_rss, _ = run(
        [
            sqlite3,
            str(indexed_db),
            *INDEXED,
            f".import --csv --skip 1 {source} contacts",
            "CREATE INDEX contacts_email ON contacts(email)",
        ]
    )

    # The floor of any Python import: csv.reader + executemany into a bare table, one WAL transaction.
    plain_db = DATA / "plain.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(plain_db) + suffix).unlink(missing_ok=True)
    plain_s, plain_cpu, plain_rss, _ = run([sys.executable, "-c", PLAIN, str(source), str(plain_db)])

    prepared = DATA / f"contacts_{args.rows}.batches"
    if not prepared.exists() or prepared.stat().st_mtime < source.stat().st_mtime:
        print(f"preparing {prepared} …", file=sys.stderr)
        subprocess.run([sys.executable, "-c", PREPARE, str(source), str(prepared)], check=True, cwd=HERE.parent)
    writes_db = DATA / "writes.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(writes_db) + suffix).unlink(missing_ok=True)
    writes_s, writes_cpu, writes_rss, _ = run([sys.executable, "-c", WRITES, str(prepared), str(writes_db)])

    ws = DATA / "ws"
    shutil.rmtree(ws, ignore_errors=True)
    ws.mkdir(parents=True)
    (ws / "cxctl.yaml").write_text(WORKSPACE, encoding="utf-8")
    env = {**os.environ, "CXCTL_SECRET": "bench-secret-not-for-production"}
    cxctl = [
        sys.executable,
        "-m",
        "cxctl",
        "contacts",
        "import",
        str(source),
        "-w",
        str(ws),
        "--json",
        "--now",
        "2026-01-01T10:00",
    ]
    fresh_s, fresh_cpu, fresh_rss, out = run(cxctl, env)
    fresh = json.loads(out)
    again_s, again_cpu, again_rss, out = run(cxctl, env)
    again = json.loads(out)
    assert fresh["inserted"] == args.rows and again["unchanged"] == args.rows, (fresh, again)

    rows = [
        ("sqlite3 .import (baseline)", base_s, base_cpu, base_rss, "-"),
        (
            "sqlite3 .import, WAL + unique id + address index",
            indexed_s,
            indexed_cpu,
            indexed_rss,
            "like for like, no checks",
        ),
        ("python csv + executemany (no checks)", plain_s, plain_cpu, plain_rss, "floor of a Python import"),
        (
            "cxctl's writes alone (rows prepared)",
            writes_s,
            writes_cpu,
            writes_rss,
            "inserts + index + commit, no parsing",
        ),
        ("cxctl contacts import, fresh", fresh_s, fresh_cpu, fresh_rss, f"{fresh['inserted']:,} inserted"),
        ("cxctl contacts import, again", again_s, again_cpu, again_rss, f"{again['unchanged']:,} unchanged"),
    ]
    version = subprocess.run([sqlite3, "--version"], capture_output=True, text=True).stdout.split()[0]
    print(
        f"{args.rows:,} contacts × 10 columns, {size_mb:.0f} MB CSV, {os.cpu_count()} CPU(s), load average "
        f"{os.getloadavg()[0]:.1f}, Python {sys.version.split()[0]}, SQLite shell {version}"
    )
    print()
    print("| run | wall s | × baseline (wall) | CPU s | × baseline (CPU) | peak RSS MB | result |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, seconds, cpu, rss, note in rows:
        print(
            f"| {name} | {seconds:.1f} | {seconds / base_s:.2f} | {cpu:.1f} | {cpu / base_cpu:.2f} | {rss} | {note} |"
        )
    worst = max(fresh_s, again_s) / base_s
    worst_cpu = max(fresh_cpu, again_cpu) / base_cpu
    peak = max(fresh_rss, again_rss)
    print()
    print(
        f"target: ≤ 3.00 × baseline and < 500 MB — {'met' if worst <= 3 and peak < 500 else 'MISSED'} "
        f"(worst {worst:.2f}× wall, {worst_cpu:.2f}× CPU, peak {peak} MB)"
    )
    print(
        f"like for like (.import into a WAL table with the same indexes): fresh {fresh_s / indexed_s:.2f}×; "
        f"cxctl's writes alone are {writes_s / base_s:.2f}× the baseline before any row is parsed"
    )
    if not args.keep:
        shutil.rmtree(ws, ignore_errors=True)
        for db_path in (baseline_db, indexed_db, plain_db, writes_db):
            for suffix in ("", "-wal", "-shm"):
                Path(str(db_path) + suffix).unlink(missing_ok=True)


if __name__ == "__main__":
    main()
