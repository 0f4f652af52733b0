"""The output layer: rich for people, plain text when not a terminal, JSON for scripts.

stdout carries data (tables, JSON); stderr carries progress, warnings and errors.
Core modules never import this: they return data, the commands render it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console, JustifyMethod
    from rich.table import Table


def width() -> int:
    """The width tables are laid out for: $COLUMNS, else the terminal's — stdout's, or stderr's or stdin's
    when stdout is piped (`cxctl followups | less` is read in that terminal) — else 80. Read at each table,
    so a test (or a caller) can set COLUMNS. Every table is designed to read at 80 columns."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    for stream in (sys.stdout, sys.stderr, sys.stdin):
        try:
            size = os.get_terminal_size(stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            continue
        if size:
            return size
    return 80


def __getattr__(name: str) -> Console:
    """`output.stdout` and `output.stderr`, the two rich consoles, made on first use: importing rich costs
    ~0.05 s that `cxctl --help`, `--json` and the quiet commands never need (issue 18)."""
    if name not in ("stdout", "stderr"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rich.console import Console

    console = Console(stderr=name == "stderr", soft_wrap=True, highlight=False)
    globals()[name] = console
    return console


def _stdout() -> Console:
    return globals().get("stdout") or __getattr__("stdout")


def _stderr() -> Console:
    return globals().get("stderr") or __getattr__("stderr")


_FIELDS: dict[type, tuple[str, ...]] = {}


def _default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # One level only (the encoder comes back here for nested dataclasses): asdict() deep-copies,
        # which on a million planned invitations costs more than the encoding.
        names = _FIELDS.get(type(value))
        if names is None:
            names = _FIELDS[type(value)] = tuple(f.name for f in dataclasses.fields(value))
        return {name: getattr(value, name) for name in names}
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_json(data: Any) -> str:
    """Stable JSON for scripts: sorted keys are not forced (order is meaningful), UTF-8 kept."""
    return json.dumps(data, default=_default, ensure_ascii=False, indent=2)


STREAM_ABOVE = 2_000  # list items: above this, a document is written item by item


def print_json(data: Any) -> None:
    """Indented JSON; a list (or a dict of lists) longer than STREAM_ABOVE items is streamed instead,
    one item per line — a follow-up list or a suppression list can hold a million entries."""
    if isinstance(data, list) and len(data) > STREAM_ABOVE:
        _write_list(data, "")
        sys.stdout.write("\n")
        sys.stdout.flush()
        return
    if isinstance(data, dict) and sum(len(v) for v in data.values() if isinstance(v, list)) > STREAM_ABOVE:
        print_json_streamed(data)
        return
    sys.stdout.write(to_json(data) + "\n")
    sys.stdout.flush()


_ITEM = json.JSONEncoder(default=_default, ensure_ascii=False, separators=(", ", ": ")).encode


class EncodedItems:
    """The items of a JSON array already encoded, one JSON text each (`plan --json`'s exclusions, built by
    SQLite): print_json_streamed writes them as they are, one per line, in the form it gives other items
    (`", "` and `": "` separators, UTF-8 kept)."""

    def __init__(self, texts: Iterable[str]):
        self.texts = texts

    def __iter__(self) -> Iterator[str]:
        return iter(self.texts)


def _write_list(value: Iterable[Any], indent: str) -> None:
    """A JSON array written item by item, one per line by the C encoder: never whole in memory (an
    iterator is consumed as it is written)."""
    write = sys.stdout.write
    write("[")
    line = "\n  " + indent
    between = "," + line  # joined in C, 4,096 items at a time: no string built per item
    chunk: list[str] = []
    written = 0
    for text in value if isinstance(value, EncodedItems) else map(_ITEM, value):
        chunk.append(text)
        if len(chunk) >= 4096:
            write(("," if written else "") + line + between.join(chunk))
            written += len(chunk)
            chunk.clear()
    if chunk:
        write(("," if written else "") + line + between.join(chunk))
        written += len(chunk)
    write(f"\n{indent}]" if written else "]")


def print_json_streamed(data: dict[str, Any]) -> None:
    """print_json for a dict whose lists may hold a million items (`plan --json`): its lists, and its
    iterators (read as they are written) and EncodedItems, are streamed (the indented one-shot form took 2.5 GB and 34 s
    for a plan listing a million exclusions)."""
    write = sys.stdout.write
    write("{")
    for n, (key, value) in enumerate(data.items()):
        write(("," if n else "") + "\n  " + json.dumps(key, ensure_ascii=False) + ": ")
        if isinstance(value, (list, Iterator, EncodedItems)):
            _write_list(value, "  ")
        else:
            write(to_json(value).replace("\n", "\n  "))
    write("\n}\n")
    sys.stdout.flush()


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    justify: dict[str, JustifyMethod] | None = None,
    compact: bool = False,
    no_wrap: Sequence[str] = (),
    lines: bool = False,
) -> Table:
    """A rich table; numbers are right-aligned unless `justify` says otherwise. A cell too long for its
    column wraps (folding a long word) rather than being cut with `…`: nothing shown is lost. `compact`
    drops the vertical rules (two columns' worth of room at 80 columns); `no_wrap` columns keep their
    text whole (names, ids) and the others wrap instead."""
    from rich import box
    from rich.table import Table

    rows = [list(r) for r in rows]
    t = Table(
        title=title,
        title_justify="left",
        show_lines=lines,
        box=box.SIMPLE_HEAD if compact else box.HEAVY_HEAD,
        show_edge=not compact,
        collapse_padding=compact,
    )
    for i, name in enumerate(columns):
        numeric = bool(rows) and all(isinstance(r[i], (int, float)) or r[i] in (None, "") for r in rows)
        t.add_column(
            name,
            justify=(justify or {}).get(name, "right" if numeric else "left"),
            overflow="fold",
            no_wrap=name in no_wrap,
        )
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    return t


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], **kwargs: Any) -> None:
    print_renderable(table(title, columns, rows, **kwargs))


def print_renderable(renderable: Any) -> None:
    """A table (or any rich renderable) on stdout, laid out for width()."""
    _stdout().print(renderable, width=width(), soft_wrap=False)


def warn(message: str) -> None:
    stderr = _stderr()
    stderr.print(
        f"[yellow]warning:[/] {message}" if stderr.is_terminal else f"warning: {message}", markup=stderr.is_terminal
    )


def info(message: str) -> None:
    _stderr().print(message, markup=False)


def error(message: str) -> None:
    stderr = _stderr()
    if stderr.is_terminal:
        stderr.print(f"[bold red]error:[/] {_escape(message)}")
    else:
        stderr.print(f"error: {message}", markup=False)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@contextmanager
def working(message: str):
    """A spinner with `message` on stderr while long work runs, on a terminal only (cron logs stay clean)."""
    stderr = _stderr()
    if stderr.is_terminal:
        with stderr.status(message):
            yield
    else:
        yield
