"""`cxctl demo` end to end: a real SMTP server on 127.0.0.1, a real Maildir, the real example."""

from __future__ import annotations

import csv
import json
import mailbox
from email.header import decode_header, make_header
from pathlib import Path

import pytest


@pytest.fixture
def no_secret(monkeypatch):
    """The demo must work on a fresh machine, where no secret is set (restored after the test)."""
    monkeypatch.delenv("CXCTL_SECRET", raising=False)


def test_demo_runs_the_whole_loop_into_a_maildir(tmp_path: Path, cli, no_secret):
    folder = tmp_path / "demo"
    code, out, err = cli("demo", str(folder))
    assert code == 0, err + out
    # Every step ran: nothing skipped, nothing failed.
    steps = [line for line in err.splitlines() if line.startswith("[")]
    assert steps and all(line.startswith("[ok]") for line in steps), steps
    maildir = folder / "maildir"
    box = mailbox.Maildir(maildir, create=False)
    everything = list(box)
    # The alerts to the case owners land in the same Maildir; the rest are the invitations.
    alerts = [m for m in everything if m["X-Cxctl-Alert"]]
    messages = [m for m in everything if not m["X-Cxctl-Alert"]]
    sent_line = next(line for line in steps if line.startswith("[ok] send:"))
    assert f"{len(messages)} in the Maildir" in sent_line and len(messages) > 0
    cases_line = next(line for line in steps if line.startswith("[ok] follow-up cases:"))
    assert f"{len(alerts)} alert(s) emailed to the owners" in cases_line and alerts
    assert " goes to relation-client@maison-lumen.example, due " in cases_line  # one case with its owner
    assert str(make_header(decode_header(alerts[0]["Subject"]))).startswith("[cxctl] Nouveau cas à rappeler #")
    assert alerts[0]["To"].endswith("@maison-lumen.example")
    for message in messages:
        assert message["X-Cxctl-Invitation"], "each message names its invitation"
        assert str(make_header(decode_header(message["From"]))).endswith("<avis@maison-lumen.example>")
        assert message["X-RcptTo"] == message["To"].split("<")[-1].rstrip(">")  # delivered to the addressee
    # The scorecard printed on stdout agrees with the store: sent and answered per moment.
    assert "Scorecard 2026-11-20 → 2026-11-23" in out
    printed = {}
    for line in out.split("Follow-ups")[0].splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 7 and cells[1].isdigit():
            printed[cells[0]] = (int(cells[1]), int(cells[2]))
    from cxctl import store

    db = store.connect(folder / "cxctl.db")
    stored = {
        m: (sent, answered)
        for m, sent, answered in db.execute(
            "SELECT i.moment, COUNT(DISTINCT i.id), COUNT(DISTINCT r.id) FROM invitations i "
            "LEFT JOIN responses r ON r.invitation_id = i.id AND r.status = 'counted' "
            "WHERE i.kind = 'invitation' AND i.status = 'sent' GROUP BY i.moment"
        )
    }
    texts = sorted((folder / "outbox" / "sms").glob("*.sms"))  # issue 16: who accepted SMS gets one, not an email
    assert len(texts) == 1 and ", 1 SMS in outbox/sms/" in sent_line
    head, _, body = texts[0].read_text(encoding="utf-8").partition("\n\n")
    assert head.startswith("To: +33612345678\nFrom: LUMEN\n") and body.rstrip().endswith("STOP au 36111")
    assert printed == stored and sum(sent for sent, _ in printed.values()) == len(messages) + len(texts)
    assert "Where to look:" in out and str(maildir) in out
    assert "CXCTL_SECRET was not set" in out


