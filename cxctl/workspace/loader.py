"""Load a workspace from YAML and report every problem with its file, line, column and key path.

PyYAML is used with its safe loader only. The node tree (`compose`) gives the marks; duplicate keys,
which PyYAML would silently collapse, are found on that tree. Each file is validated on its own
against `WorkspaceFile` (so every pydantic error maps back to a place), then the files are merged
and cross-references are checked across the whole workspace.
"""

from __future__ import annotations

import difflib
import os
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from cxctl.workspace.model import (
    Journey,
    Mapping,
    Moment,
    Question,
    Rules,
    Settings,
    WorkspaceFile,
)
from cxctl.core.errors import Problem, UsageError, WorkspaceError

WORKSPACE_FILE = "cxctl.yaml"
SECTIONS = ("journeys", "moments", "questions", "mappings")
# Keys that hold a secret when written in clear (reported by workspace_checks.find_secrets).
SECRET_KEYS = frozenset({"password", "passwd", "secret", "api_key", "apikey", "token", "token_secret", "smtp_password",
                         "pass", "pwd", "smtp_pass"})
_SECRET_WORDS = ("password", "passwd", "secret", "api_key", "apikey", "private_key", "access_key", "credential",
                 "auth_token", "access_token")


def _in_data_map(parent: tuple) -> bool:
    """Keys that are the user's data, not settings: a mapping's column names and values, an audience's
    attribute names, a moment's response columns (`secret_shopper: false` is a filter, not a secret)."""
    return (len(parent) >= 3 and parent[0] == "mappings" and parent[2] in ("columns", "values")) or (
        len(parent) >= 4 and parent[0] == "moments" and parent[2] in ("audience", "responses")
        and parent[3] in ("contact", "event", "columns"))


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
# libyaml when available: same marks and errors, several times faster on large workspaces.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Path_ = tuple[str | int, ...]
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


# --- YAML with marks --------------------------------------------------------------------------


@dataclass
class ParsedFile:
    path: Path
    display: str
    data: Any
    marks: dict[Path_, tuple[int, int]]  # key path -> (line, col), 1-based; for keys: the key's mark


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _walk(node: yaml.Node, path: Path_, marks: dict, problems: list[Problem], display: str) -> None:
    marks.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key == "<<":
                continue
            child = path + (key,)
            if key in seen:
                first = seen[key].start_mark.line + 1
                problems.append(
                    Problem(display, key_node.start_mark.line + 1, key_node.start_mark.column + 1,
                            format_path(child), f"duplicate key {key!r} (first at line {first}); "
                            "YAML would silently keep the last one: remove or rename one")
                )
                continue
            seen[key] = key_node
            marks[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            # Values are addressed by the same path; keep the key's mark, which is what people look for.
            _walk(value_node, child, marks, problems, display)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, path + (index,), marks, problems, display)


# Anchors and aliases (&x / *x) may reuse a block; nested ones multiply ("billion laughs": 432 bytes
# expanded to 12 GB in validate). A workspace file far below this is thousands of moments.
MAX_EXPANDED_VALUES = 200_000


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _expanded_size(root: yaml.Node) -> int | None:
    """How many values `root` stands for once every alias is expanded, or None when an alias refers to
    a block that contains it (a recursive anchor, endless once expanded). Counted on the node graph,
    where an alias is the same node object again: one visit per node, without recursion, so deep
    nesting cannot exhaust Python's stack here."""
    size: dict[int, int] = {}
    open_: set[int] = set()  # on the current path: met again below itself means a cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            size[key] = 1 + sum(size[id(child)] for child in _children(node))
            open_.discard(key)
            continue
        if key in size:
            continue
        if key in open_:
            return None
        open_.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_:
                return None
            if id(child) not in size:
                stack.append((child, False))
    return size[id(root)]


# A workspace file needs a handful of levels; YAML backends stop somewhere between a few hundred
# (Python's recursion) and 1,000 (libyaml 0.2.5+ in PyYAML 6.0.4), each with its own words. cxctl's own
# limit comes first, so the error is the same, and located, whatever the backend.
MAX_NESTING = 64


def _too_deep_in_events(text: str) -> yaml.Mark | None:
    """Where the YAML first opens a block deeper than MAX_NESTING, or None. Read event by event with the
    pure-Python parser, which has no depth limit of its own and no recursion (libyaml's scanner looks
    ahead past a run of brackets and fails before the first event of it comes out)."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_NESTING:
                    return event.start_mark
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        return None
    return None


def _too_deep_in_nodes(root: yaml.Node) -> yaml.Mark | None:
    """Where the composed tree first goes deeper than MAX_NESTING, or None (iterative, aliases once)."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if id(node) in seen or not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            continue
        seen.add(id(node))
        if depth + 1 > MAX_NESTING:
            return node.start_mark
        stack.extend((child, depth + 1) for child in _children(node))
    return None


def _nesting_problem(display: str, mark: yaml.Mark) -> Problem:
    return Problem(display, mark.line + 1, mark.column + 1, "",
                   f"the YAML is nested too deeply: more than {MAX_NESTING} levels of blocks here "
                   "(a workspace file needs a handful); flatten it")


