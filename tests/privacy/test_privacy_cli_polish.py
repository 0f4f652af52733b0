"""The whole CLI: every command shows an example of itself, --version, and shell completion."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import typer

from cxctl import __version__
from cxctl.cli.app import app


def _commands(command=None, path=()):
    command = command or typer.main.get_command(app)
    subs = getattr(command, "commands", None)
    if subs:
        if getattr(command, "invoke_without_command", False) and path:
            yield path, command  # a group that is also a command (`cxctl followups`)
        for name, sub in subs.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path, command


COMMANDS = sorted(_commands(), key=lambda item: item[0])


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_help_shows_an_example_of_itself(path, cli):
    code, out, _ = cli(*path, "--help")
    assert code == 0
    examples = re.findall(r"Example:\s*(cxctl [^\n]+)", out)
    assert examples, f"`cxctl {' '.join(path)} --help` has no 'Example: cxctl …' line"
    assert any(e.split()[1 : 1 + len(path)] == list(path) for e in examples), examples


def test_clock_dependent_commands_share_option_names():
    """--now, --json, --dry-run and -w/--workspace mean the same everywhere they appear."""
    seen: dict[str, set[str]] = {}
    for _path, command in COMMANDS:
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt in ("--now", "--json", "--dry-run", "--workspace"):
                    seen.setdefault(opt, set()).add(
                        " ".join(getattr(param, "secondary_opts", [])) + "|" + ",".join(sorted(param.opts))
                    )
    assert seen["--workspace"] == {"|--workspace,-w"}
    assert all(len(forms) == 1 for forms in seen.values()), seen


def test_version(cli):
    code, out, _ = cli("--version")
    assert code == 0 and out.strip() == f"cxctl {__version__}"


def test_shell_completion_completes_commands():
    env = {**os.environ, "_CXCTL_COMPLETE": "complete_bash", "COMP_WORDS": "cxctl fo", "COMP_CWORD": "1"}
    done = subprocess.run(
        [sys.executable, "-c", "from cxctl.cli.app import main; main()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) == {"forget", "followups"}
