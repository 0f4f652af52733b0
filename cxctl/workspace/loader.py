"""Load a workspace from YAML and report every problem with its file, line, column and key path.

PyYAML is used with its safe loader only. The node tree (`compose`) gives the marks; duplicate keys,
which PyYAML would silently collapse, are found on that tree. Each file is validated on its own
against `WorkspaceFile` (so every pydantic error maps back to a place), then the files are merged
and cross-references are checked across the whole workspace.
"""

from __future__ import annotations

import os
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from cxctl.core.errors import Problem, UsageError, did_you_mean
from cxctl.workspace.deliverability_model import Deliverability
from cxctl.workspace.followup_model import FollowupSettings
from cxctl.workspace.model import (
    Journey,
    Mapping,
    Moment,
    Question,
    Rules,
    Settings,
    WorkspaceFile,
)
from cxctl.workspace.yamlfile import ParsedFile, Path_, format_path, mark_for, parse_yaml

WORKSPACE_FILE = "cxctl.yaml"
SECTIONS = ("journeys", "moments", "questions", "mappings")
# Keys that hold a secret when written in clear (reported by workspace_checks.find_secrets).
SECRET_KEYS = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "api_key",
        "apikey",
        "token",
        "token_secret",
        "smtp_password",
        "pass",
        "pwd",
        "smtp_pass",
    }
)
_SECRET_WORDS = (
    "password",
    "passwd",
    "secret",
    "api_key",
    "apikey",
    "private_key",
    "access_key",
    "credential",
    "auth_token",
    "access_token",
)


def _in_data_map(parent: tuple) -> bool:
    """Keys that are the user's data, not settings: a mapping's column names and values, an audience's
    attribute names, a moment's response columns (`secret_shopper: false` is a filter, not a secret)."""
    return (len(parent) >= 3 and parent[0] == "mappings" and parent[2] in ("columns", "values")) or (
        len(parent) >= 4
        and parent[0] == "moments"
        and parent[2] in ("audience", "responses")
        and parent[3] in ("contact", "event", "columns")
    )


def secret_in_clear(parent: tuple, key: Any, value: Any) -> bool:
    """`key: value` under `parent` writes a secret in clear. Under `workspace:` (the settings) the usual
    names count (`smtp_pass`, `api-key`, `client_secret`…); elsewhere only the exact SECRET_KEYS;
    `*_env` keys name a variable and are fine; empty values and booleans hold no secret."""
    if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        return False
    k = key.lower().replace("-", "_")
    if k.endswith("_env") or _in_data_map(parent):
        return False
    if parent[:1] == ("workspace",):
        return k in SECRET_KEYS or any(word in k for word in _SECRET_WORDS)
    return k in SECRET_KEYS


def _value_at(data: Any, loc: tuple) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


MIN_SECRET_LENGTH = 16


@dataclass
class Workspace:
    """A loaded, valid workspace: settings, objects by id, and where each object was declared."""

    root: Path
    settings: Settings
    journeys: dict[str, Journey]
    moments: dict[str, Moment]
    questions: dict[str, Question]
    rules: Rules
    mappings: dict[str, Mapping]
    places: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    followups: FollowupSettings = field(default_factory=FollowupSettings)
    deliverability: Deliverability = field(default_factory=Deliverability)

    @property
    def database(self) -> Path:
        db = Path(self.settings.database)
        return db if db.is_absolute() else self.root / db

    @property
    def templates_dir(self) -> Path:
        t = Path(self.settings.templates)
        return t if t.is_absolute() else self.root / t

    @property
    def outbox_dir(self) -> Path:
        o = Path(self.settings.outbox)
        return o if o.is_absolute() else self.root / o

    def secret(self) -> bytes:
        """The token-signing secret from the environment; never stored, never printed."""
        value = os.environ.get(self.settings.token_secret_env)
        if not value:
            raise UsageError(
                f"the environment variable {self.settings.token_secret_env} is not set: it holds the secret "
                f"that signs survey links; set it, e.g. `export {self.settings.token_secret_env}=$(openssl rand -hex 32)`"
            )
        if len(value) < MIN_SECRET_LENGTH:
            # Short secrets can be guessed offline from one link, and then every link forged.
            raise UsageError(
                f"the secret in {self.settings.token_secret_env} is {len(value)} characters long: a secret that signs "
                f"links needs at least {MIN_SECRET_LENGTH}; generate one, e.g. "
                f"`export {self.settings.token_secret_env}=$(openssl rand -hex 32)` (links already sent, signed with the old secret, will no longer verify)"
            )
        return value.encode()

    def moment_rank(self, moment_id: str) -> tuple[int, int, str]:
        """Sort key, highest priority first: rules.priority order, then moment.priority, then id."""
        order = self.rules.priority
        if moment_id in order:
            return (0, order.index(moment_id), moment_id)
        return (1, self.moments[moment_id].priority, moment_id)


@dataclass
class LoadResult:
    """What `check_workspace` found: the workspace (None when it has errors) and every problem."""

    workspace: Workspace | None
    problems: list[Problem]
    files: list[Path]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


