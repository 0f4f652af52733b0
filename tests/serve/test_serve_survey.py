"""The survey page over a real uvicorn on 127.0.0.1, driven with httpx: links that `cxctl send` delivered,
answers recorded by POST only, once per invitation, and seen by every results command."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from cxctl.core import tokens


@pytest.fixture
def sent(serve_ws, cli):
    """Two invitations sent (a French and an English contact) and the page started."""
    serve_ws.seed([("anais@example.fr", "fr"), ("bob@example.com", "en")])
    report = serve_ws.send(cli)
    assert report["sent"] == 2, report
    return serve_ws


def token_of(link: str) -> str:
    return link.split("/s/")[1].split("?")[0]


def checked(page: str) -> list[str]:
    return re.findall(r'name="nps" value="(\d+)" checked', page)


def responses(served) -> list[tuple]:
    db = served.db()
    try:
        return db.execute(
            "SELECT r.invitation_id, r.status, r.source, r.score_nps, a.question, a.value_num, a.value_text"
            " FROM responses r JOIN answers a ON a.response_id = r.id ORDER BY r.id, a.question"
        ).fetchall()
    finally:
        db.conn.close()


def test_one_click_link_preselects_the_score_and_records_nothing(sent, serve_helpers):
    base = sent.serve()
    message = sent.message_to("anais@example.fr")
    page = httpx.get(serve_helpers.one_click_link(message, 9))
    assert page.status_code == 200
    assert '<html lang="fr">' in page.text and "Recommanderiez-vous Maison Lumen à un proche ?" in page.text
    assert checked(page.text) == ["9"]
    assert "Le conseil" in page.text and "Que devrions-nous améliorer ?" in page.text
    assert sent.count("responses") == 0
    # The English contact's page speaks English.
    english = httpx.get(serve_helpers.one_click_link(sent.message_to("bob@example.com"), 3))
    assert (
        '<html lang="en">' in english.text and "Would you recommend" in english.text and checked(english.text) == ["3"]
    )
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}


def test_post_records_once_through_the_import_path_and_every_command_sees_it(sent, serve_helpers, cli):
    base = sent.serve()
    token = token_of(serve_helpers.one_click_link(sent.message_to("anais@example.fr"), 4))
    answer = {
        "nps": "4",
        "nps_raisons": ["livraison", "prix"],
        "nps_pourquoi": "Livré en retard, carton abîmé. Déçue !",
    }
    done = httpx.post(f"{base}/s/{token}", data=answer)
    assert done.status_code == 200 and "Merci !" in done.text and "23 décembre 2026" in done.text
    assert responses(sent) == [
        (1, "counted", "cxctl", 4, "nps", 4.0, None),
        (1, "counted", "cxctl", 4, "nps_pourquoi", None, "Livré en retard, carton abîmé. Déçue !"),
        (1, "counted", "cxctl", 4, "nps_raisons", None, '["prix", "livraison"]'),
    ]
    ws = ["-w", str(sent.root)]
    code, out, err = cli("scorecard", *ws, "--json", "--now", "2026-11-25T10:00:00+00:00")
    assert code == 0, err
    nps = json.loads(out)["rows"][0]["indicators"]["nps"]
    assert (nps["value"], nps["n"]) == (-100.0, 1)
    code, out, err = cli("followups", *ws, "--json")
    assert code == 0, err
    [followup] = json.loads(out)
    assert followup["reasons"] == ["detractor"] and followup["comment"] == "Livré en retard, carton abîmé. Déçue !"
    assert followup["contact"]["email"] == "anais@example.fr"
    code, out, _ = cli("reasons", *ws, "--json")
    assert sorted((r["reason"], r["category"], r["count"]) for r in json.loads(out)) == [
        ("livraison", "detractor", 1),
        ("prix", "detractor", 1),
    ]
    code, out, _ = cli("verbatims", *ws, "--json")
    assert "retard" in out
    code, out, _ = cli("export-person", "anais@example.fr", *ws)
    person = json.loads(out)
    assert [r["source"] for r in person["responses"]] == ["cxctl"]
    # Nothing was logged as an import of a file.
    assert sent.count("import_log") == 0


def test_a_second_submission_replaces_the_first(sent, serve_helpers, cli):
    base = sent.serve()
    token = token_of(serve_helpers.one_click_link(sent.message_to("anais@example.fr"), 9))
    assert httpx.post(f"{base}/s/{token}", data={"nps": "9"}).status_code == 200
    again = httpx.get(f"{base}/s/{token}")
    assert "Vous avez déjà répondu" in again.text
    assert httpx.post(f"{base}/s/{token}", data={"nps": "5", "nps_pourquoi": "Finalement, non."}).status_code == 200
    # Identical again: left unchanged, still one response.
    assert httpx.post(f"{base}/s/{token}", data={"nps": "5", "nps_pourquoi": "Finalement, non."}).status_code == 200
    assert responses(sent) == [
        (1, "counted", "cxctl", 5, "nps", 5.0, None),
        (1, "counted", "cxctl", 5, "nps_pourquoi", None, "Finalement, non."),
    ]
    code, out, _ = cli("scorecard", "-w", str(sent.root), "--json", "--now", "2026-11-25T10:00:00+00:00")
    row = json.loads(out)["rows"][0]
    assert row["responses"] == 1 and row["indicators"]["nps"]["n"] == 1 and row["indicators"]["nps"]["value"] == -100.0
    db = sent.db()
    assert db.execute("SELECT question, value, n FROM score_rollup WHERE n <> 0").fetchall() == [("nps", 5, 1)]


def test_forged_and_unknown_tokens_get_a_plain_404_and_a_forged_score_preselects_nothing(sent, serve_helpers):
    base = sent.serve()
    link = serve_helpers.one_click_link(sent.message_to("anais@example.fr"), 9)
    token = token_of(link)
    random_id, tag = token.split(".")
    forged = f"{random_id}.{'A' if tag[0] != 'A' else 'B'}{tag[1:]}"
    unknown = tokens.new_token(serve_helpers.SECRET.encode())  # well signed, but no invitation carries it
    for bad in (forged, unknown, "nothing", "a" * 500):
        for response in (httpx.get(f"{base}/s/{bad}"), httpx.post(f"{base}/s/{bad}", data={"nps": "9"})):
            assert response.status_code == 404
            assert "Page introuvable" in response.text and "Maison Lumen à un proche" not in response.text
    assert httpx.get(f"{base}/nowhere").status_code == 404
    # The score altered in the link (9 → 10 with 9's signature): the page opens, nothing pre-selected.
    altered = httpx.get(link.replace("score=9", "score=10"))
    assert altered.status_code == 200 and checked(altered.text) == []
    other_question = httpx.get(link.replace("q=nps", "q=nps_raisons"))
    assert checked(other_question.text) == []
    assert sent.count("responses") == 0


def test_after_the_answer_window_the_page_is_closed_in_the_contacts_language(sent, serve_helpers):
    base = sent.serve(now="2027-01-10T09:00:00+00:00")  # the send + 48 days: past match_window (30 days)
    english = token_of(serve_helpers.one_click_link(sent.message_to("bob@example.com"), 9))
    page = httpx.get(f"{base}/s/{english}")
    assert page.status_code == 410 and "This survey is closed" in page.text
    french = token_of(serve_helpers.one_click_link(sent.message_to("anais@example.fr"), 9))
    refused = httpx.post(f"{base}/s/{french}", data={"nps": "9"})
    assert refused.status_code == 410 and "Cette enquête est close" in refused.text
    assert sent.count("responses") == 0


@pytest.mark.parametrize(
    "data, field, message",
    [
        ({"nps": "11"}, "nps", "choisissez une note de 0 à 10"),
        ({"nps": "-1"}, "nps", "choisissez une note de 0 à 10"),
        ({"nps": "٣"}, "nps", "choisissez une note de 0 à 10"),  # a digit, but not an ASCII one
        ({"nps": ["3", "4"]}, "nps", "une seule réponse possible"),
        ({"nps": "8", "nps_raisons": "meteo"}, "nps_raisons", "choisissez parmi les réponses proposées"),
        ({"nps": "8", "nps_pourquoi": "x" * 2001}, "nps_pourquoi", "2000 caractères au plus (vous en avez écrit 2001)"),
        ({"nps": "8", "nps_pourquoi": "caché\x00"}, "nps_pourquoi", "caractères invisibles"),
        ({"nps_raisons": "prix"}, "nps", "cette question demande une réponse"),
        ({"nps": "8", "admin": "1"}, "", "champ inattendu « admin »"),
        ({}, "nps", "cette question demande une réponse"),  # nothing at all: the required score is named
    ],
)
def test_invalid_fields_are_refused_with_the_field_named_and_nothing_stored(sent, serve_helpers, data, field, message):
    base = sent.serve()
    token = token_of(serve_helpers.one_click_link(sent.message_to("anais@example.fr"), 9))
    refused = httpx.post(f"{base}/s/{token}", data=data)
    assert refused.status_code == 400
    assert message in refused.text
    if field:
        assert f'<a href="#q-{field}">' in refused.text and f'id="e-{field}"' in refused.text
    assert sent.count("responses") == 0


def test_oversize_malformed_and_foreign_bodies_are_refused_before_anything_is_read(sent, serve_helpers):
    base = sent.serve()
    url = f"{base}/s/{token_of(serve_helpers.one_click_link(sent.message_to('anais@example.fr'), 9))}"
    form = {"content-type": "application/x-www-form-urlencoded"}
    assert httpx.post(url, content=b"nps=9&nps_pourquoi=" + b"x" * 20_000, headers=form).status_code == 413

    def chunks():  # no Content-Length: the limit still holds while streaming
        for _ in range(40):
            yield b"nps_pourquoi=" + b"y" * 1000 + b"&"

    assert httpx.post(url, content=chunks(), headers=form).status_code == 413
    assert httpx.post(url, content="nps=9&nps_pourquoi=Très".encode(), headers=form).status_code == 400  # raw UTF-8
    assert httpx.post(url, content=b"nps=9&nps_pourquoi=%FF%FE", headers=form).status_code == 400  # not UTF-8
    assert httpx.post(url, content=b"&".join([b"a=1"] * 200), headers=form).status_code == 400  # too many fields
    assert httpx.post(url, json={"nps": 9}).status_code == 415
    assert httpx.post(url, files={"upload": ("a.txt", b"hello")}).status_code == 400  # multipart with a file
    assert sent.count("responses") == 0
    # Multipart without a file is a form like any other.
    multipart = httpx.post(url, files={"nps": (None, "9")})
    assert multipart.status_code == 200 and sent.count("responses") == 1


def test_a_forgotten_persons_link_stores_nothing(sent, serve_helpers, cli):
    link = serve_helpers.one_click_link(sent.message_to("anais@example.fr"), 9)
    code, _, err = cli("forget", "anais@example.fr", "-w", str(sent.root), "--now", "2026-11-23T18:00:00+00:00")
    assert code == 0, err
    base = sent.serve()
    assert httpx.get(link).status_code == 404
    assert (
        httpx.post(f"{base}/s/{token_of(link)}", data={"nps": "9", "nps_pourquoi": "Je suis Anaïs"}).status_code == 404
    )
    assert sent.count("responses") == 0


def test_head_is_answered_wherever_get_is_and_never_records(sent, serve_helpers):
    base = sent.serve()
    link = serve_helpers.one_click_link(sent.message_to("anais@example.fr"), 9)
    unsubscribe = link.split("?")[0].replace("/s/", "/u/")
    for url in (link, unsubscribe, f"{base}/healthz", f"{base}/static/cxctl.css"):
        head = httpx.head(url)
        assert head.status_code == 200 and head.content == b"", url
        assert int(head.headers["content-length"]) > 0
    assert sent.count("responses") == 0 and sent.count("suppressions") == 0


def test_posts_are_rate_limited_per_client_address(sent, serve_helpers):
    base = sent.serve(posts_per_minute=3)
    token = token_of(serve_helpers.one_click_link(sent.message_to("anais@example.fr"), 9))
    codes = [httpx.post(f"{base}/s/{token}", data={"nps": "9"}).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert httpx.get(f"{base}/s/{token}").status_code == 200  # reading the page is not limited


def test_links_signed_before_a_secret_rotation_still_open_and_a_wrong_secret_is_refused(
    sent, serve_helpers, cli, monkeypatch
):
    """The page checks tokens with the keyring: after `send --rotate-secret`, links already in mailboxes
    (signed with the previous secret, given in CXCTL_SECRET_PREVIOUS) keep working during the grace period."""
    from cxctl.delivery.signing import SecretChangedError
    from cxctl.web.app import create_app

    link = serve_helpers.one_click_link(sent.message_to("anais@example.fr"), 9)
    monkeypatch.setenv("CXCTL_SECRET", "a-brand-new-secret-for-this-workspace-0123456789")
    with pytest.raises(SecretChangedError):
        create_app(sent.ws)  # serve refuses a secret that did not sign the links already sent
    monkeypatch.setenv("CXCTL_SECRET_PREVIOUS", serve_helpers.SECRET)
    code, _, err = cli("send", "-w", str(sent.root), "--now", serve_helpers.SEND_NOW, "--rotate-secret")
    assert code == 0, err
    base = sent.serve()
    page = httpx.get(link)
    assert page.status_code == 200 and checked(page.text) == ["9"]
    assert httpx.post(f"{base}/s/{token_of(link)}", data={"nps": "9"}).status_code == 200
    assert sent.count("responses") == 1


def test_an_answer_on_the_page_opens_a_case_and_tells_its_owner_once(sent, serve_helpers, cli):
    """Issue 17 through the page: a detractor's POST opens a follow-up case with its owner and deadline, and
    the owner's alert reaches the mail server once (from a thread of its own: the page does not wait)."""
    import time

    with (sent.root / "cxctl.yaml").open("a", encoding="utf-8") as yaml_file:
        yaml_file.write(
            "\nfollowups:\n  default_owner: cx@lumen.example\n  deadlines: {detractor: 16h}\n  alerts: {email: true}\n"
        )
    base = sent.serve()
    token = token_of(serve_helpers.one_click_link(sent.message_to("anais@example.fr"), 2))
    assert httpx.post(f"{base}/s/{token}", data={"nps": "2"}).status_code == 200
    deadline = time.monotonic() + 15
    alerts: list = []
    while time.monotonic() < deadline and not alerts:
        alerts = [m for m in sent.sink.parsed() if m["To"].addresses[0].addr_spec == "cx@lumen.example"]
        time.sleep(0.2)
    assert len(alerts) == 1, "the owner is told once"
    code, out, err = cli("followups", "-w", str(sent.root), "--json")
    assert code == 0, err
    [case] = json.loads(out)
    assert case["owner"] == "cx@lumen.example" and case["status"] == "open"
    assert httpx.post(f"{base}/s/{token}", data={"nps": "3"}).status_code == 200  # corrected: same case
    time.sleep(1)
    assert len([m for m in sent.sink.parsed() if m["To"].addresses[0].addr_spec == "cx@lumen.example"]) == 1
