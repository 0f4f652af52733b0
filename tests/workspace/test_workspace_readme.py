"""Every registered CLI command is documented in the manual's CLI reference (docs/cli.md), and the
workspace key reference (docs/workspace-keys.md) is generated from the model: neither may drift."""

from __future__ import annotations

from pathlib import Path

import typer

DOCS = Path(__file__).resolve().parents[2] / "docs"
CLI_PAGE = DOCS / "cli.md"
KEYS_PAGE = DOCS / "workspace-keys.md"


def command_names(app: typer.Typer, prefix: str = "") -> list[str]:
    """`cxctl <command>` for every command, sub-commands as `cxctl <group> <command>`."""
    names = []
    for command in app.registered_commands:
        name = command.name or command.callback.__name__.replace("_", "-")
        names.append(f"{prefix}{name}")
    for group in app.registered_groups:
        group_name = group.name or group.typer_instance.info.name
        names.extend(command_names(group.typer_instance, f"{prefix}{group_name} "))
    return names


def test_command_names_are_found():
    from cxctl.cli.app import app

    names = command_names(app)
    assert {"validate", "schema", "init", "db status"} <= set(names)


def test_every_command_is_in_the_cli_reference():
    from cxctl.cli.app import app

    text = CLI_PAGE.read_text(encoding="utf-8")
    missing = [name for name in command_names(app) if f"cxctl {name}" not in text]
    assert missing == [], f"commands missing from docs/cli.md: {missing}"


def test_docs_key_reference_is_generated_from_the_model():
    """docs/workspace-keys.md embeds reference_markdown(); regenerate it when the model changes."""
    from cxctl.workspace.operations import reference_markdown

    text = KEYS_PAGE.read_text(encoding="utf-8")
    start, end = "<!-- key-reference:start -->\n", "<!-- key-reference:end -->"
    embedded = text[text.index(start) + len(start) : text.index(end)]
    assert embedded == reference_markdown() + "\n", (
        "docs/workspace-keys.md's key reference is out of date: run `python -m cxctl.cli.clidoc --write`"
    )
