"""Suppressions (core and CLI) and the user's path through `cxctl contacts|events|suppress`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cxctl.audience import suppressions
from cxctl.audience.contacts import rejects_path
from cxctl.core.errors import UsageError
from cxctl.store import email_hash

FIXTURES = Path(__file__).parent / "fixtures"


def test_add_remove_and_list(db, now):
    outcome = suppressions.add(db, " Jeanne.Martin@Example.FR ", "désinscription", now, note="par téléphone")
    assert (outcome.email, outcome.changed, outcome.reason) == ("Jeanne.Martin@example.fr", True, "opt_out")
    again = suppressions.add(db, "jeanne.martin@example.fr", "bounce", now)
    assert (again.changed, again.reason) == (False, "opt_out")  # the first reason and date stay
    assert suppressions.is_suppressed(db, "JEANNE.MARTIN@example.fr")
    listed = suppressions.list_suppressions(db)
    assert [(s.email, s.reason, s.source, s.note, s.created_at) for s in listed] == [
        ("Jeanne.Martin@example.fr", "opt_out", "manual", "par téléphone", "2026-04-01 08:00:00")
    ]
    assert suppressions.list_suppressions(db, "bounce") == []
    assert suppressions.remove(db, "jeanne.martin@example.fr").changed
    assert not suppressions.remove(db, "jeanne.martin@example.fr").changed
    with pytest.raises(UsageError, match="unknown suppression reason 'annoyed': use one of opt_out, bounce"):
        suppressions.add(db, "a@example.fr", "annoyed", now)
    with pytest.raises(UsageError, match="invalid email 'nope'.*give a valid address"):
        suppressions.add(db, "nope", "opt_out", now)


def test_import_an_unsubscribe_list(workspace, db, fixture_file, rejects_of, now):
    path = fixture_file("unsubscribes.csv")
    result = suppressions.import_suppressions(db, path, now, time_zone=workspace.settings.timezone)
    assert (result.read, result.inserted, result.duplicates, result.rejected) == (5, 3, 1, 1)
    rows = db.execute("SELECT email_hash, reason, created_at FROM suppressions ORDER BY id").fetchall()
    assert rows == [
        (email_hash("jeanne.martin@example.fr"), "opt_out", "2026-03-01 23:00:00"),  # 02/03/2026, Paris midnight
        (email_hash("spam.reporter@example.com"), "complaint", "2026-03-05 09:00:00"),
        (email_hash("bounced@example.net"), "bounce", "2026-04-01 08:00:00"),
    ]
    assert rejects_of(rejects_path(path))[0]["row"] == "5"
    assert suppressions.import_suppressions(db, path, now).unchanged == 3


def _copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copy(FIXTURES / name, target)
    return target


def test_cli_contacts_import_summary_rejects_and_exit_codes(workspace, cli, tmp_path):
    path = _copy(tmp_path, "salesforce_report.csv")
    code, out, err = cli(
        "contacts", "import", str(path), "-w", str(workspace.root), "--json", "--now", "2026-04-01T10:00"
    )
    assert code == 1  # rows were rejected: problems found
    summary = json.loads(out)
    assert {k: summary[k] for k in ("read", "inserted", "duplicates", "rejected", "suppressed")} == {
        "read": 5,
        "inserted": 3,
        "duplicates": 1,
        "rejected": 1,
        "suppressed": 1,
    }
    assert summary["rejects_file"] == str(rejects_path(path))
    assert f"{path}:7: invalid email 'paul@@example'" in err and "fix them and import the file again" in err

    code, out, err = cli("contacts", "import", str(path), "-w", str(workspace.root), "--now", "2026-04-01T10:00")
    assert code == 1 and "unchanged" in out and "already imported at 2026-04-01 08:00:00 UTC" in err

    good = _copy(tmp_path, "hubspot.csv")
    code, out, err = cli("contacts", "import", str(good), "-w", str(workspace.root), "--dry-run")
    assert code == 0 and "dry run: nothing written" in out and "preset hubspot" in err
    code, _, err = cli("contacts", "list", "-w", str(workspace.root), "--limit", "-1")
    assert code == 2 and "--limit" in err
    code, out, _ = cli("contacts", "list", "-w", str(workspace.root), "--json", "--search", "bernard")
    assert [c["email"] for c in json.loads(out)] == ["luc.bernard@example.com"] and json.loads(out)[0][
        "suppressed"
    ] == "opt_out"


def test_cli_usage_errors(workspace, cli, tmp_path):
    path = _copy(tmp_path, "hubspot.csv")
    code, _, err = cli("contacts", "import", str(path), "-w", str(workspace.root), "--preset", "sap")
    assert code == 2 and "unknown preset 'sap': use one of salesforce_report" in err
    code, _, err = cli("contacts", "import", str(tmp_path / "nope.csv"), "-w", str(workspace.root))
    assert code == 2 and "nope.csv: no such file: check the path" in err
    code, _, err = cli("contacts", "import", str(path), "-w", str(workspace.root), "--encoding", "klingon")
    assert code == 2 and "unknown encoding 'klingon'" in err


def test_cli_events_and_suppress(workspace, cli, tmp_path):
    cli("contacts", "import", str(_copy(tmp_path, "salesforce_report.csv")), "-w", str(workspace.root))
    code, out, _ = cli("events", "import", str(_copy(tmp_path, "tickets.csv")), "-w", str(workspace.root), "--json")
    assert code == 0 and json.loads(out)["inserted"] == 2
    code, out, _ = cli(
        "suppress",
        "add",
        "zoe@exemple.fr",
        "--reason",
        "complaint",
        "-w",
        str(workspace.root),
        "--now",
        "2026-04-01T10:00",
    )
    assert code == 0 and out.strip() == "suppressed zoe@exemple.fr (complaint)"
    code, out, _ = cli("suppress", "list", "-w", str(workspace.root), "--json")
    assert {(s["email"], s["reason"]) for s in json.loads(out)} == {
        ("zoe@exemple.fr", "complaint"),
        ("luc.bernard@example.com", "opt_out"),
    }
    code, out, _ = cli("suppress", "remove", "zoe@exemple.fr", "-w", str(workspace.root))
    assert code == 0 and "no longer suppressed (was complaint)" in out
    code, _, err = cli("suppress", "remove", "zoe@exemple.fr", "-w", str(workspace.root))
    assert code == 1 and "is not suppressed" in err
    code, out, _ = cli(
        "suppress", "import", str(_copy(tmp_path, "unsubscribes.csv")), "-w", str(workspace.root), "--json"
    )
    assert code == 1 and json.loads(out)["inserted"] == 3
