"""The `cxctl` command line: a thin typer app. Each area registers its commands from
cxctl/commands/; this module only assembles them and owns the one place where errors become exit codes
(0 ok, 1 problems found, 2 usage, 3 bug, 130 Ctrl-C)."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated, Optional

import typer

from cxctl import __version__, store
from cxctl.core import output
from cxctl.core.errors import CxError, WorkspaceError

HELP_OPTIONS = {"-h", "--help"}  # a command asked only for its help needs none of its imports
NO_STORE = {"validate", "schema", "init"}  # commands that never open the store (nor import sqlite-utils)

app = typer.Typer(
    name="cxctl",
    help="Customer-experience survey campaigns: journeys, key moments, solicitation rules, invitations and scorecards.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cxctl {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks of unexpected errors.", envvar="CXCTL_DEBUG")
    ] = False,
) -> None:
    """cxctl measures customer experience at the key moments of a journey, without over-surveying anyone."""
    if debug:
        os.environ["CXCTL_DEBUG"] = "1"


def _register() -> None:
    from cxctl.cli import audience, db, deliverability, plan, privacy, report, results, send, serve, workspace

    for module in (workspace, audience, plan, send, deliverability, serve, results, report, privacy, db):
        module.register(app)


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and turn every outcome into one message and one exit code."""
    code = run(argv)
    sys.exit(code)


def run(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = next((arg for arg in args if not arg.startswith("-")), None)
    if command is not None and command not in NO_STORE and not HELP_OPTIONS & set(args):
        # A command will run, and its modules import sqlite-utils: import it first, without numpy (issue 18).
        store.import_sqlite_utils()
    try:
        result = app(args=argv, standalone_mode=False, prog_name="cxctl")
        return result if isinstance(result, int) else 0
    except WorkspaceError as exc:
        for problem in exc.problems:
            if problem.severity == "error":
                output.stderr.print(problem.format(), markup=False, highlight=False)
        output.error(str(exc))
        return exc.exit_code
    except CxError as exc:
        output.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        output.error("interrupted")
        return 130
    except Exception as exc:  # click's usage errors, typer.Exit/Abort, and real bugs
        if exc.__class__.__name__ == "Abort":
            output.error("interrupted")
            return 130
        if exc.__class__.__name__ == "Exit":
            return getattr(exc, "exit_code", 0)
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            return exc.exit_code
        if os.environ.get("CXCTL_DEBUG"):
            traceback.print_exc()
        output.error(
            f"unexpected error {exc.__class__.__name__}: {exc} — this is a bug in cxctl; rerun with "
            f"`cxctl --debug …` (before the command) or CXCTL_DEBUG=1 for the traceback, and report it"
        )
        return 3
