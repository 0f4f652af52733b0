"""The live report at /report on `cxctl serve` (issue 15): the page of `cxctl report`, behind a login whose
password comes from CXCTL_REPORT_PASSWORD — never the link-signing secret — on a real uvicorn."""

from __future__ import annotations

import re

import httpx
import pytest

from cxctl.core.errors import UsageError

PASSWORD = "a-report-password-for-the-board"


@pytest.fixture
def sent(serve_ws, cli):
    """Two invitations sent, as in the survey tests."""
    serve_ws.seed([("anais@example.fr", "fr"), ("bob@example.com", "en")])
    assert serve_ws.send(cli)["sent"] == 2
    return serve_ws


def _answer(sent, serve_helpers, base: str, score: int) -> None:
    link = serve_helpers.one_click_link(sent.message_to("anais@example.fr"), score)
    token = re.search(r"/s/([^?]+)", link).group(1)
    assert httpx.post(f"{base}/s/{token}", data={"nps": str(score)}).status_code == 200


def test_the_report_is_off_without_its_password(sent, monkeypatch):
    monkeypatch.delenv("CXCTL_REPORT_PASSWORD", raising=False)
    base = sent.serve()
    assert httpx.get(f"{base}/report").status_code == 404


def test_the_report_asks_for_its_login_and_shows_the_answers(sent, serve_helpers, monkeypatch, cli):
    monkeypatch.setenv("CXCTL_REPORT_PASSWORD", PASSWORD)
    base = sent.serve()
    _answer(sent, serve_helpers, base, 4)
    refused = httpx.get(f"{base}/report")
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic ")
    assert PASSWORD not in refused.text
    assert httpx.get(f"{base}/report", auth=("board", "not-the-password")).status_code == 401
    page = httpx.get(f"{base}/report", auth=("board", PASSWORD), params={"lang": "en"})
    assert page.status_code == 200 and "Maison Lumen" in page.text and 'lang="en"' in page.text
    # Its own policy (inline style and SVG, nothing fetched), no referrer, not cached, not framed.
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
    # The headline NPS the page shows is the scorecard's (one detractor: -100, n 1).
    assert re.search(r'data-value="-100(\.0)?"', page.text), "the page does not show the stored answer's NPS"
    unknown = httpx.get(f"{base}/report", auth=("board", PASSWORD), params={"moment": "inconnu"})
    assert unknown.status_code == 400 and "inconnu" in unknown.text


def test_a_report_password_that_is_the_signing_secret_or_too_short_is_refused_at_start(sent, monkeypatch):
    from cxctl.web.app import create_app

    monkeypatch.setenv("CXCTL_REPORT_PASSWORD", "short")
    with pytest.raises(UsageError, match="shorter than 12"):
        create_app(sent.ws)
    import os

    monkeypatch.setenv("CXCTL_REPORT_PASSWORD", os.environ["CXCTL_SECRET"])
    with pytest.raises(UsageError, match="link-signing secret"):
        create_app(sent.ws)
