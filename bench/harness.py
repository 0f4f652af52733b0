"""What every benchmark shares: alternating rounds, min / median / max, the ratio to a baseline measured
in the same run, and the machine the figures came from.

A bench module exposes `run(scale, rounds) -> list[Row]` and calls `cli(run, __doc__)` from its
`__main__`; `python -m bench` runs them all and writes one markdown table (bench/run_all.py).

Why alternate: the machine is shared, and its load changes from one minute to the next. Running the
baseline and cxctl one after the other in each round, several rounds, exposes both to the same
conditions; the ratio of their medians (and the range of the per-round ratios) is what carries from one
machine to another, not the seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SECRET = "bench-secret-not-for-production"


def data_dir(name: str) -> Path:
    """Where a bench generates its data: bench/data/<name>, or $CXCTL_BENCH_DATA/<name> (the smoke test)."""
    root = Path(os.environ.get("CXCTL_BENCH_DATA") or HERE / "data")
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def say(text: str) -> None:
    """Progress goes to stderr, so stdout carries only the tables."""
    print(text, file=sys.stderr, flush=True)


@dataclass
class Sample:
    """One timed run of one contender."""

    seconds: float
    peak_mb: float | None = None
    cpu: float | None = None
    load: float = field(default_factory=lambda: os.getloadavg()[0])
    stdout: str = ""


@dataclass
class Series:
    """Every round of one contender."""

    label: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def seconds(self) -> list[float]:
        return [s.seconds for s in self.samples]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def peak_mb(self) -> float | None:
        peaks = [s.peak_mb for s in self.samples if s.peak_mb is not None]
        return max(peaks) if peaks else None

    def spread(self) -> str:
        values = self.seconds
        if len(values) == 1:
            return f"{values[0]:.3g} s (1 round)"
        return f"{min(values):.3g} / {statistics.median(values):.3g} / {max(values):.3g} s"


@dataclass
class Row:
    """One line of the results table: a measurement against the baseline of the same run."""

    bench: str
    what: str
    data: str
    measured: Series
    baseline: Series | None = None
    goal: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """Median against median: above 1, slower than the baseline."""
        if self.baseline is None or self.baseline.median <= 0:
            return None
        return self.measured.median / self.baseline.median

    def round_ratios(self) -> list[float]:
        """The ratio within each round (both sides run moments apart)."""
        if self.baseline is None:
            return []
        if len(self.baseline.samples) != len(self.measured.samples):
            return []
        return [m.seconds / b.seconds for m, b in zip(self.measured.samples, self.baseline.samples) if b.seconds > 0]

    def ratio_text(self) -> str:
        if self.ratio is None:
            return "—"
        per_round = self.round_ratios()
        text = f"**{self.ratio:.2f}×**"
        if len(per_round) > 1:
            text += f" ({min(per_round):.2f}–{max(per_round):.2f})"
        return text

    def cells(self) -> list[str]:
        base = "—" if self.baseline is None else f"{self.baseline.label}: {self.baseline.spread()}"
        peak = "—" if self.measured.peak_mb is None else f"{self.measured.peak_mb:,.0f} MB"
        return [
            self.bench,
            self.what,
            self.data,
            base,
            self.measured.spread(),
            self.ratio_text(),
            peak,
            self.goal,
            self.note,
        ]


HEADER = [
    "bench",
    "measurement",
    "data",
    "baseline, same run (min / median / max)",
    "cxctl (min / median / max)",
    "ratio of medians (per round)",
    "peak RSS",
    "goal",
    "note",
]


def table(rows: Sequence[Row]) -> str:
    """The rows as one markdown table (pipes inside cells escaped)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in rows:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row.cells()) + " |")
    return "\n".join(lines)


def alternate(
    contenders: dict[str, Callable[[], Sample | float]], rounds: int, once: Sequence[str] = ()
) -> dict[str, Series]:
    """Run every contender once per round, in the given order (baseline first), `rounds` times; those
    named in `once` (a slow reference kept for the record, never the baseline a goal is read against)
    only in the first round.

    Each contender times itself (its untimed set-up stays outside the figure) and returns a Sample or
    its seconds."""
    series = {name: Series(name) for name in contenders}
    for round_ in range(rounds):
        for name, contender in contenders.items():
            if round_ and name in once:
                continue
            result = contender()
            sample = result if isinstance(result, Sample) else Sample(float(result))
            series[name].samples.append(sample)
            say(f"  round {round_ + 1}/{rounds}: {name}: {sample.seconds:.3f} s (load {sample.load:.1f})")
    return series


