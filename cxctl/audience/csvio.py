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
            row.problem  # None, or why the row cannot be used (wrong number of fields)
        table.footer     # footer lines dropped, known once the records are consumed

`table.rows()` yields the same rows as plain `(number, fields, problem)` tuples without building
dicts: the fast path for million-row imports. The file is streamed; only the current row and a few
possible footer lines are held in memory.

Detection: the encoding is decided on a full pass over the bytes (which also computes the sha256),
so a Windows-1252 character on line 900,000 is not a surprise half-way through an import. The
delimiter is the candidate that splits the header into the most columns with the most consistent
field counts over the first records.

Errors: `ImportFileError` names the file and ends with the fix (`--encoding`, `--delimiter`).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from cxctl.core.csvnames import parse_delimiter, parse_encoding, unique_keys
from cxctl.core.errors import ImportFileError, UsageError

DELIMITERS = (",", ";", "\t", "|")
_CHUNK = 1 << 20
_CP1252_UNDEFINED = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")
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


def _scan(path: Path, encoding: str | None) -> tuple[str, str]:
    """One pass over the bytes: (encoding, sha256). Detects BOMs and falls back from UTF-8 to Windows-1252."""
    digest = hashlib.sha256()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    utf8_ok, cp1252_ok, first = encoding is None, True, b""
    forced = codecs.getincrementaldecoder(encoding)() if encoding else None
    lines = 0
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                if forced is not None:
                    try:
                        forced.decode(chunk)
                    except UnicodeDecodeError as exc:
                        line = lines + chunk.count(b"\n", 0, max(0, exc.start)) + 1
                        raise ImportFileError(
                            f"{path}:{line}: not valid {encoding} ({exc.reason}): give the right --encoding "
                            f"(or leave it out to detect it), e.g. --encoding cp1252"
                        ) from None
                    lines += chunk.count(b"\n")
                if not first:
                    first = chunk[:4]
                    if encoding is None and first[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
                        encoding, utf8_ok = "utf-16", False
                if utf8_ok:
                    try:
                        utf8.decode(chunk)
                    except UnicodeDecodeError:
                        utf8_ok = False
            if utf8_ok:
                try:
                    utf8.decode(b"", final=True)
                except UnicodeDecodeError:
                    utf8_ok = False
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read the file ({exc.strerror}): check the path and its permissions") from None
    if encoding is None:
        if utf8_ok:
            encoding = "utf-8-sig" if first.startswith(codecs.BOM_UTF8) else "utf-8"
        else:
            # A second pass only for files that are not UTF-8: on the common UTF-8 file this
            # search cost more than hashing and decoding together.
            with open(path, "rb") as handle:
                while cp1252_ok and (chunk := handle.read(_CHUNK)):
                    cp1252_ok = _CP1252_UNDEFINED.search(chunk) is None
            encoding = "cp1252" if cp1252_ok else "latin-1"
    return encoding, digest.hexdigest()


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
    _handle: io.TextIOBase | None = None
    _reader: object = None

    def __enter__(self) -> "CsvTable":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _next(self) -> tuple[int, list[str]] | None:
        """Next raw record with the line it starts on, or None at the end of the file."""
        start = self._reader.line_num + 1
        try:
            fields = next(self._reader)
        except StopIteration:
            return None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise self._error(exc, start) from None
        return start, fields

    def _error(self, exc: Exception, start: int) -> ImportFileError:
        if isinstance(exc, UnicodeDecodeError):
            return ImportFileError(
                f"{self.path}:{start}: not valid {self.encoding} ({exc.reason}): give the right --encoding (e.g. cp1252)"
            )
        return ImportFileError(f"{self.path}:{start}: the CSV cannot be parsed ({exc}): check the quoting around line {start}")

    def _open(self) -> None:
        with open(self.path, encoding=self.encoding, errors="replace", newline="") as probe:
            sample = probe.read(65536)
        handle = open(self.path, encoding=self.encoding, newline="")
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
                raise ImportFileError(f"{self.path}: the file is empty (no header row): export it again with its column names")
            number, fields = item
            if any(f.strip() for f in fields):
                break
        self.header_line = number
        self.header = [f.strip() for f in fields]
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
        return self.delimiter.join(fields).strip(self.delimiter + " \t")

    def _check(self, number: int, fields: list[str]) -> tuple[int, list[str], str | None]:
        width = len(self.header)
        if len(fields) == width:
            return number, fields, None
        if len(fields) > width and not any(f.strip() for f in fields[width:]):
            return number, fields[:width], None  # trailing delimiters, as Excel sometimes writes
        return number, fields, (
            f"the row has {len(fields)} fields but the header has {width}: quote values that contain "
            f"{_show(self.delimiter)} or line breaks, or give the right --delimiter"
        )

    def rows(self) -> Iterator[tuple[int, list[str], str | None]]:
        """Yield (line number, fields, problem) for each data record; blank lines and the footer are skipped."""
        pending: list[tuple[int, list[str]]] = []
        width = len(self.header)
        while True:
            item = self._next()
            if item is None:
                break
            number, fields = item
            # The common case inline (a full row with two filled cells; an empty last column — an optional
            # comment — is common): this loop runs a million times,
            # so it reads the csv reader directly; _next() (the error messages) takes over on anything else.
            if len(fields) == width and width > 1 and fields[0] and (fields[-1] or fields[1]) and not pending:
                yield number, fields, None
                reader = self._reader
                number = reader.line_num + 1
                try:
                    for fields in reader:
                        if len(fields) == width and fields[0] and (fields[-1] or fields[1]):
                            yield number, fields, None
                            number = reader.line_num + 1
                        else:
                            break
                    else:
                        break
                except (csv.Error, UnicodeDecodeError) as exc:
                    raise self._error(exc, number) from None
            if self._footer_like(fields):
                pending.append((number, fields))
                continue
            if pending:
                yield from self._flush(pending)
                pending = []
            yield self._check(number, fields)
        if pending:
            texts = [self._line(fields) for _, fields in pending]
            is_footer = any(FOOTER_TEXT.match(t) for t in texts if t) or (
                not pending[0][1] or not any(f.strip() for f in pending[0][1])
            )
            if is_footer:
                self.footer = [t for t in texts if t]
            else:
                yield from self._flush(pending)

    def _flush(self, pending: list[tuple[int, list[str]]]) -> Iterator[tuple[int, list[str], str | None]]:
        for number, fields in pending:
            if any(f.strip() for f in fields):
                yield self._check(number, fields)

    def records(self) -> Iterator[CsvRow]:
        """Yield CsvRow(number, {header: value}, fields, problem) for each data record."""
        header = self.header
        for number, fields, problem in self.rows():
            values = {} if problem else dict(zip(header, fields))
            yield CsvRow(number, values, fields, problem)


def _show(delimiter: str) -> str:
    return "tab" if delimiter == "\t" else repr(delimiter)


def open_csv(path: Path | str, encoding: str | None = None, delimiter: str | None = None) -> CsvTable:
    """Open `path`, detect what was not given, read the header; use as a context manager."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file: check the path")
    encoding, sha256 = _scan(path, parse_encoding(encoding))
    table = CsvTable(path=path, encoding=encoding, delimiter=parse_delimiter(delimiter) or "", sha256=sha256)
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
        self._handle = None
        self._writer = None
        self._last = 0
        self._sorted = True

    def add(self, number: int, fields: list[str], reason: str) -> None:
        if self._writer is None:
            self._handle = open(self.path, "w", encoding="utf-8-sig", newline="")
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
