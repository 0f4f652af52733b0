"""Results fixtures: a workspace whose moments map real survey-tool exports, and SQL helpers that put
contacts and sent invitations in the store directly (the plan/send areas are not needed here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxctl import store
from cxctl.core import tokens
from cxctl.store import email_hash
from cxctl.validation import load_workspace

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "test-secret-do-not-use-in-production"

RESULTS_YAML = """\
journeys:
  ecommerce:
    name: {fr: Parcours e-commerce, en: E-commerce journey}
    stages: [discovery, purchase, delivery, support, loyalty]
  magasin:
    name: Magasin
    stages: [visite]

questions:
  nps:
    type: nps
    text: {fr: "Recommanderiez-vous notre boutique à un proche ?", en: "How likely are you to recommend our shop to a friend?"}
  nps_why:
    type: open
    text: {fr: "Pourquoi cette note ?", en: "Why this score?"}
  nps_reason:
    type: single_choice
    text: {fr: "Qu'est-ce qui compte le plus ?", en: "What matters most?"}
    choices:
      - {id: prix, label: {fr: Le prix, en: Price}}
      - {id: delai, label: {fr: Le délai de livraison, en: Delivery time}}
      - {id: qualite, label: {fr: La qualité, en: Quality}}
  csat:
    type: csat
    text: {fr: "Êtes-vous satisfait de votre livraison ?", en: "How satisfied are you with your delivery?"}
  csat_why:
    type: open
    text: {fr: "Un commentaire ?", en: "Any comment?"}
  ces:
    type: ces
    text: {fr: "Il a été facile de résoudre mon problème.", en: "It was easy to get my issue solved."}

moments:
  nps_relational:
    journey: ecommerce
    stage: loyalty
    kind: relational
    schedule: {every: quarter}
    questions: [nps, nps_why, nps_reason]
    targets: {nps: 30, response_rate: 20}
    responses:
      format: qualtrics
      columns: {nps: Q1, nps_why: Q2, nps_reason: Q3}
  delivery_csat:
    journey: ecommerce
    stage: delivery
    kind: transactional
    trigger: {event: order_delivered, delay: 2d, expires: 14d}
    questions: [csat, csat_why]
    targets: {csat: 85}
    responses:
      format: typeform
      columns: {csat: "Êtes-vous satisfait de votre livraison ?", csat_why: "Un commentaire ?"}
  support_ces:
    journey: ecommerce
    stage: support
    kind: transactional
    trigger: {event: ticket_closed, delay: 1h, expires: 7d}
    questions: [ces]
    targets: {ces: 5.5}
    responses:
      format: limesurvey
      columns: {ces: CES1}
  store_visit:
    journey: magasin
    stage: visite
    kind: in_the_moment
    trigger: {event: store_visit}
    questions: [nps, nps_why]
    responses:
      format: surveymonkey
      columns: {nps: "How likely are you to recommend our shop to a friend?", nps_why: "Why this score?"}
      match_window: 10d
  web_csat:
    journey: ecommerce
    stage: purchase
    kind: in_the_moment
    trigger: {event: order_placed}
    questions: [csat, csat_why]
    responses:
      format: google_forms
      columns: {csat: "Êtes-vous satisfait de votre livraison ?", csat_why: "Un commentaire ?"}
      keep: last
