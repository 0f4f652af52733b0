"""Robust reading of CSV files as real tools export them (CRM reports, Excel, survey tools).

What it copes with: UTF-8 with or without BOM, UTF-16 with BOM (Excel "Unicode text"), Windows-1252
(or Latin-1 when the bytes are not valid Windows-1252); `,` `;` tab and `|` delimiters; quoted fields
holding delimiters and newlines; Excel's `sep=;` first line; header names with stray spaces or odd
case; blank lines; and the
footers report tools append after the data (Salesforce: a blank line, "Grand Totals (N records)",
"Confidential Information - Do Not Distribute", a copyright line).

API (generic: contacts, events, suppressions and responses all read files through it)::

    from cxctl.audience.csvio import open_csv
    with open_csv(path, encoding=None, delimiter=None) as table:
        table.header     # header names as written, surrounding spaces stripped
        table.keys       # the same names normalised by normalise_header(), made unique
        table.encoding   # detected (or given) encoding, e.g. "utf-8-sig", "cp1252"
        table.delimiter  # detected (or given) delimiter
        table.sha256     # hex digest of the file's bytes (for import logs)
        for row in table.records():      # CsvRow(number, values, fields, problem)
            row.number   # 1-based line of the file where the record starts (header = its line)
            row.values   # {header name: value}; empty when the row is malformed
            row.fields   # the fields exactly as read (for a rejects file)
            row.problem  # None, or why the row cannot be used (see "Bad rows" below)
        table.footer     # footer lines dropped, known once the records are consumed
        table.notes      # what reading did beyond plain rows (lines read again, bytes not UTF-8)

`table.rows()` yields the same rows as plain `(number, fields, problem)` tuples without building
dicts: the fast path for million-row imports. The file is streamed; only the current row and a few
possible footer lines are held in memory.

Detection (cxctl.audience.csvscan): the encoding is decided on a full pass over the bytes (which also computes the sha256),
so a Windows-1252 character on line 900,000 is not a surprise half-way through an import. The
delimiter is the candidate that splits the header into the most columns with the most consistent
field counts over the first records.

Bad rows (issue 14: a bad row never takes good rows with it) come out with their `problem`, and the
rows around them come out as written:
- a wrong number of fields;
- an unclosed quote: a record that ran over line ends and is not well-formed CSV of the header's
  width has its first line rejected, and the lines after it are read again one by one;
- bytes that are not UTF-8 in a file that is UTF-8 but for them (it is read as UTF-8, not as
  Windows-1252 for every row): the row, with the byte offsets and the bytes;
- a control character other than tab and line ends, or a cell over CELL_LIMIT characters.
The pass over the bytes tells whether any row may need the cell checks; clean files skip them.

Errors: `ImportFileError` names the file and ends with the fix (`--encoding`, `--delimiter`).
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from cxctl.audience.csvscan import CELL_LIMIT, CONTROL, CONTROL_NAMES, INVALID, Scan, scan_file
from cxctl.core.csvnames import parse_delimiter, parse_encoding, unique_keys
from cxctl.core.errors import ImportFileError, UsageError

if TYPE_CHECKING:
    from _csv import Reader, Writer  # the types csv.reader() and csv.writer() return

DELIMITERS = (",", ";", "\t", "|")
FOOTER_TEXT = re.compile(
    r"^\s*(grand totals? \(\d+ records?\)|total(es)? g[ée]n[ée]ra(l|ux).*|sous-total.*|confidential information.*"
    r"|informations? confidentielles?.*|copyright\b.*|\(c\) .*|©.*|generated (by|on) .*|g[ée]n[ée]r[ée] (par|le) .*)\s*$",
    re.IGNORECASE,
)

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class CsvRow(NamedTuple):
    """One record of the file; `problem` says why it cannot be used (then `values` is empty)."""

    number: int
    values: dict[str, str]
    fields: list[str]
    problem: str | None


def _sniff(sample: str) -> str:
    """Pick the delimiter that gives the widest header and the most consistent rows in `sample`."""
    lines = sample.splitlines(keepends=True)
    if len(lines) > 1 and not sample.endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample may cut the last record in half
    text = "".join(lines)
    best, best_score = ",", None
    for candidate in DELIMITERS:
        try:
            records = [r for r in csv.reader(io.StringIO(text), delimiter=candidate) if any(f.strip() for f in r)][:50]
        except csv.Error:
            continue
        if not records:
            continue
        width = len(records[0])
        consistent = sum(1 for r in records[1:] if len(r) == width) / max(1, len(records) - 1)
        score = (width > 1, consistent, width)
        if best_score is None or score > best_score:
            best, best_score = candidate, score
    return best


@dataclass
class CsvTable:
    """An open CSV file; iterate with `records()` (dicts) or `rows()` (field lists)."""

    path: Path
    encoding: str
    delimiter: str
    sha256: str
    header: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    header_line: int = 1
    footer: list[str] = field(default_factory=list)
    # What reading did beyond the plain rows, for the import's notes: lines read again one by one
    # after an unclosed quote, rows with bytes that are not UTF-8.
    notes: list[str] = field(default_factory=list)
    scan: Scan | None = None
    _handle: io.TextIOBase | None = None
    _reader: Reader | None = None  # set by _open()
    _offset: int = 0  # file line of the reader's line 0 (the reader restarts after an unclosed quote)
    _raw: io.TextIOBase | None = None  # a second handle on the file, for the lines a record ran over
    _raw_lines: list[tuple[int, str]] = field(default_factory=list)
    _raw_next: int = 1

    def __enter__(self) -> CsvTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for name in ("_handle", "_raw"):
            handle = getattr(self, name)
            if handle is not None:
                handle.close()
                setattr(self, name, None)

    @property
    def _errors(self) -> str:
        return "surrogateescape" if self.scan is not None and self.scan.invalid else "strict"

    @property
    def _every_cell(self) -> bool:
        """Whether every row needs its cells checked (else only rows off the fast path)."""
        scan = self.scan
        return scan is None or scan.controls or scan.long_lines or bool(scan.invalid)

    def _next(self) -> tuple[int, int, list[str]] | None:
        """Next raw record with the lines it starts and ends on, or None at the end of the file."""
        reader = self._reader
        assert reader is not None, "records are read after _open()"
        start = self._offset + reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise self._error(exc, start) from None
        return start, self._offset + reader.line_num, fields

    def _error(self, exc: Exception, start: int) -> ImportFileError:
        if isinstance(exc, UnicodeDecodeError):
            return ImportFileError(
                f"{self.path}:{start}: not valid {self.encoding} ({exc.reason}): give the right --encoding (e.g. cp1252)"
            )
        return ImportFileError(
            f"{self.path}:{start}: the CSV cannot be parsed ({exc}): check the quoting around line {start}"
        )

    def _open(self) -> None:
        with open(self.path, encoding=self.encoding, errors="replace", newline="") as probe:
            sample = probe.read(65536)
        handle = open(self.path, encoding=self.encoding, errors=self._errors, newline="")  # noqa: SIM115 - closed by the generator that reads it
        self._handle = handle
        skip = 0
        hint = re.match(r'"?sep=(.)"?\r?\n', sample.lstrip("\ufeff"))
        if hint:  # Excel's "sep=;" first line names the delimiter
            self.delimiter = self.delimiter or hint.group(1)
            skip = 1
        if not self.delimiter:
            self.delimiter = _sniff(sample)
        self._reader = csv.reader(handle, delimiter=self.delimiter, strict=False)
        for _ in range(skip):
            self._next()
        while True:
            item = self._next()
            if item is None:
                raise ImportFileError(
                    f"{self.path}: the file is empty (no header row): export it again with its column names"
                )
            number, _, fields = item
            if any(f.strip() for f in fields):
                break
        self.header_line = number
        self.header = [_readable(f.strip()) for f in fields]
        self.keys = unique_keys(self.header)

    def _footer_like(self, fields: list[str]) -> bool:
        if len(fields) > 1 and fields[0] and fields[-1]:
            # Two filled cells: data — unless a footer written unquoted was split at its own delimiter
            # ("Copyright (c) 2000-2024 salesforce.com, inc. …" in a comma file).
            return len(fields) < len(self.header) and FOOTER_TEXT.match(self._line(fields)) is not None
        filled = [f for f in fields if f.strip()]
        if not filled:
            return True
        if len(filled) == 1 and FOOTER_TEXT.match(filled[0]):
            return True
        return len(self.header) > 1 and len(fields) < len(self.header) and len(filled) == 1 and fields[0].strip() != ""

    def _line(self, fields: list[str]) -> str:
        """A footer record as its text: the cells joined back, without the padding of empty cells."""
        return _readable(self.delimiter.join(fields).strip(self.delimiter + " \t"))

    def _check(self, number: int, end: int, fields: list[str]) -> tuple[int, list[str], str | None]:
        width = len(self.header)
        problem = None
        if len(fields) > width and not any(f.strip() for f in fields[width:]):
            fields = fields[:width]  # trailing delimiters, as Excel sometimes writes
        if len(fields) != width:
            problem = (
                f"the row has {len(fields)} fields but the header has {width}: quote values that contain "
                f"{_show(self.delimiter)} or line breaks, or give the right --delimiter"
            )
        invalid = self.scan.invalid if self.scan is not None else None
        if invalid and any(line in invalid for line in range(number, end + 1)):
            where = "; ".join(
                f"byte offset {at} ({_hex(raw)}, line {line})"
                for line in range(number, end + 1)
                for at, raw in invalid.get(line, ())
            )
            problem = (
                f"not valid UTF-8 at {where}: the rest of the file is UTF-8, so this row was left out; fix the cell "
                f"(or, if the whole file is Windows-1252, give --encoding cp1252)"
            )
            return number, [_readable(f) for f in fields], problem
        return number, fields, problem or self._cell_problem(fields)

    def _cell_problem(self, fields: list[str]) -> str | None:
        """Why one of the cells cannot be stored (a control character, a size), or None."""
        joined = "\t".join(fields)  # one search per row; the cell is looked for only when something is found
        if len(joined) <= CELL_LIMIT and CONTROL.search(joined) is None:
            return None
        for index, value in enumerate(fields):
            if len(value) > CELL_LIMIT:
                return (
                    f"column {self._column(index)!r} holds {len(value):,} characters, more than the {CELL_LIMIT:,} a cell "
                    f"may hold: is it the right column? shorten it in the source and export again"
                )
            found = CONTROL.search(value)
            if found is not None:
                char = found.group()
                name = f"U+{ord(char):04X}" + (f" ({CONTROL_NAMES[char]})" if char in CONTROL_NAMES else "")
                return (
                    f"control character {name} in column {self._column(index)!r} at character {found.start() + 1}: "
                    f"remove it in the source and export again"
                )
        return None

    def _column(self, index: int) -> str:
        return self.header[index] if index < len(self.header) else f"column {index + 1}"

    def _fits(self, fields: list[str] | None) -> bool:
        """Whether `fields` has one value per column (trailing empty fields aside)."""
        width = len(self.header)
        return fields is not None and (
            len(fields) == width or (len(fields) > width and not any(f.strip() for f in fields[width:]))
        )

    def _raw_range(self, first: int, last: int) -> list[str]:
        """The file's lines `first` to `last` as read (line ends kept), from a second handle that only
        moves forward: records are checked in file order, and only the lines of the current one are kept."""
        if self._raw is None:
            self._raw = open(self.path, encoding=self.encoding, errors=self._errors, newline="")  # noqa: SIM115 - closed by close()
        kept = self._raw_lines
        while kept and kept[0][0] < first:
            kept.pop(0)
        if first > self._raw_next:  # lines before the record: skipped by the C iterator, not one call each
            skipped = sum(1 for _ in itertools.islice(self._raw, first - self._raw_next))
            self._raw_next += skipped
        while self._raw_next <= last:
            line = self._raw.readline()
            if not line:
                break
            if self._raw_next >= first:
                kept.append((self._raw_next, line))
            self._raw_next += 1
        return [text for number, text in kept if number <= last]

    def _run_over(self, number: int, end: int, fields: list[str]) -> tuple[int, list[str], str] | None:
        """A record that ran over line ends is a good multi-line record when its text is well-formed CSV
        (RFC 4180: a quoted value closes before a delimiter or a line end, no quote inside an unquoted value)
        with one value per column. Else a quote was left open on its first line and swallowed the lines
        after it (issue 14): that line is rejected, the reader restarts on the next one and reads the lines
        again. Returns the rejected row, or None for a good record."""
        lines = self._raw_range(number, end)
        if self._fits(fields) and _record_pattern(self.delimiter).fullmatch("".join(lines)) is not None:
            return None
        broken = next(csv.reader(lines[:1], delimiter=self.delimiter, strict=False), [])
        if broken:
            broken[-1] = broken[-1].rstrip("\r\n")
        assert self._handle is not None, "records are read after _open(), before close()"
        self._reader = csv.reader(itertools.chain(lines[1:], self._handle), delimiter=self.delimiter, strict=False)
        self._offset = number
        self._raw_lines = [(n, text) for n, text in self._raw_lines if n > number]
        again = f"line {number + 1}" if end == number + 1 else f"lines {number + 1}-{end}"
        self.notes.append(
            f"line {number}: a quote opened on this line was not closed and ran over {again}; "
            f"line {number} was rejected and {again} read again one by one"
        )
        return (
            number,
            [_readable(f) for f in broken],
            (
                f"a quote opened on this line is not closed: it took lines {number}-{end} into one record, so this line was "
                f'rejected and {again} read again one by one; close the quote (a quote inside a value is written twice: "")'
            ),
        )

    def rows(self) -> Iterator[tuple[int, list[str], str | None]]:
        """Yield (line number, fields, problem) for each data record; blank lines and the footer are skipped."""
        pending: list[tuple[int, int, list[str]]] = []
        width = len(self.header)
        fast = not self._every_cell
        while True:
            item = self._next()
            if item is None:
                break
            number, end, fields = item
            # The common case inline (a full one-line row with two filled cells; an empty last column — an
            # optional comment — is common): this loop runs a million times, so it reads the csv reader
            # directly; _next() (the error messages) takes over on anything else.
            if (
                fast
                and end == number
                and len(fields) == width
                and width > 1
                and fields[0]
                and (fields[-1] or fields[1])
                and not pending
            ):
                yield number, fields, None
                reader = self._reader
                assert reader is not None, "set by _open(), as _next() just read from it"
                offset = self._offset
                last = reader.line_num
                try:
                    for fields in reader:
                        line = reader.line_num
                        if line == last + 1 and len(fields) == width and fields[0] and (fields[-1] or fields[1]):
                            yield offset + line, fields, None
                            last = line
                        else:
                            number, end = offset + last + 1, offset + line
                            break
                    else:
                        break
                except (csv.Error, UnicodeDecodeError) as exc:
                    raise self._error(exc, offset + last + 1) from None
            if end > number:
                rejected = self._run_over(number, end, fields)
                if rejected is not None:
                    if pending:
                        yield from self._flush(pending)
                        pending = []
                    yield rejected
                    continue
            if self._footer_like(fields):
                pending.append((number, end, fields))
                continue
            if pending:
                yield from self._flush(pending)
                pending = []
            yield self._check(number, end, fields)
        if pending:
            texts = [self._line(fields) for _, _, fields in pending]
            is_footer = any(FOOTER_TEXT.match(t) for t in texts if t) or (
                not pending[0][2] or not any(f.strip() for f in pending[0][2])
            )
            if is_footer:
                self.footer = [t for t in texts if t]
            else:
                yield from self._flush(pending)
        if self.scan is not None and self.scan.invalid:
            count = sum(map(len, self.scan.invalid.values()))
            self.notes.append(
                f"read as UTF-8 although {count} byte sequence(s) are not UTF-8: the rows holding them were "
                f"rejected, every other row kept as written"
            )

    def _flush(self, pending: list[tuple[int, int, list[str]]]) -> Iterator[tuple[int, list[str], str | None]]:
        for number, end, fields in pending:
            if any(f.strip() for f in fields):
                yield self._check(number, end, fields)

    def records(self) -> Iterator[CsvRow]:
        """Yield CsvRow(number, {header: value}, fields, problem) for each data record."""
        header = self.header
        for number, fields, problem in self.rows():
            values = {} if problem else dict(zip(header, fields))
            yield CsvRow(number, values, fields, problem)


def _readable(text: str) -> str:
    """Text with the bytes that are not UTF-8 (surrogateescape) shown as U+FFFD, fit to print or write."""
    return INVALID.sub(lambda m: "\ufffd" * len(m.group()), text) if not text.isascii() else text


@lru_cache(maxsize=8)
def _record_pattern(delimiter: str) -> re.Pattern:
    """One well-formed CSV record (RFC 4180, any line end): quoted values with doubled quotes, or values
    without quotes at all. Quoted values are tried first and unquoted ones cannot hold a quote, so the
    match is linear."""
    d = re.escape(delimiter)
    value = f'(?:"(?:[^"]|"")*"|[^"{d}\\r\\n]*)'
    return re.compile(f"{value}(?:{d}{value})*(?:\\r\\n|\\n|\\r)?")


def _hex(raw: bytes) -> str:
    return "bytes " + " ".join(f"{b:02X}" for b in raw)


def _show(delimiter: str) -> str:
    return "tab" if delimiter == "\t" else repr(delimiter)


def open_csv(path: Path | str, encoding: str | None = None, delimiter: str | None = None) -> CsvTable:
    """Open `path`, detect what was not given, read the header; use as a context manager."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file: check the path")
    scan = scan_file(path, parse_encoding(encoding))
    table = CsvTable(
        path=path, encoding=scan.encoding, delimiter=parse_delimiter(delimiter) or "", sha256=scan.sha256, scan=scan
    )
    try:
        table._open()
    except BaseException:
        table.close()
        raise
    return table


