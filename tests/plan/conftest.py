"""Plan fixtures: a workspace written inline and a real SQLite store filled with direct SQL
(the audience importer is another area; these helpers only write what the engine reads)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from cxctl import store
from cxctl.core.emails import normalise
from cxctl.validation import check_workspace

STAMP = "2026-01-01 00:00:00"

BASE = """\
workspace:
  name: Plan test
  default_language: fr
  languages: [fr, en]
  timezone: Europe/Paris
  sender: {name: Service Client, address: avis@boutique.example}
  survey_url: "https://survey.example/s/{moment}?t={token}"
  token_secret_env: CXCTL_SECRET
questions:
  csat: {type: csat, text: {fr: Satisfait ?, en: Satisfied?}}
journeys:
  shop: {name: Shop, stages: [delivery, support, loyalty]}
"""


class Store:
    """A workspace plus its store, with helpers that insert rows straight into the tables."""

    def __init__(self, root: Path, rules: str, moments: str):
        root.mkdir(parents=True, exist_ok=True)
        (root / "cxctl.yaml").write_text(BASE + textwrap.dedent(rules), encoding="utf-8")
        (root / "moments.yaml").write_text(textwrap.dedent(moments), encoding="utf-8")
        result = check_workspace([root])
        assert not result.errors, "\n".join(p.format() for p in result.errors)
        self.ws = result.workspace
        self.db = store.connect(self.ws.database)
        self._events = 0

    def contact(
        self,
        external_id: str,
        email: str | None = "auto",
        *,
        language: str = "fr",
        timezone: str | None = None,
        segment: str | None = None,
        country: str | None = None,
        role: str | None = None,
        attributes: dict | None = None,
        forgotten_at: str | None = None,
    ) -> int:
        if email == "auto":
            email = f"{external_id}@example.com"
        address = normalise(email) if email else None
        cur = self.db.execute(
            "INSERT INTO contacts (external_id, email, email_hash, language, timezone, country, segment, role, attributes,"
            " created_at, updated_at, forgotten_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                external_id,
                address,
                store.email_hash(address) if address else None,
                language,
                timezone,
                country,
                segment,
                role,
                json.dumps(attributes or {}, ensure_ascii=False),
                STAMP,
                STAMP,
                forgotten_at,
            ],
        )
        return cur.lastrowid

    def event(self, contact_id: int, type_: str, occurred_at: str, attributes: dict | None = None) -> int:
        self._events += 1
        cur = self.db.execute(
            "INSERT INTO events (event_key, contact_id, type, occurred_at, attributes, imported_at) VALUES (?, ?, ?, ?, ?, ?)",
            [
                f"ev{self._events}",
                contact_id,
                type_,
                occurred_at,
                json.dumps(attributes or {}, ensure_ascii=False),
                STAMP,
            ],
        )
        return cur.lastrowid

    def invitation(
        self,
        contact_id: int,
        moment: str,
        sent_at: str,
        *,
        status: str = "sent",
        kind: str = "invitation",
        event_id: int | None = None,
        wave: str | None = None,
        parent_id: int | None = None,
        key: str | None = None,
    ) -> int:
        key = (
            key
            or f"{moment}|{contact_id}|{'w' + wave if wave else 'e' + str(event_id) if event_id else sent_at}|{kind}|{parent_id}"
        )
        cur = self.db.execute(
            "INSERT INTO invitations (dedupe_key, token, contact_id, moment, event_id, wave, kind, parent_id, email, send_at,"
            " status, sent_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                key,
                f"tok-{key}",
                contact_id,
                moment,
                event_id,
                wave,
                kind,
                parent_id,
                "x@example.com",
                sent_at,
                status,
                sent_at if status == "sent" else None,
                STAMP,
                STAMP,
            ],
        )
        return cur.lastrowid

    def suppress(self, email: str, reason: str = "opt_out") -> None:
        address = normalise(email)
        self.db.execute(
            "INSERT INTO suppressions (email_hash, email, reason, created_at) VALUES (?, ?, ?, ?)",
            [store.email_hash(address), address, reason, STAMP],
        )

    def forget_hash(self, email: str) -> None:
        self.db.execute(
            "INSERT INTO forgotten (email_hash, forgotten_at) VALUES (?, ?)",
            [store.email_hash(normalise(email)), STAMP],
        )

    def respond(self, invitation_id: int, contact_id: int, moment: str, at: str) -> None:
        columns = {c.name for c in self.db["responses"].columns}
        row = {
            "response_key": f"r{invitation_id}",
            "invitation_id": invitation_id,
            "contact_id": contact_id,
            "moment": moment,
            "source": "test",
            "submitted_at": at,
            "imported_at": at,
        }
        extra = {"content_hash": "h", "day": at[:10], "status": "counted"}
        row.update({k: v for k, v in extra.items() if k in columns})
        self.db.execute(
            f"INSERT INTO responses ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values())
        )

    def mark_sent(self) -> int:
        """Simulate a send run: every planned row goes out at its planned time."""
        return self.db.execute(
            "UPDATE invitations SET status = 'sent', sent_at = send_at WHERE status = 'planned'"
        ).rowcount


@pytest.fixture
def make_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """make_store(rules_yaml, moments_yaml) -> Store in a fresh folder."""
    monkeypatch.setenv("CXCTL_SECRET", "plan-test-secret")
    counter = iter(range(1000))

    def make(rules: str, moments: str) -> Store:
        return Store(tmp_path / f"ws{next(counter)}", rules, moments)

    return make


# `pytest tests/plan --hypothesis-profile=plan-no-shrink`: report a failing example at once (used
# to check that the property tests catch a deliberately broken rule without minutes of shrinking).
from hypothesis import Phase  # noqa: E402
from hypothesis import settings as _settings  # noqa: E402

_settings.register_profile("plan-no-shrink", phases=[Phase.explicit, Phase.reuse, Phase.generate])