"""


def _write(root: Path) -> Path:
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("_root_conftest", Path(__file__).parents[1] / "conftest.py")
    module = sys.modules.get("_root_conftest")
    if module is None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["_root_conftest"] = module
    module.write_workspace(root, {"ecommerce.yaml": RESULTS_YAML})
    (root / "cxctl.yaml").write_text(
        (root / "cxctl.yaml").read_text().replace("  priority: [support_ces, delivery_csat, nps_relational]\n", "")
        + "",
        encoding="utf-8",
    )
    return root


@pytest.fixture
def results_ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """(workspace, db) for the results tests; the database is a real SQLite file in tmp_path."""
    monkeypatch.setenv("CXCTL_SECRET", SECRET)
    root = _write(tmp_path / "ws")
    ws = load_workspace(root)
    db = store.connect(ws.database)
    yield ws, db
    db.conn.close()


def add_contact(
    db,
    external_id: str,
    email: str | None = None,
    segment: str | None = None,
    attributes: str = "{}",
    first_name: str | None = None,
) -> int:
    db.execute(
        "INSERT INTO contacts (external_id, email, email_hash, segment, first_name, attributes, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
        [external_id, email, email and email_hash(email), segment, first_name, attributes],
    )
    return db.execute("SELECT last_insert_rowid()").fetchone()[0]


def add_event(db, contact_id: int, type_: str, occurred_at: str, attributes: str = "{}", key: str | None = None) -> int:
    db.execute(
        "INSERT INTO events (event_key, contact_id, type, occurred_at, attributes, imported_at) VALUES (?, ?, ?, ?, ?, ?)",
        [key or f"{type_}-{contact_id}-{occurred_at}", contact_id, type_, occurred_at, attributes, occurred_at],
    )
    return db.execute("SELECT last_insert_rowid()").fetchone()[0]


def add_invitation(
    db,
    contact_id: int,
    moment: str,
    sent_at: str,
    token: str | None = None,
    status: str = "sent",
    event_id: int | None = None,
    kind: str = "invitation",
) -> str:
    token = token or tokens.new_token(SECRET.encode())
    db.execute(
        """INSERT INTO invitations (dedupe_key, token, contact_id, moment, event_id, kind, send_at, status, sent_at,
                  created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            f"{moment}|{contact_id}|{token[:8]}",
            token,
            contact_id,
            moment,
            event_id,
            kind,
            sent_at,
            status,
            sent_at if status == "sent" else None,
            sent_at,
            sent_at,
        ],
    )
    return token


def fixture_copy(name: str, dest: Path, **tokens_by_name: str) -> Path:
    """Copy a fixture export, replacing {{name}} placeholders with real tokens of this test's invitations."""
    text = (FIXTURES / name).read_bytes()
    for key, value in tokens_by_name.items():
        text = text.replace(("{{" + key + "}}").encode(), value.encode())
    path = dest / name
    path.write_bytes(text)
    return path


@pytest.fixture
def sql():
    """The SQL helpers as a fixture (test modules cannot import conftest under --import-mode=importlib)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        add_contact=add_contact,
        add_event=add_event,
        add_invitation=add_invitation,
        fixture_copy=fixture_copy,
        secret=SECRET,
    )


DEMO_NOW = "2026-11-23T09:00:00+00:00"  # the demo's responses_now: the day its scorecard and report are made


@pytest.fixture(scope="session")
def demo_folder(tmp_path_factory):
    """`cxctl demo` run once for the report and export tests: a real workspace, store and report.html."""
    import os

    from cxctl.cli.demo import run_demo

    folder = tmp_path_factory.mktemp("demo") / "demo"
    saved = os.environ.get("CXCTL_SECRET")
    result = run_demo(folder)
    if saved is None:
        os.environ.pop("CXCTL_SECRET", None)
    assert not result.failed, [(s.name, s.summary) for s in result.steps if s.status != "ok"]
    return folder


def parse_figures(html: str) -> dict[tuple[str, str, str], dict]:
    """Every figure cell of a report (`<td class="fig" data-…>`): (scope, period, indicator) → its data
    attributes and its visible text."""
    from html.parser import HTMLParser

    found: dict[tuple[str, str, str], dict] = {}

    class Cells(HTMLParser):
        current: dict | None = None

        def handle_starttag(self, tag, attrs):
            data = dict(attrs)
            if tag == "td" and "fig" in (data.get("class") or "").split():
                self.current = {**data, "text": ""}

        def handle_data(self, text):
            if self.current is not None:
                self.current["text"] += text

        def handle_endtag(self, tag):
            if tag == "td" and self.current is not None:
                cell = self.current
                found.setdefault((cell["data-scope"], cell["data-period"], cell["data-indicator"]), cell)
                self.current = None

    Cells().feed(html)
    return found


@pytest.fixture
def figures_of():
    return parse_figures
