"""The user's path: `cxctl send`, `cxctl preview`, and `cxctl validate` catching a template variable."""

from __future__ import annotations

import email
import email.policy
import json

from cxctl import store
from cxctl.validation import load_workspace


def seed_contacts_and_events(workspace_dir, n: int = 3) -> None:
    """Contacts with a delivery each (no invitations): `cxctl send` must plan them itself."""
    ws = load_workspace(workspace_dir)
    db = store.connect(ws.database)
    for i in range(n):
        address = f"client{i}@example.fr"
        contact_id = db.execute(
            "INSERT INTO contacts (external_id, email, email_hash, first_name, language, attributes, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, '{}', '2026-11-01 00:00:00', '2026-11-01 00:00:00')",
            [f"C-{i}", address, store.email_hash(address), "Anaïs", "fr" if i % 2 == 0 else "en"],
        ).lastrowid
        db.execute(
            "INSERT INTO events (event_key, contact_id, type, occurred_at, attributes, imported_at) "
            "VALUES (?, ?, 'order_delivered', '2026-11-20 10:00:00', '{\"order_id\": \"A1\"}', '2026-11-20 11:00:00')",
            [f"E-{i}", contact_id],
        )
    db.conn.close()


def test_send_plans_then_writes_the_outbox_and_a_second_run_sends_nothing(cli, workspace_dir):
    seed_contacts_and_events(workspace_dir)
    code, out, err = cli(
        "send",
        "-w",
        str(workspace_dir),
        "--now",
        "2026-11-23T12:00:00+00:00",
        "--moment",
        "delivery_csat",
        "--dry-run",
        "--json",
    )
    assert code == 0, err
    dry = json.loads(out)
    assert dry["dry_run"] and dry["would_send"] == 3 and dry["sent"] == 0
    assert not (workspace_dir / "outbox").exists() or not list((workspace_dir / "outbox").glob("*.eml"))

    code, out, err = cli(
        "send", "-w", str(workspace_dir), "--now", "2026-11-23T12:00:00+00:00", "--moment", "delivery_csat", "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["planned"] == 3 and report["sent"] == 3 and report["ok"]
    files = sorted((workspace_dir / "outbox").glob("*.eml"))
    assert len(files) == 3
    subjects = sorted(
        str(email.message_from_bytes(f.read_bytes(), policy=email.policy.default)["Subject"]) for f in files
    )
    assert subjects[0] == "E-commerce journey: your opinion in two minutes, Anaïs"
    assert subjects[-1] == "Parcours e-commerce : votre avis en deux minutes, Anaïs"

    code, out, _ = cli(
        "send", "-w", str(workspace_dir), "--now", "2026-11-23T12:00:00+00:00", "--moment", "delivery_csat", "--json"
    )
    assert code == 0 and json.loads(out)["sent"] == 0 and json.loads(out)["planned"] == 0


def test_send_summary_table_and_plain_progress_lines_under_cron(cli, workspace_dir):
    seed_contacts_and_events(workspace_dir, 2)
    code, out, err = cli("send", "-w", str(workspace_dir), "--now", "2026-11-23T12:00:00+00:00", "-m", "delivery_csat")
    assert code == 0, err
    assert "send via outbox" in out and "in doubt" in out
    assert "│ sent" in out or "sent " in out
    assert "send: 2/2 done" in err  # not a terminal: log lines, no progress bar


def test_preview_writes_eml_and_html_in_the_requested_language(cli, workspace_dir, tmp_path):
    code, out, err = cli(
        "preview", "support_ces", "-w", str(workspace_dir), "--lang", "EN", "--output", str(tmp_path / "p")
    )
    assert code == 0, err
    eml = tmp_path / "p" / "support_ces.en.eml"
    html = tmp_path / "p" / "support_ces.en.html"
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["Subject"] == "E-commerce journey: your opinion in two minutes, Camille"
    assert "It was easy to get my issue solved." in out
    assert html.read_text(encoding="utf-8").count("score=") == 7  # CES 1–7, one link each
    assert "Unsubscribe from surveys" in html.read_text(encoding="utf-8")


def test_preview_for_a_stored_contact_and_clear_errors(cli, workspace_dir, tmp_path):
    seed_contacts_and_events(workspace_dir, 1)
    code, out, err = cli(
        "preview", "delivery_csat", "-w", str(workspace_dir), "--contact", "C-0", "--output", str(tmp_path)
    )
    assert code == 0, err
    assert "client0@example.fr" in out and "Bonjour Anaïs" in out
    code, _, err = cli("preview", "delivery_csat", "-w", str(workspace_dir), "--contact", "nobody")
    assert code == 2 and "no contact with id or external id 'nobody'" in err
    code, _, err = cli("preview", "livraison", "-w", str(workspace_dir))
    assert code == 2 and "unknown moment 'livraison'" in err and "delivery_csat" in err


def test_a_contact_attribute_in_a_template_and_a_contact_without_it(cli, workspace_dir, tmp_path):
    """contact.attributes comes from the CRM columns: present for one contact, absent for another. The second
    is a problem of that contact's data (exit 1, named, with the fix), not a crash of cxctl (exit 3)."""
    seed_contacts_and_events(workspace_dir, 2)
    templates = workspace_dir / "templates"
    templates.mkdir()
    for part, text in (
        ("subject", "Votre avis"),
        ("txt", "Client depuis {{ contact.attributes.client_depuis }}\n{{ survey_url }}\n"),
        ("html", "<p>{{ survey_url }}</p>"),
    ):
        (templates / f"invitation.fr.{part}.j2").write_text(text, encoding="utf-8")
    db = store.connect(load_workspace(workspace_dir).database)
    db.execute(
        """UPDATE contacts SET attributes = json_set(attributes, '$.client_depuis', '2019') WHERE external_id = 'C-0'"""
    )
    db.conn.close()
    code, out, err = cli(
        "preview",
        "delivery_csat",
        "-w",
        str(workspace_dir),
        "--contact",
        "C-0",
        "--lang",
        "fr",
        "--output",
        str(tmp_path),
    )
    assert code == 0, err
    assert "Client depuis 2019" in out
    code, out, err = cli(
        "preview",
        "delivery_csat",
        "-w",
        str(workspace_dir),
        "--contact",
        "C-1",
        "--lang",
        "fr",
        "--output",
        str(tmp_path),
    )
    assert code == 1, (out, err)
    assert "invitation.fr.txt.j2" in err and "client_depuis" in err and "default('')" in err
    assert "bug in cxctl" not in err


def test_validate_reports_an_unknown_template_variable_with_its_line(cli, workspace_dir):
    templates = workspace_dir / "templates"
    templates.mkdir()
    for part in ("subject", "txt", "html"):
        (templates / f"invitation.fr.{part}.j2").write_text("Bonjour\n", encoding="utf-8")
    (templates / "invitation.fr.txt.j2").write_text("Bonjour,\n\nCommande {{ commande.numero }}\n", encoding="utf-8")
    code, out, err = cli("validate", str(workspace_dir))
    assert code == 1
    assert "templates/invitation.fr.txt.j2:3: 'commande' is undefined" in out + err


def test_an_opt_out_after_planning_cancels_instead_of_sending(smtp_ws, send_helpers):
    ws, db = smtp_ws(transport="outbox")
    send_helpers.add_invitations(db, ws, [{"email": "client0@example.fr"}, {"email": "client1@example.fr"}])
    db.execute(
        "INSERT INTO suppressions (email_hash, email, reason, source, created_at) "
        "VALUES (?, ?, 'opt_out', 'test', '2026-11-23 09:00:00')",
        [store.email_hash("client0@example.fr"), "client0@example.fr"],
    )
    from cxctl.core.timeutil import parse_now
    from cxctl.delivery.send import deliver
    from cxctl.delivery.transport import OutboxTransport

    report = deliver(ws, db, parse_now(send_helpers.NOW), OutboxTransport(ws.outbox_dir))
    assert report.skipped == {"suppressed": 1} and report.sent == 1
    assert dict(db.execute("SELECT email, status FROM invitations").fetchall()) == {
        "client0@example.fr": "cancelled",
        "client1@example.fr": "sent",
    }


def test_customers_read_the_company_in_their_language_and_the_moment_as_named(cli, workspace_dir, tmp_path):
    """The footer named the programme ("client de Boutique test — Voix du client"), in French in the English
    mail too, and the subject read "how was Claim settled?"."""
    config = workspace_dir / "cxctl.yaml"
    text = config.read_text(encoding="utf-8").replace(
        "  name: Boutique test\n", "  name: Boutique test — Voix du client\n"
    )
    config.write_text(text, encoding="utf-8")
    journey = workspace_dir / "ecommerce.yaml"
    journey.write_text(
        journey.read_text(encoding="utf-8").replace(
            "  support_ces:\n", "  support_ces:\n    name: {fr: Sinistre réglé, en: Claim settled}\n"
        ),
        encoding="utf-8",
    )

    def preview(lang: str) -> tuple[str, str, str]:
        out_dir = tmp_path / f"p-{lang}-{len(list(tmp_path.iterdir()))}"
        code, _, err = cli("preview", "support_ces", "-w", str(workspace_dir), "--lang", lang, "--output", str(out_dir))
        assert code == 0, err
        message = email.message_from_bytes(
            (out_dir / f"support_ces.{lang}.eml").read_bytes(), policy=email.policy.default
        )
        body = message.get_body(("plain",)).get_content()
        return str(message["Subject"]), body, (out_dir / f"support_ces.{lang}.html").read_text(encoding="utf-8")

    # No company set: no programme name in front of customers, in any language.
    subject, body, html = preview("en")
    assert subject == "Claim settled: your opinion in two minutes, Camille"
    assert "you are one of our customers." in body and "one of our customers" in html
    assert "Voix du client" not in body + html + subject
    subject, body, _ = preview("fr")
    assert subject == "Sinistre réglé : votre avis en deux minutes, Camille"
    assert "vous êtes l'un de nos clients." in body

    config.write_text(
        text.replace(
            "  default_language: fr\n",
            "  company: {fr: Boutique Horizon, en: Horizon Stores}\n  default_language: fr\n",
        ),
        encoding="utf-8",
    )
    _, body, html = preview("en")
    assert "you are a customer of Horizon Stores." in body and "a customer of Horizon Stores." in html
    assert "Boutique" not in body  # the English mail does not repeat the French name
    _, body, html = preview("fr")
    assert "vous êtes client de Boutique Horizon." in body and "client de Boutique Horizon." in html
