"""One workspace YAML file, read safely with the place of every key.

PyYAML is used with its safe loader only. The node tree (`compose`) gives the marks; duplicate keys,
which PyYAML would silently collapse, are found on that tree; alias bombs and over-deep nesting are
refused with cxctl's own located errors, whatever the YAML backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cxctl.core.errors import Problem

# libyaml when available: same marks and errors, several times faster on large workspaces.
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Path_ = tuple[str | int, ...]


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


def _walk(
    node: yaml.Node, path: Path_, marks: dict[Path_, tuple[int, int]], problems: list[Problem], display: str
) -> None:
    marks.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                # A block as a key (`? [a, b]`) has no name for the path. The safe constructor refuses
                # it ("found unhashable key"), so parse_yaml reports a syntax error and nothing
                # recorded below it would ever be shown.
                continue
            key: str = key_node.value
            if key == "<<":
                continue
            child = path + (key,)
            if key in seen:
                first = seen[key].start_mark.line + 1
                problems.append(
                    Problem(
                        display,
                        key_node.start_mark.line + 1,
                        key_node.start_mark.column + 1,
                        format_path(child),
                        f"duplicate key {key!r} (first at line {first}); "
                        "YAML would silently keep the last one: remove or rename one",
                    )
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
    return Problem(
        display,
        mark.line + 1,
        mark.column + 1,
        "",
        f"the YAML is nested too deeply: more than {MAX_NESTING} levels of blocks here "
        "(a workspace file needs a handful); flatten it",
    )


def parse_yaml(path: Path, display: str) -> tuple[ParsedFile | None, list[Problem]]:
    """Parse one file safely; return it with its marks, or the syntax problem."""
    problems: list[Problem] = []
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - raw.rfind(b"\n", 0, exc.start)
        return None, [
            Problem(
                display,
                line,
                column,
                "",
                f"not UTF-8 (byte 0x{raw[exc.start]:02x}: {exc.reason}; "
                "probably saved as Windows-1252/Latin-1): save the file as UTF-8",
            )
        ]
    except OSError as exc:
        return None, [Problem(display, 1, 1, "", f"cannot read: {exc.strerror}")]
    marks: dict[Path_, tuple[int, int]] = {}
    try:
        loader = SafeLoader(text)
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
                why = (
                    "an alias refers to the block that contains it, which never ends once expanded"
                    if expanded is None
                    else f"the anchors and aliases (&name / *name) of this file expand to more than "
                    f"{MAX_EXPANDED_VALUES:,} values: refused, as a file built to exhaust memory would be"
                )
                return None, [
                    Problem(display, line, column, "", f"{why}; write the repeated blocks out, or nest fewer aliases")
                ]
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
        if mark is not None and text[mark.index : mark.index + 1] == "\t":
            message = "a tab character: YAML indents with spaces only, replace the tabs with spaces"
        if exc.context and exc.context_mark is not None and exc.problem:
            started = exc.context_mark
            message += f" ({exc.context.removeprefix('while ')} that started at line {started.line + 1}, column {started.column + 1})"
        return None, [
            Problem(display, line, col, "", f"YAML syntax error: {message}; check indentation, quotes and brackets")
        ]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(
            Problem(
                display,
                1,
                1,
                "",
                "a workspace file is a mapping of sections (workspace, journeys, moments, questions, rules, mappings)",
            )
        )
        return None, problems
    return ParsedFile(path, display, data, marks), problems


def mark_for(parsed: ParsedFile, path: Path_) -> tuple[int, int]:
    """The closest recorded mark for `path` (walking up to its parents)."""
    for end in range(len(path), -1, -1):
        if path[:end] in parsed.marks:
            return parsed.marks[path[:end]]
    return (1, 1)
