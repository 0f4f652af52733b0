"""The manual's CLI reference (docs/cli.md) is exactly what the commands' --help prints, and the
README's quick start names the commands CI runs."""

from __future__ import annotations

from pathlib import Path

from cxctl.cli import clidoc

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CLI_PAGE = ROOT / "docs" / clidoc.CLI_PAGE


def test_cli_reference_matches_help():
    text = CLI_PAGE.read_text(encoding="utf-8")
    assert clidoc.START in text and clidoc.END in text
    embedded = text.split(clidoc.START, 1)[1].split(clidoc.END, 1)[0]
    assert embedded.strip() == clidoc.reference_markdown().strip(), (
        "docs/cli.md's CLI reference is out of date: run `python -m cxctl.cli.clidoc --write`"
    )


def test_ci_runs_the_readme_commands():
    readme = README.read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for command in (".venv/bin/python -m pytest", "pip install -e '.[test]'"):
        assert command in readme and command in ci, command
    assert ".venv/bin/cxctl demo" in readme and "cxctl demo" in ci


def test_clidoc_write_regenerates_both_pages(tmp_path):
    """`--write` puts the generated blocks back into stale pages and leaves the prose around them."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / clidoc.CLI_PAGE).write_text(
        f"# CLI\n\nprose\n\n{clidoc.START}\nstale\n{clidoc.END}\n\nafter\n", encoding="utf-8"
    )
    (docs / clidoc.KEYS_PAGE).write_text(f"# Keys\n\n{clidoc.KEYS_START}stale\n{clidoc.KEYS_END}\n", encoding="utf-8")
    assert clidoc.main(["--write", str(docs)]) == 0
    cli = (docs / clidoc.CLI_PAGE).read_text(encoding="utf-8")
    assert cli.startswith("# CLI\n\nprose\n\n") and cli.endswith(f"{clidoc.END}\n\nafter\n")
    assert clidoc.embedded_block(cli).strip() == clidoc.reference_markdown().strip()
    keys = (docs / clidoc.KEYS_PAGE).read_text(encoding="utf-8")
    assert "stale" not in keys and "#### `workspace.smtp`" in keys


def test_clidoc_write_names_a_missing_page(tmp_path):
    import pytest

    with pytest.raises(SystemExit, match="cli.md: no such page"):
        clidoc.write_pages(tmp_path)
