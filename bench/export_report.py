"""Benchmark of `cxctl export` and `cxctl report` (run on demand: `python bench/export_report.py [--scale 0.2] [--rounds 3]`).

On the store bench/results_scorecard.py generates (N = 5,000,000 × scale counted responses over two years,
six moments, N/10 contacts; same generator, reused when already generated), in every round:

1. the baseline: the sqlite3 shell's `-csv` dump of the responses rows (same columns and joins as the
   export; the shell writes the contact id where cxctl writes its pseudonym);
2. the responses table exported to Parquet by cxctl (goal: no slower than the dump);
3. the report over all N responses (goal: under 10 s at 5M), read against the same dump (one pass over
   the rows, as a machine-speed reference);
each cxctl measurement in a fresh process, whose peak resident memory is reported (goal: under 1 GB).
The whole export (every table) runs once, after the rounds, for scale.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import harness
from harness import Row, Sample

ROOT = Path(__file__).resolve().parent

SHELL_SQL = """SELECT r.id, r.contact_id, r.moment, 'shop', 'love', 'email', COALESCE(i.language, c.language), r.submitted_at,
r.day, r.status, r.complete, r.source, r.invitation_id, r.score_nps, r.score_csat, r.score_ces, r.imported_at
FROM responses r LEFT JOIN contacts c ON c.id = r.contact_id LEFT JOIN invitations i ON i.id = r.invitation_id;"""
NOW = "2027-01-05T00:00:00+00:00"


def child(kind: str, workspace: str, out: str) -> None:
    """One measurement in this (fresh) process: prints its seconds and its peak memory as JSON."""
    from datetime import datetime

    from cxctl import store
    from cxctl.validation import load_workspace

    os.environ.setdefault("CXCTL_EXPORT_SECRET", "bench-export-secret")
    ws = load_workspace(Path(workspace))
    db = store.read(ws.database)
    now = datetime.fromisoformat(NOW)
    start = time.perf_counter()
    if kind in ("export", "export-all"):
        from cxctl.results.export import export_store

        result = export_store(ws, db, out, now, tables=["responses"] if kind == "export" else None)
        rows = sum(t.rows for t in result.tables)
    else:
        from cxctl.results.report import build_report
        from cxctl.results.report_render import render_report

        html = render_report(build_report(ws, db, now))
        Path(out).write_text(html, encoding="utf-8")
        rows = len(html.encode("utf-8"))
    elapsed = time.perf_counter() - start
    peak = harness.own_peak_mb() * 1024 * 1024
    print(json.dumps({"seconds": elapsed, "peak_bytes": peak, "rows": rows}))


def run_child(kind: str, workspace: Path, out: Path) -> Sample:
    """One cxctl measurement in a fresh process: its own seconds, its peak RSS."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(workspace), str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return Sample(result["seconds"], peak_mb=result["peak_bytes"] / 1024 / 1024, stdout=str(result["rows"]))


def shell_dump(db_path: Path, out: Path) -> float:
    start = time.perf_counter()
    with open(out, "w", encoding="utf-8") as handle:
        subprocess.run(["sqlite3", "-csv", str(db_path), SHELL_SQL], check=True, stdout=handle)
    return time.perf_counter() - start


def run(scale: float, rounds: int) -> list[Row]:
    import results_scorecard

    n = harness.scaled(5_000_000, scale, 5_000)
    data = harness.data_dir("export_report")
    folder = f"ws_{n}"
    ws, _ = results_scorecard.generate_scored_store(data, n, folder)
    out = data / "out"
    out.mkdir(exist_ok=True)
    shell_dump(ws.database, out / "warm.csv")  # the page cache warm for both sides alike

    def export() -> Sample:
        sample = run_child("export", data / folder, out / "parquet")
        assert int(sample.stdout) == n, sample.stdout
        return sample

    series = harness.alternate(
        {
            "dump": lambda: Sample(shell_dump(ws.database, out / "responses.csv")),
            "export": export,
            "report": lambda: run_child("report", data / folder, out / "report.html"),
        },
        rounds,
    )
    everything = run_child("export-all", data / folder, out / "all")
    base = series["dump"]
    base.label = "sqlite3 -csv dump of the responses rows"
    text = f"{n:,} responses"
    mb = 1024 * 1024
    parquet = (out / "parquet" / "responses.parquet").stat().st_size / mb
    csv_size = (out / "responses.csv").stat().st_size / mb
    return [
        Row(
            "export",
            "`cxctl export` responses → Parquet",
            text,
            series["export"],
            base,
            "≤ the dump, < 1 GB",
            f"Parquet {parquet:.0f} MB, CSV {csv_size:.0f} MB",
        ),
        Row(
            "export",
            "`cxctl export`, every table",
            text,
            harness.Series("all", [everything]),
            base,
            "< 1 GB",
            f"{int(everything.stdout):,} rows; once",
        ),
        Row("report", "`cxctl report` (all moments, by month)", text, series["report"], base, "< 10 s at 5M, < 1 GB"),
    ]


def main() -> None:
    parser = harness.arguments(__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3, metavar=("KIND", "WORKSPACE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    harness.cli(run, __doc__)


if __name__ == "__main__":
    main()
