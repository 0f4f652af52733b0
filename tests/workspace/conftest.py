"""Fixtures of the workspace area: run check_workspace on the shared workspace plus inline files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cxctl.core.errors import Problem
from cxctl.validation import check_workspace


def write_files(root: Path, files: dict[str, str | bytes | None]) -> None:
    """Write (or, for None, delete) files below root; YAML is dedented so it can be indented inline."""
    for name, text in files.items():
        path = root / name
        if text is None:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)  # as some editor saved it
        else:
            path.write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.fixture
def check(workspace_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """Add `files` to the shared valid workspace (tests/conftest.py) and return every problem found.

    Runs from the workspace's parent so problems name files `ws/<file>`, as a user sees them.
    """
    monkeypatch.chdir(workspace_dir.parent)

    def run(files: dict[str, str | None] | None = None) -> list[Problem]:
        write_files(workspace_dir, files or {})
        return check_workspace([Path(workspace_dir.name)]).problems

    return run


def places(problems: list[Problem], severity: str = "error") -> list[tuple[str, int, int, str]]:
    return [(p.file, p.line, p.column, p.path) for p in problems if p.severity == severity]
