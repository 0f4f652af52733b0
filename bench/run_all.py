"""Run every benchmark and write one markdown table of the results (run on demand, never in the suite):

    python -m bench [--scale 0.1] [--scale-of plan=1,results=0.5] [--rounds 3] [--only plan,results]
                    [--out bench/out/results.md] [--docs]

Each bench alternates its baseline and cxctl over --rounds rounds (bench/harness.py); the table gives
min / median / max of both and the ratio of the medians, under a line naming the date and the machine
(CPU model, cores, Python and SQLite versions, the load average during the runs). --docs also writes it to
docs/generated/benchmark-results.md, which docs/benchmarks.md includes: the figures in the docs come from there.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import harness  # noqa: E402

# In the order they run: the quick ones first, so a broken harness shows early.
BENCHES = {
    "validate": "workspace_validate",
    "privacy": "privacy_forget",
    "send": "send_throughput",
    "sms": "sms_send",
    "serve": "serve_answers",
    "audience": "audience_import",
    "plan": "plan_engine",
    "results": "results_scorecard",
    "export": "export_report",
}
DOCS_TABLE = harness.REPO / "docs" / "generated" / "benchmark-results.md"


def render(rows: list[harness.Row], scale: str, rounds: int, seconds: float, failed: dict[str, str]) -> str:
    lines = [
        "<!-- Written by `python -m bench` (bench/run_all.py); do not edit by hand. -->",
        "",
        f"{harness.machine_line(rows)} Scale {scale} (1 = the sizes the issues name), {rounds} alternating "
        f"rounds, {seconds / 60:.1f} minutes in all. Each ratio is cxctl's median over the baseline's median "
        "measured in the same rounds (in brackets: the lowest and highest ratio within a round); above 1 is "
        "slower than the baseline.",
        "",
        harness.table(rows),
    ]
    for name, error in failed.items():
        lines += ["", f"**{name} failed**: {error}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = harness.arguments(__doc__.strip().splitlines()[0])
    parser.prog = "python -m bench"
    parser.add_argument("--only", help="comma-separated: " + ", ".join(BENCHES))
    parser.add_argument(
        "--scale-of", default="", metavar="NAME=S,…", help="another scale for some benches, e.g. plan=1 (data reused)"
    )
    parser.add_argument("--out", type=Path, default=HERE / "out" / "results.md")
    parser.add_argument("--docs", action="store_true", help=f"also write {DOCS_TABLE.relative_to(harness.REPO)}")
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(BENCHES)
    unknown = [name for name in chosen if name not in BENCHES]
    if unknown:
        parser.error(f"unknown bench {', '.join(unknown)}; choose among {', '.join(BENCHES)}")
    try:
        scales = {
            name: float(value) for name, _, value in (part.partition("=") for part in args.scale_of.split(",") if part)
        }
    except ValueError:
        parser.error(f"--scale-of takes NAME=SCALE pairs, e.g. plan=1: got {args.scale_of!r}")
    if set(scales) - set(BENCHES):
        parser.error(f"--scale-of: unknown bench {', '.join(set(scales) - set(BENCHES))}")
    os.environ.setdefault("CXCTL_SECRET", harness.SECRET)
    started = time.perf_counter()
    rows: list[harness.Row] = []
    failed: dict[str, str] = {}
    for name in chosen:
        scale = scales.get(name, args.scale)
        harness.say(f"== {name} (bench/{BENCHES[name]}.py, scale {scale:g}, {args.rounds} rounds)")
        module = importlib.import_module(BENCHES[name])
        try:
            rows += module.run(scale, args.rounds)
        except (Exception, SystemExit) as error:  # one broken bench must not hide the others' figures
            failed[name] = f"{type(error).__name__}: {error}"[:2000]
            harness.say(f"   {name} failed: {failed[name]}")
    scale_text = f"{args.scale:g}" + "".join(f", {name} {value:g}" for name, value in scales.items())
    text = render(rows, scale_text, args.rounds, time.perf_counter() - started, failed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    if args.docs:
        DOCS_TABLE.write_text(text, encoding="utf-8")
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