def timed(function: Callable[[], object]) -> Sample:
    """Time a call in this process."""
    start = time.perf_counter()
    function()
    return Sample(time.perf_counter() - start)


# Linux keeps a process's peak RSS across exec, so a child forked from this (large) process would report at
# least this process's size. A minimal interpreter starts the command instead and reports its child's usage.
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(command: Sequence[str], env: dict[str, str] | None = None, stdout=None) -> Sample:
    """Run one process to the end, its output to `stdout` (an open file) or captured: wall seconds, CPU
    seconds and peak RSS of that process (wait4, through LAUNCHER; the launcher adds about 10 ms).

    Exit 0 and 1 are accepted (1 is cxctl's "problems found", e.g. rows quarantined); anything else stops
    the bench with the process's stderr."""
    import tempfile

    executable = shutil.which(command[0]) or command[0]
    with tempfile.TemporaryFile() as errors, tempfile.NamedTemporaryFile("r") as usage:
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-S", "-c", LAUNCHER, usage.name, executable, *command[1:]],
            stdout=stdout if stdout is not None else subprocess.PIPE,
            stderr=errors,
            env=env,
        )
        out = process.stdout.read() if process.stdout is not None else b""
        code = process.wait()
        elapsed = time.perf_counter() - start
        if code not in (0, 1):
            errors.seek(0)
            sys.exit(
                f"{' '.join(map(str, command))} failed ({code}):\n{errors.read().decode(errors='replace')[-3000:]}"
            )
        peak_kb, cpu = usage.read().split()
    return Sample(elapsed, peak_mb=int(peak_kb) / 1024, cpu=float(cpu), stdout=out.decode(errors="replace"))


def own_peak_mb() -> float:
    """This process's peak RSS since its exec (VmHWM): unlike ru_maxrss, which Linux carries over from the
    process that forked it, so a child of a large bench would report the bench's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cxctl_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cxctl", *args]


def cxctl_env() -> dict[str, str]:
    return {**os.environ, "CXCTL_SECRET": SECRET, "PYTHONPATH": str(REPO)}


def sqlite_shell() -> str:
    shell = shutil.which("sqlite3")
    if shell is None:
        sys.exit("the sqlite3 command-line shell is needed for the baselines: apt-get install sqlite3")
    return shell


def shell(db_path: Path, *commands: str, stdin: str | None = None) -> Sample:
    """The sqlite3 shell on a database file: commands as arguments or a script on stdin, output discarded."""
    start = time.perf_counter()
    subprocess.run(
        [sqlite_shell(), str(db_path), *commands], input=stdin, text=True, check=True, stdout=subprocess.DEVNULL
    )
    return Sample(time.perf_counter() - start)


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def scaled(full: int, scale: float, smallest: int) -> int:
    return max(smallest, int(full * scale))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    """What the figures depend on, printed above every table."""
    try:
        version = subprocess.run([sqlite_shell(), "--version"], capture_output=True, text=True).stdout.split()[0]
    except (OSError, IndexError):
        version = "absent"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "sqlite": f"{sqlite3.sqlite_version} (Python's library), shell {version}",
        "system": f"{platform.system()} {platform.release()}",
    }


def machine_line(rows: Sequence[Row] = ()) -> str:
    info = machine()
    loads = [s.load for row in rows for series in (row.measured, row.baseline) if series for s in series.samples]
    load = f"; load average {min(loads):.1f}–{max(loads):.1f} during the runs" if loads else ""
    return (
        f"Measured {info['date']} on {info['cpu']}, {info['cores']} cores, {info['system']}, Python {info['python']}, "
        f"SQLite {info['sqlite']}{load}."
    )


def arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = the sizes the issues name; 0.1 for a quick run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (3 at least for figures you quote)")
    return parser


def cli(run: Callable[[float, int], list[Row]], doc: str | None) -> None:
    """The `python bench/<name>.py [--scale S] [--rounds R]` entry point of a bench."""
    args = arguments((doc or "").strip().splitlines()[0]).parse_args()
    os.environ.setdefault("CXCTL_SECRET", SECRET)
    rows = run(args.scale, args.rounds)
    print(machine_line(rows))
    print()
    print(table(rows))
