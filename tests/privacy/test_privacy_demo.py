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
    messages = list(box)
    sent_line = next(line for line in steps if line.startswith("[ok] send:"))
    assert f"{len(messages)} in the Maildir" in sent_line and len(messages) > 0
    for message in messages:
        assert message["X-Cxctl-Invitation"], "each message names its invitation"
        assert str(make_header(decode_header(message["From"]))).endswith("<avis@maison-lumen.example>")
        assert message["X-RcptTo"] == message["To"].split("<")[-1].rstrip(">")  # delivered to the addressee
    # The scorecard and where to look are printed on stdout.
    assert "Where to look:" in out and str(maildir) in out
    assert "CXCTL_SECRET was not set" in out


def test_demo_is_reproducible_and_refuses_a_non_empty_folder(tmp_path: Path, cli, no_secret):
    first, second = tmp_path / "a", tmp_path / "b"
    code_a, out_a, _ = cli("demo", str(first), "--json")
    code_b, out_b, _ = cli("demo", str(second), "--json")
    assert code_a == code_b == 0
    a, b = json.loads(out_a), json.loads(out_b)
    summaries = lambda data, folder: [(s["name"], s["status"], s["summary"].replace(str(folder), "")) for s in data["steps"]]  # noqa: E731
    strip_port = lambda rows: [(n, st, su.split("127.0.0.1:")[0]) for n, st, su in rows]  # noqa: E731
    assert strip_port(summaries(a, first)) == strip_port(summaries(b, second))
    # Same answers to the same invitations; only the signed tokens (random by design) differ.
    without_tokens = lambda path: [row[:1] + row[2:] for row in csv.reader(path.open(encoding="utf-8"))]  # noqa: E731
    assert without_tokens(first / "demo-responses.csv") == without_tokens(second / "demo-responses.csv")
    code, _, err = cli("demo", str(first))
    assert code == 2 and "is not empty" in err and "--force" in err
    code, _, err = cli("demo", str(first), "--force", "--json")
    assert code == 0, err
