"""Issue 12: what real survey-tool exports and a new team met — date orders, unread questions, stray `t`
columns, missing-value markers, partial rows, surveys without invitation, unrecognised formats."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from cxctl.core.errors import ImportFileError
from cxctl.results.importer import import_responses

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=timezone.utc)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_an_export_without_tokens_needs_no_secret(results_ws, sql, tmp_path, monkeypatch):
    """Matching by email uses no token, so no secret: `responses import` demanded CXCTL_SECRET all the same."""
    ws, db = results_ws
    cid = sql.add_contact(db, "ALICE", "alice@example.fr")
    sql.add_invitation(db, cid, "nps_relational", "2026-10-01 08:00:00")
    monkeypatch.delenv("CXCTL_SECRET")
    path = write(tmp_path, "r.csv", "response_id,email,submitted_at,nps,nps_why,nps_reason\n"
                                    "1,alice@example.fr,2026-10-05 10:00,9,,\n2,bob@example.fr,2026-10-05 11:00,3,,\n")
    report = import_responses(ws, db, path, NOW, moment="nps_relational")
    assert report.counted == 1 and report.quarantined == {"unmatched": 1}
