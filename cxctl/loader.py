"""Load a workspace from YAML and report every problem with its file, line, column and key path.

PyYAML is used with its safe loader only. The node tree (`compose`) gives the marks; duplicate keys,
which PyYAML would silently collapse, are found on that tree. Each file is validated on its own
against `WorkspaceFile` (so every pydantic error maps back to a place), then the files are merged
and cross-references are checked across the whole workspace.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cxctl.campaign import (
    Journey,
    Mapping,
    Moment,
    Question,
    Rules,
    Settings,
    WorkspaceFile,
)
from cxctl.errors import Problem, UsageError, WorkspaceError

WORKSPACE_FILE = "cxctl.yaml"
SECTIONS = ("journeys", "moments", "questions", "mappings")

Path_ = tuple[str | int, ...]


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


def parse_yaml(path: Path, display: str) -> tuple[ParsedFile | None, list[Problem]]:
    """Parse one file safely; return it with its marks, or the syntax problem."""
    problems: list[Problem] = []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, [Problem(display, 1, 1, "", f"not UTF-8 ({exc.reason} at byte {exc.start}): save the file as UTF-8")]
    except OSError as exc:
        return None, [Problem(display, 1, 1, "", f"cannot read: {exc.strerror}")]
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(x for x in (exc.context, exc.problem) if x)
        return None, [Problem(display, line, col, "", f"YAML syntax error: {message}")]
    except yaml.YAMLError as exc:
        return None, [Problem(display, 1, 1, "", f"YAML error: {exc}")]
    marks: dict[Path_, tuple[int, int]] = {}
    if node is not None:
        _walk(node, (), marks, problems, display)
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


def _model_fields_at(path: Path_) -> list[str]:
    """Allowed keys at a path, for 'did you mean' on unknown keys."""
    model: Any = WorkspaceFile
    for part in path:
        if model is None:
            return []
        fields = getattr(model, "model_fields", None)
        if fields is None:
            return []
        if isinstance(part, str) and part in fields:
            annotation = fields[part].annotation
            model = _inner_model(annotation)
            # dict[str, Model] sections: the next part is an id
            if getattr(annotation, "__origin__", None) is dict:
                model = ("dict", model)
        elif isinstance(model, tuple):
            model = model[1]
            continue
        else:
            return []
        if isinstance(model, tuple):
            continue
    if isinstance(model, tuple):
        return []
    fields = getattr(model, "model_fields", None)
    return list(fields) if fields else []


def _inner_model(annotation: Any) -> Any:
    from typing import get_args

    if hasattr(annotation, "model_fields"):
        return annotation
    for arg in get_args(annotation):
        inner = _inner_model(arg)
        if inner is not None:
            return inner
    return None


def _problems_from_validation(parsed: ParsedFile, exc: ValidationError) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        # pydantic puts union branch names and 'function-after' markers in loc; keep data keys only.
        loc = tuple(
            p for p in error["loc"]
            if not (isinstance(p, str) and (p.startswith("function-") or p in ("str", "dict[str,str]", "list[...]")
                                            or "[" in p or p.startswith("constrained-")))
        )
        line, col = mark_for(parsed, loc)
        message = error["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        if error["type"] == "extra_forbidden":
            key = loc[-1]
            message = f"unknown key {key!r}" + did_you_mean(key, _model_fields_at(loc[:-1]))
        elif error["type"] == "missing":
            message = f"missing required key {loc[-1]!r}"
            loc_str = format_path(loc)
            line, col = mark_for(parsed, loc[:-1])
            problems.append(Problem(parsed.display, line, col, loc_str, message))
            continue
        elif error["type"] == "string_pattern_mismatch" and isinstance(loc[-2] if len(loc) > 1 else None, str) and loc and loc[0] in SECTIONS and len(loc) == 2:
            message = f"invalid id {loc[-1]!r}: ids are lower-case letters, digits and _, starting with a letter"
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
            found = sorted(
                f for f in p.rglob("*")
                if f.suffix in (".yaml", ".yml") and f.is_file()
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
            files.extend(found)
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
    return root, unique


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
    for path in files:
        parsed, found = parse_yaml(path, _display(path))
        problems.extend(found)
        if parsed is None:
            continue
        try:
            model = WorkspaceFile.model_validate(parsed.data)
        except ValidationError as exc:
            problems.extend(_problems_from_validation(parsed, exc))
            model = _salvage(parsed)
        if model is not None:
            parsed_files.append((parsed, model))

    from cxctl.checks import cross_check  # late import: checks needs the dataclasses above

    workspace, found = cross_check(root, parsed_files, had_errors=any(p.severity == "error" for p in problems))
    problems.extend(found)
    problems.sort(key=lambda p: (p.file, p.line, p.column, p.severity))
    has_errors = any(p.severity == "error" for p in problems)
    return LoadResult(None if has_errors else workspace, problems, files)


def _salvage(parsed: ParsedFile) -> WorkspaceFile | None:
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
        return None


def load_workspace(path: Path | str | None = None) -> Workspace:
    """Load the workspace at `path` (default: the current folder); raise WorkspaceError on any error."""
    result = check_workspace([Path(path)] if path else None)
    if result.workspace is None:
        raise WorkspaceError(result.problems)
    return result.workspace
