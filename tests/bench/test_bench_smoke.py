"""The benchmarks run on demand, never in the suite; this runs `python -m bench` once at the smallest scale so
the shared harness and every bench's entry point cannot rot unnoticed (the figures are not checked)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


# bench name (`--only`) -> the rows of the table it writes
ROWS = {
    "validate": {"validate"},
    "privacy": {"privacy"},
    "send": {"send"},
    "sms": {"sms"},
    "serve": {"serve"},
    "audience": {"audience"},
    "plan": {"plan"},
    "results": {"results"},
    "export": {"export", "report"},
}


def test_the_smoke_test_knows_every_bench():
    code = "import sys; sys.path.insert(0, 'bench'); import run_all; print(','.join(run_all.BENCHES))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert set(ROWS) == set(done.stdout.strip().split(","))


# One bench per test, so pytest-xdist spreads them over the cores: all of them in one `python -m bench`
# was the suite's longest test (~110 s on a loaded machine).
@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("bench", sorted(ROWS))
def test_python_m_bench_runs_every_bench_at_the_smallest_scale(tmp_path, bench):
    out = tmp_path / "results.md"
    env = {**os.environ, "CXCTL_BENCH_DATA": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--only", bench, "--scale", "0", "--rounds", "1", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = out.read_text(encoding="utf-8")
    assert table.startswith("<!-- Written by `python -m bench`")
    assert "Measured " in table and " cores, " in table and "Python " in table and "SQLite " in table
    benches = {line.split(" | ")[0].removeprefix("| ") for line in table.splitlines() if line.startswith("| ")}
    assert benches == ROWS[bench] | {"bench"}, benches
    assert "failed" not in table
    # Every row that has a baseline carries its ratio.
    for line in table.splitlines():
        cells = line.split(" | ")
        if line.startswith("| ") and cells[0] != "| bench" and cells[3] != "—":
            assert cells[5].startswith("**") and cells[5].rstrip("*").split("**")[1].endswith("×"), line
