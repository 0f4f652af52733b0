"""Where the files shipped with cxctl live: the default email templates and the example campaigns.

In a source checkout (and an editable install) they are the repository's top-level `templates/` and
`campaigns/`; in a wheel they are packaged under `cxctl/_shipped/` (see pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # cxctl/, this file being cxctl/core/resources.py


def _find(name: str) -> Path:
    for candidate in (_PACKAGE / "_shipped" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cxctl's shipped {name}/ folder is missing: reinstall cxctl")


def default_templates_dir() -> Path:
    """The bundled default templates (fr, en), used when a workspace has no template of that name."""
    return _find("templates")


def examples_dir() -> Path:
    """The shipped example campaigns (`campaigns/`)."""
    return _find("campaigns")
