"""db prune: retention periods erase old personal data, keep scores, and --dry-run counts exactly."""

from __future__ import annotations

import json

from cxctl import store
from cxctl.core.timeutil import parse_now
from cxctl.privacy import erasure as privacy
from cxctl.privacy import retention
from cxctl.validation import load_workspace

NOW = parse_now("2026-11-22T09:00:00+00:00")


def setup(retention_workspace, helpers):
    ws = load_workspace(retention_workspace)
    db = store.connect(ws.database)
    old = helpers.seed_person(
        db,
        external_id="OLD",
        email="ancien@example.fr",
        first_name="Ancien",
        last_name="Client",
        free_text="Trop cher à l'époque",
        note="appel fait",
        when="2024-06-01 10:00:00",
        outbox=ws.outbox_dir,
    )
    new = helpers.seed_person(
        db,
        external_id="NEW",
        email="recent@example.fr",
        first_name="Récent",
        last_name="Client",
        free_text="Très bien",
        note="merci",
        when="2026-10-01 10:00:00",
        outbox=ws.outbox_dir,
    )
    # An old event that never led to an invitation: deleted outright.
    db.execute(
        "INSERT INTO events (event_key, contact_id, type, occurred_at, attributes, imported_at) "
        "VALUES ('ORD-LONE', ?, 'order_delivered', '2025-01-05 10:00:00', '{\"x\": 1}', '2025-01-05 10:00:00')",
        [new["contact_id"]],
    )
    return ws, db, old, new


def test_prune_erases_what_outlived_its_period_and_nothing_else(retention_workspace, helpers):
    ws, db, old, new = setup(retention_workspace, helpers)
    scores = db.execute(
        "SELECT response_id, question, value_num FROM answers WHERE value_num IS NOT NULL ORDER BY 1"
    ).fetchall()
    result = retention.prune(ws, db, NOW)
    by_rule = {rule.name: rule for rule in result.rules}
    assert by_rule["responses"].cutoff == "2025-11-23 09:00:00"
    assert by_rule["responses"].changes == {"answers": 1, "followups": 1, "quarantine": 1}
    assert by_rule["events"].changes == {"events deleted": 1, "events erased": 1}
    assert by_rule["invitations"].changes == {"invitations": 1}
    assert by_rule["contacts_inactive"].changes["contacts"] == 1
    for trace in ("ancien@example.fr", "Ancien", "Trop cher", "appel fait"):
        assert helpers.text_cells_containing(db, trace) == [], trace
    for trace in ("recent@example.fr", "Récent", "Très bien", "merci"):
        assert helpers.text_cells_containing(db, trace), trace
    assert (
        db.execute(
            "SELECT response_id, question, value_num FROM answers WHERE value_num IS NOT NULL ORDER BY 1"
        ).fetchall()
        == scores
    )
    assert [p.rsplit("/", 1)[-1] for p in result.files] == [f"{old['invitation_id']:06d}.eml"]
    assert sorted(p.name for p in ws.outbox_dir.glob("*.eml")) == [f"{new['invitation_id']:06d}.eml"]
    # Retention does not block: the inactive person may be imported again later.
    assert not privacy.is_forgotten(db, "ancien@example.fr")
    # A second run finds nothing left to do.
    assert retention.prune(ws, db, NOW).total == 0


def test_dry_run_counts_exactly_and_changes_nothing(retention_workspace, helpers):
    ws, db, _, _ = setup(retention_workspace, helpers)
    dump = list(db.conn.iterdump())
    planned = retention.prune(ws, db, NOW, dry_run=True)
    assert list(db.conn.iterdump()) == dump and len(list(ws.outbox_dir.glob("*.eml"))) == 2
    done = retention.prune(ws, db, NOW)
    assert [(r.name, r.changes) for r in planned.rules] == [(r.name, r.changes) for r in done.rules]
    assert planned.total == done.total > 0


def test_prune_without_retention_changes_nothing(workspace_dir, helpers, cli):
    ws = load_workspace(workspace_dir)
    db = store.connect(ws.database)
    helpers.seed_person(
        db,
        external_id="OLD",
        email="ancien@example.fr",
        first_name="Ancien",
        last_name="Client",
        free_text="Trop cher",
        when="2020-01-01 10:00:00",
    )
    code, out, err = cli("db", "prune", "-w", str(workspace_dir), "--now", "2026-11-22T09:00")
    assert code == 0
    assert "no retention period is set" in err
    assert helpers.text_cells_containing(db, "Trop cher")


def test_cli_prune_json_and_forget_json(retention_workspace, helpers, cli):
    ws, db, old, _ = setup(retention_workspace, helpers)
    code, out, _ = cli(
        "db", "prune", "-w", str(retention_workspace), "--now", "2026-11-22T09:00", "--dry-run", "--json"
    )
    assert code == 0
    data = json.loads(out)
    assert data["dry_run"] is True and [r["name"] for r in data["rules"]] == [
        "responses",
        "events",
        "invitations",
        "contacts_inactive",
    ]
    code, out, err = cli(
        "forget", "recent@example.fr", "-w", str(retention_workspace), "--now", "2026-11-22T09:00", "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["changes"]["contacts"] == 1 and data["dry_run"] is False
    code, out, err = cli("forget", "NOPE", "-w", str(retention_workspace))
    assert code == 2 and "no contact has the external id 'NOPE'" in err
    code, out, err = cli("export-person", "NOPE", "-w", str(retention_workspace))
    assert code == 2 and "no contact has the external id 'NOPE'" in err
    assert (
        cli("export-person", "OLD", "-w", str(retention_workspace), "--now", "2026-11-22T09:00", "--json")[:2]
        == cli("export-person", "OLD", "-w", str(retention_workspace), "--now", "2026-11-22T09:00")[:2]
    )  # --json accepted: always JSON (one --now: the real clock may tick between the two calls)
    code, out, err = cli("export-person", "OLD", "-w", str(retention_workspace))
    assert code == 0 and json.loads(out)["contacts"][0]["external_id"] == "OLD"


def test_retention_in_years_and_months_is_accepted_and_shown_as_written(workspace_dir, helpers, cli):
    """`3y` was refused, and a period of 1095d was shown as `156w3d`."""
    config = workspace_dir / "cxctl.yaml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "  token_secret_env: CXCTL_SECRET\n",
            "  token_secret_env: CXCTL_SECRET\n  retention: {responses: 3y, events: 18mo, invitations: 1095d}\n",
        ),
        encoding="utf-8",
    )
    ws = load_workspace(workspace_dir)
    assert ws.settings.retention.responses.days == 1095 and ws.settings.retention.events.days == 540
    code, out, err = cli("db", "prune", "-w", str(workspace_dir), "--now", "2026-11-22T09:00", "--dry-run", "--json")
    assert code == 0, err
    periods = {r["name"]: r["period"] for r in json.loads(out)["rules"]}
    assert periods == {"responses": "3y", "events": "18mo", "invitations": "3y", "contacts_inactive": None}
    assert {r["name"]: r["cutoff"] for r in json.loads(out)["rules"]}[
        "responses"
    ] == "2023-11-23 08:00:00"  # --now is Paris time
