"""A failure on the server's side is not the person's (issue 12, item 7): `send --retry-failed` plans
failed, never-delivered invitations again, and the plan does not count a given-up one as
`already_invited`."""

from __future__ import annotations

import json

from cxctl.core.timeutil import parse_now
from cxctl.delivery.send import RetryFailed, deliver, send_campaign
from cxctl.delivery.transport import SmtpTransport

NOW = "2026-11-23T10:00:00+00:00"


def statuses(db):
    return dict(db.execute("SELECT email, status FROM invitations").fetchall())


def test_retry_failed_sends_again_what_the_server_refused_of_one_moment_since_a_time(
    smtp_server, smtp_ws, send_helpers, workspace_dir, cli
):
    sink = send_helpers.FlakySink(refusals=1, code="554 5.6.0 message refused (server misconfigured)")
    ws, db = smtp_ws(smtp_server(sink))
    early = send_helpers.add_invitations(db, ws, [{"email": "early@example.com"}], now="2026-11-23T08:00:00+00:00")
    report = deliver(ws, db, parse_now("2026-11-23T08:00:00+00:00"), SmtpTransport(ws.settings.smtp), retry_delays=())
    assert report.failed == 1
    send_helpers.add_invitations(db, ws, [{"email": f"p{i}@example.com"} for i in range(3)])
    report = deliver(ws, db, parse_now(NOW), SmtpTransport(ws.settings.smtp), retry_delays=())
    assert report.failed == 3 and report.sent == 0
    # Refused for good: nothing is due any more, and nothing would ever send them again.
    assert deliver(ws, db, parse_now("2026-11-23T12:00:00+00:00"), SmtpTransport(ws.settings.smtp)).due == 0

    code, out, err = cli(
        "send",
        "-w",
        str(workspace_dir),
        "--now",
        "2026-11-23T12:00:00+00:00",
        "--moment",
        "delivery_csat",
        "--retry-failed",
        "--since",
        "2026-11-23T09:00:00+00:00",
        "--json",
    )
    report = json.loads(out)
    assert code == 0, err
    assert (report["retried_failed"], report["sent"]) == (3, 3)
    assert statuses(db) == {"early@example.com": "failed", **{f"p{i}@example.com": "sent" for i in range(3)}}
    assert db.execute("SELECT attempts, reopened FROM invitations WHERE email = 'p0@example.com'").fetchone() == (1, 1)

    code, _, err = cli("send", "-w", str(workspace_dir), "--now", "2026-11-23T12:00:00+00:00", "--since", "2026-11-23")
    assert code == 2 and "--since goes with --retry-failed" in err
    report = send_campaign(
        ws,
        db,
        parse_now("2026-11-23T12:30:00+00:00"),
        SmtpTransport(ws.settings.smtp),
        moment="delivery_csat",
        retry_failed=RetryFailed(),
    )
    assert (report.retried_failed, report.sent) == (1, 1) and statuses(db)["early@example.com"] == "sent"
    assert sorted(sink.per_address().values()) == [1, 1, 1, 1]
    assert len(early) == 1


def test_a_given_up_never_delivered_invitation_is_not_already_invited(smtp_server, smtp_ws, send_helpers):
    """The plan plans the person again (the same invitation, its token kept, a fresh retry clock) — once;
    after that only --retry-failed does, so a message the server always refuses does not loop."""
    sink = send_helpers.FlakySink(refusals=2, code="554 5.6.0 message refused")
    ws, db = smtp_ws(smtp_server(sink))
    ids = send_helpers.add_invitations(db, ws, [{"email": "zoe@example.com"}])
    token = db.execute("SELECT token FROM invitations").fetchone()[0]
    assert deliver(ws, db, parse_now(NOW), SmtpTransport(ws.settings.smtp), retry_delays=()).failed == 1

    later = parse_now("2026-11-26T10:00:00+00:00")  # the delivery's 2-day delay has passed, not its 14-day expiry
    report = send_campaign(ws, db, later, SmtpTransport(ws.settings.smtp), moment="delivery_csat")
    assert report.plan_exclusions.get("already_invited", 0) == 0
    assert (report.planned, report.failed) == (1, 1)  # planned again, refused again
    assert db.execute("SELECT id, token, reopened FROM invitations").fetchall() == [(ids[0], token, 1)]

    report = send_campaign(
        ws, db, parse_now("2026-11-27T10:00:00+00:00"), SmtpTransport(ws.settings.smtp), moment="delivery_csat"
    )
    assert report.plan_exclusions.get("already_invited") == 1 and report.planned == 0  # no loop
    assert sink.messages == []
