"""The README's CLI reference is exactly what the commands' --help prints, and its quick start
names the commands CI runs."""

from __future__ import annotations

from pathlib import Path

from cxctl.cli import clidoc
ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def test_cli_reference_matches_help():
    text = README.read_text(encoding="utf-8")
    assert clidoc.START in text and clidoc.END in text
    embedded = text.split(clidoc.START, 1)[1].split(clidoc.END, 1)[0]
    assert embedded.strip() == clidoc.reference_markdown().strip(), (
        "README.md's CLI reference is out of date: run `python -m cxctl.cli.clidoc --write README.md`")


def test_ci_runs_the_readme_commands():
    readme = README.read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for command in (".venv/bin/python -m pytest", "pip install -e '.[test]'"):
        assert command in readme and command in ci, command
    assert ".venv/bin/cxctl demo" in readme and "cxctl demo" in ci
