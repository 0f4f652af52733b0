"""`cxctl demo --serve`: the demo's invitations link to cxctl's own page on 127.0.0.1, and the link it
prints opens a survey that records the answer (the default demo is unchanged)."""

from __future__ import annotations

from datetime import datetime

import httpx

from cxctl import store
from cxctl.cli.demo import run_demo
from cxctl.validation import load_workspace


def test_the_demo_links_to_the_local_page_and_its_link_records_an_answer(tmp_path, monkeypatch, serve_helpers):
    monkeypatch.setenv("CXCTL_SECRET", serve_helpers.SECRET)
    sock = serve_helpers.reserve_port()  # held from the start: the demo's links name its port
    port = sock.getsockname()[1]
    result = run_demo(tmp_path / "demo", serve_port=port)
    assert not result.failed, [s for s in result.steps if s.status == "failed"]
    assert result.link.startswith(f"http://127.0.0.1:{port}/s/") and "&score=" in result.link
    ws = load_workspace(tmp_path / "demo")
    assert ws.settings.public_url == f"http://127.0.0.1:{port}"
    assert ws.settings.unsubscribe_url == f"http://127.0.0.1:{port}/u/{{token}}"
    db = store.connect(ws.database)
    before = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    from cxctl.web.app import create_app

    server = serve_helpers.ThreadServer(
        create_app(ws, now=datetime.fromisoformat(result.responses_now)), port, sock
    ).start()
    try:
        page = httpx.get(result.link)
        assert page.status_code == 200 and " checked" in page.text
        score = result.link.split("&score=")[1].split("&")[0]
        token = result.link.split("/s/")[1].split("?")[0]
        question = result.link.split("?q=")[1].split("&")[0]
        assert httpx.post(f"http://127.0.0.1:{port}/s/{token}", data={question: score}).status_code == 200
    finally:
        server.stop()
    assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == before + 1
    assert db.execute("SELECT source FROM responses ORDER BY id DESC LIMIT 1").fetchone()[0] == "cxctl"
