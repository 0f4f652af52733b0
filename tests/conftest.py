"""Shared fixtures: a small valid workspace written inline in tmp_path, and a CLI runner.

Each area keeps its own fixtures in tests/<area>/conftest.py.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

SECRET = "test-secret-do-not-use-in-production"

WORKSPACE_YAML = """\
workspace:
  name: Boutique test
  default_language: fr
  languages: [fr, en]
  timezone: Europe/Paris
  sender:
    name: Service Client
    address: avis@boutique.example
    reply_to: service@boutique.example
  survey_url: "https://survey.example/s/{moment}?lang={lang}&t={token}"
  unsubscribe_url: "https://boutique.example/desinscription?t={token}"
  unsubscribe_mailto: desinscription@boutique.example
  token_secret_env: CXCTL_SECRET

rules:
  quiet_period: 30d
  cap: {max: 3, window: 90d}
  max_reminders: 2
  send_window: {days: [mon, tue, wed, thu, fri, sat], hours: "09:00-19:00"}
  priority: [support_ces, delivery_csat, nps_relational]
"""

JOURNEY_YAML = """\
journeys:
  ecommerce:
    name: {fr: Parcours e-commerce, en: E-commerce journey}
    stages: [discovery, purchase, delivery, support, loyalty]
    channels: [web, store, contact_centre, email, phone]

questions:
  nps:
    type: nps
    text:
      fr: Recommanderiez-vous notre boutique à un proche ?
      en: How likely are you to recommend our shop to a friend?
  nps_why:
    type: open
    text: {fr: "Pourquoi cette note ?", en: "Why this score?"}
    ask_if: {question: nps, at_most: 6}
  csat:
    type: csat
    text: {fr: "Êtes-vous satisfait de votre livraison ?", en: "How satisfied are you with your delivery?"}
  ces:
    type: ces
    text: {fr: Il a été facile de résoudre mon problème., en: It was easy to get my issue solved.}

moments:
  delivery_csat:
    journey: ecommerce
    stage: delivery
    kind: transactional
    trigger: {event: order_delivered, delay: 2d, expires: 14d}
    questions: [csat]
    reminders: {count: 1, after: 3d}
    targets: {csat: 85}
  support_ces:
    journey: ecommerce
    stage: support
    kind: transactional
    trigger: {event: ticket_closed, delay: 1h, expires: 7d}
    questions: [ces]
    targets: {ces: 5.5}
  nps_relational:
    journey: ecommerce
    stage: loyalty
    kind: relational
    schedule: {every: quarter}
    questions: [nps, nps_why]
    sample: 0.5
    targets: {nps: 30}
"""


def write_workspace(root: Path, files: dict[str, str] | None = None) -> Path:
    """Write a workspace: the default files, overridden or extended by `files` (name -> YAML)."""
    root.mkdir(parents=True, exist_ok=True)
    contents = {"cxctl.yaml": WORKSPACE_YAML, "ecommerce.yaml": JOURNEY_YAML}
    contents.update(files or {})
    for name, text in contents.items():
        if text is None:
            continue
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


@pytest.fixture
def workspace_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A valid workspace in tmp_path/ws with the signing secret set in the environment."""
    monkeypatch.setenv("CXCTL_SECRET", SECRET)
    return write_workspace(tmp_path / "ws")


@pytest.fixture
def cli():
    """Run the CLI in-process; returns (exit_code, stdout, stderr)."""

    def invoke(*args: str, input: str | None = None):
        import contextlib
        import io

        from cxctl.cli.app import run

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = run(list(args))
        return code, out.getvalue(), err.getvalue()

    return invoke