# --- pydantic errors -> problems --------------------------------------------------------------


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated/Optional/Union down to the model, dict or list an annotation holds."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin in (Union, types.UnionType):
            options = [_unwrap(a) for a in get_args(annotation) if a is not type(None)]
            for option in options:
                if _is_model(option) or get_origin(option) in (dict, list):
                    return option
            return options[0] if options else None
        return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _model_fields_at(path: Path_) -> list[str]:
    """Allowed keys at a data path, for 'did you mean' on unknown keys."""
    annotation: Any = WorkspaceFile
    for part in path:
        annotation = _unwrap(annotation)
        if _is_model(annotation):
            if part not in annotation.model_fields:
                return []
            annotation = annotation.model_fields[part].annotation
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        elif get_origin(annotation) is list:
            annotation = get_args(annotation)[0]
        else:
            return []
    annotation = _unwrap(annotation)
    return list(annotation.model_fields) if _is_model(annotation) else []


def _data_loc(data: Any, loc: tuple, keep_last: bool) -> Path_:
    """pydantic's loc reduced to keys that exist in the data (dropping union tags and '[key]')."""
    out: list[Any] = []
    current = data
    for i, part in enumerate(loc):
        if (
            isinstance(current, dict)
            and part in current
            or isinstance(current, list)
            and isinstance(part, int)
            and 0 <= part < len(current)
        ):
            out.append(part)
            current = current[part]
        elif keep_last and i == len(loc) - 1:
            out.append(part)
    return tuple(out)


def _exists(data: Any, path: Path_) -> bool:
    return len(_data_loc(data, path, keep_last=False)) == len(path)


_QUOTED = re.compile(r"'([^']*)'")
_YAML_BOOL_HINT = "; YAML reads yes/no/on/off (and NO, the country code) as true/false: put the value in quotes"


def _message(error: ErrorDetails, loc: Path_, data: Any) -> tuple[str, Path_]:
    """A readable message that ends with the fix, and the (possibly refined) place."""
    kind, message, value = error["type"], error["msg"], error.get("input")
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if kind == "extra_forbidden":
        key = loc[-1]
        allowed = _model_fields_at(loc[:-1])
        hint = did_you_mean(str(key), allowed)  # an unknown key: a string (pydantic refuses others before)
        if not hint and allowed:
            hint = f": remove it, or use one of {', '.join(allowed)}"
        return f"unknown key {key!r}" + hint, loc
    if kind == "missing":
        return f"missing required key {loc[-1]!r}: add it", loc
    if kind == "literal_error":
        options = _QUOTED.findall(error.get("ctx", {}).get("expected", ""))
        hint = did_you_mean(value, options) if isinstance(value, str) else ""
        return f"{value!r} is not allowed{hint}: use one of {', '.join(options)}", loc
    if kind == "value_error":
        cause = error.get("ctx", {}).get("error")
        field_name = getattr(cause, "field", None)
        if field_name is not None and _exists(data, loc + (field_name,)):
            loc = loc + (field_name,)
        return message, loc
    if loc and isinstance(loc[-1], str) and loc[-1].endswith("_env") and isinstance(value, str):
        # What is written here is meant to be a variable's NAME; when it is not one, it may well be the
        # secret itself: never echo it (not in the terminal, not in CI annotations).
        return (
            f"{loc[-1]} must be the NAME of an environment variable (capitals, digits and _, e.g. "
            f"CXCTL_SMTP_PASSWORD), not its value: if you pasted a password or a key here, remove it and "
            f"change it, it may be in your git history"
        ), loc
    if value is not None and not isinstance(value, (dict, list)):
        message = f"{message}, got {value!r}"
        if isinstance(value, bool):
            return message + _YAML_BOOL_HINT, loc  # the fix is in the hint: no second one
    return message + _TYPE_FIXES.get(kind.split("_")[0], ""), loc


_TYPE_FIXES = {
    "float": ": write a number, e.g. 0.5",
    "int": ": write a whole number, e.g. 3",
    "bool": ": write true or false",
    "string": ": write text, in quotes if it looks like a number or yes/no",
    "list": ": write a list, e.g. [a, b]",
    "dict": ": write a mapping of keys and values",
    "model": ": write a mapping of keys and values",
}


def _problems_from_validation(parsed: ParsedFile, exc: ValidationError) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        missing = error["type"] == "missing"
        loc = _data_loc(parsed.data, error["loc"], keep_last=missing)
        message, loc = _message(error, loc, parsed.data)
        # A missing key has no mark of its own: point at the object that lacks it.
        line, col = mark_for(parsed, loc[:-1] if missing else loc)
        if error["type"] == "extra_forbidden" and secret_in_clear(loc[:-1], loc[-1], _value_at(parsed.data, loc)):
            continue  # reported by workspace_checks.find_secrets, with a better fix
        problems.append(Problem(parsed.display, line, col, format_path(loc), message))
    return problems


# --- the workspace ----------------------------------------------------------------------------


