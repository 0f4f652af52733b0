"""Audience fixtures: a loaded workspace, its store, and real-format export files copied to tmp_path
(so each test writes its rejects file next to its own copy)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cxctl import store
from cxctl.validation import load_workspace

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)

MAPPINGS_YAML = """\
mappings:
  excel_fr:
    kind: contacts
    columns:
      "N° client": external_id
      "Type de client": segment
      "Chiffre d'affaires": attributes.revenue
    values:
      segment: {Particulier: b2c, Professionnel: b2b}
    date_format: "%d/%m/%Y"
    decimal_comma: true
  livraisons:
    kind: events
    columns:
      "Id client": external_id
    event_type: order_delivered
    decimal_comma: true
"""
SUPPRESSION_SOURCES = """\
  suppression_sources:
    - attribute: Ne pas contacter
      reason: do_not_contact
"""


@pytest.fixture
def workspace(workspace_dir):
    """The shared test workspace plus the audience mappings and a CRM do-not-contact column."""
    (workspace_dir / "audience.yaml").write_text(MAPPINGS_YAML, encoding="utf-8")
    with open(workspace_dir / "cxctl.yaml", "a", encoding="utf-8") as handle:
        handle.write(SUPPRESSION_SOURCES)
    return load_workspace(workspace_dir)


@pytest.fixture
def db(workspace):
    return store.connect(workspace.database)


@pytest.fixture
def fixture_file(tmp_path):
    def copy(name: str) -> Path:
        target = tmp_path / "in" / name
        target.parent.mkdir(exist_ok=True)
        shutil.copy(FIXTURES / name, target)
        return target

    return copy


def contacts(db) -> dict[str, dict]:
    """Contacts keyed by external id (or email when there is none), attributes decoded."""
    cur = db.execute("SELECT * FROM contacts ORDER BY id")
    names = [d[0] for d in cur.description]
    result = {}
    for row in cur.fetchall():
        item = dict(zip(names, row))
        item["attributes"] = json.loads(item["attributes"])
        result[item["external_id"] or item["email"]] = item
    return result


def read_rejects(path: Path) -> list[dict]:
    import csv

    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def rows_of():
    """rows_of(db) → contacts keyed by external id (or email)."""
    return contacts


@pytest.fixture
def rejects_of():
    """rejects_of(path) → the rows of a rejects CSV as dicts."""
    return read_rejects


@pytest.fixture
def now():
    return NOW
