"""A real browser on the survey page: Debian's chromium, headless, driven by Selenium through Debian's
chromium-driver (nothing is downloaded at test time), against a real uvicorn on 127.0.0.1.

Without a browser these tests are skipped with the command that installs one; under CI (CI=true, where
.ci/run installs it) a missing browser fails them instead, so they are never silently dropped.
"""

from __future__ import annotations

import json

import httpx
import pytest

COMMENT = "Livreur très aimable, mais colis abîmé à l'arrivée — déçue. Ça arrive, j'espère que ça s'améliorera !"


@pytest.fixture
def browser(chromium):
    """One headless chromium (tests/conftest.py: skipped with the install command, failed under CI)."""
    return chromium(1280, 900)


@pytest.fixture
def sent(serve_ws, cli):
    serve_ws.seed([("anais@example.fr", "fr"), ("bob@example.com", "en")])
    assert serve_ws.send(cli)["sent"] == 2
    return serve_ws


def test_a_respondent_answers_from_the_one_click_link_in_french(sent, browser, serve_helpers, cli, tmp_path):
    from selenium.webdriver.common.by import By

    sent.serve()
    link = serve_helpers.one_click_link(sent.message_to("anais@example.fr"), 3)
    browser.set_window_size(360, 800)
    browser.get(link)
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "fr"
    assert browser.find_element(By.CSS_SELECTOR, 'input[name="nps"][value="3"]').is_selected()
    assert not browser.find_element(By.CSS_SELECTOR, 'input[name="nps"][value="9"]').is_selected()
    # The page fits a 360 px phone: nothing wider than the screen, and its stylesheet (self-hosted) applied.
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 360
    assert browser.execute_script("return document.styleSheets.length") == 1
    browser.save_screenshot(str(tmp_path / "survey-360.png"))
    browser.set_window_size(1280, 900)
    browser.save_screenshot(str(tmp_path / "survey-1280.png"))

    browser.find_element(By.XPATH, "//label[contains(., 'La livraison')]").click()
    comment = browser.find_element(By.ID, "f-nps_pourquoi")
    comment.send_keys(COMMENT)
    assert sent.count("responses") == 0  # nothing recorded until the respondent sends
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # The click starts a navigation: wait for the new page (the old one's elements go stale meanwhile).
    WebDriverWait(browser, 15, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda b: b.find_element(By.TAG_NAME, "h1").text == "Merci !"
    )
    assert "Votre réponse est enregistrée." in browser.page_source
    browser.save_screenshot(str(tmp_path / "thanks-1280.png"))
    browser.set_window_size(360, 800)
    browser.save_screenshot(str(tmp_path / "thanks-360.png"))
    for name in ("survey-360.png", "survey-1280.png", "thanks-360.png", "thanks-1280.png"):
        assert (tmp_path / name).stat().st_size > 1000

    ws = ["-w", str(sent.root)]
    code, out, err = cli("scorecard", *ws, "--json", "--now", "2026-11-25T10:00:00+00:00")
    assert code == 0, err
    row = json.loads(out)["rows"][0]
    assert row["responses"] == 1 and row["indicators"]["nps"]["value"] == -100.0
    code, out, err = cli("followups", *ws, "--json")
    assert code == 0, err
    [followup] = json.loads(out)
    assert followup["scores"] == {"nps": 3.0} and followup["reasons"] == ["detractor"]
    assert followup["comment"] == COMMENT
    code, out, _ = cli("reasons", *ws, "--json")
    assert [(r["reason"], r["count"]) for r in json.loads(out)] == [("livraison", 1)]


def test_scanners_that_fetch_every_link_record_nothing(sent, browser, serve_helpers):
    """Mail security scanners open every link of a message, some in a full browser that runs scripts but
    does not click: neither an HTTP client nor a headless browser creates a response or an opt-out."""
    sent.serve()
    links = [link for message in sent.sink.parsed() for link in serve_helpers.message_links(message)]
    assert len(links) == 2 * (11 + 2)  # per message: 11 one-click scores, the survey and the unsubscribe link
    for link in links:
        assert httpx.get(link, follow_redirects=True).status_code == 200
        assert httpx.head(link).status_code == 200
        browser.get(link)
        assert browser.execute_script("return document.readyState") == "complete"
    assert sent.count("responses") == 0 and sent.count("suppressions") == 0
