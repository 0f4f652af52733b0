"""How CSV files and their columns are named: header names normalised to keys, and the `--encoding`
and `--delimiter` words people type. Shared by the CSV reader (audience) and by `validate`, which
checks a mapping's `encoding:` and `delimiter:` with the same words."""

from __future__ import annotations

import codecs
import re
import unicodedata

from cxctl.core.errors import UsageError

DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
ENCODING_ALIASES = {
    "utf8": "utf-8",
    "utf-8-bom": "utf-8-sig",
    "latin1": "latin-1",
    "windows-1252": "cp1252",
    "ansi": "cp1252",
}


def normalise_header(name: str) -> str:
    """Header name → key: accents removed, lower case, runs of other characters → `_` (`Prénom ` → `prenom`,
    `Date d'achat` → `date_d_achat`, `E-mail` → `e_mail`); an empty name gives `column`."""
    text = unicodedata.normalize("NFKD", name.strip())
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = re.sub(r"[^a-z0-9]+", "_", text).strip("_")
    return text or "column"


def unique_keys(names: list[str]) -> list[str]:
    """Normalised keys, with `_2`, `_3`… added to repeated names so no column is lost."""
    keys: list[str] = []
    seen: set[str] = set()
    for name in names:
        base = normalise_header(name)
        key, n = base, 2
        while key in seen:
            key, n = f"{base}_{n}", n + 1
        seen.add(key)
        keys.append(key)
    return keys


def parse_encoding(text: str | None) -> str | None:
    """`--encoding` value (or a mapping's `encoding`) → a codec name Python knows (`ansi` → cp1252…)."""
    if not text:
        return None
    encoding = ENCODING_ALIASES.get(text.lower(), text)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise UsageError(f"unknown encoding {encoding!r}: use utf-8, utf-8-sig, cp1252 or latin-1") from None
    return encoding


def parse_delimiter(text: str | None) -> str | None:
    """`--delimiter` value → one character (`tab`, `\\t`, `;`, `semicolon`…)."""
    if text is None or text == "":
        return None
    value = DELIMITER_NAMES.get(text.lower(), text)
    if len(value) != 1:
        raise UsageError(f"invalid delimiter {text!r}: give one character such as ';' or ',' or the word 'tab'")
    return value