def parse_yaml(path: Path, display: str) -> tuple[ParsedFile | None, list[Problem]]:
    """Parse one file safely; return it with its marks, or the syntax problem."""
    problems: list[Problem] = []
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - raw.rfind(b"\n", 0, exc.start)
        return None, [Problem(display, line, column, "", f"not UTF-8 (byte 0x{raw[exc.start]:02x}: {exc.reason}; "
                              "probably saved as Windows-1252/Latin-1): save the file as UTF-8")]
    except OSError as exc:
        return None, [Problem(display, 1, 1, "", f"cannot read: {exc.strerror}")]
    marks: dict[Path_, tuple[int, int]] = {}
    try:
        loader = _SafeLoader(text)
        try:
            node = loader.get_single_node()
            deep = _too_deep_in_nodes(node) if node is not None else None
            if deep is not None:
                return None, [_nesting_problem(display, deep)]
            expanded = _expanded_size(node) if node is not None else 0
            if expanded is None or expanded > MAX_EXPANDED_VALUES:
                alias = text.find("*")
                line = text.count("\n", 0, alias) + 1 if alias >= 0 else 1
                column = alias - text.rfind("\n", 0, alias) if alias >= 0 else 1
                why = ("an alias refers to the block that contains it, which never ends once expanded"
                       if expanded is None else
                       f"the anchors and aliases (&name / *name) of this file expand to more than "
                       f"{MAX_EXPANDED_VALUES:,} values: refused, as a file built to exhaust memory would be")
                return None, [Problem(display, line, column, "", f"{why}; write the repeated blocks out, or nest fewer aliases")]
            if node is not None:
                # Before construction: it merges `<<: *base` keys into the node in place, and an
                # overridden merged key would then read as a duplicate.
                _walk(node, (), marks, problems, display)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except (yaml.YAMLError, RecursionError) as exc:
        deep = _too_deep_in_events(text)
        if deep is not None:
            return None, [_nesting_problem(display, deep)]
        if isinstance(exc, RecursionError):
            return None, [Problem(display, 1, 1, "", "the YAML is nested too deeply to read: flatten it")]
        if not isinstance(exc, yaml.MarkedYAMLError):
            return None, [Problem(display, 1, 1, "", f"YAML error: {exc}")]
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = exc.problem or exc.context or "invalid YAML"
        if mark is not None and text[mark.index:mark.index + 1] == "\t":
            message = "a tab character: YAML indents with spaces only, replace the tabs with spaces"
        if exc.context and exc.context_mark is not None and exc.problem:
            started = exc.context_mark
            message += f" ({exc.context.removeprefix('while ')} that started at line {started.line + 1}, column {started.column + 1})"
        return None, [Problem(display, line, col, "", f"YAML syntax error: {message}; check indentation, quotes and brackets")]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(Problem(display, 1, 1, "", "a workspace file is a mapping of sections (workspace, journeys, moments, questions, rules, mappings)"))
        return None, problems
    return ParsedFile(path, display, data, marks), problems


def mark_for(parsed: ParsedFile, path: Path_) -> tuple[int, int]:
    """The closest recorded mark for `path` (walking up to its parents)."""
    for end in range(len(path), -1, -1):
        if path[:end] in parsed.marks:
            return parsed.marks[path[:end]]
    return (1, 1)


def did_you_mean(word: str, candidates) -> str:
    """` (did you mean 'x'?)` or an empty string."""
    match = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


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
        if isinstance(current, dict) and part in current:
            out.append(part)
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            out.append(part)
            current = current[part]
        elif keep_last and i == len(loc) - 1:
            out.append(part)
    return tuple(out)


def _exists(data: Any, path: Path_) -> bool:
    return len(_data_loc(data, path, keep_last=False)) == len(path)


_QUOTED = re.compile(r"'([^']*)'")
_YAML_BOOL_HINT = "; YAML reads yes/no/on/off (and NO, the country code) as true/false: put the value in quotes"


def _message(error: dict, loc: Path_, data: Any) -> tuple[str, Path_]:
    """A readable message that ends with the fix, and the (possibly refined) place."""
    kind, message, value = error["type"], error["msg"], error.get("input")
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if kind == "extra_forbidden":
        key = loc[-1]
        allowed = _model_fields_at(loc[:-1])
        hint = did_you_mean(key, allowed)
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
        return (f"{loc[-1]} must be the NAME of an environment variable (capitals, digits and _, e.g. "
                f"CXCTL_SMTP_PASSWORD), not its value: if you pasted a password or a key here, remove it and "
                f"change it, it may be in your git history"), loc
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
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and not (here / d / WORKSPACE_FILE).exists()
        )
        found.extend(
            here / n for n in sorted(names) if n.endswith((".yaml", ".yml")) and not n.startswith(".")
        )
    return found


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def check_workspace(paths: list[Path] | None = None) -> LoadResult:
    """Parse, validate and cross-check every file; return the workspace (if valid) and all problems."""
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

    from cxctl.workspace.checks import cross_check  # late import: checks needs the dataclasses above

    workspace, found = cross_check(root, parsed_files, had_errors=any(p.severity == "error" for p in problems),
                                   incomplete=unparsed)
    problems.extend(found)
    problems = sorted(set(problems), key=lambda p: (p.file, p.line, p.column, p.severity, p.message))
    has_errors = any(p.severity == "error" for p in problems)
    return LoadResult(None if has_errors else workspace, problems, files)


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
    for single in ("workspace", "rules"):
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


def load_workspace(path: Path | str | None = None) -> Workspace:
    """Load the workspace at `path` (default: the current folder); raise WorkspaceError on any error."""
    result = check_workspace([Path(path)] if path else None)
    if result.workspace is None:
        raise WorkspaceError(result.problems)
    return result.workspace
