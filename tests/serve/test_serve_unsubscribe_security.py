"""One-click unsubscribe (RFC 8058) end to end, the security headers, and tokens kept out of the access
log of a real `cxctl serve` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cxctl.web.server import redact


@pytest.fixture
def sent(serve_ws, cli):
    serve_ws.seed([("anais@example.fr", "fr"), ("bob@example.com", "en")])
    assert serve_ws.send(cli)["sent"] == 2
    return serve_ws


def unsubscribe_url(message) -> str:
    header = str(message["List-Unsubscribe"])
    return next(part.strip(" <>") for part in header.split(",") if "/u/" in part)


def suppressions(served) -> list[tuple]:
    db = served.db()
    try:
        return db.execute("SELECT email, reason, source FROM suppressions ORDER BY id").fetchall()
    finally:
        db.conn.close()


def test_rfc8058_one_click_post_suppresses_and_the_next_send_skips_the_address(sent, cli):
    message = sent.message_to("anais@example.fr")
    assert str(message["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    url = unsubscribe_url(message)
    assert url.startswith(sent.base + "/u/")
    sent.serve()
    # What a mail provider sends: no cookie, the RFC 8058 body, url-encoded (multipart is the other form).
    first = httpx.post(
        url, content=b"List-Unsubscribe=One-Click", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert first.status_code == 200 and "Vous êtes désinscrit" in first.text
    again = httpx.post(url, files={"List-Unsubscribe": (None, "One-Click")})
    assert again.status_code == 200
    assert suppressions(sent) == [("anais@example.fr", "opt_out", "web")]
    # A week later both contacts have a new delivery: only Bob is invited.
    before = len(sent.sink.messages)
    new_deliveries(sent, "2026-11-30 10:00:00")
    report = sent.send(cli, now="2026-12-01T12:00:00+00:00")
    new = [m["To"].addresses[0].addr_spec for m in sent.sink.parsed()[before:]]
    assert new == ["bob@example.com"], report
    assert report["plan_exclusions"].get("suppressed", 0) >= 1


def new_deliveries(served, occurred_at: str) -> None:
    db = served.db()
    for contact_id, address in db.execute("SELECT id, email FROM contacts").fetchall():
        db.execute(
            "INSERT INTO events (event_key, contact_id, type, occurred_at, attributes, imported_at) VALUES "
            "(?, ?, 'order_delivered', ?, '{}', ?)",
            [f"E-{occurred_at}-{address}", contact_id, occurred_at, occurred_at],
        )
    db.conn.close()


def test_an_invitation_planned_before_the_click_is_not_sent_after_it(sent, cli):
    """The send re-checks suppressions when it delivers: an opt-out between plan and send still holds."""
    new_deliveries(sent, "2026-11-30 10:00:00")
    code, out, err = cli("send", "-w", str(sent.root), "--now", "2026-12-01T12:00:00+00:00", "--limit", "0", "--json")
    assert code == 0, err
    db = sent.db()
    assert db.execute("SELECT COUNT(*) FROM invitations WHERE status = 'planned'").fetchone()[0] == 2
    db.conn.close()
    sent.serve()
    url = unsubscribe_url(sent.message_to("anais@example.fr"))
    assert httpx.post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    before = len(sent.sink.messages)
    report = sent.send(cli, now="2026-12-01T12:05:00+00:00")
    assert [m["To"].addresses[0].addr_spec for m in sent.sink.parsed()[before:]] == ["bob@example.com"]
    assert report["skipped"] == {"suppressed": 1}


def test_get_shows_a_button_that_posts_and_never_unsubscribes(sent):
    sent.serve()
    url = unsubscribe_url(sent.message_to("bob@example.com"))
    page = httpx.get(url)
    assert page.status_code == 200 and "Stop receiving our surveys" in page.text
    token = url.rsplit("/", 1)[1]
    assert f'<form method="post" action="/u/{token}">' in page.text
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page.text
    assert suppressions(sent) == []


def test_unsubscribe_refuses_a_missing_body_and_a_forged_token(sent):
    base = sent.serve()
    url = unsubscribe_url(sent.message_to("anais@example.fr"))
    assert httpx.post(url).status_code == 400
    assert httpx.post(url, data={"List-Unsubscribe": "Yes"}).status_code == 400
    token = url.rsplit("/", 1)[1]
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert httpx.post(f"{base}/u/{forged}", data={"List-Unsubscribe": "One-Click"}).status_code == 404
    assert httpx.get(f"{base}/u/{forged}").status_code == 404
    assert suppressions(sent) == []


def test_every_response_carries_the_security_headers(sent, serve_helpers):
    base = sent.serve()
    link = serve_helpers.one_click_link(sent.message_to("anais@example.fr"), 9)
    token = link.split("/s/")[1].split("?")[0]
    form = {"content-type": "application/x-www-form-urlencoded"}
    answers = [
        httpx.get(link),
        httpx.get(f"{base}/u/{token}"),
        httpx.get(f"{base}/healthz"),
        httpx.get(f"{base}/static/cxctl.css"),
        httpx.get(f"{base}/s/forged.token"),
        httpx.post(f"{base}/s/{token}", data={"nps": "12"}),
        httpx.post(f"{base}/s/{token}", content=b"x" * 70_000, headers=form),
        httpx.delete(f"{base}/s/{token}"),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 404, 400, 413, 405]
    for answer in answers:
        headers = answer.headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert (
            "default-src 'none'" in headers["content-security-policy"]
            and "script-src" not in headers["content-security-policy"]
        )
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-content-type-options"] == "nosniff"
        assert "server" not in headers
    assert answers[0].headers["cache-control"] == "no-store"
    # No external asset: the page loads only its own stylesheet.
    assert 'href="/static/cxctl.css"' in answers[0].text and "http" not in answers[0].text.split("<body>")[0].replace(
        'content="width=device-width', ""
    )


def test_a_real_cxctl_serve_keeps_tokens_and_secrets_out_of_its_log_and_pages(sent, serve_helpers, tmp_path):
    env = {**os.environ, "CXCTL_SECRET": serve_helpers.SECRET, "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "serve.log").open("w+b")
    port = sent.release_port()  # the real command binds it itself
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cxctl",
            "serve",
            "-w",
            str(sent.root),
            "--port",
            str(port),
            "--now",
            serve_helpers.SERVE_NOW,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{sent.base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, log.name
            time.sleep(0.1)
        message = sent.message_to("anais@example.fr")
        link = serve_helpers.one_click_link(message, 8)
        token = link.split("/s/")[1].split("?")[0]
        signature = link.rsplit("sig=", 1)[1]
        pages = [
            httpx.get(link),
            httpx.post(f"{sent.base}/s/{token}", data={"nps": "8", "nps_pourquoi": "Parfait"}),
            httpx.get(f"{sent.base}/u/{token}"),
            httpx.post(f"{sent.base}/u/{token}", data={"List-Unsubscribe": "One-Click"}),
            httpx.get(f"{sent.base}/s/{token}.forged?q=nps&score=1&sig={signature}"),
        ]
        assert [p.status_code for p in pages] == [200, 200, 200, 200, 404]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(20)
    log.seek(0)
    text = log.read().decode("utf-8", "replace")
    assert '"GET /s/[token] HTTP/1.1" 200' in text and '"POST /u/[token] HTTP/1.1" 200' in text, text
    random_id = token.split(".")[0]
    for secret_part in (random_id, token.split(".")[1], signature, serve_helpers.SECRET):
        assert secret_part not in text
    for page in pages:
        assert serve_helpers.SECRET not in page.text
    assert sent.count("responses") == 1 and sent.count("suppressions") == 1


@given(st.sampled_from("su"), st.text(min_size=1), st.text(max_size=30))
def test_redact_never_lets_a_token_through(kind, token, query):
    """uvicorn logs the decoded path: a token holding `/`, `?` or a newline is still wholly masked."""
    path = f"/{kind}/{token}" + (f"?{query}" if query else "")
    assert redact(path) == f"/{kind}/[token]"


def test_redact_keeps_other_paths_readable_and_masks_stray_tokens():
    assert redact("/healthz") == "/healthz"
    assert redact("/static/cxctl.css?v=2") == "/static/cxctl.css?[query]"
    assert redact("/x/vWUxNp1DHk0e3LINCLu4wQ.zF-BoLjEETuy3z5G") == "/x/[token]"
