"""Fixtures of the privacy area: a store with a person's data in every table, written with plain SQL
(the same rows the importers, the plan and the send engine write)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from cxctl import store
from cxctl.store import email_hash
from cxctl.validation import load_workspace

ZOE = {
    "external_id": "C-1",
    "email": "Zoe.Martin@Exemple.fr",
    "first_name": "Zoé",
    "last_name": "Martin-Dubois",
    "company": "Fromagerie Zoé",
    "free_text": "Livreur impoli, colis abîmé devant la porte",
    "note": "Rappelée, très déçue par le transporteur",
}


# Columns other areas add with NOT NULL and no default: filled with plausible values so the fixture
# follows the schema as it grows.
_SERIAL = itertools.count(1)
_FILLERS = {
    "content_hash": lambda row: f"h{next(_SERIAL)}",
    "day": lambda row: row.get("submitted_at", "2026-01-01")[:10],
    "row_key": lambda row: f"k{next(_SERIAL)}",
    "kind": lambda row: "unmatched",
    "status": lambda row: "counted",
}


def _insert(db, table: str, row: dict) -> int:
    row = dict(row)
    for column in db[table].columns:
        if column.name not in row and column.name in _FILLERS and (column.notnull or column.name == "status"):
            row[column.name] = _FILLERS[column.name](row)
    names = ", ".join(row)
    marks = ", ".join("?" * len(row))
    return db.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(row.values())).lastrowid


def seed_person(
    db,
    *,
    external_id,
    email,
    first_name,
    last_name,
    company="",
    free_text=None,
    note=None,
    nps=3,
    segment="retail",
    when="2026-03-10 10:00:00",
    outbox: Path | None = None,
) -> dict:
    """One person with a contact, an event, an invitation, a response (score + open answer), a
    follow-up note, a quarantined row, a suppression and (optionally) a rendered message."""
    normalised = email.split("@")[0] + "@" + email.split("@")[1].lower()
    contact_id = _insert(
        db,
        "contacts",
        {
            "external_id": external_id,
            "email": normalised,
            "email_hash": email_hash(normalised),
            "first_name": first_name,
            "last_name": last_name,
            "language": "fr",
            "timezone": "Europe/Paris",
            "country": "FR",
            "segment": segment,
            "company": company,
            "role": "buyer",
            "attributes": json.dumps(
                {"phone": "+33 6 12 34 56 78", "loyalty": "gold", "nickname": first_name}, ensure_ascii=False
            ),
            "created_at": when,
            "updated_at": when,
        },
    )
    event_id = _insert(
        db,
        "events",
        {
            "event_key": f"ORD-{external_id}",
            "contact_id": contact_id,
            "type": "order_delivered",
            "occurred_at": when,
            "attributes": json.dumps(
                {"address": f"12 rue des Lilas, chez {last_name}", "amount": 42.5}, ensure_ascii=False
            ),
            "source": "events.csv",
            "imported_at": when,
        },
    )
    token = f"tok{contact_id}abcdefghijklmnopqr.sig{contact_id}"
    invitation_id = _insert(
        db,
        "invitations",
        {
            "dedupe_key": f"delivery_csat|{contact_id}|e{event_id}",
            "token": token,
            "contact_id": contact_id,
            "moment": "nps_relational",
            "event_id": event_id,
            "kind": "invitation",
            "language": "fr",
            "email": normalised,
            "send_at": when,
            "status": "sent",
            "attempts": 1,
            "last_error": f"451 temporary failure for <{normalised}>",
            "message_id": f"<m{contact_id}@cxctl.example>",
            "sent_at": when,
            "created_at": when,
            "updated_at": when,
        },
    )
    response_id = _insert(
        db,
        "responses",
        {
            "response_key": f"generic:{contact_id}",
            "invitation_id": invitation_id,
            "contact_id": contact_id,
            "moment": "nps_relational",
            "source": "generic",
            "submitted_at": when,
            "complete": 1,
            "imported_at": when,
        },
    )
    _insert(db, "answers", {"response_id": response_id, "question": "nps", "value_num": nps, "value_text": None})
    if free_text:
        _insert(
            db,
            "answers",
            {"response_id": response_id, "question": "nps_why", "value_num": None, "value_text": free_text},
        )
    if note:
        _insert(db, "followups", {"response_id": response_id, "status": "done", "note": note, "done_at": when})
    _insert(
        db,
        "quarantine",
        {
            "source": "generic",
            "file_name": "responses.csv",
            "row_number": 7,
            "reason": "unknown token",
            "raw": json.dumps({"email": normalised, "nps": "2", "nps_why": free_text or ""}, ensure_ascii=False),
            "imported_at": when,
        },
    )
    _insert(
        db,
        "suppressions",
        {
            "email_hash": email_hash(normalised),
            "email": normalised,
            "reason": "opt_out",
            "source": "unsubscribe",
            "note": f"{first_name} asked by phone",
            "created_at": when,
        },
    )
    if outbox is not None:
        outbox.mkdir(parents=True, exist_ok=True)
        (outbox / f"{invitation_id:06d}.eml").write_text(
            f"From: avis@boutique.example\nTo: {first_name} {last_name} <{normalised}>\nSubject: Votre avis\n"
            f"X-Cxctl-Invitation: {invitation_id}\n\nBonjour {first_name},\n",
            encoding="utf-8",
        )
    return {
        "contact_id": contact_id,
        "invitation_id": invitation_id,
        "response_id": response_id,
        "email": normalised,
        "token": token,
    }


@pytest.fixture
def populated(workspace_dir: Path):
    """(workspace, db, {'zoe': ids, 'paul': ids}) with two people's data in every table."""
    ws = load_workspace(workspace_dir)
    db = store.connect(ws.database)
    zoe = seed_person(db, **{k: v for k, v in ZOE.items()}, outbox=ws.outbox_dir)
    paul = seed_person(
        db,
        external_id="C-2",
        email="paul.leroy@example.com",
        first_name="Paul",
        last_name="Leroy",
        company="Leroy SARL",
        free_text="Rapide et soigné",
        note="RAS",
        nps=9,
        outbox=ws.outbox_dir,
    )
    return ws, db, {"zoe": zoe, "paul": paul}


def text_cells_containing(db, needle: str) -> list[tuple[str, str]]:
    """(table, column) of every text cell, in every table, that contains `needle` (SQL LIKE)."""
    found = []
    for table in db.table_names():
        for column in db[table].columns:
            count = db.execute(
                f"SELECT COUNT(*) FROM [{table}] WHERE CAST([{column.name}] AS TEXT) LIKE ?", [f"%{needle}%"]
            ).fetchone()[0]
            if count:
                found.append((table, column.name))
    return found


@pytest.fixture
def helpers():
    """The helpers above, for test modules (importlib mode cannot import conftest)."""
    import types

    return types.SimpleNamespace(ZOE=ZOE, seed_person=seed_person, text_cells_containing=text_cells_containing)


RETENTION = "  retention: {responses: 52w, events: 26w, invitations: 52w, contacts_inactive: 104w}\n"


@pytest.fixture
def retention_workspace(workspace_dir: Path) -> Path:
    """The shared test workspace with every retention period set."""
    config = workspace_dir / "cxctl.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace("  token_secret_env: CXCTL_SECRET\n", "  token_secret_env: CXCTL_SECRET\n" + RETENTION),
        encoding="utf-8",
    )
    return workspace_dir
