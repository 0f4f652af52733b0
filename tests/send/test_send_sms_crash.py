"""Crash safety and overlapping runs for SMS (issue 16): the SIGKILL and overlap tests of email, run against
a real `cxctl send` process posting to the local Twilio/Brevo server on 127.0.0.1. Exactly once: at most the
concurrency in doubt after a kill, never re-sent silently, nobody missing, nobody twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

NOW = "2026-11-23T10:00:00+00:00"


def start_send(workspace_dir, *args: str) -> subprocess.Popen:
    env = dict(os.environ, CXCTL_SECRET="test-secret-do-not-use-in-production")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cxctl",
            "send",
            "-w",
            str(workspace_dir),
            "--now",
            NOW,
            "--moment",
            "repair_sms",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.005)


@pytest.mark.parametrize("transport, kill_after", [("twilio", 12), ("brevo", 25)])
def test_sigkill_mid_run_then_rerun_sends_every_sms_once_and_reports_the_in_doubt(
    sms_provider, sms_ws, sms_helpers, workspace_dir, transport, kill_after
):
    server = sms_provider(delay=0.02)  # slow enough for the kill to land mid-run
    ws, db = sms_ws(server.url, transport=transport, concurrency=3)
    sms_helpers.add_sms_invitations(db, ws, [{"phone": f"+3361234{i:04d}"} for i in range(80)])

    process = start_send(workspace_dir)
    wait_for(lambda: len(server.accepted()) >= kill_after)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    statuses = dict(db.execute("SELECT status, COUNT(*) FROM invitations GROUP BY status").fetchall())
    assert statuses.get("sending", 0) <= 3 and statuses.get("planned", 0) > 0
    wait_for(lambda: server.busy == 0)

    rerun = start_send(workspace_dir, "--json")
    out, err = rerun.communicate(timeout=60)
    report = json.loads(out)
    in_doubt = set(report["in_doubt_ids"])
    assert report["in_doubt"] == len(in_doubt) <= 3
    assert rerun.returncode == (1 if in_doubt else 0), err
    received = server.per_number()
    for invitation_id, phone, status in db.execute("SELECT id, phone, status FROM invitations").fetchall():
        if invitation_id in in_doubt:
            assert status == "in_doubt" and received[phone] <= 1  # maybe delivered before the kill, never re-sent
        else:
            assert status == "sent" and received[phone] == 1, phone  # nobody missing, nobody twice
    # Someone checks the provider's console: the messages in doubt that it shows went; the others are resent.
    went = [
        i for i in in_doubt if received[db.execute("SELECT phone FROM invitations WHERE id = ?", [i]).fetchone()[0]]
    ]
    missing = sorted(in_doubt - set(went))
    args = [
        *(["--accept-in-doubt", ",".join(map(str, went))] if went else []),
        *(["--resend-in-doubt", ",".join(map(str, missing))] if missing else []),
    ]
    settle = start_send(workspace_dir, "--json", *args)
    out, _ = settle.communicate(timeout=60)
    assert settle.returncode == 0 and json.loads(out)["in_doubt"] == 0
    assert db.execute("SELECT COUNT(*) FROM invitations WHERE status <> 'sent'").fetchone()[0] == 0
    assert sorted(server.per_number().values()) == [1] * 80


def test_two_sms_sends_at_once_on_one_database(sms_provider, sms_ws, sms_helpers, workspace_dir):
    server = sms_provider(delay=0.05)
    ws, db = sms_ws(server.url, transport="twilio", concurrency=1)
    sms_helpers.add_sms_invitations(db, ws, [{"phone": f"+3361234{i:04d}"} for i in range(40)])

    first = start_send(workspace_dir)
    wait_for(lambda: len(server.accepted()) >= 1)
    second = start_send(workspace_dir)
    _, err = second.communicate(timeout=30)
    assert second.returncode == 1 and "another `cxctl send`" in err and "--wait" in err
    waiting = start_send(workspace_dir, "--wait", "--json")
    first.communicate(timeout=60)
    out, _ = waiting.communicate(timeout=60)
    assert first.returncode == 0 and waiting.returncode == 0 and json.loads(out)["sent"] == 0
    assert sorted(server.per_number().values()) == [1] * 40
