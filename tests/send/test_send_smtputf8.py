"""An address with a non-ASCII local part (issue 12, item 8) is flagged at import and at validate,
against the server's declared capability (smtp.smtputf8), and never discovered on the wire."""

from __future__ import annotations

import json

from cxctl.core.timeutil import parse_now
from cxctl.delivery.send import send_campaign
from cxctl.delivery.transport import SmtpTransport


def test_non_ascii_local_part_is_flagged_at_import_and_validate_and_not_tried_at_send(
    tmp_path, smtp_server, smtp_ws, send_helpers, workspace_dir, cli
):
    sink = send_helpers.Sink()
    ws, db = smtp_ws(smtp_server(sink))
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "external_id,email,first_name\nC1,benoît.dupont@exemple.fr,Benoît\nC2,zoe@exemple.fr,Zoé\n"
        "C3,jean@exémple.fr,Jean\n",
        encoding="utf-8",
    )
    code, out, err = cli("contacts", "import", str(contacts), "-w", str(workspace_dir), "--now", "2026-11-20T10:00")
    assert code == 0, err
    flat = " ".join(err.split())
    # Named, with the fix; the internationalised domain (converted to ASCII) needs nothing.
    assert "1 address(es) have a non-ASCII local part (C1 <benoît.dupont@exemple.fr>)" in flat
    assert "smtp.smtputf8: true" in flat and "C3" not in flat

    code, out, _ = cli("validate", str(workspace_dir), "--json")
    problems = json.loads(out)["problems"]
    warning = [p for p in problems if p["path"] == "workspace.smtp.smtputf8"]
    assert (
        len(warning) == 1
        and warning[0]["severity"] == "warning"
        and "C1 <benoît.dupont@exemple.fr>" in warning[0]["message"]
    )

    for external_id in ("C1", "C2"):
        contact_id = db.execute("SELECT id, email FROM contacts WHERE external_id = ?", [external_id]).fetchone()
        db.execute(
            "INSERT INTO invitations (dedupe_key, token, contact_id, moment, send_at, status, email, created_at, updated_at)"
            " VALUES (?, ?, ?, 'delivery_csat', '2026-11-23 09:00:00', 'planned', ?, '2026-11-23', '2026-11-23')",
            [f"k{external_id}", f"t{external_id}.x", contact_id[0], contact_id[1]],
        )
    report = send_campaign(
        ws, db, parse_now("2026-11-23T10:00:00+00:00"), SmtpTransport(ws.settings.smtp), moment="delivery_csat"
    )
    assert (report.sent, report.failed, report.skipped.get("needs_smtputf8")) == (1, 1, 1)
    assert "smtp.smtputf8" in report.errors[0]["error"]
    assert [rcpt for _, rcpts, _ in sink.messages for rcpt in rcpts] == ["zoe@exemple.fr"]  # the other never left
    status = db.execute("SELECT status, attempts, next_attempt_at FROM invitations WHERE dedupe_key = 'kC1'").fetchone()
    assert status == ("failed", 0, None)
