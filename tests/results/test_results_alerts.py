"""Alerts to case owners: email to a real SMTP server (aiosmtpd) and the Slack and Teams incoming-webhook
payloads to a local HTTP server, once per case and event — across reruns and a kill -9 — and the
daily digest of overdue cases."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from cxctl.results.alerts import answers_stored, deliver_alerts, digest
from cxctl.results.cases import change_case
from cxctl.results.importer import import_responses
from cxctl.validation import load_workspace

NOW = datetime(2026, 12, 18, 15, 0, tzinfo=UTC)  # Friday 16:00 in Paris
NOW_ARG = "2026-12-18T16:00:00+01:00"

ALERTS_YAML = """\
followups:
  language: fr
  default_owner: cx@example.fr
  deadlines: {detractor: 8h, dissatisfied: 8h}
  owners:
    - when: {segment: pro}
      owner: pro-cx@example.fr
  alerts:
    email: true
    only_within: 7d
    webhooks:
      - {kind: slack, url_env: TEST_SLACK_WEBHOOK}
      - {kind: teams, url_env: TEST_TEAMS_WEBHOOK, owners: [pro-cx@example.fr]}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """aiosmtpd handler keeping every message; `stall_at` N blocks the Nth DATA (the message is received)."""

    def __init__(self, stall_at: int | None = None):
        self.messages: list[email.message.EmailMessage] = []
        self.stall_at = stall_at
        self.received = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        import asyncio

        self.messages.append(
            email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        )
        if self.stall_at is not None and len(self.messages) >= self.stall_at:
            self.received.set()
            await asyncio.sleep(60)
        return "250 OK"


class Hooks:
    """A local HTTP server standing in for Slack's and Teams' webhook endpoints: records each JSON body by
    path; answers `codes` in turn (then 200); `stall_at` N holds the Nth request without answering."""

    def __init__(self, codes: list[int] | None = None, stall_at: int | None = None):
        self.posts: list[tuple[str, dict]] = []
        self.codes = list(codes or [])
        self.stall_at = stall_at
        self.received = threading.Event()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hooks.posts.append((self.path, body))
                if hooks.stall_at is not None and len(hooks.posts) >= hooks.stall_at:
                    hooks.received.set()
                    time.sleep(60)
                code = hooks.codes.pop(0) if hooks.codes else 200
                answer = b"ok" if code == 200 else b"invalid_payload"
                self.send_response(code)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def by_path(self, path: str) -> list[dict]:
        return [body for p, body in self.posts if p == path]


@pytest.fixture
def servers(monkeypatch):
    """Start an SMTP inbox and a webhook server; returns start(inbox, hooks) -> (smtp port, hooks)."""
    started = []

    def start(inbox: Inbox | None = None, hooks: Hooks | None = None):
        inbox, hooks = inbox or Inbox(), hooks or Hooks()
        port = free_port()
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        started.append((controller, hooks))
        monkeypatch.setenv("TEST_SLACK_WEBHOOK", hooks.url + "/slack")
        monkeypatch.setenv("TEST_TEAMS_WEBHOOK", hooks.url + "/teams")
        return port, inbox, hooks

    yield start
    for controller, hooks in started:
        controller.stop()
        hooks.server.shutdown()


def alerting_ws(results_ws, port: int):
    ws, db = results_ws
    (ws.root / "suivi.yaml").write_text(ALERTS_YAML, encoding="utf-8")
    config = ws.root / "cxctl.yaml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "  token_secret_env: CXCTL_SECRET\n",
            f"  token_secret_env: CXCTL_SECRET\n  transport: smtp\n  smtp: {{host: 127.0.0.1, port: {port}, concurrency: 1}}\n",
        ),
        encoding="utf-8",
    )
    return load_workspace(ws.root), db


