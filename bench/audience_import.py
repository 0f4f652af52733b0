"""Benchmark: `cxctl contacts import` against the sqlite3 shell's `.import` of the same file, same run.

    python bench/audience_import.py [--scale 0.1] [--rounds 3]      # --scale 1 = 1,000,000 rows

Generates bench/data/audience/contacts_<rows>.csv (10 columns, git-ignored; reused when present), then, in
every round, times
  1. sqlite3 new.db '.import --csv FILE contacts'   (the baseline: no checks, no merge)
  2. the same .import into a WAL database whose table has a unique id and an address index
     (like for like: the journal and the indexes a contacts store needs, still no checks)
  3. csv.reader + executemany in one transaction   (the floor of any Python import, for reference)
  4. cxctl's writes alone: the rows the importer converts, prepared beforehand (untimed), loaded by
     the importer's own bulk path into a new store (inserts, index build, commit; no parsing)
  5. cxctl contacts import FILE                    (fresh database)
  6. cxctl contacts import FILE                    (again: every row unchanged)
each in its own process, with the peak RSS of the largest process of its tree (os.wait4), and prints
the ratio of each to the baseline. The target (issue 3): ratio <= 3 and peak RSS < 500 MB for 1,000,000
rows.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import harness
from harness import Row, Sample

HERE = Path(__file__).resolve().parent
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


def run(scale: float, rounds: int) -> list[Row]:
    rows = harness.scaled(1_000_000, scale, 1_000)
    data = harness.data_dir("audience")
    source = data / f"contacts_{rows}.csv"
    if not source.exists():
        harness.say(f"generating {source} …")
        generate(source, rows)
    size_mb = source.stat().st_size / 1e6
    sqlite3 = harness.sqlite_shell()
    prepared = data / f"contacts_{rows}.batches"
    if not prepared.exists() or prepared.stat().st_mtime < source.stat().st_mtime:
        harness.say(f"preparing {prepared} …")
        subprocess.run([sys.executable, "-c", PREPARE, str(source), str(prepared)], check=True, cwd=HERE.parent)
    baseline_db, indexed_db, plain_db, writes_db = (
        data / f"{name}.db" for name in ("baseline", "indexed", "plain", "writes")
    )
    ws = data / "ws"
    env = harness.cxctl_env()
    cxctl = harness.cxctl_command(
        "contacts", "import", str(source), "-w", str(ws), "--json", "--now", "2026-01-01T10:00"
    )

    def fresh(path: Path) -> Path:
        harness.remove_db(path)
        return path

    def cxctl_fresh() -> Sample:
        shutil.rmtree(ws, ignore_errors=True)
        ws.mkdir(parents=True)
        (ws / "cxctl.yaml").write_text(WORKSPACE, encoding="utf-8")
        sample = harness.run_measured(cxctl, env)
        assert json.loads(sample.stdout)["inserted"] == rows, sample.stdout[:500]
        return sample

    def cxctl_again() -> Sample:
        sample = harness.run_measured(cxctl, env)
        assert json.loads(sample.stdout)["unchanged"] == rows, sample.stdout[:500]
        return sample

    series = harness.alternate(
        {
            ".import": lambda: harness.run_measured(
                [sqlite3, str(fresh(baseline_db)), f".import --csv {source} contacts"]
            ),
            "indexed": lambda: harness.run_measured(
                [
                    sqlite3,
                    str(fresh(indexed_db)),
                    *INDEXED,
                    f".import --csv --skip 1 {source} contacts",
                    "CREATE INDEX contacts_email ON contacts(email)",
                ]
            ),
            "plain": lambda: harness.run_measured([sys.executable, "-c", PLAIN, str(source), str(fresh(plain_db))]),
            "writes": lambda: harness.run_measured(
                [sys.executable, "-c", WRITES, str(prepared), str(fresh(writes_db))], env
            ),
            "fresh": cxctl_fresh,
            "again": cxctl_again,
        },
        rounds,
    )
    shutil.rmtree(ws, ignore_errors=True)
    for path in (baseline_db, indexed_db, plain_db, writes_db):
        harness.remove_db(path)
    base = series[".import"]
    base.label = "sqlite3 `.import`"
    like = harness.Series("`.import` into a WAL table with the same indexes", series["indexed"].samples)
    text = f"{rows:,} contacts × 10 columns ({size_mb:.0f} MB)"
    return [
        Row(
            "audience",
            "`.import` like for like (WAL, unique id, address index)",
            text,
            series["indexed"],
            base,
            "",
            "no checks",
        ),
        Row("audience", "python csv + executemany", text, series["plain"], base, "", "floor of a Python import"),
        Row(
            "audience",
            "cxctl's writes alone (rows prepared)",
            text,
            series["writes"],
            base,
            "",
            "inserts, index, commit; no parsing",
        ),
        Row("audience", "`cxctl contacts import`, first", text, series["fresh"], base, "≤ 3×, < 500 MB"),
        Row("audience", "`cxctl contacts import`, first, like for like", text, series["fresh"], like, ""),
        Row("audience", "`cxctl contacts import`, again (unchanged)", text, series["again"], base, "≤ 3×, < 500 MB"),
    ]


if __name__ == "__main__":
    harness.cli(run, __doc__)
