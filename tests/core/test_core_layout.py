"""The package layout is a contract (issue 11): stages import downward only, no import circle, no
private name used across modules, no module past the size where it stops being one concept."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import grimp
import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "cxctl"
MAX_LINES = 550  # STYLE.md: split a module past ~500 lines, along a concept


def code_lines(source: str) -> int:
    """Lines that hold code: not blank, not only a comment, not a docstring. Counted this way so that the
    formatter wrapping a long call does not change a module's size, and explaining costs nothing."""
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                docstrings.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    lines: set[int] = set()
    skip = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skip:
            lines.update(n for n in range(token.start[0], token.end[0] + 1) if n not in docstrings)
    return len(lines)


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "_shipped" not in p.parts)


def test_no_import_circle_anywhere():
    graph = grimp.build_graph("cxctl", exclude_type_checking_imports=True)
    circles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported != module and graph.chain_exists(importer=imported, imported=module):
                circles.append(f"{module} -> {imported} -> ... -> {module}")
    assert circles == [], "import circles (break them with a module both can import):\n" + "\n".join(circles)


def test_stages_import_downward_only():
    """The same layers as pyproject.toml's import-linter contract, so the suite alone catches a break."""
    importlinter = pytest.importorskip("importlinter.cli")
    assert importlinter.lint_imports(config_filename=str(PACKAGE.parent / "pyproject.toml"), no_cache=True) == 0


def test_no_private_name_is_imported_from_another_module():
    found = []
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cxctl"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.module}.{alias.name}")
    assert found == [], "private names used across modules (give them a public name):\n" + "\n".join(found)


def test_every_module_stays_one_concept_in_size():
    too_long = [
        f"{p.relative_to(PACKAGE.parent)}: {n} lines of code"
        for p in _modules()
        if (n := code_lines(p.read_text(encoding="utf-8"))) > MAX_LINES
    ]
    assert too_long == [], f"modules over {MAX_LINES} lines of code (split along a concept):\n" + "\n".join(too_long)


def test_code_lines_count_code_only():
    source = '"""Doc\nstring."""\n\n# a comment\nx = call(\n    1,\n    2,\n)  # trailing\n\n\ndef f():\n    """Doc."""\n    return x\n'
    assert code_lines(source) == 6


def test_each_stage_is_a_package_that_says_what_it_is():
    stages = ["core", "store", "workspace", "audience", "planning", "delivery", "results", "privacy", "web", "cli"]
    for stage in stages:
        init = PACKAGE / stage / "__init__.py"
        assert init.is_file(), f"cxctl/{stage}/ is not a package"
        assert ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), (
            f"cxctl/{stage}/__init__.py has no docstring"
        )
    flat = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py", "validation.py"))
    assert flat == [], f"modules left at the top of cxctl/: {flat}"
