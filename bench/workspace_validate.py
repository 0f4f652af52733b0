"""Benchmark: validate a workspace of 500 moment files (target: under 2 s, issue 2).

Generates bench/data/workspace_500/ (git-ignored): cxctl.yaml with rules, 10 journeys, 60
questions, and 500 files of one moment each, written the way a team writes them (comments,
localised names, targets, reminders). Times, best of several runs:
  - check_workspace() with libyaml (what cxctl uses when PyYAML has it),
  - check_workspace() with the pure-Python YAML parser (the fallback),
  - the `cxctl validate` command, end to end, in a fresh process.
Run: /work/venv/bin/python bench/workspace_validate.py [--moments 500] [--runs 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from cxctl.validation import check_workspace
from cxctl.workspace import yamlfile

HERE = Path(__file__).resolve().parent

SETTINGS = """\
workspace:
  name: Banc d'essai
  default_language: fr
  languages: [fr, en]
  timezone: Europe/Paris
  sender: {name: Service Client, address: avis@banc.example}
  survey_url: "https://s.example/{moment}?lang={lang}&t={token}"
  token_secret_env: CXCTL_SECRET
rules:
  quiet_period: 21d
  cap: {max: 3, window: 90d}
  max_reminders: 2
  priority: [%s]
"""

MOMENT = """\
# Moment {n}: a transactional survey of journey {journey}.
moments:
  moment_{n:04d}:
    name: {{fr: "Moment clé n°{n}", en: "Key moment #{n}"}}
    journey: {journey}
    stage: {stage}
    kind: {kind}
{when}
    audience:
      segment: [particulier, premium]
      country: [FR, BE]
    sample: 0.5
    questions: [q_{q1:03d}, q_{q2:03d}, commentaire]
    reminders: {{count: 1, after: 3d}}
    recontact: 60d
    targets: {{csat: 80, response_rate: 25}}
"""


def generate(root: Path, moments: int) -> None:
    if root.exists():
        shutil.rmtree(root)
    (root / "moments").mkdir(parents=True)
    (root / "cxctl.yaml").write_text(
        SETTINGS % ", ".join(f"moment_{n:04d}" for n in range(0, moments, 10)), encoding="utf-8"
    )
    stages = ["decouverte", "achat", "livraison", "support", "fidelite"]
    journeys = {
        f"parcours_{j}": {
            "name": {"fr": f"Parcours {j}", "en": f"Journey {j}"},
            "stages": stages,
            "channels": ["web", "magasin", "email"],
        }
        for j in range(10)
    }
    questions = {
        f"q_{i:03d}": {"type": "csat", "text": {"fr": f"Êtes-vous satisfait ({i}) ?", "en": f"Satisfied ({i})?"}}
        for i in range(60)
    }
    questions["commentaire"] = {"type": "open", "text": {"fr": "Un commentaire ?", "en": "Any comment?"}}
    (root / "journeys.yaml").write_text(yaml.safe_dump({"journeys": journeys}, allow_unicode=True), encoding="utf-8")
    (root / "questions.yaml").write_text(yaml.safe_dump({"questions": questions}, allow_unicode=True), encoding="utf-8")
    for n in range(moments):
        relational = n % 7 == 0
        when = (
            "    schedule: {every: quarter}"
            if relational
            else f"    trigger: {{event: evenement_{n % 13}, delay: {n % 48}h, expires: 14d}}"
        )
        text = MOMENT.format(
            n=n,
            journey=f"parcours_{n % 10}",
            stage=stages[n % 5],
            kind="relational" if relational else "transactional",
            when=when,
            q1=n % 60,
            q2=(n + 7) % 60,
        )
        (root / "moments" / f"moment_{n:04d}.yaml").write_text(text, encoding="utf-8")


def best_of(runs: int, action) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moments", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    root = HERE / "data" / f"workspace_{args.moments}"
    generate(root, args.moments)

    def check() -> None:
        result = check_workspace([root])
        assert result.workspace is not None, [p.format() for p in result.errors][:5]
        assert len(result.workspace.moments) == args.moments

    rows = []
    rows.append(("check_workspace (libyaml)", *best_of(args.runs, check)))
    fast = yamlfile.SafeLoader
    yamlfile.SafeLoader = yaml.SafeLoader
    try:
        rows.append(("check_workspace (pure-Python YAML)", *best_of(args.runs, check)))
    finally:
        yamlfile.SafeLoader = fast
    cxctl = Path(sys.executable).with_name("cxctl")

    def cli() -> None:
        done = subprocess.run([str(cxctl), "validate", str(root)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    rows.append(("cxctl validate (new process)", *best_of(args.runs, cli)))
    files = len(list(root.rglob("*.yaml")))
    print(f"workspace: {args.moments} moment files, {files} YAML files; target < 2 s")
    print("| what | best (s) | median (s) |")
    print("|---|---:|---:|")
    for name, best, median in rows:
        print(f"| {name} | {best:.3f} | {median:.3f} |")


if __name__ == "__main__":
    main()
