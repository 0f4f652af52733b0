"""Option types shared by every command, so names are the same everywhere.

Every CLI module imports this one, and `cxctl --help` imports every CLI module: the workspace loader
(pydantic models, jinja2, the store) is imported when a command runs, not here (issue 18: start-up)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from cxctl.workspace.loader import Workspace

WorkspaceOption = Annotated[
    Optional[Path],
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace folder (the one with cxctl.yaml). Default: $CXCTL_WORKSPACE or the current folder.",
        show_default=False,
    ),
]
NowOption = Annotated[
    Optional[str],
    typer.Option(
        "--now",
        help="Pretend it is this time (ISO 8601, e.g. 2026-11-22T09:00+01:00); naive times are in the workspace time zone.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Report what would happen; change nothing.")]
MomentOption = Annotated[Optional[str], typer.Option("--moment", "-m", help="Only this key moment (id).")]


def workspace_path(path: Optional[Path]) -> Path:
    if path is not None:
        return path
    env = os.environ.get("CXCTL_WORKSPACE")
    return Path(env) if env else Path.cwd()


def open_workspace(path: Optional[Path]) -> Workspace:
    """Load the workspace or raise WorkspaceError (rendered by the CLI's one error handler)."""
    from cxctl.validation import load_workspace

    return load_workspace(workspace_path(path))


def now_for(workspace: Workspace | None, now: Optional[str]):
    from cxctl.core.timeutil import parse_now

    return parse_now(now, workspace.settings.timezone if workspace else "UTC")
