"""Is this workspace right? The one place that composes every check: each file read and validated
(workspace.loader), the references across files (workspace.checks), and each moment's templates
rendered with sample data (delivery.render). It sits above the stages it calls, so none of them
imports another upward.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxctl.core.errors import Problem, UsageError, WorkspaceError
from cxctl.delivery.render import check_templates
from cxctl.delivery.sms_render import SmsCheck, check_sms_templates
from cxctl.workspace.checks import cross_check
from cxctl.workspace.loader import WORKSPACE_FILE, LoadResult, Workspace, read_files


def check_workspace(paths: list[Path] | None = None, sms_sizes: list[SmsCheck] | None = None) -> LoadResult:
    """Parse, validate and cross-check every file; return the workspace (if valid) and all problems.
    `sms_sizes`, when given, receives the encoding and segments of each SMS template (for `validate`)."""
    read = read_files(paths)
    problems = list(read.problems)

    def render_templates(ws: Workspace) -> list[tuple[str, str, str]]:
        found = [(moment_id, message, "error") for moment_id, message in check_templates(ws)]
        sms_problems, sizes = check_sms_templates(ws)
        if sms_sizes is not None:
            sms_sizes.extend(sizes)
        return found + sms_problems

    workspace, found = cross_check(
        read.root,
        read.parsed,
        had_errors=any(p.severity == "error" for p in problems),
        incomplete=read.incomplete,
        render_templates=render_templates,
    )
    files = read.files
    problems.extend(found)
    problems = sorted(set(problems), key=lambda p: (p.file, p.line, p.column, p.severity, p.message))
    has_errors = any(p.severity == "error" for p in problems)
    return LoadResult(None if has_errors else workspace, problems, files)


def load_workspace(path: Path | str | None = None) -> Workspace:
    """Load the workspace at `path` (default: the current folder); raise WorkspaceError on any error."""
    result = check_workspace([Path(path)] if path else None)
    if result.workspace is None and not result.files:
        # Issue 12: outside any workspace, name the folder and how to point at one, not a cxctl.yaml that is not there.
        folder = Path(path) if path else Path.cwd()
        raise UsageError(
            f"{folder}: not a cxctl workspace (no {WORKSPACE_FILE}, no YAML file): run the command in the "
            f"workspace folder, give --workspace DIR or set CXCTL_WORKSPACE; `cxctl init DIR` creates one"
        )
    if result.workspace is None:
        raise WorkspaceError(result.problems)
    return result.workspace


@dataclass
class WorkspaceReport:
    """The outcome for one workspace: its root, the files read and what was found in them."""

    root: Path
    files: list[Path]
    problems: list[Problem]
    sms: list[SmsCheck] = field(default_factory=list)
    """Each SMS template's encoding and segments with sample data (shown by validate)."""

    @property
    def errors(self) -> int:
        return sum(p.severity == "error" for p in self.problems)

    @property
    def warnings(self) -> int:
        return sum(p.severity == "warning" for p in self.problems)


@dataclass
class ValidationReport:
    """Every workspace checked by one `cxctl validate`; `failed` applies the --strict choice."""

    workspaces: list[WorkspaceReport]
    strict: bool = False
    problems: list[Problem] = field(init=False)

    def __post_init__(self) -> None:
        self.problems = [p for w in self.workspaces for p in w.problems]

    @property
    def errors(self) -> int:
        return sum(w.errors for w in self.workspaces)

    @property
    def warnings(self) -> int:
        return sum(w.warnings for w in self.workspaces)

    @property
    def failed(self) -> bool:
        return self.errors > 0 or (self.strict and self.warnings > 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": not self.failed,
            "strict": self.strict,
            "errors": self.errors,
            "warnings": self.warnings,
            "workspaces": [
                {
                    "root": str(w.root),
                    "files": len(w.files),
                    "errors": w.errors,
                    "warnings": w.warnings,
                    **({"sms": [vars(c) for c in w.sms]} if w.sms else {}),
                }
                for w in self.workspaces
            ],
            "problems": [
                {
                    "file": p.file,
                    "line": p.line,
                    "column": p.column,
                    "path": p.path,
                    "severity": p.severity,
                    "message": p.message,
                }
                for p in self.problems
            ],
        }


