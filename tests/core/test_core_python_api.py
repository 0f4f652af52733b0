"""The Python API page's examples run as written: the library's importers are part of the contract."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "python-api.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)


def test_the_page_has_a_whole_loop_example():
    assert any("load_workspace" in block and "send_campaign" in block for block in _blocks())


def test_every_example_runs_on_the_shipped_example(tmp_path, monkeypatch, capsys):
    """The blocks run in order in one namespace, in a copy of campaigns/ecommerce, as a script would."""
    folder = tmp_path / "ecommerce"
    shutil.copytree(ROOT / "campaigns" / "ecommerce", folder)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("CXCTL_SECRET", "a-test-secret-of-32-characters!!")
    namespace: dict = {}
    for number, block in enumerate(_blocks(), start=1):
        try:
            exec(compile(block, f"{PAGE.name} block {number}", "exec"), namespace)  # noqa: S102 - the page's own code
        except Exception as exc:  # pragma: no cover - the failure message is the point
            pytest.fail(f"docs/python-api.md, python block {number} fails: {type(exc).__name__}: {exc}")
    printed = capsys.readouterr().out.split()
    assert printed and int(printed[-4]) > 0, "the loop example planned no invitation"
    assert (folder / "outbox").is_dir() and any((folder / "outbox").iterdir()), "the loop example sent nothing"
