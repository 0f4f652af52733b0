"""The demo's report in a real browser: Debian's headless chromium driven by Selenium, offline.

Nothing is downloaded at test time: the browser and its driver come from the system packages
(`apt-get install -y chromium chromium-driver`); without them the test is skipped and says so, and
under CI it fails (the `chromium` fixture of tests/conftest.py).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

DEMO_NOW = "2026-11-23T09:00:00+00:00"


def test_the_demo_report_opens_offline_with_no_error_and_prints(
    demo_folder: Path, tmp_path: Path, cli, figures_of, chromium
):
    driver = chromium(1280, 1000, logs=True)
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        page = (demo_folder / "report.html").resolve()
        driver.get(page.as_uri())
        assert "Maison Lumen" in driver.title
        # No console error, no request but the page itself (performance entries and the CDP network log).
        errors = [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
        assert errors == [], errors
        resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert resources == []
        requested = [json.loads(entry["message"])["message"] for entry in driver.get_log("performance")]
        # Every request made for the report's document (the browser's own start pages make theirs).
        urls = {
            m["params"]["request"]["url"]
            for m in requested
            if m["method"] == "Network.requestWillBeSent" and m["params"].get("documentURL") == page.as_uri()
        }
        assert urls == {page.as_uri()}, urls
        # Charts drawn: every inline SVG has a size on screen.
        sizes = driver.execute_script(
            "return [...document.querySelectorAll('svg')].map(s => s.getBoundingClientRect().width)"
        )
        assert len(sizes) >= 5 and min(sizes) > 100
        # The numbers the browser shows are the scorecard's.
        shown = figures_of(driver.page_source)
        code, out, _ = cli("scorecard", "-w", str(demo_folder), "--now", DEMO_NOW, "--json")
        for row in json.loads(out)["rows"]:
            for name, ind in row["indicators"].items():
                cell = shown[(f"moment:{row['group']['moment']}", "", name)]
                assert int(cell["data-n"]) == ind["n"]
                if not ind["insufficient"]:
                    assert float(cell["data-value"]) == ind["value"]
        # Screenshots at 1280 px wide, and the page printed to A4 PDF.
        driver.set_window_size(1280, 1000)
        assert driver.save_screenshot(str(tmp_path / "report-1280.png"))
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, min(height, 8000))
        assert driver.save_screenshot(str(tmp_path / "report-1280-full.png"))
        pdf = driver.execute_cdp_cmd(
            "Page.printToPDF", {"paperWidth": 8.27, "paperHeight": 11.69, "printBackground": True}
        )
        data = base64.b64decode(pdf["data"])
        (tmp_path / "report.pdf").write_bytes(data)
        assert data.startswith(b"%PDF") and data.count(b"/Type /Page") >= 2
    finally:
        driver.quit()
