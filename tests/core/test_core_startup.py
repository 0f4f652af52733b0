"""Start-up cost (issue 18): `cxctl --help` and a command's help import none of the heavy libraries.

Every CLI module is imported to list the commands, so one module-level import of the workspace loader,
the store or rich puts ~0.6 s back on every `cxctl …`. These checks run in a fresh interpreter, where
sys.modules shows what the command really imported.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cxctl.core import output

# Each is imported where it is used: pydantic models and jinja2 by the workspace loader, sqlite-utils
# (and numpy through it) by the store, rich by the first table or message, the rest by one command each.
HEAVY = (
    "rich",
    "jinja2",
    "yaml",
    "sqlite_utils",
    "numpy",
    "holidays",
    "phonenumbers",
    "email_validator",
    "croniter",
    "aiosmtplib",
    "pyarrow",
    "matplotlib",
    "starlette",
    "uvicorn",
    "httpx",
    "cxctl.validation",
    "cxctl.workspace.model",
)


def _imported(args: list[str]) -> list[str]:
    code = (
        "import json, sys\n"
        "from cxctl.cli.app import run\n"
        f"code = run({args!r})\n"
        f"print(json.dumps([code, [m for m in {HEAVY!r} if m in sys.modules]]), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    exit_code, imported = json.loads(done.stderr.strip().splitlines()[-1])
    assert exit_code == 0, done.stderr
    return imported


@pytest.mark.parametrize(
    "args",
    [["--help"], ["scorecard", "--help"], ["validate", "--help"], ["send", "--help"], ["--version"]],
    ids=" ".join,
)
def test_help_imports_no_heavy_module(args: list[str]) -> None:
    # typer itself imports pydantic to build a command's parameters: that one is not ours to cut.
    assert _imported(args) == []


def test_a_command_on_the_store_does_not_import_numpy(tmp_path) -> None:
    # sqlite-utils imports numpy (and pandas) only to map their types: the CLI imports it without them.
    from cxctl.cli.app import run

    assert run(["init", str(tmp_path / "ws")]) == 0
    code = (
        "import io, json, sys, contextlib\n"
        "from cxctl.cli.app import run\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    codes = [run(['validate', {str(tmp_path / 'ws')!r}])]\n"
        "    imported = [m for m in ('sqlite_utils', 'numpy') if m in sys.modules]\n"  # validate needs no store
        f"    codes += [run(['scorecard', '-w', {str(tmp_path / 'ws')!r}]), run(['db', 'status', '-w', {str(tmp_path / 'ws')!r}])]\n"
        "imported += [m for m in ('numpy', 'pandas') if m in sys.modules]\n"
        "import numpy, sqlite_utils\n"  # still importable by whoever needs it (pyarrow, matplotlib)
        "print(json.dumps([codes, imported, sqlite_utils.Database(':memory:').execute('select 1').fetchone()[0]]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [[0, 0, 0], [], 1], done.stderr


def test_the_consoles_are_made_once_on_first_use() -> None:
    assert output.stdout is output.stdout
    assert output.stderr is not output.stdout
    assert output.stderr.stderr and not output.stdout.stderr
    with pytest.raises(AttributeError, match="no attribute 'console'"):
        _ = output.console


def test_the_holiday_countries_are_the_librarys_list() -> None:
    # Read from the holidays registry without importing each country; must match the public, slow list.
    import holidays

    from cxctl.workspace.followup_model import holiday_countries

    assert holiday_countries() == frozenset(holidays.list_supported_countries())
    assert {"FR", "FRA", "GB", "UK", "CA"} <= holiday_countries()
