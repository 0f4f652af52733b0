"""Delivery to real SMTP servers on 127.0.0.1: what arrives, and the states recorded."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest

from cxctl.core import tokens
from cxctl.core.errors import UsageError
from cxctl.core.timeutil import parse_now
from cxctl.delivery.send import deliver, send_campaign
from cxctl.delivery.transport import OutboxTransport, SmtpTransport

SECRET = b"test-secret-do-not-use-in-production"

PEOPLE = [
    {"email": "zoe@example.fr", "first_name": "Zoé", "last_name": "Martin-Dubois", "language": "fr"},
    {"email": "john@example.com", "first_name": "John", "last_name": "O'Neil", "language": "en"},
    {"email": "li@example.com", "first_name": "李", "last_name": "小龙", "language": "de"},
]


def statuses(db):
    return dict(db.execute("SELECT email, status FROM invitations").fetchall())


def run(ws, db, transport=None, **kwargs):
    kwargs.setdefault("retry_delays", (0.05, 0.05))
    return deliver(
        ws,
        db,
        parse_now(kwargs.pop("now", "2026-11-23T10:00:00+00:00")),
        transport or SmtpTransport(ws.settings.smtp),
        **kwargs,
    )


def test_messages_arrive_multipart_with_headers_links_and_language(smtp_server, smtp_ws, send_helpers):
    sink = send_helpers.Sink()
    ws, db = smtp_ws(smtp_server(sink))
    send_helpers.add_invitations(db, ws, PEOPLE)
    report = run(ws, db)
    assert (report.sent, report.failed, report.bounced, report.in_doubt) == (3, 0, 0, 0)
    assert set(statuses(db).values()) == {"sent"}
    received = {str(m["To"].addresses[0].addr_spec): m for m in sink.parsed()}
    assert sorted(received) == sorted(p["email"] for p in PEOPLE)

    zoe = received["zoe@example.fr"]
    assert zoe["To"].addresses[0].display_name == "Zoé Martin-Dubois"
    assert zoe["From"].addresses[0].display_name == "Service Client Élodie"
    assert zoe["Subject"] == "Parcours e-commerce : votre avis en deux minutes, Zoé"
    assert zoe.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in zoe.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    text = zoe.get_body(("plain",)).get_content()
    html = zoe.get_body(("html",)).get_content()
    assert "Bonjour Zoé" in text and "Ne plus recevoir" in text
    assert 'lang="fr"' in html and "Ne plus recevoir d’enquêtes" in html

    token, invitation_id, message_id = db.execute(
        "SELECT token, id, message_id FROM invitations WHERE email = 'zoe@example.fr'"
    ).fetchone()
    assert tokens.verify(SECRET, token)
    assert zoe["Message-ID"] == message_id
    assert zoe["X-Cxctl-Invitation"] == str(invitation_id)
    assert zoe["Reply-To"] == "service@boutique.example"
    assert zoe["Date"].datetime is not None
    assert zoe["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = zoe["List-Unsubscribe"]
    assert "<mailto:desinscription@boutique.example?subject=unsubscribe%20" in unsubscribe
    assert f"<https://boutique.example/desinscription?t={token}>" in unsubscribe

    # One-click score links: the moment's first question is a CSAT 1–5, each link signed.
    links = re.findall(r'href="([^"]+score=[^"]+)"', html)
    assert len(links) == 5
    for expected, link in zip(range(1, 6), links):
        query = parse_qs(urlparse(link.replace("&amp;", "&")).query)
        assert query["t"] == [token] and query["score"] == [str(expected)] and query["q"] == ["csat"]
        assert tokens.verify_value(SECRET, token, str(expected), query["sig"][0])
        assert not tokens.verify_value(SECRET, token, str(expected % 5 + 1), query["sig"][0])
    assert f"https://survey.example/s/delivery_csat?lang=fr&t={token}" in text

    # English contact gets English; a language the workspace does not speak falls back to French.
    assert received["john@example.com"]["Subject"] == "E-commerce journey: your opinion in two minutes, John"
    assert received["john@example.com"]["To"].addresses[0].display_name == "John O'Neil"
    assert received["li@example.com"]["Subject"] == "Parcours e-commerce : votre avis en deux minutes, 李"


def test_dry_run_renders_everything_and_changes_nothing(smtp_server, smtp_ws, send_helpers):
    sink = send_helpers.Sink()
    ws, db = smtp_ws(smtp_server(sink))
    send_helpers.add_invitations(db, ws, PEOPLE)
    before = db.execute("SELECT * FROM invitations ORDER BY id").fetchall()
    report = run(ws, db, dry_run=True)
    assert report.would_send == 3 and report.sent == 0
    assert sink.messages == []
    assert db.execute("SELECT * FROM invitations ORDER BY id").fetchall() == before


def test_temporary_refusals_are_retried_within_the_run(smtp_server, smtp_ws, send_helpers):
    sink = send_helpers.FlakySink(refusals=1, code="451 4.3.0 greylisted")
    ws, db = smtp_ws(smtp_server(sink))
    send_helpers.add_invitations(db, ws, PEOPLE[:2])
    report = run(ws, db)
    assert report.sent == 2 and report.failed == 0
    assert sink.per_address() == {"zoe@example.fr": 1, "john@example.com": 1}
    # Two tries each, one attempt each: quick retries within a run do not use up the cross-run budget.
    assert [r[0] for r in db.execute("SELECT attempts FROM invitations")] == [1, 1]


def test_421_closing_then_accepting(smtp_server, smtp_ws, send_helpers):
    sink = send_helpers.FlakySink(refusals=1, code="421 4.3.2 shutting down")
    ws, db = smtp_ws(smtp_server(sink))
    send_helpers.add_invitations(db, ws, PEOPLE[:2])
    report = run(ws, db)
    assert report.sent == 2
    assert sink.per_address() == {"zoe@example.fr": 1, "john@example.com": 1}


def test_still_refused_goes_failed_with_backoff_then_succeeds_on_a_later_run(smtp_server, smtp_ws, send_helpers):
    sink = send_helpers.FlakySink(refusals=2)
    ws, db = smtp_ws(smtp_server(sink))
    send_helpers.add_invitations(db, ws, PEOPLE[:1])
    report = run(ws, db, retry_delays=(0.05,))
    assert (report.sent, report.failed) == (0, 1)
    status, attempts, next_at = db.execute("SELECT status, attempts, next_attempt_at FROM invitations").fetchone()
    assert (status, attempts) == ("failed", 1)
    assert "2026-11-23 10:10:00" <= next_at < "2026-11-23 10:11:00"  # retry_schedule's first wait, 10m
    assert run(ws, db, now="2026-11-23T10:05:00+00:00").due == 0  # not yet
    report = run(ws, db, now="2026-11-23T11:00:00+00:00")
    assert report.sent == 1
    assert sink.per_address() == {"zoe@example.fr": 1}


def test_retries_back_off_on_the_clock_and_give_up_on_the_clock_not_a_count(smtp_server, smtp_ws, send_helpers):
    """Greylisting asks for minutes to hours (issue 14, item 5): each run's tries count as one attempt,
    the waits follow smtp.retry_schedule (10m, 30m, 2h, the last repeating), and the message fails for
    good once the next try would fall past give_up_after (1d) from the first — then it is never sent and
    no longer counts toward the fatigue rules."""
    from cxctl.core.timeutil import from_db

    sink = send_helpers.FlakySink(refusals=99)
    ws, db = smtp_ws(smtp_server(sink))
    send_helpers.add_invitations(db, ws, PEOPLE[:1])
    first = parse_now("2026-11-23T10:00:00+00:00")
    now, waits, runs = first, [], 0
    while True:
        report = run(ws, db, retry_delays=(0.01, 0.01), now=now.isoformat())  # 3 quick tries per run
        runs += 1
        assert report.failed == 1
        attempts, next_at = db.execute("SELECT attempts, next_attempt_at FROM invitations").fetchone()
        assert attempts == runs
        if next_at is None:
            break
        waits.append(round((from_db(next_at) - now).total_seconds() / 60))
        now = from_db(next_at)
    assert waits[:4] == [10, 30, 120, 120]
    assert now - first <= ws.settings.smtp.give_up_after < now - first + ws.settings.smtp.retry_wait(runs)
    assert len(sink.seen) == 1 and sink.messages == [] and runs == 1 + len(waits)
    later = run(ws, db, retry_delays=(), now="2026-11-30T12:00:00+00:00")
    assert later.due == 0 and later.sent == 0


def test_550_bounces_and_suppresses_the_address(smtp_server, smtp_ws, send_helpers):
    sink = send_helpers.RefusingSink()
    ws, db = smtp_ws(smtp_server(sink))
    send_helpers.add_invitations(db, ws, [{"email": "bad.address@example.com"}, {"email": "good@example.com"}])
    report = run(ws, db)
    assert (report.sent, report.bounced, report.failed) == (1, 1, 0)
    assert statuses(db) == {"bad.address@example.com": "bounced", "good@example.com": "sent"}
    reason, source = db.execute("SELECT reason, source FROM suppressions").fetchone()
    assert (reason, source) == ("bounce", "send")
    # A later invitation to the bounced address is cancelled, never sent.
    send_helpers.add_invitations(db, ws, [{"email": "bad.address@example.com", "external_id": "again"}])
    report = run(ws, db)
    assert report.skipped == {"suppressed": 1} and report.sent == 0


def test_dropped_connection_is_retried(smtp_server, smtp_ws, send_helpers):
    sink = send_helpers.DroppingSink(drops=1)
    ws, db = smtp_ws(smtp_server(sink), concurrency=1)
    send_helpers.add_invitations(db, ws, PEOPLE[:2])
    report = run(ws, db)
    assert report.sent == 2
    assert sink.per_address() == {"zoe@example.fr": 1, "john@example.com": 1}


def test_server_down_stops_after_consecutive_failures_without_failing_the_untried(smtp_ws, send_helpers):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    ws, db = smtp_ws(port, concurrency=1, max_failures=3)
    send_helpers.add_invitations(db, ws, [{"email": f"p{i}@example.com"} for i in range(10)])
    report = run(ws, db, retry_delays=())
    assert report.stopped and "3 consecutive failures" in report.stopped
    assert report.failed == 3 and report.sent == 0
    counts = dict(db.execute("SELECT status, COUNT(*) FROM invitations GROUP BY status").fetchall())
    assert counts == {"failed": 3, "planned": 7}
    assert report.skipped == {"not_tried": 7}
    assert not report.ok


def test_outbox_writes_one_eml_per_invitation(smtp_ws, send_helpers):
    ws, db = smtp_ws(transport="outbox")
    send_helpers.add_invitations(db, ws, PEOPLE)
    report = run(ws, db, transport=OutboxTransport(ws.outbox_dir))
    assert report.sent == 3
    files = sorted(ws.outbox_dir.glob("*.eml"))
    assert len(files) == 3
    import email
    import email.policy

    message = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert run(ws, db, transport=OutboxTransport(ws.outbox_dir)).sent == 0  # nothing due any more


def test_reminders_go_to_non_responders_only_and_say_so(smtp_server, smtp_ws, send_helpers):
    sink = send_helpers.Sink()
    ws, db = smtp_ws(smtp_server(sink))
    parents = send_helpers.add_invitations(db, ws, PEOPLE[:2])
    assert run(ws, db).sent == 2
    answered = db.execute("SELECT contact_id, moment FROM invitations WHERE id = ?", [parents[0]]).fetchone()
    response = {
        "response_key": "r1",
        "invitation_id": parents[0],
        "contact_id": answered[0],
        "moment": answered[1],
        "source": "test",
        "submitted_at": "2026-11-24 08:00:00",
        "imported_at": "2026-11-24 09:00:00",
    }
    for _, column, _, notnull, default, pk in db.execute("PRAGMA table_info(responses)").fetchall():
        if notnull and default is None and not pk and column not in response:  # columns the results area adds
            response[column] = "2026-11-24" if column == "day" else f"filler-{column}"
    db.execute(
        f"INSERT INTO responses ({', '.join(response)}) VALUES ({', '.join('?' * len(response))})",
        list(response.values()),
    )
    for _n, parent in enumerate(parents):
        db.execute(
            "INSERT INTO invitations (dedupe_key, token, contact_id, moment, event_id, kind, parent_id, language, email, "
            "send_at, status, created_at, updated_at) SELECT ?, ?, contact_id, moment, event_id, 'reminder', id, language, "
            "email, '2026-11-26 10:00:00', 'planned', created_at, updated_at FROM invitations WHERE id = ?",
            [f"{parent}|r1", tokens.new_token(SECRET), parent],
        )
    report = run(ws, db, now="2026-11-26T10:00:00+00:00")
    assert (report.sent, report.reminders, report.skipped) == (1, 1, {"responded": 1})
    reminder = sink.parsed()[-1]
    assert reminder["To"].addresses[0].addr_spec == PEOPLE[1]["email"]
    assert (
        reminder["Subject"] == "Reminder — E-commerce journey: your opinion in two minutes, John"
    )  # John reads English
    statuses_by_kind = db.execute(
        "SELECT parent_id, status FROM invitations WHERE kind = 'reminder' ORDER BY parent_id"
    ).fetchall()
    assert statuses_by_kind == [(parents[0], "cancelled"), (parents[1], "sent")]


def test_expired_invitations_are_not_sent(smtp_server, smtp_ws, send_helpers):
    sink = send_helpers.Sink()
    ws, db = smtp_ws(smtp_server(sink))
    send_helpers.add_invitations(db, ws, PEOPLE[:1])
    report = run(ws, db, now="2026-12-20T10:00:00+00:00")  # delivery_csat expires 14 days after the delivery
    assert report.skipped == {"expired": 1} and sink.messages == []
    assert statuses(db) == {"zoe@example.fr": "expired"}


def test_rows_left_sending_become_in_doubt_and_go_again_only_when_asked(smtp_server, smtp_ws, send_helpers):
    sink = send_helpers.Sink()
    ws, db = smtp_ws(smtp_server(sink))
    ids = send_helpers.add_invitations(db, ws, PEOPLE[:2])
    db.execute("UPDATE invitations SET status = 'sending' WHERE id = ?", [ids[0]])  # as a killed run leaves it
    report = run(ws, db)
    assert (report.in_doubt, report.in_doubt_ids, report.sent) == (1, [ids[0]], 1)
    assert not report.ok
    assert statuses(db) == {"zoe@example.fr": "in_doubt", "john@example.com": "sent"}
    again = run(ws, db)  # still reported, still not re-sent, still not ok: until someone decides
    assert (again.in_doubt, again.in_doubt_ids, again.sent, again.ok) == (1, [ids[0]], 0, False)
    looked = run(ws, db, dry_run=True)  # a dry run says the same
    assert (looked.in_doubt, looked.in_doubt_ids) == (1, [ids[0]])
    report = run(ws, db, resend_in_doubt=frozenset({ids[0]}))
    assert (report.resent_in_doubt, report.sent, report.in_doubt, report.ok) == (1, 1, 0, True)
    assert sink.per_address() == {"zoe@example.fr": 1, "john@example.com": 1}


def test_messages_in_doubt_that_did_arrive_are_accepted_as_sent(smtp_server, smtp_ws, send_helpers):
    sink = send_helpers.Sink()
    ws, db = smtp_ws(smtp_server(sink))
    ids = send_helpers.add_invitations(db, ws, PEOPLE[:2])
    db.execute("UPDATE invitations SET status = 'sending' WHERE id = ?", [ids[0]])
    assert run(ws, db).in_doubt == 1
    with pytest.raises(UsageError, match="contradict"):
        send_campaign(
            ws,
            db,
            parse_now("2026-11-23T10:00:00+00:00"),
            SmtpTransport(ws.settings.smtp),
            resend_in_doubt="all",
            accept_in_doubt="all",
        )
    with pytest.raises(UsageError, match="both"):
        run(ws, db, resend_in_doubt=frozenset({ids[0]}), accept_in_doubt=frozenset({ids[0]}))
    with pytest.raises(UsageError, match=f"invitation\\(s\\) {ids[1]} are not in doubt \\(in doubt: {ids[0]}\\)"):
        run(ws, db, accept_in_doubt=frozenset({ids[1]}))
    report = run(ws, db, accept_in_doubt="all")
    assert (report.accepted_in_doubt, report.in_doubt, report.sent, report.ok) == (1, 0, 0, True)
    assert statuses(db) == {"zoe@example.fr": "sent", "john@example.com": "sent"}
    assert db.execute("SELECT sent_at IS NOT NULL FROM invitations WHERE id = ?", [ids[0]]).fetchone()[0] == 1
    assert sink.per_address() == {"john@example.com": 1}  # zoe's message is not sent again


def test_a_changed_address_is_used_and_a_forgotten_contact_is_not_sent(smtp_server, smtp_ws, send_helpers):
    sink = send_helpers.Sink()
    ws, db = smtp_ws(smtp_server(sink))
    ids = send_helpers.add_invitations(db, ws, PEOPLE[:2])
    db.execute(
        "UPDATE contacts SET email = 'zoe.new@example.fr' WHERE id = (SELECT contact_id FROM invitations WHERE id = ?)",
        [ids[0]],
    )
    db.execute(
        "UPDATE contacts SET email = NULL, forgotten_at = '2026-11-23 09:00:00' "
        "WHERE id = (SELECT contact_id FROM invitations WHERE id = ?)",
        [ids[1]],
    )
    report = run(ws, db)
    assert report.sent == 1 and report.skipped == {"forgotten": 1}
    assert sink.per_address() == {"zoe.new@example.fr": 1}