def workspace_files(paths: list[Path]) -> tuple[Path, list[Path]]:
    """Find the workspace root (the folder with cxctl.yaml) and every YAML file below it."""
    if not paths:
        paths = [Path.cwd()]
    files: list[Path] = []
    root: Path | None = None
    for p in paths:
        if not p.exists():
            raise UsageError(f"{p}: no such file or folder")
        if p.is_dir():
            if (p / WORKSPACE_FILE).exists() and root is None:
                root = p
            files.extend(_yaml_files(p))
        else:
            files.append(p)
            if root is None:
                for parent in p.resolve().parents:
                    if (parent / WORKSPACE_FILE).exists():
                        root = parent
                        break
    if root is None:
        first = paths[0]
        root = first if first.is_dir() else first.parent
    seen = set()
    unique = []
    for f in files:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(f)
    # cxctl.yaml first: its workspace/rules blocks are the ones a duplicate elsewhere is compared with.
    unique.sort(key=lambda f: not (f.name == WORKSPACE_FILE and f.resolve().parent == root.resolve()))
    return root, unique


def _yaml_files(folder: Path) -> list[Path]:
    """YAML files below `folder`, skipping hidden folders and nested workspaces (their own cxctl.yaml)."""
    found: list[Path] = []
    for current, dirs, names in os.walk(folder):
        here = Path(current)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (here / d / WORKSPACE_FILE).exists())
        found.extend(here / n for n in sorted(names) if n.endswith((".yaml", ".yml")) and not n.startswith("."))
    return found


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@dataclass
class ReadFiles:
    """Every file of a workspace, parsed and validated on its own (not yet cross-checked)."""

    root: Path
    files: list[Path]
    parsed: list[tuple[ParsedFile, WorkspaceFile]]
    problems: list[Problem]
    incomplete: bool  # a file could not be parsed: ids it may declare are unknown


def read_files(paths: list[Path] | None = None) -> ReadFiles:
    """Parse and validate each file of the workspace that `paths` name; cross-checks come after
    (cxctl.validation.check_workspace composes them)."""
    root, files = workspace_files([Path(p) for p in (paths or [])])
    problems: list[Problem] = []
    parsed_files: list[tuple[ParsedFile, WorkspaceFile]] = []
    unparsed = False
    for path in files:
        parsed, found = parse_yaml(path, _display(path))
        problems.extend(found)
        if parsed is None:
            unparsed = True
            continue
        try:
            model = WorkspaceFile.model_validate(parsed.data)
        except ValidationError as exc:
            problems.extend(_problems_from_validation(parsed, exc))
            model = _salvage(parsed)
        parsed_files.append((parsed, model))
    return ReadFiles(root, files, parsed_files, problems, unparsed)


def _salvage(parsed: ParsedFile) -> WorkspaceFile:
    """Keep the valid objects of a file with errors, so cross-references are still checked."""
    data = parsed.data
    kept: dict[str, Any] = {}
    for section in SECTIONS:
        items = data.get(section)
        if not isinstance(items, dict):
            continue
        good = {}
        for key, value in items.items():
            try:
                WorkspaceFile.model_validate({section: {key: value}})
                good[key] = value
            except ValidationError:
                pass
        kept[section] = good
    for single in ("workspace", "rules", "followups", "deliverability"):
        if single in data:
            try:
                WorkspaceFile.model_validate({single: data[single]})
                kept[single] = data[single]
            except ValidationError:
                pass
    try:
        return WorkspaceFile.model_validate(kept)
    except ValidationError:
        return WorkspaceFile()


@dataclass
class Declared:
    """Every id declared in the raw data, valid or not, with the file that declared it first."""

    raw: dict[str, dict[str, tuple[ParsedFile, Any]]] = field(default_factory=lambda: {s: {} for s in SECTIONS})
    models: dict[str, dict[str, Any]] = field(default_factory=lambda: {s: {} for s in SECTIONS})


def collect_declared(files: list[tuple[ParsedFile, WorkspaceFile]], problems: list[Problem]) -> Declared:
    """Every id of every file, by section; a repeated id is a problem (appended to `problems`)."""
    declared = Declared()
    for parsed, model in files:
        for section in SECTIONS:
            items = parsed.data.get(section)
            if not isinstance(items, dict):
                continue
            valid = getattr(model, section)
            for obj_id, raw in items.items():
                if obj_id in declared.raw[section]:
                    first, _ = declared.raw[section][obj_id]
                    line, _ = mark_for(first, (section, obj_id))
                    line_, col_ = mark_for(parsed, (section, obj_id))
                    problems.append(
                        Problem(
                            parsed.display,
                            line_,
                            col_,
                            format_path((section, obj_id)),
                            f"duplicate {section[:-1]} id {obj_id!r}, first declared at {first.display}:{line}: rename one",
                        )
                    )
                    continue
                declared.raw[section][obj_id] = (parsed, raw)
                if obj_id in valid:
                    declared.models[section][obj_id] = valid[obj_id]
    return declared
