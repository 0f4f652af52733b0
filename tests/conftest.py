"""Shared fixtures: a small valid workspace written inline in tmp_path, and a CLI runner.

Each area keeps its own fixtures in tests/<area>/conftest.py.
"""

from __future__ import annotations

import os
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


# --- a real browser -------------------------------------------------------------------------------

CHROMIUM_INSTALL = "apt-get update && apt-get install -y chromium chromium-driver"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",  # the machine's network is closed: no background calls
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)


@pytest.fixture
def chromium(tmp_path):
    """A factory of headless Debian chromium sessions (Selenium + chromium-driver, nothing downloaded).

    Without a browser the test is skipped with the command that installs one; under CI (CI set, where
    .ci/run installs it) a missing browser fails the test instead, so browser tests are never dropped
    silently. Each session gets a fresh profile and is closed after the test."""
    import shutil

    binary = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        message = f"no headless chromium and chromedriver on PATH: install them with `{CHROMIUM_INSTALL}`"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must run the browser tests: .ci/run installs them)")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    sessions = []

    def start(width: int = 1280, height: int = 1000, logs: bool = False):
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={tmp_path / f'chromium-profile-{len(sessions)}'}")
        options.add_argument(f"--window-size={width},{height}")
        if logs:
            options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
        driver.set_page_load_timeout(30)
        sessions.append(driver)
        return driver

    yield start
    for driver in sessions:
        driver.quit()
