"""Benchmark: validate a workspace of 500 moment files (target: under 2 s, issue 2).

Generates bench/data/workspace_500/ (git-ignored): cxctl.yaml with rules, 10 journeys, 60
questions, and 500 files of one moment each, written the way a team writes them (comments,
localised names, targets, reminders). Times, in every round:
  - the baseline: every file parsed by libyaml (yaml.CSafeLoader), nothing checked — the floor of
    reading the workspace;
  - check_workspace() with libyaml (what cxctl uses when PyYAML has it),
  - check_workspace() with the pure-Python YAML parser (the fallback),
  - the `cxctl validate` command, end to end, in a fresh process.
Run: python bench/workspace_validate.py [--scale 0.1] [--rounds 3]   (--scale 1 = 500 moment files)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import harness
import yaml
from harness import Row

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


def run(scale: float, rounds: int) -> list[Row]:
    moments = harness.scaled(500, scale, 10)
    root = harness.data_dir("validate") / f"workspace_{moments}"
    generate(root, moments)
    files = sorted(root.rglob("*.yaml"))
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    def parse_only() -> None:
        for path in files:
            yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 (a safe loader)

    def check() -> None:
        result = check_workspace([root])
        assert result.workspace is not None, [p.format() for p in result.errors][:5]
        assert len(result.workspace.moments) == moments

    def check_pure_python() -> None:
        fast = yamlfile.SafeLoader
        yamlfile.SafeLoader = yaml.SafeLoader
        try:
            check()
        finally:
            yamlfile.SafeLoader = fast

    series = harness.alternate(
        {
            "parse": lambda: harness.timed(parse_only),
            "check": lambda: harness.timed(check),
            "pure": lambda: harness.timed(check_pure_python),
            "cli": lambda: harness.run_measured(harness.cxctl_command("validate", str(root)), harness.cxctl_env()),
        },
        rounds,
    )
    shutil.rmtree(root, ignore_errors=True)
    base = series["parse"]
    base.label = "libyaml parse of every file, no checks"
    text = f"{moments} moment files, {len(files)} YAML files"
    return [
        Row("validate", "`check_workspace()` (libyaml)", text, series["check"], base, "< 2 s at 500"),
        Row(
            "validate",
            "`check_workspace()` (pure-Python YAML)",
            text,
            series["pure"],
            base,
            "< 2 s at 500",
            "the fallback",
        ),
        Row("validate", "`cxctl validate` (new process)", text, series["cli"], base, "< 2 s at 500"),
    ]


if __name__ == "__main__":
    harness.cli(run, __doc__)