def export(ws, db, sql, tmp_path, answers, submitted="2026-12-18 09:00") -> Path:
    """answers: (external id, segment, nps, comment) → an NPS export file for sent invitations."""
    rows = [["response_id", "token", "submitted_at", "nps", "nps_why", "nps_reason"]]
    for ext, segment, score, comment in answers:
        cid = sql.add_contact(db, ext, f"{ext.lower()}@client.example", segment, first_name=f"Prénom-{ext}")
        rows.append(
            [
                f"r-{ext}",
                sql.add_invitation(db, cid, "nps_relational", "2026-12-10 08:00:00"),
                submitted,
                score,
                comment,
                "delai",
            ]
        )
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    path = tmp_path / f"export-{len(list(tmp_path.glob('export-*')))}.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def test_an_import_alerts_owners_by_email_slack_and_teams_once(results_ws, sql, tmp_path, servers, cli):
    port, inbox, hooks = servers()
    ws, db = alerting_ws(results_ws, port)
    path = export(
        ws,
        db,
        sql,
        tmp_path,
        [
            ("P1", "pro", 2, "Colis jamais arrivé <!channel> & rien"),
            ("C1", "particulier", 5, "Trop long"),
            ("C2", "particulier", 9, ""),
        ],
    )
    code, _, err = cli("responses", "import", str(path), "-w", str(ws.root), "-m", "nps_relational", "--now", NOW_ARG)
    assert code == 0, err
    assert "2 follow-up case(s) opened" in err and "alerts: 5 sent" in err
    # Email: each owner gets their case, with what the call needs.
    mails = {m["To"]: m for m in inbox.messages}
    assert sorted(mails) == ["cx@example.fr", "pro-cx@example.fr"]
    pro = mails["pro-cx@example.fr"]
    assert pro["Subject"].startswith("[cxctl] Nouveau cas à rappeler #")
    assert "détracteur (nps 2)" in pro["Subject"] and "à rappeler avant le 2026-12-21 15:00" in pro["Subject"]
    assert pro["From"] == "avis@boutique.example" and pro["Auto-Submitted"] == "auto-generated" and pro["X-Cxctl-Alert"]
    body = pro.get_content()
    assert "Prénom-P1 · P1" in body and "Colis jamais arrivé" in body and "a choisi: Le délai de livraison" in body
    assert "p1@client.example" not in body  # the address is not needed to call back
    # Slack: every case, `text` plus `blocks` as its incoming webhooks take them; nothing that names the customer.
    slack = hooks.by_path("/slack")
    assert len(slack) == 2
    for payload in slack:
        assert set(payload) == {"text", "blocks"} and payload["text"].startswith("Nouveau cas à rappeler #")
        assert [b["type"] for b in payload["blocks"]] == ["header", "section"]
        assert payload["blocks"][1]["text"]["type"] == "mrkdwn"
        assert "responsable:" in payload["blocks"][1]["text"]["text"]
    # Teams: only the pro owner's cases (webhooks[].owners), one Adaptive Card attachment.
    teams = hooks.by_path("/teams")
    assert len(teams) == 1
    assert teams[0]["type"] == "message" and len(teams[0]["attachments"]) == 1
    card = teams[0]["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard" and card["content"]["$schema"].startswith(
        "http://adaptivecards.io/"
    )
    assert all(block["type"] == "TextBlock" for block in card["content"]["body"])
    chat = json.dumps(hooks.posts, ensure_ascii=False)
    for personal in ("Prénom", "P1", "C1", "client.example", "Colis jamais", "Trop long", "<!channel>"):
        assert personal not in chat.replace('"P1', "").replace("#", ""), personal
    # Once: importing again, or running the cron command, sends nothing more.
    code, _, err = cli("responses", "import", str(path), "-w", str(ws.root), "-m", "nps_relational", "--now", NOW_ARG)
    assert code == 0 and "alerts:" not in err
    code, _, err = cli("followups", "alerts", "-w", str(ws.root), "--now", NOW_ARG)
    assert code == 0 and "no alert to send" in err
    assert (len(inbox.messages), len(hooks.posts)) == (2, 3)


def test_answers_stored_is_the_entry_point_for_one_answer(results_ws, sql, tmp_path, servers):
    """The survey page stores one answer and calls answers_stored with its id: its case opens, its owner hears."""
    port, inbox, hooks = servers()
    ws, db = alerting_ws(results_ws, port)
    import_responses(ws, db, export(ws, db, sql, tmp_path, [("W1", "pro", 0, "")]), NOW, moment="nps_relational")
    response_id = db.execute("SELECT id FROM responses").fetchone()[0]
    done = answers_stored(ws, db, NOW, response_ids=[response_id])
    assert done.opened == [response_id] and done.alerts.sent == 3
    assert [m["To"] for m in inbox.messages] == ["pro-cx@example.fr"]
    assert answers_stored(ws, db, NOW, response_ids=[response_id]).opened == []


def test_old_answers_open_cases_without_alerts(results_ws, sql, tmp_path, servers):
    """A back-catalogue import (answers older than alerts.only_within) does not flood the owners."""
    port, inbox, hooks = servers()
    ws, db = alerting_ws(results_ws, port)
    import_responses(
        ws,
        db,
        export(ws, db, sql, tmp_path, [("O1", "pro", 1, "")], submitted="2026-11-02 09:00"),
        NOW,
        moment="nps_relational",
    )
    done = answers_stored(ws, db, NOW)
    assert len(done.opened) == 1 and done.alerts.sent == 0 and inbox.messages == [] and hooks.posts == []


def test_a_reassigned_case_tells_the_new_owner(results_ws, sql, tmp_path, servers, cli):
    port, inbox, hooks = servers()
    ws, db = alerting_ws(results_ws, port)
    import_responses(
        ws, db, export(ws, db, sql, tmp_path, [("A1", "particulier", 3, "")]), NOW, moment="nps_relational"
    )
    case = answers_stored(ws, db, NOW).opened[0]
    code, _, err = cli(
        "followups",
        "assign",
        str(case),
        "--to",
        "marie@example.fr",
        "-w",
        str(ws.root),
        "--now",
        NOW_ARG,
        "--by",
        "chef",
    )
    assert code == 0, err
    assert [(m["To"], m["Subject"].split(" #")[0]) for m in inbox.messages] == [
        ("cx@example.fr", "[cxctl] Nouveau cas à rappeler"),
        ("marie@example.fr", "[cxctl] Cas qui vous est confié"),
    ]


def test_a_failing_webhook_is_retried_by_the_next_run_and_a_refusal_is_final(results_ws, sql, tmp_path, servers):
    port, inbox, hooks = servers(hooks=Hooks(codes=[503, 400]))
    ws, db = alerting_ws(results_ws, port)
    import_responses(ws, db, export(ws, db, sql, tmp_path, [("F1", "pro", 3, "")]), NOW, moment="nps_relational")
    first = answers_stored(ws, db, NOW).alerts
    # email sent; Slack answered 503 (tried again later); Teams 400 (the payload is refused: final).
    assert (first.sent, first.retry, first.failed) == (1, 1, 1)
    assert "TEST_TEAMS_WEBHOOK" in first.errors[1]["error"] and hooks.url not in json.dumps(first.errors)
    second = deliver_alerts(ws, db, NOW + timedelta(minutes=5))
    assert (second.sent, second.retry, second.failed) == (1, 0, 0)
    assert [p for p, _ in hooks.posts] == ["/slack", "/teams", "/slack"]


def test_a_missing_webhook_variable_keeps_the_alert_for_later(results_ws, sql, tmp_path, servers, monkeypatch):
    port, inbox, hooks = servers()
    ws, db = alerting_ws(results_ws, port)
    monkeypatch.delenv("TEST_SLACK_WEBHOOK")
    import_responses(
        ws, db, export(ws, db, sql, tmp_path, [("M1", "particulier", 3, "")]), NOW, moment="nps_relational"
    )
    report = answers_stored(ws, db, NOW).alerts
    assert (
        report.retry == 1
        and "TEST_SLACK_WEBHOOK" in report.errors[0]["error"]
        and "is not set" in report.errors[0]["error"]
    )


CRASH_SCRIPT = """
import sys
from cxctl.cli.app import main
main(["followups", "alerts", "-w", sys.argv[1], "--now", sys.argv[2]])
"""


@pytest.mark.parametrize("where", ["webhook", "smtp"])
def test_alerts_go_exactly_once_across_a_kill(results_ws, sql, tmp_path, servers, where):
    """kill -9 while the server holds an alert it received: that one is in doubt and not sent again; the
    next run sends the rest; every case reaches each channel exactly once."""
    stall = {"webhook": (None, Hooks(stall_at=2)), "smtp": (Inbox(stall_at=2), None)}[where]
    port, inbox, hooks = servers(*stall)
    ws, db = alerting_ws(results_ws, port)
    import_responses(
        ws,
        db,
        export(
            ws,
            db,
            sql,
            tmp_path,
            [("K1", "particulier", 1, ""), ("K2", "particulier", 2, ""), ("K3", "particulier", 3, "")],
        ),
        NOW,
        moment="nps_relational",
    )
    assert len(answers_stored(ws, db, NOW, deliver=False).opened) == 3  # 3 cases × (email, Slack) planned
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    log = tmp_path / "run.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-c", CRASH_SCRIPT, str(ws.root), NOW_ARG], env=env, stdout=sink, stderr=sink
        )
    waiter = hooks.received if where == "webhook" else inbox.received
    if not waiter.wait(30):
        process.kill()
        pytest.fail(f"the server never received the alert to stall on: {log.read_text()}")
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    hooks.stall_at = inbox.stall_at = None
    statuses = [r[0] for r in db.execute("SELECT status FROM alerts ORDER BY id")]
    assert statuses.count("sending") == 1 and "planned" in statuses
    report = deliver_alerts(ws, db, NOW)
    assert report.in_doubt == 1 and not report.ok
    assert sorted(m["X-Cxctl-Alert"] for m in inbox.messages) == sorted(
        str(r[0]) for r in db.execute("SELECT id FROM alerts WHERE channel = 'email'")
    )
    subjects = [m["Subject"].split(" · ")[0] for m in inbox.messages]
    assert len(subjects) == len(set(subjects)) == 3  # each case's email once
    cases = [p["text"].split(" · ")[0] for p in hooks.by_path("/slack")]
    assert len(cases) == len(set(cases)) == 3  # each case's Slack message once
    settled = deliver_alerts(ws, db, NOW, accept_in_doubt=True)
    assert settled.accepted_in_doubt == 1 and settled.ok and settled.sent == 0