class RejectsWriter:
    """Streams rejected rows to `<input>.rejects.csv`; the file is only created when a row is rejected.

    Rows are rejected in two passes by some imports (a bad cell while reading, an unknown contact once
    the file is staged): `close` puts the file back in row order when they came out of order."""

    def __init__(self, path: Path, header: list[str], delimiter: str = ","):
        self.path, self.header, self.delimiter = path, header, delimiter
        self.count = 0
        self._handle: io.TextIOWrapper | None = None
        self._writer: Writer | None = None
        self._last = 0
        self._sorted = True

    def add(self, number: int, fields: list[str], reason: str) -> None:
        if self._writer is None:
            self._handle = open(self.path, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed by close()
            self._writer = csv.writer(self._handle, delimiter=self.delimiter)
            self._writer.writerow(["row", "reason", *self.header])
        self._writer.writerow([number, reason, *fields])
        self._sorted = self._sorted and number >= self._last
        self._last = number
        self.count += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            if not self._sorted:
                self._reorder()

    def _reorder(self) -> None:
        with open(self.path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter=self.delimiter)
            head = next(reader)
            rows = sorted(reader, key=lambda row: int(row[0]))  # stable: one row's reasons keep their order
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle, delimiter=self.delimiter)
            writer.writerow(head)
            writer.writerows(rows)
        tmp.replace(self.path)
        self._sorted = True