def test_demo_is_reproducible_and_refuses_a_non_empty_folder(tmp_path: Path, cli, no_secret):
    first, second = tmp_path / "a", tmp_path / "b"
    code_a, out_a, _ = cli("demo", str(first), "--json")
    code_b, out_b, _ = cli("demo", str(second), "--json")
    assert code_a == code_b == 0
    a, b = json.loads(out_a), json.loads(out_b)

    def summaries(data, folder):
        return [(s["name"], s["status"], s["summary"].replace(str(folder), "")) for s in data["steps"]]

    strip_port = lambda rows: [(n, st, su.split("127.0.0.1:")[0]) for n, st, su in rows]  # noqa: E731
    assert strip_port(summaries(a, first)) == strip_port(summaries(b, second))
    # Same answers to the same invitations; only the signed tokens (random by design) differ.
    without_tokens = lambda path: [row[:1] + row[2:] for row in csv.reader(path.open(encoding="utf-8"))]  # noqa: E731
    assert without_tokens(first / "demo-responses.csv") == without_tokens(second / "demo-responses.csv")
    code, _, err = cli("demo", str(first))
    assert code == 2 and "is not empty" in err and "--force" in err
    code, again, err = cli("demo", str(first), "--force", "--json")
    assert code == 0, err
    assert strip_port(summaries(json.loads(again), first)) == strip_port(summaries(a, first)), "--force starts afresh"


def test_force_never_overwrites_a_workspace_the_demo_did_not_create(tmp_path: Path, cli, no_secret):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "cxctl.yaml").write_text("workspace: {name: mine}\n", encoding="utf-8")
    code, _, err = cli("demo", str(mine))
    assert code == 2 and "did not create" in err and "add --force" not in err  # --force would not help: not offered
    code, _, err = cli("demo", str(mine), "--force")
    assert code == 2 and "did not create" in err
    assert (mine / "cxctl.yaml").read_text(encoding="utf-8") == "workspace: {name: mine}\n"


def test_forget_on_the_demo_data_keeps_every_scorecard(tmp_path: Path, no_secret, helpers):
    """Real imports, plan, send and responses: forget the respondents who wrote comments."""
    from cxctl import store
    from cxctl.cli import demo
    from cxctl.privacy import erasure as privacy
    from cxctl.results.scorecard import compute_scorecard
    from cxctl.validation import load_workspace

    result = demo.run_demo(tmp_path / "demo", force=False)
    assert not result.failed
    ws = load_workspace(tmp_path / "demo")
    db = store.connect(ws.database)
    later = demo.DEFAULT_NOW + demo.RESPONSE_DELAY
    views = [["moment"], ["segment"], ["country", "month"], ["journey", "stage"]]
    before = [compute_scorecard(ws, db, later, by=by) for by in views]
    people = db.execute(
        "SELECT DISTINCT c.external_id, c.email, c.first_name, c.last_name, a.value_text FROM answers a "
        "JOIN responses r ON r.id = a.response_id JOIN contacts c ON c.id = r.contact_id "
        "WHERE a.question = 'commentaire' AND a.value_text IS NOT NULL ORDER BY c.external_id LIMIT 3"
    ).fetchall()
    assert len(people) == 3
    for external_id, *_ in people:
        privacy.forget(ws, db, external_id, later)
    after = [compute_scorecard(ws, db, later, by=by) for by in views]
    assert after == before
    for _, email, first, last, _comment in people:
        for needle in (email, f"{first}", last):
            assert helpers.text_cells_containing(db, needle) == [], needle
    # The comments are gone from the forgotten people's answers (other people may have written the same words).
    hashed = [privacy.email_hash(email) for _, email, *_ in people]
    assert (
        db.execute(f"SELECT COUNT(*) FROM forgotten WHERE email_hash IN ({','.join('?' * 3)})", hashed).fetchone()[0]
        == 3
    )
    assert (
        db.execute(
            "SELECT COUNT(*) FROM answers a JOIN responses r ON r.id = a.response_id JOIN contacts c ON c.id = r.contact_id "
            "WHERE c.forgotten_at IS NOT NULL AND a.value_text IS NOT NULL AND a.question = 'commentaire'"
        ).fetchone()[0]
        == 0
    )
