"""One error family for cxctl; the CLI turns each into one message and one exit code.

Exit codes: 0 ok, 1 problems found, 2 usage, 3 bug, 130 Ctrl-C.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass


class CxError(Exception):
    """A problem the user can fix; the message names the object and ends with the fix."""

    exit_code = 1


class UsageError(CxError):
    """The command line itself is wrong (unknown moment, bad --now, missing file)."""

    exit_code = 2


class WorkspaceError(CxError):
    """The workspace YAML is invalid; carries every problem found, not only the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        errors = [p for p in problems if p.severity == "error"]
        super().__init__(f"{len(errors)} error(s) in the workspace; run `cxctl validate` to see them")


class StoreError(CxError):
    """The database cannot be opened or migrated."""


class LockedError(CxError):
    """Another cxctl process holds the lock (e.g. an overlapping cron `send`)."""


class ImportFileError(CxError):
    """An input file cannot be read at all (encoding, no header, unknown format)."""


class TransportError(CxError):
    """The mail transport failed as a whole (server down, authentication refused)."""


@dataclass(frozen=True)
class Problem:
    """One validation finding with its place: `file:line:col: key.path: message`."""

    file: str
    line: int
    column: int
    path: str
    message: str
    severity: str = "error"  # "error" | "warning"

    def format(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        key = f" {self.path}:" if self.path else ""
        return f"{where}:{key} {self.severity}: {self.message}"


def did_you_mean(word: str, candidates) -> str:
    """` (did you mean 'x'?)` or an empty string."""
    match = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
