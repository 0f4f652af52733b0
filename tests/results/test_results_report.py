"""`cxctl report`: one self-contained HTML page whose figures are the scorecard's, for the demo workspace
and for a generated year of a 10-moment programme."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from cxctl import store
from cxctl.results.report import build_report
from cxctl.results.report_render import render_report
from cxctl.validation import load_workspace

DEMO_NOW = "2026-11-23T09:00:00+00:00"


def _scorecard(cli, folder: Path, *args: str) -> dict:
    code, out, err = cli("scorecard", "-w", str(folder), "--now", DEMO_NOW, "--json", *args)
    assert code == 0, err
    return json.loads(out)


def _check_rows(rows: list[dict], figures: dict, scope_of, period: bool = False) -> int:
    """Every indicator of every scorecard row is in the report with the same n, value, margin and flag."""
    checked = 0
    for row in rows:
        for name, ind in row["indicators"].items():
            cell = figures[(scope_of(row), row["period"] or "" if period else "", name)]
            assert int(cell["data-n"]) == ind["n"]
            assert cell["data-insufficient"] == ("1" if ind["insufficient"] else "0")
            if ind["insufficient"]:
                # Marked as the terminal does, with no value to copy.
                assert re.fullmatch(r"trop peu \(n=\d+\)", cell["text"].strip()), cell
                assert "data-value" not in cell
            else:
                assert float(cell["data-value"]) == ind["value"]
                if ind["margin"] is not None:
                    assert float(cell["data-margin"]) == ind["margin"]
            checked += 1
    return checked


def test_the_demo_report_says_what_scorecard_json_says(demo_folder: Path, cli, figures_of, tmp_path: Path):
    out = tmp_path / "report.html"
    code, _, err = cli("report", "-w", str(demo_folder), "--now", DEMO_NOW, "-o", str(out))
    assert code == 0, err
    assert str(out) in err
    html = out.read_text(encoding="utf-8")
    figures = figures_of(html)
    checked = _check_rows(_scorecard(cli, demo_folder, "--by", "all")["rows"], figures, lambda row: "all")
    checked += _check_rows(
        _scorecard(cli, demo_folder, "--by", "moment")["rows"], figures, lambda row: f"moment:{row['group']['moment']}"
    )
    checked += _check_rows(
        _scorecard(cli, demo_folder, "--by", "moment,week")["rows"],
        figures,
        lambda row: f"moment:{row['group']['moment']}",
        period=True,
    )
    checked += _check_rows(
        _scorecard(cli, demo_folder, "--by", "journey,stage,week")["rows"],
        figures,
        lambda row: f"stage:{row['group']['journey']}/{row['group']['stage']}",
        period=True,
    )
    assert checked > 20
    # The same value text as the terminal's table for a sufficient cell (value ±margin).
    code, terminal, _ = cli("scorecard", "-w", str(demo_folder), "--now", DEMO_NOW)
    sufficient = [
        c["text"].split(" n=")[0].strip()
        for c in figures.values()
        if c["data-insufficient"] == "0" and c["data-scope"].startswith("moment:") and not c["data-period"]
    ]
    assert sufficient and all(text in terminal for text in sufficient)


def test_the_page_is_self_contained_and_the_demo_writes_it(demo_folder: Path):
    html = (demo_folder / "report.html").read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html, re.I), "nothing fetched from elsewhere"
    assert "@import" not in html and "url(http" not in html and "@font-face" not in html
    assert "@page" in html and "size: A4" in html
    assert html.count("<svg") >= 5
    # Every chart has its numbers beside it: as many tables (or details) as charts at least.
    assert html.count("<table") >= html.count("<svg")


def test_labels_follow_the_language(demo_folder: Path):
    ws = load_workspace(demo_folder)
    db = store.read(ws.database)
    now = datetime.fromisoformat(DEMO_NOW)
    english = render_report(build_report(ws, db, now, lang="en"))
    french = render_report(build_report(ws, db, now, lang="fr"))
    assert '<html lang="en">' in english and "Headline" in english and "Response rate" in english
    assert '<html lang="fr">' in french and "En bref" in french and "Taux de réponse" in french
    assert "too few (n=" in english and "trop peu (n=" in french


def test_comments_of_forgotten_people_are_never_quoted(demo_folder: Path, tmp_path: Path):
    import shutil

    folder = tmp_path / "ws"
    shutil.copytree(demo_folder, folder)
    ws = load_workspace(folder)
    db = store.connect(ws.database)
    now = datetime.fromisoformat(DEMO_NOW)
    quoted = render_report(build_report(ws, db, now))
    texts = db.execute("""SELECT r.contact_id, a.value_text FROM answers a JOIN responses r ON r.id = a.response_id
                          WHERE a.value_text LIKE '% %' AND r.status = 'counted'""").fetchall()
    contact, text = next((c, t) for c, t in texts if t.replace("'", "&#39;") in quoted)
    # A person marked forgotten whose text is still there (an erasure half done, a restore from backup):
    # the report must not quote it.
    others = [t for c, t in texts if c != contact]
    db.execute("UPDATE contacts SET forgotten_at = '2026-11-22 00:00:00' WHERE id = ?", [contact])
    again = render_report(build_report(ws, db, now))
    if text not in others:
        assert text.replace("'", "&#39;") not in again


def test_a_year_of_a_ten_moment_programme_fits_in_two_megabytes(tmp_path: Path, monkeypatch):
    root = tmp_path / "year"
    root.mkdir()
    moments = "".join(
        f"  m{i}:\n    journey: shop\n    stage: s{i % 5}\n    kind: transactional\n    trigger: {{event: e{i}}}\n"
        f"    questions: [{['nps', 'csat', 'ces'][i % 3]}, why, reason]\n    targets: {{{['nps: 30', 'csat: 80', 'ces: 5'][i % 3]}}}\n"
        for i in range(10)
    )
    (root / "cxctl.yaml").write_text(
        "workspace:\n  name: Year\n  timezone: Europe/Paris\n  sender: {name: S, address: s@example.com}\n"
        "  survey_url: 'https://s.example/{moment}?t={token}'\n  min_responses: 30\n"
        "journeys:\n  shop: {name: Shop, stages: [s0, s1, s2, s3, s4]}\n"
        "questions:\n  nps: {type: nps, text: R?}\n  csat: {type: csat, text: S?}\n  ces: {type: ces, text: E?}\n"
        "  why: {type: open, text: Why?}\n"
        "  reason: {type: single_choice, text: What?, choices: [{id: price, label: Price}, {id: delay, label: Delay},"
        " {id: quality, label: Quality}, {id: staff, label: Staff}]}\n"
        "moments:\n" + moments,
        encoding="utf-8",
    )
    ws = load_workspace(root)
    db = store.connect(ws.database)
    q = db.execute
    q("BEGIN")
    q("""WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < 2000)
         INSERT INTO contacts (id, external_id, segment, attributes, created_at, updated_at)
         SELECT i, 'C' || i, CASE i % 3 WHEN 0 THEN 'pro' ELSE 'perso' END, '{}', '2026-01-01 00:00:00', '2026-01-01 00:00:00' FROM seq""")
    q("""WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < 40000)
         INSERT INTO invitations (id, dedupe_key, token, contact_id, moment, send_at, status, sent_at, created_at, updated_at)
         SELECT i, 'k' || i, 't' || i, 1 + i % 2000, 'm' || (i % 10), ts, 'sent', ts, ts, ts
         FROM (SELECT i, datetime('2026-01-01', '+' || (i * 7919 % 31449600) || ' seconds') AS ts FROM seq)""")
    q("""INSERT INTO responses (id, response_key, content_hash, invitation_id, contact_id, moment, source, submitted_at, day,
                                complete, status, imported_at, score_nps, score_csat, score_ces)
         SELECT id, 'g:' || id, '', id, contact_id, moment, 'generic', sent_at, date(sent_at), 1, 'counted', sent_at,
                CASE CAST(substr(moment, 2) AS INTEGER) % 3 WHEN 0 THEN abs(random()) % 11 END,
                CASE CAST(substr(moment, 2) AS INTEGER) % 3 WHEN 1 THEN 1 + abs(random()) % 5 END,
                CASE CAST(substr(moment, 2) AS INTEGER) % 3 WHEN 2 THEN 1 + abs(random()) % 7 END
         FROM invitations WHERE id % 3 <> 0""")
    q("""INSERT INTO answers SELECT id, CASE CAST(substr(moment, 2) AS INTEGER) % 3 WHEN 0 THEN 'nps' WHEN 1 THEN 'csat' ELSE 'ces' END,
                COALESCE(score_nps, score_csat, score_ces), NULL FROM responses""")
    q("""INSERT INTO answers SELECT id, 'reason', NULL, CASE id % 4 WHEN 0 THEN 'price' WHEN 1 THEN 'delay' WHEN 2 THEN 'quality'
                ELSE 'staff' END FROM responses""")
    q(
        "INSERT INTO answers SELECT id, 'why', NULL, 'Livraison rapide mais emballage abîmé ' || (id % 50) FROM responses WHERE id % 4 = 0"
    )
    q("COMMIT")
    from cxctl.results.importer import rebuild_rollups

    rebuild_rollups(db)
    report = build_report(ws, db, datetime(2026, 12, 31, 12, tzinfo=UTC), since="2026-01-01", until="2026-12-31")
    assert report.granularity == "month" and len(report.periods) == 12 and len(report.moments) == 10
    html = render_report(report)
    size = len(html.encode("utf-8"))
    print(f"a year of a 10-moment programme: {size / 1024:.0f} KB")
    assert size < 2 * 1024 * 1024, f"{size / 1024 / 1024:.2f} MB"
    assert html.count("<svg") >= 10 * 4
    # The scorecard's own numbers for one moment and month are in the page.
    from cxctl.results.report import figure
    from cxctl.results.scorecard import compute_scorecard

    card = compute_scorecard(
        ws, db, datetime(2026, 12, 31, 12, tzinfo=UTC), by=["moment", "month"], since="2026-01-01", until="2026-12-31"
    )
    row = next(r for r in card.rows if r.group["moment"] == "m3" and r.period == "2026-06")
    assert f'data-value="{row.indicators["nps"].value}"' in html
    from markupsafe import escape

    assert str(escape(figure("nps", row.indicators["nps"]).text)) in html


def test_unknown_language_and_period_are_refused(demo_folder: Path, cli, tmp_path: Path):
    code, _, err = cli(
        "report", "-w", str(demo_folder), "--now", DEMO_NOW, "--lang", "de", "-o", str(tmp_path / "r.html")
    )
    assert code == 2 and "--lang" in err and "fr or en" in err
    code, _, err = cli(
        "report", "-w", str(demo_folder), "--now", DEMO_NOW, "--period", "year", "-o", str(tmp_path / "r.html")
    )
    assert code == 2 and "week or month" in err


def test_open_follow_ups_in_the_report_are_those_cxctl_followups_lists(demo_folder: Path, tmp_path: Path):
    import shutil

    from cxctl.results.followups import list_followups, mark_done, open_followup_ages

    folder = tmp_path / "ws"
    shutil.copytree(demo_folder, folder)
    ws = load_workspace(folder)
    db = store.connect(ws.database)
    now = datetime.fromisoformat(DEMO_NOW)
    listed = list_followups(ws, db).items
    assert len(listed) >= 2
    mark_done(ws, db, listed[0].id, "called", now)
    ages = open_followup_ages(ws, db, now, "2026-01-01", "2026-12-31", list(ws.moments))
    still_open = [f.id for f in list_followups(ws, db).items]
    assert ages.total == len(still_open) == len(listed) - 1
    assert sorted(f.id for f in ages.oldest) == sorted(still_open)[:15]


def test_a_trend_at_0_or_100_percent_draws_although_the_interval_misses_it_by_a_rounding_error():
    """Found on 1,000,000 responses: a Wilson bound of 99.99999999 under a value of 100.0 made matplotlib
    refuse the error bars ('yerr must not contain negative values') and the whole report fail."""
    from cxctl.results import charts

    svg = charts.trend("CSAT", ["2026-01", "2026-02"], [100.0, 0.0], [97.1, 1e-12], [99.99999999, 2.9])
    assert svg.startswith("<svg")


def test_the_closed_loop_figures_are_the_scorecards(demo_folder: Path, cli, tmp_path: Path):
    """Issue 17: the closed-loop figures sit beside the scores in the report too, from the same function."""
    import re

    out = tmp_path / "report.html"
    code, _, err = cli("report", "-w", str(demo_folder), "--now", DEMO_NOW, "-o", str(out))
    assert code == 0, err
    loop = _scorecard(cli, demo_folder, "--by", "moment")["closed_loop"]
    assert loop["cases"] > 0, "the demo opens follow-up cases"
    html = out.read_text(encoding="utf-8")
    table = re.search(r'<table class="numbers" id="closed-loop">(.*?)</table>', html, re.S)
    assert table, "no closed-loop table in the report"
    values = re.findall(r'data-value="([^"]*)"', table.group(1))
    assert values[0] == str(loop["cases"])
    share = loop["contacted_in_time_share"]
    assert values[1] == ("" if share is None else str(share))
    assert "Boucler la boucle" in html or "Closing the loop" in html