def test_the_digest_tells_each_owner_of_overdue_cases_once_a_day(results_ws, sql, tmp_path, servers, cli):
    port, inbox, hooks = servers()
    ws, db = alerting_ws(results_ws, port)
    import_responses(
        ws,
        db,
        export(
            ws, db, sql, tmp_path, [("G1", "pro", 3, ""), ("G2", "particulier", 4, ""), ("G3", "particulier", 5, "")]
        ),
        NOW,
        moment="nps_relational",
    )
    opened = answers_stored(ws, db, NOW, deliver=False).opened  # due Monday 21 December 15:00 Paris
    change_case(ws, db, opened[2], "contact", NOW, "marie")  # contacted: not overdue
    inbox.messages.clear()
    code, out, err = cli("followups", "digest", "-w", str(ws.root), "--now", "2026-12-21T12:00", "--dry-run", "--json")
    assert code == 0 and json.loads(out)["overdue"] == {}
    code, out, err = cli("followups", "digest", "-w", str(ws.root), "--now", "2026-12-22T08:30", "--json")
    assert code == 0, err
    assert json.loads(out)["overdue"] == {"pro-cx@example.fr": [opened[0]], "cx@example.fr": [opened[1]]}
    digests = [m for m in inbox.messages if "Cas en retard" in m["Subject"]]
    assert sorted(m["To"] for m in digests) == ["cx@example.fr", "pro-cx@example.fr"]
    assert (
        f"#{opened[1]} · nps_relational · détracteur (nps 4)"
        in next(m for m in digests if m["To"] == "cx@example.fr").get_content()
    )
    slack = [p for p in hooks.by_path("/slack") if p["text"].startswith("Cas en retard")]
    assert len(slack) == 1 and "2 cas en retard" in slack[0]["blocks"][1]["text"]["text"]
    assert len([p for p in hooks.by_path("/teams") if "Cas en retard" in json.dumps(p, ensure_ascii=False)]) == 1
    before = (len(inbox.messages), len(hooks.posts))
    code, _, _ = cli("followups", "digest", "-w", str(ws.root), "--now", "2026-12-22T17:00")
    assert code == 0 and (len(inbox.messages), len(hooks.posts)) == before  # once a day
    report = digest(ws, db, datetime(2026, 12, 23, 7, 30, tzinfo=UTC))
    assert report.report.sent == 4  # the next day, again: two emails, Slack, Teams
