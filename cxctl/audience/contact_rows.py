"""Contacts rows: one CSV row → one staged contact row, checked and normalised.

`build_converter` is the hot loop of a million-row import, so the per-column decisions are taken
once per file and the converter is generated for the file's columns (see the comment there).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from operator import itemgetter
from typing import Any, Protocol

from cxctl.audience import phones, values
from cxctl.core import emails
from cxctl.core.csvnames import normalise_header
from cxctl.workspace.loader import Workspace
from cxctl.workspace.model import CONTACT_FIELDS
from cxctl.workspace.presets import Resolved

FORGOTTEN = "forgotten (GDPR erasure)"


class Converter(Protocol):
    """The generated per-row function (see `build_converter`) and the raw-cell readers it carries."""

    digest: Callable[[list[str]], str]
    key: Callable[[list[str]], str]
    suppressed: Callable[[list[str]], str | None] | None

    def __call__(self, number: int, fields: list[str]) -> list[Any]: ...


def _suppression_sources(ws: Workspace | None, resolved: Resolved) -> list[tuple[int, frozenset[str], str]]:
    """Opt-out columns: the preset's, plus `rules.suppression_sources` matched by attribute name."""
    sources = list(resolved.suppress)
    if ws is not None:
        by_key = {c.name: c.index for c in resolved.columns if c.target == "attribute"}
        for source in ws.rules.suppression_sources:
            index = by_key.get(normalise_header(source.attribute))
            if index is not None:
                sources.append((index, frozenset(v.strip().lower() for v in source.values), source.reason))
    return sources


