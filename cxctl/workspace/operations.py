"""Workspace-level operations behind `cxctl schema` and `cxctl init`, and the key reference: the JSON
Schema derived from the model, and the commented starter workspace. (`cxctl validate` composes every
check in cxctl.validation.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxctl import __version__
from cxctl.core.errors import CxError
from cxctl.workspace.fields import DURATION_PATTERN, field_description
from cxctl.workspace.model import WorkspaceFile

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = f"urn:cxctl:schema:workspace-file:{__version__}"
SCHEMA_FILE = "cxctl.schema.json"


# --- validate ---------------------------------------------------------------------------------


# --- schema -----------------------------------------------------------------------------------


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one workspace file, derived from the model."""
    schema = WorkspaceFile.model_json_schema(mode="validation")
    _close_pattern_maps(schema)
    _duration_defaults(schema)
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "title": "cxctl workspace file",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
        "description": "One YAML file of a cxctl workspace (cxctl.yaml or any file below it). "
        "Cross-file references (ids, templates) are checked by `cxctl validate` only.",
    }


def _close_pattern_maps(node: Any) -> None:
    """Maps keyed by ids or language tags: a key that fails the pattern must fail the schema too
    (pydantic emits patternProperties alone, which lets any other key through)."""
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
            names = node.get("propertyNames")
            if isinstance(names, dict) and set(names) <= {"examples"}:
                del node["propertyNames"]
        for value in node.values():
            _close_pattern_maps(value)
    elif isinstance(node, list):
        for value in node:
            _close_pattern_maps(value)


def _duration_defaults(node: Any) -> None:
    """Duration defaults as people write them (`7d`), not as ISO 8601 (`P7D`), which the pattern rejects."""
    from datetime import timedelta

    from pydantic import TypeAdapter

    from cxctl.core.durations import format_duration

    if isinstance(node, dict):
        default = node.get("default")
        if isinstance(default, str) and default.startswith("P") and node.get("pattern") == DURATION_PATTERN:
            node["default"] = format_duration(TypeAdapter(timedelta).validate_python(default))
        for value in node.values():
            _duration_defaults(value)
    elif isinstance(node, list):
        for value in node:
            _duration_defaults(value)


# --- init -------------------------------------------------------------------------------------


@dataclass
class InitResult:
    """What `cxctl init` wrote."""

    folder: Path
    created: list[Path]


def init_workspace(folder: Path, force: bool = False, name: str | None = None) -> InitResult:
    """Write a small, commented workspace that validates; refuse to overwrite unless `force`."""
    from cxctl.workspace.scaffold import SCAFFOLD

    title = name or folder.resolve().name.replace("-", " ").replace("_", " ").strip().capitalize() or "Mon programme CX"
    # Written as a quoted YAML string (a JSON string is one): a name such as 2024, yes, null,
    # "Programme: 2025" or "#1" would otherwise read as a number, a boolean, nothing or a syntax error.
    quoted = json.dumps(title, ensure_ascii=False)
    files = {relative: text.replace("{{NAME}}", quoted) for relative, text in SCAFFOLD.items()}
    files[SCHEMA_FILE] = json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
    existing = [folder / relative for relative in files if (folder / relative).exists()]
    if existing and not force:
        names = ", ".join(str(p) for p in existing)
        raise CxError(
            f"{names} already exist(s): nothing was written; choose an empty folder or add --force to overwrite"
        )
    created = []
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        created.append(path)
    return InitResult(folder, created)


# --- key reference (docs) ---------------------------------------------------------------------

