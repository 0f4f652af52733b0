"""After `forget`, re-importing the original CRM export does not bring the person back."""

from __future__ import annotations

from pathlib import Path

from cxctl import store
from cxctl.audience import contacts as audience
from cxctl.core.timeutil import parse_now
from cxctl.privacy import erasure as privacy
from cxctl.store import email_hash
from cxctl.validation import load_workspace

NOW = parse_now("2026-11-20T10:00:00+01:00")
EXPORT = (
    "external_id;email;first_name;last_name;language;country;segment\n"
    "C-1;zoe.martin@exemple.fr;Zoé;Martin-Dubois;fr;FR;retail\n"
    "C-2;paul.leroy@example.com;Paul;Leroy;fr;FR;retail\n"
)


def test_reimporting_the_original_csv_does_not_recreate_an_invitable_contact(workspace_dir: Path, tmp_path: Path):
    ws = load_workspace(workspace_dir)
    db = store.connect(ws.database)
    export = tmp_path / "crm.csv"
    export.write_text(EXPORT, encoding="utf-8-sig")
    first = audience.import_contacts(ws, db, export, NOW)
    assert first.inserted == 2
    privacy.forget(ws, db, "C-1", NOW)

    again = audience.import_contacts(ws, db, export, NOW)
    assert again.rejected == 1 and again.inserted == 0
    hashed = email_hash("zoe.martin@exemple.fr")
    assert (
        db.execute("SELECT COUNT(*) FROM contacts WHERE email_hash = ? OR external_id = 'C-1'", [hashed]).fetchone()[0]
        == 0
    )

    # Even a contact re-created behind cxctl's back is never planned: its hash is forgotten and suppressed.
    db.execute(
        "INSERT INTO contacts (external_id, email, email_hash, language, country, segment, created_at, updated_at) "
        "VALUES ('C-1b', 'zoe.martin@exemple.fr', ?, 'fr', 'FR', 'retail', '2026-11-20 09:00:00', '2026-11-20 09:00:00')",
        [hashed],
    )
    from cxctl.planning.engine import compute_plan

    plan = compute_plan(ws, db, NOW)
    recreated = db.execute("SELECT id FROM contacts WHERE external_id = 'C-1b'").fetchone()[0]
    assert all(item.contact_id != recreated for item in plan.planned)
    reasons = {e.reason for e in plan.exclusions if e.contact_id == recreated}
    assert reasons and reasons <= {"forgotten", "suppressed"}, reasons
    assert db.execute("SELECT reason FROM suppressions WHERE email_hash = ?", [hashed]).fetchone() == (
        "do_not_contact",
    )
