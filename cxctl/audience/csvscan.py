"""The one pass over a CSV file's bytes that comes before any parsing: which encoding it is in, its
SHA-256, and whether its rows may need the cell checks (issue 14).

A file that is not UTF-8 is read as UTF-8 all the same when it is UTF-8 but for a few bytes: those
bytes are located (line, byte offset) so that the rows holding them are rejected, and every other
row keeps its accents. The cell-check gates are bytes operations in C; a file that passes them skips
the checks row by row. `cxctl.audience.csvio` reads the rows.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from cxctl.core.errors import ImportFileError

_CHUNK = 1 << 20
_CP1252_UNDEFINED = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")

# Cell checks, for every import (contacts, events, suppressions, responses). A cell may not hold a
# control character other than tab, line feed and carriage return (NUL and the like are stored and
# sent as they are otherwise, issue 14), nor more than CELL_LIMIT characters (a 10 MB name failed
# only at send, with a 552). Each importer has stricter limits for its own fields (cxctl.audience.values).
CELL_LIMIT = 65_536
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
CONTROL_NAMES = {
    "\x00": "NUL",
    "\x07": "BEL",
    "\x08": "backspace",
    "\x0b": "vertical tab",
    "\x0c": "form feed",
    "\x1a": "SUB (Ctrl-Z)",
    "\x1b": "ESC",
    "\x7f": "DEL",
}
# The scan's cheap gates (about 0.5 ms per MB): bytes.translate keeps only the C0 control bytes that a
# cell may not hold; a C1 control in UTF-8 starts with \xc2; a line of CELL_LIMIT bytes or more
# leaves a window of CELL_LIMIT / 2 bytes without a line end. A file that passes all three needs no
# per-cell check: its rows keep the fast path.
_NOT_C0 = bytes(b for b in range(256) if not (b < 32 and b not in (9, 10, 13) or b == 127))
_C1_UTF8 = re.compile(rb"\xc2[\x80-\x9f]")
_WINDOW = CELL_LIMIT // 2
_NON_ASCII = bytes(range(128, 256))
INVALID = re.compile("[\udc80-\udcff]+")  # bytes that are not UTF-8, as decoded by surrogateescape


@dataclass
class Scan:
    """What one pass over the bytes found: the encoding, the digest, and whether rows need cell checks."""

    encoding: str
    sha256: str
    controls: bool = False  # some byte may be a control character a cell may not hold
    long_lines: bool = False  # some line may hold a cell longer than CELL_LIMIT
    # Invalid UTF-8 in a file read as UTF-8 (the rest of it is): line → [(byte offset, the bytes)].
    invalid: dict[int, list[tuple[int, bytes]]] = field(default_factory=dict)


def scan_file(path: Path, encoding: str | None) -> Scan:
    """One pass over the bytes: encoding, sha256 and the cell-check gates. Detects BOMs; a file that is
    not UTF-8 is read as UTF-8 all the same when it is UTF-8 but for a few bytes (see mostly_utf8),
    else as Windows-1252 (Latin-1 when the bytes are not valid Windows-1252)."""
    digest = hashlib.sha256()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    utf8_ok, cp1252_ok, first = encoding is None, True, b""
    forced = codecs.getincrementaldecoder(encoding)() if encoding else None
    controls = long_lines = False
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
                controls = controls or bool(chunk.translate(None, _NOT_C0)) or _C1_UTF8.search(chunk) is not None
                if not long_lines:
                    long_lines = any(
                        chunk.find(b"\n", at, at + _WINDOW) < 0 and chunk.find(b"\r", at, at + _WINDOW) < 0
                        for at in range(0, len(chunk), _WINDOW)
                    )
            if utf8_ok:
                try:
                    utf8.decode(b"", final=True)
                except UnicodeDecodeError:
                    utf8_ok = False
    except OSError as exc:
        raise ImportFileError(
            f"{path}: cannot read the file ({exc.strerror}): check the path and its permissions"
        ) from None
    invalid: dict[int, list[tuple[int, bytes]]] = {}
    if encoding is None:
        if utf8_ok:
            encoding = "utf-8-sig" if first.startswith(codecs.BOM_UTF8) else "utf-8"
        elif mostly_utf8(path):
            encoding = "utf-8-sig" if first.startswith(codecs.BOM_UTF8) else "utf-8"
            invalid = invalid_utf8(path, encoding)
        else:
            # A second pass only for files that are not UTF-8: on the common UTF-8 file this
            # search cost more than hashing and decoding together.
            with open(path, "rb") as handle:
                while cp1252_ok and (chunk := handle.read(_CHUNK)):
                    cp1252_ok = _CP1252_UNDEFINED.search(chunk) is None
            encoding = "cp1252" if cp1252_ok else "latin-1"
    if codecs.lookup(encoding).name not in ("utf-8", "utf-8-sig", "cp1252"):
        # The byte gates only hold for these encodings (Latin-1 maps 0x80-0x9f to C1 controls; UTF-16
        # is full of zero bytes): every row of other files gets its cells checked.
        controls = long_lines = True
    return Scan(encoding, digest.hexdigest(), controls, long_lines, invalid)


def mostly_utf8(path: Path) -> bool:
    """A file that fails to decode as UTF-8 is UTF-8 still when its invalid bytes are fewer than its valid
    non-ASCII characters: one broken cell in a file of accented names (issue 14: `Caf\\xc3\\x28`) must
    not turn every `Zoé` into `ZoÃ©`. A Windows-1252 file has (almost) no valid multi-byte sequence, so
    it stays Windows-1252. Counted with two C decoders and a byte filter (a regular expression over the
    decoded text cost three times more on a Windows-1252 file)."""
    lenient = codecs.getincrementaldecoder("utf-8")("surrogateescape")
    dropping = codecs.getincrementaldecoder("utf-8")("ignore")
    valid = broken = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            kept = len(dropping.decode(chunk))
            broken += len(lenient.decode(chunk)) - kept  # each invalid byte is one surrogate, or nothing
            valid += kept - len(chunk.translate(None, _NON_ASCII))
    return 0 < broken <= valid


def invalid_utf8(path: Path, encoding: str) -> dict[int, list[tuple[int, bytes]]]:
    """line → [(byte offset in the file, the invalid bytes)] of a file read as UTF-8 with a few bad bytes;
    lines are counted as the CSV reader counts them (\\n, \\r\\n and \\r each end one)."""
    found: dict[int, list[tuple[int, bytes]]] = {}
    offset = 3 if encoding == "utf-8-sig" else 0
    with open(path, encoding=encoding, errors="surrogateescape", newline="") as handle:
        for number, line in enumerate(handle, start=1):
            size = len(line.encode("utf-8", "surrogateescape"))
            if not line.isascii():
                for match in INVALID.finditer(line):
                    at = offset + len(line[: match.start()].encode("utf-8", "surrogateescape"))
                    found.setdefault(number, []).append((at, match.group().encode("utf-8", "surrogateescape")))
            offset += size
    return found