def _workspace_root(path: Path) -> Path | None:
    for folder in (path if path.is_dir() else path.parent, *path.resolve().parents):
        if (folder / WORKSPACE_FILE).is_file():
            return folder
    return None


def _nested_workspaces(folder: Path) -> list[Path]:
    """Top-most folders below `folder` that hold a cxctl.yaml (hidden folders skipped)."""
    found: list[Path] = []
    pending = [folder]
    while pending:
        current = pending.pop(0)
        for child in sorted(p for p in current.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if (child / WORKSPACE_FILE).is_file():
                found.append(child)
            else:
                pending.append(child)
    return found


def find_workspaces(paths: list[Path]) -> list[list[Path]]:
    """Group the command line's paths into workspaces, each given as the paths to check together.

    A folder with cxctl.yaml is one workspace; a folder without one but with workspaces below it is
    each of those; a file is checked with the rest of its workspace, since ids are global.
    """
    groups: dict[Path, list[Path]] = {}
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file or folder; give a workspace folder (the one with {WORKSPACE_FILE})")
        if path.is_dir() and not (path / WORKSPACE_FILE).is_file():
            nested = _nested_workspaces(path)
            if nested:
                for nested_root in nested:
                    groups.setdefault(nested_root.resolve(), [nested_root])
                continue
        root = _workspace_root(path)
        if root is None:
            groups.setdefault(path.resolve(), [path])  # no workspace around it: checked on its own
        else:
            groups.setdefault(root.resolve(), [root])
    return list(groups.values())


def validate(paths: list[Path], strict: bool = False) -> ValidationReport:
    """Check every workspace the paths name; return all problems of all of them."""
    reports = []
    for group in find_workspaces(paths):
        sizes: list[SmsCheck] = []
        result = check_workspace(group, sms_sizes=sizes)
        root = group[0] if group[0].is_dir() else group[0].parent
        problems = result.problems + (relay_capability_problems(result.workspace) if result.workspace else [])
        reports.append(WorkspaceReport(root, result.files, problems, sizes))
    return ValidationReport(reports, strict=strict)


def relay_capability_problems(ws: Workspace) -> list[Problem]:
    """Stored contacts the declared relay cannot take: addresses with a non-ASCII local part while
    smtp.smtputf8 is false (issue 12, item 8) — known before any send, not discovered on the wire."""
    from cxctl import store
    from cxctl.core.emails import smtputf8_contacts

    settings = ws.settings
    if settings.transport != "smtp" or settings.smtp.smtputf8 or not ws.database.exists():
        return []
    count, shown = smtputf8_contacts(store.read(ws.database))
    if not count:
        return []
    config = ws.root / WORKSPACE_FILE
    line = (
        next(
            (
                n
                for n, text in enumerate(config.read_text(encoding="utf-8").splitlines(), 1)
                if text.strip().startswith("smtp:")
            ),
            1,
        )
        if config.is_file()
        else 1
    )
    return [
        Problem(
            WORKSPACE_FILE,
            line,
            1,
            "workspace.smtp.smtputf8",
            f"{count} stored contact(s) have an address with a non-ASCII local part ({'; '.join(shown)}"
            f"{', …' if count > len(shown) else ''}) and the server is not declared to accept SMTPUTF8: "
            f"`cxctl send` will fail them without trying; correct those addresses, or set smtputf8: true "
            f"if the server supports it",
            "warning",
        )
    ]


def github_annotation(problem: Problem) -> str:
    """A GitHub Actions workflow command that pins the problem on the file's line in the pull request."""

    def data(text: str) -> str:
        return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    def prop(text: str) -> str:
        return data(text).replace(":", "%3A").replace(",", "%2C")

    level = "error" if problem.severity == "error" else "warning"
    message = f"{problem.path}: {problem.message}" if problem.path else problem.message
    return (
        f"::{level} file={prop(problem.file)},line={problem.line},col={problem.column},"
        f"title={prop('cxctl validate')}::{data(message)}"
    )