REFERENCE_SECTIONS = [
    ("workspace", "Settings"),
    ("workspace.sender", "Sender"),
    ("workspace.smtp", "SmtpSettings"),
    ("workspace.retention", "Retention"),
    ("journeys.<id>", "Journey"),
    ("questions.<id>", "Question"),
    ("questions.<id>.choices[]", "Choice"),
    ("questions.<id>.ask_if", "AskIf"),
    ("moments.<id>", "Moment"),
    ("moments.<id>.trigger", "Trigger"),
    ("moments.<id>.schedule", "Schedule"),
    ("moments.<id>.audience", "Audience"),
    ("moments.<id>.reminders", "Reminders"),
    ("moments.<id>.targets", "Targets"),
    ("moments.<id>.send_window, rules.send_window", "SendWindow"),
    ("moments.<id>.responses", "ResponseMapping"),
    ("rules", "Rules"),
    ("rules.cap", "Cap"),
    ("rules.suppression_sources[]", "SuppressionSource"),
    ("mappings.<id>", "Mapping"),
    ("followups", "FollowupSettings"),
    ("followups.owners[]", "OwnerRule"),
    ("followups.owners[].when", "OwnerWhen"),
    ("followups.calendar", "WorkCalendar"),
    ("followups.alerts", "Alerts"),
    ("followups.alerts.webhooks[]", "Webhook"),
    ("deliverability", "Deliverability"),
]


def _type_name(annotation: Any) -> str:
    import types
    import typing
    from datetime import timedelta

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        base = args[0]
        if base is timedelta:
            return "duration"
        if base is str:
            names = {"_check_language": "language", "_check_identifier": "id", "_check_timezone": "time zone"}
            for meta in args[1:]:
                func = getattr(getattr(meta, "func", None), "__name__", "")
                if func in names:
                    return names[func]
        return _type_name(base)
    if origin in (typing.Union, types.UnionType):
        if any(
            typing.get_origin(a) is typing.Annotated and type(typing.get_args(a)[1]).__name__ == "Tag" for a in args
        ):
            return "text or {lang: text}"  # the Text union: tagged str and dict branches
        options = [a for a in args if a is not type(None)]
        if any(typing.get_origin(a) is list for a in options) and len(options) > 2:
            return "value or list of values"
        return " or ".join(_type_name(a) for a in options)
    if annotation is timedelta:
        return "duration"
    if origin is typing.Literal:
        return " \\| ".join(str(a) for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"map {_type_name(args[0])} → {_type_name(args[1])}"
    if isinstance(annotation, type):
        return {"str": "text", "int": "integer", "float": "number", "bool": "true/false"}.get(
            annotation.__name__, annotation.__name__
        )
    return str(annotation)


def _default_text(info: Any) -> str:
    from datetime import timedelta

    from pydantic_core import PydanticUndefined

    from cxctl.core.durations import format_duration

    if info.is_required():
        return "**required**"
    if info.default_factory is not None:
        value = info.default_factory()
        if hasattr(value, "model_dump"):
            return "see below"
        if value and isinstance(value, list) and all(isinstance(v, timedelta) for v in value):
            return "`[" + ", ".join(format_duration(v) for v in value) + "]`"  # as written in YAML: [5m, 30m]
        return f"`{json.dumps(value, ensure_ascii=False)}`" if value else "—"
    value = info.default
    if value is None or value is PydanticUndefined:
        return "—"
    if isinstance(value, timedelta):
        return f"`{format_duration(value)}`"
    return f"`{value}`"


def reference_markdown() -> str:
    """A Markdown table per YAML object, generated from the model (docs/workspace-keys.md embeds it)."""
    import typing

    from cxctl.workspace import followup_model
    from cxctl.workspace import model as campaign

    out = []
    for where, class_name in REFERENCE_SECTIONS:
        model = getattr(campaign, class_name, None) or getattr(followup_model, class_name)
        doc = (model.__doc__ or "").strip().splitlines()[0]
        out.append(f"#### `{where}`\n\n{doc}\n\n| key | type | default | meaning |\n|---|---|---|---|")
        for key, info in model.model_fields.items():
            meaning = (field_description(model, key) or "").replace("|", "\\|").replace("\n", " ")
            annotation = typing.Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
            out.append(f"| `{key}` | {_type_name(annotation)} | {_default_text(info)} | {meaning} |")
        out.append("")
    return "\n".join(out)