def build_converter(
    resolved: Resolved, ws: Workspace | None, forgotten: set[str]
) -> tuple[Converter, list[str], list[str]]:
    """Build the per-row function: fields → [row number, external id, email, email hash, *staged
    fields, attributes JSON, row hash], or raise ValueError with the reject reason.

    Returns (convert, staged field names, attribute keys); `convert.key(fields)`,
    `convert.digest(fields)` and `convert.suppressed(fields)` (None without opt-out columns) read
    the raw cells. This is the hot loop of a million-row import: the per-column decisions are taken
    here, once, so `convert` only does what each column needs."""
    field_index = {c.name: c.index for c in resolved.columns if c.target == "field"}
    maps = resolved.values
    suppress = _suppression_sources(ws, resolved)
    date_format, comma = resolved.date_format, resolved.decimal_comma
    validators = {
        "language": values.language,
        "timezone": values.timezone,
        "sms_consent": phones.consent,
        "email_consent": phones.consent,
    }
    special, plain = [], []
    for name in CONTACT_FIELDS[2:]:
        if name in field_index:
            if name in validators or name in maps or name == "phone":
                special.append((name, field_index[name], maps.get(name), validators.get(name)))
            else:
                plain.append((name, field_index[name]))
    # A phone cell stages two values: the number in E.164 and its hash (the key of SMS suppressions).
    staged = [n for name, *_ in special for n in ((name, "phone_hash") if name == "phone" else (name,))]
    staged += [name for name, _ in plain]
    region = ws.settings.sms.default_region if ws is not None else "FR"
    i_country = field_index.get("country")
    plain_idx = [index for _, index in plain]
    attr_keys = [c.name for c in resolved.columns if c.target == "attribute"]
    attr_idx = [c.index for c in resolved.columns if c.target == "attribute"]
    attr_plain = not (comma or date_format or any(k in maps for k in attr_keys))
    used_idx = [c.index for c in resolved.columns if c.target != "ignore"]
    # The row hash covers the used cells and how they are read, so a changed mapping is a change too.
    signature = hashlib.sha256(
        repr((resolved.describe(), sorted(maps.items()), date_format, comma)).encode()
    ).hexdigest()[:8]
    # Attributes JSON written directly: json.dumps costs more than the rest of the row on a million rows.
    attr_prefixes = ["," + json.dumps(k, ensure_ascii=False) + ":" for k in attr_keys]
    quote = json.encoder.encode_basestring  # ensure_ascii=False, C implementation
    i_ext, i_email = field_index.get("external_id"), field_index.get("email")
    ext_map = maps.get("external_id")
    sha256 = hashlib.sha256
    normalise = emails.normalise
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode  # the C encoder, built once

    def slow_attributes(fields: list[str]) -> dict:
        attrs = {}
        for key, index in zip(attr_keys, attr_idx, strict=True):
            value = fields[index].strip()
            if value:
                if key in maps:
                    value = maps[key].get(value.lower(), value)
                if comma:
                    value = values.decimal_comma(value)
                if date_format:
                    value = values.dated(value, date_format)
            if value:
                attrs[key] = value
        return attrs

    def suppress_reason(fields: list[str]) -> str | None:
        for index, accepted, why in suppress:
            value = fields[index].strip().lower()
            if value and (not accepted or value in accepted):
                return why
        return None

    # The converter is generated for this file's columns: on a million rows, the loops, zips and
    # branches of a generic function cost more than the work itself. Only our own names and integer
    # indexes are written into the source: nothing from the file (header names, cells) is ever part of
    # it — header-derived values such as the attribute JSON prefixes are passed in `namespace`.
    # Rows reaching the converter have exactly one field per column, so when every column is used the
    # list itself can be joined (no tuple built per row). The join is the row hash's; it also gives the
    # size check its gate: a row shorter than FIELD_LIMIT in all cannot hold a cell too long, so only
    # longer rows have each cell measured.
    used = (
        "fields"
        if used_idx == list(range(len(resolved.columns)))
        else "(" + ", ".join(f"fields[{i}]" for i in used_idx) + ",)"
    )
    limits = [
        (
            c.index,
            f"column {c.header!r} ({c.name})",
            values.ATTRIBUTE_LIMIT if c.target == "attribute" else values.FIELD_LIMIT,
        )
        for c in resolved.columns
        if c.target != "ignore"
    ]

    by_limit: dict[int, list[int]] = {}
    for index, _, limit in limits:
        by_limit.setdefault(limit, []).append(index)
    # The longest cell of each limit, measured in C (itemgetter, max, map); cells are named only when one is too long.
    gates = []
    for n, (limit, indexes) in enumerate(by_limit.items()):
        gates.append(
            f"len(fields[{indexes[0]}]) > {limit}"
            if len(indexes) == 1
            else f"max(map(len, cells_{n}(fields))) > {limit}"
        )

    def too_long(fields: list[str]) -> None:
        for index, column, limit in limits:
            values.check_length(fields[index], column, limit)

    source = [
        "def convert(number, fields):",
        f"    joined = '\\x1f'.join({used})",
        f"    if len(joined) > {values.FIELD_LIMIT} and ({' or '.join(gates) or 'False'}): too_long(fields)",
    ]
    source.append(f"    external_id = fields[{i_ext}].strip()" if i_ext is not None else "    external_id = ''")
    if ext_map:
        source.append("    if external_id: external_id = ext_map.get(external_id.lower(), external_id)")
    source.append(f"    raw_email = fields[{i_email}].strip()" if i_email is not None else "    raw_email = ''")
    source += [
        "    if raw_email:",
        "        email = fast(raw_email)",
        "        if email is None: email = normalise(raw_email)",
        "        email_hash = sha256(email.lower().encode()).hexdigest()",
        "        if email_hash in forgotten: raise ValueError(FORGOTTEN)",
        "    elif not external_id: raise ValueError(NO_KEY)",
        "    else: email = email_hash = None",
    ]
    namespace: dict[str, Any] = {  # exec()'s globals: the generated source's names, of any type
        "normalise": normalise,
        "fast": emails.fast,
        "blake2b": hashlib.blake2b,
        "sha256": sha256,
        "forgotten": forgotten,
        "FORGOTTEN": FORGOTTEN,
        "NO_KEY": "no email and no external id: fill one of them, or map the right column (--mapping, --preset)",
        "ext_map": ext_map,
        "quote": quote,
        "signature": signature,
        "dumps": dumps,
        "slow_attributes": slow_attributes,
        "suppress_reason": suppress_reason,
        "too_long": too_long,
        **{f"cells_{n}": itemgetter(*indexes) for n, indexes in enumerate(by_limit.values()) if len(indexes) > 1},
    }
    values_out = ["number", "external_id or None", "email", "email_hash"]
    for n, (name, index, table, check) in enumerate(special):
        source.append(f"    v{n} = fields[{index}].strip()")
        if table:
            namespace[f"table_{n}"] = table
            source.append(f"    if v{n}: v{n} = table_{n}.get(v{n}.lower(), v{n})")
        if check:
            namespace[f"check_{n}"] = check
            source.append(f"    if v{n}: v{n} = check_{n}(v{n})")
        values_out.append(f"v{n} or None")
        if name == "phone":
            # Read in the row's country when it has one (a Belgian 0470… in a French file), else the default region.
            country = f"fields[{i_country}]" if i_country is not None else "None"
            namespace.update(
                mobile_e164=phones.mobile_e164,
                region_for=phones.region_for,
                phone_hash=phones.phone_hash,
                region=region,
            )
            source.append(f"    if v{n}: v{n} = mobile_e164(v{n}, region_for({country}, region))")
            values_out.append(f"phone_hash(v{n}) if v{n} else None")
    values_out += [f"fields[{i}].strip() or None" for i in plain_idx]
    if not attr_keys:
        source.append("    attributes = '{}'")
    elif attr_plain:
        source.append("    parts = []")
        for n, (prefix, index) in enumerate(zip(attr_prefixes, attr_idx, strict=True)):
            namespace[f"prefix_{n}"] = prefix
            source.append(f"    value = fields[{index}].strip()")
            source.append(f"    if value: parts.append(prefix_{n} + quote(value))")
        source.append("    attributes = '{' + ''.join(parts)[1:] + '}' if parts else '{}'")
    else:
        source.append("    attributes = dumps(slow_attributes(fields))")
    source.append("    digest = blake2b(joined.encode(), digest_size=12).hexdigest() + signature")
    values_out += ["attributes", "digest"]
    source.append(f"    return [{', '.join(values_out)}]")
    # digest(fields) → the row hash, and key(fields) → the external id, straight from the raw cells:
    # with them an unchanged row of a re-import is recognised without being converted or staged.
    source.append("def digest(fields):")
    source.append(f"    return blake2b('\\x1f'.join({used}).encode(), digest_size=12).hexdigest() + signature")
    source.append("def key(fields):")
    if i_ext is None:
        source.append("    return ''")
    else:
        source.append(f"    external_id = fields[{i_ext}].strip()")
        if ext_map:
            source.append("    if external_id: external_id = ext_map.get(external_id.lower(), external_id)")
        source.append("    return external_id")
    exec(compile("\n".join(source), "<cxctl contacts converter>", "exec"), namespace)
    convert: Converter = namespace["convert"]
    convert.digest, convert.key = namespace["digest"], namespace["key"]
    convert.suppressed = suppress_reason if suppress else None

    return convert, staged, attr_keys
