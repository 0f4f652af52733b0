"""`cxctl validate`, `cxctl schema`, `cxctl init`: the workspace's gate, its schema and its starter."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from cxctl.cli.common import JsonOption, WorkspaceOption, workspace_path
from cxctl.core import output


class Format(str, enum.Enum):  # noqa: UP042 - typer reads choices from a str Enum
    text = "text"
    json = "json"
    github = "github"


def validate_command(
    paths: Annotated[
        Optional[list[Path]],
        typer.Argument(
            help="Workspace folders or files (default: $CXCTL_WORKSPACE or the current folder). A folder holding "
            "several workspaces checks each.",
            show_default=False,
        ),
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on warnings too (exit 1).")] = False,
    format_: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            help="text for people, json for scripts, github for workflow annotations on pull requests.",
        ),
    ] = Format.text,
    json_: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    workspace: WorkspaceOption = None,
) -> int:
    """Check the workspace YAML: syntax, schema, ids and references across files, secrets.

    Reports every problem as file:line:col: key.path: message. Exit 0 when valid, 1 when there are
    errors (or warnings with --strict), 2 on usage errors.

    Example: cxctl validate campaigns/ --strict --format github
    """
    if json_:
        format_ = Format.json
    targets = list(paths or []) + ([workspace] if workspace is not None else [])
    from cxctl.validation import github_annotation, validate

    report = validate(targets or [workspace_path(None)], strict=strict)
    if format_ is Format.json:
        output.print_json(report.to_dict())
    elif format_ is Format.github:
        for problem in report.problems:
            sys.stdout.write(github_annotation(problem) + "\n")
    else:
        for problem in report.problems:
            sys.stdout.write(problem.format() + "\n")
    if format_ is Format.text:
        for w in report.workspaces:
            for size in w.sms:  # what each SMS costs, with sample data: the encoding and the billed segments
                output.info(
                    f"sms {size.moment} ({size.language}{', reminder' if size.reminder else ''}): "
                    f"{size.template}: {size.summary}"
                )
    if format_ is not Format.json:
        files = sum(len(w.files) for w in report.workspaces)
        roots = ", ".join(str(w.root) for w in report.workspaces)
        verdict = "invalid" if report.failed else "valid"
        strict_note = " (--strict: warnings fail)" if report.strict and report.warnings and not report.errors else ""
        output.info(
            f"{roots}: {verdict} — {report.errors} error(s), {report.warnings} warning(s) in {files} file(s)"
            f"{strict_note}"
        )
    return 1 if report.failed else 0


def schema_command(
    json_: Annotated[bool, typer.Option("--json", help="Accepted for scripts: the output is always JSON.")] = False,
) -> int:
    """Print the JSON Schema (draft 2020-12) of a workspace file, for editors and check-jsonschema.

    Save it next to your YAML and add `# yaml-language-server: $schema=./cxctl.schema.json` on top of
    each file for completion and checks in your editor.

    Example: cxctl schema > cxctl.schema.json
    """
    from cxctl.workspace.operations import json_schema

    output.print_json(json_schema())
    return 0


def init_command(
    folder: Annotated[Path, typer.Argument(help="Folder to create the workspace in.")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that already exist.")] = False,
    name: Annotated[Optional[str], typer.Option("--name", help="The programme's name (default: the folder's).")] = None,
    json_: JsonOption = False,
) -> int:
    """Create a commented starter workspace that validates: settings, rules, a journey, questions, moments.

    Example: cxctl init mon-programme && cxctl validate mon-programme
    """
    from cxctl.workspace.operations import init_workspace

    result = init_workspace(folder, force=force, name=name)
    if json_:
        output.print_json({"folder": str(result.folder), "created": [str(p) for p in result.created]})
        return 0
    for path in result.created:
        output.info(f"created {path}")
    output.info(f"next: edit the files, then run `cxctl validate {folder}`")
    return 0


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_command)
    app.command("schema")(schema_command)
    app.command("init")(init_command)
