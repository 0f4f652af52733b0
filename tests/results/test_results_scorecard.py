"""Statistics against hand-computed values, scorecards against their definitions, and properties."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxctl.results.importer import import_responses
from cxctl.results.scorecard import compute_scorecard
from cxctl.results.stats import Mean, Nps, Proportion, mean_change, nps_change, proportion_change, sparkline, wilson

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


# --- statistics, by hand ------------------------------------------------------------------------


def test_nps_and_its_adjusted_wald_margin_by_hand():
    """Adjusted-Wald (Rocks 2016; MeasuringU): n + 3, promoters + ¾, detractors + ¾, then the Wald interval."""
    nps = Nps(promoters=50, passives=30, detractors=20)
    assert nps.score == 30.0  # the NPS shown is never adjusted
    # p = 50.75/103, d = 20.75/103; var = (p + d − (p − d)²)/103; margin = 1.96 × √var × 100
    p, d = 50.75 / 103, 20.75 / 103
    assert nps.adjusted_score == pytest.approx(100 * 30 / 103)
    assert nps.margin == pytest.approx(1.959964 * math.sqrt((p + d - (p - d) ** 2) / 103) * 100, rel=1e-6)
    assert nps.margin == pytest.approx(15.08, abs=0.01)
    assert nps.interval == pytest.approx((29.13 - 15.08, 29.13 + 15.08), abs=0.01)


def test_a_unanimous_nps_is_not_certain():
    """`-100 ±0 n=30` read as conclusive with the plain Wald interval; it is −100 ±12.2 here."""
    nps = Nps(promoters=0, passives=0, detractors=30)
    # p = 0.75/33, d = 30.75/33: var = (31.5/33 − (30/33)²)/33 = 0.0038818…; margin = 1.96 × √var × 100
    assert nps.score == -100.0
    assert nps.margin == pytest.approx(1.959964 * math.sqrt((31.5 / 33 - (30 / 33) ** 2) / 33) * 100, rel=1e-6)
    assert nps.margin == pytest.approx(12.21, abs=0.01)
    low, high = nps.interval
    assert low == -100.0 and high == pytest.approx(-90.91 + 12.21, abs=0.01)
    # −100 against −80 (n = 30 each): the plain Wald test said significant (z = −2.02); adjusted, z = −1.49.
    change = nps_change(nps, Nps(2, 2, 26))
    assert change.delta == pytest.approx(-20) and change.z == pytest.approx(-1.487, abs=0.001)
    assert not change.significant


def test_wilson_interval_by_hand():
    low, high = wilson(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    assert Proportion(0, 20).interval[0] == 0.0 and Proportion(0, 20).interval[1] > 0  # never a zero-width interval


def test_mean_margin_and_changes_by_hand():
    mean = Mean.of({1: 1, 7: 1})
    assert mean.value == 4 and mean.variance == 18 and mean.margin == pytest.approx(1.959964 * 3, rel=1e-6)
    change = proportion_change(Proportion(60, 100), Proportion(45, 100))
    assert change.delta == pytest.approx(15) and change.z == pytest.approx(
        0.15 / math.sqrt(0.525 * 0.475 * 0.02), rel=1e-6
    )
    assert change.significant
    change = nps_change(Nps(50, 30, 20), Nps(30, 30, 40))
    # adjusted: (50.75 − 20.75)/103 − (30.75 − 40.75)/103 = 40/103 over √(var₁ + var₂), both adjusted
    var1 = (71.5 / 103 - (30 / 103) ** 2) / 103
    var2 = (71.5 / 103 - (10 / 103) ** 2) / 103
    assert change.delta == pytest.approx(40) and change.z == pytest.approx(
        (40 / 103) / math.sqrt(var1 + var2), rel=1e-6
    )
    assert change.significant
    assert not nps_change(Nps(3, 1, 1), Nps(2, 2, 1)).significant
    assert mean_change(Mean.of({5: 10, 6: 10}), Mean.of({5: 10, 6: 10})).delta == 0


def test_sparkline_scales_and_leaves_gaps():
    assert sparkline([0, 50, 100]) == "▁▅█"
    assert sparkline([10, None, 10]) == "▅ ▅"
    assert sparkline([None, None]) == ""


counts = st.integers(min_value=0, max_value=500)


@settings(max_examples=60, deadline=None)
@given(counts, counts, counts)
def test_nps_stays_within_bounds(p, q, d):
    nps = Nps(p, q, d)
    if nps.n == 0:
        assert nps.score is None
    else:
        assert -100 <= nps.score <= 100 and nps.margin > 0
        low, high = nps.interval
        assert -100 <= low < high <= 100


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(0, 40), st.integers(1, 40), st.integers(2, 20))
def test_margins_shrink_as_n_grows(p, q, d, factor):
    small, large = Nps(p, q, d), Nps(p * factor, q * factor, d * factor)
    assert large.margin <= small.margin + 1e-9
    k, n = p, p + q + d
    assert Proportion(k * factor, n * factor).margin <= Proportion(k, n).margin + 1e-9


# --- scorecards over imported responses --------------------------------------------------------


def seed(ws, db, sql, tmp_path, rows, moment="nps_relational", question="nps", name="seed.csv"):
    """rows: (external_id, segment, attributes dict, sent_at, submitted_at, value) → contacts, invitations, import."""
    path = tmp_path / name
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["response_id", "token", "submitted_at", question])
        for i, (external_id, segment, attributes, sent_at, submitted_at, value) in enumerate(rows):
            row = db.execute("SELECT id FROM contacts WHERE external_id = ?", [external_id]).fetchone()
            cid = (
                row[0]
                if row
                else sql.add_contact(
                    db, external_id, f"{external_id.lower()}@example.fr", segment, json.dumps(attributes)
                )
            )
            token = sql.add_invitation(db, cid, moment, sent_at)
            if submitted_at is not None:
                writer.writerow([f"{name}-{i}", token, submitted_at, value])
    return import_responses(ws, db, path, NOW, moment=moment)


def test_scorecard_by_moment_and_month_by_hand(results_ws, sql, tmp_path):
    ws, db = results_ws
    ws.settings.min_responses = 3
    september = [
        (f"S{i}", "pro", {}, "2026-09-01 08:00:00", f"2026-09-{10 + i} 10:00", v) for i, v in enumerate([10, 9, 7, 3])
    ]
    september += [(f"S{i}", "pro", {}, "2026-09-01 08:00:00", None, None) for i in range(4, 8)]  # 4 never answered
    october = [
        (f"O{i}", "pro", {}, "2026-10-01 08:00:00", f"2026-10-{10 + i} 10:00", v)
        for i, v in enumerate([10, 10, 10, 9, 2])
    ]
    seed(ws, db, sql, tmp_path, september + october)
    card = compute_scorecard(ws, db, NOW, by=["moment", "month"], since="2026-09-01", until="2026-10-31")

    rows = {r.period: r for r in card.rows}
    assert set(rows) == {"2026-09", "2026-10"}
    sep, oct_ = rows["2026-09"].indicators, rows["2026-10"].indicators
    assert sep["nps"].value == 25.0 and oct_["nps"].value == 60.0
    assert sep["nps"].detail == {"promoters": 50.0, "passives": 25.0, "detractors": 25.0}
    assert (sep["nps"].target_met, oct_["nps"].target_met) == (False, True)  # target 30
    assert oct_["nps"].change == 35.0 and oct_["nps"].significant is False
    assert sep["response_rate"].value == 50.0 and oct_["response_rate"].value == 100.0
    assert sep["response_rate"].target_met is True  # target 20 %
    assert oct_["nps"].trend[-2:] == [25.0, 60.0] and oct_["nps"].sparkline.endswith("▁█")
    assert Nps(4, 0, 1).margin == pytest.approx(oct_["nps"].margin)


def test_cells_below_minimum_n_are_insufficient_and_have_no_verdict(results_ws, sql, tmp_path):
    ws, db = results_ws
    seed(ws, db, sql, tmp_path, [("A", "pro", {}, "2026-10-01 08:00:00", "2026-10-02 10:00", 10)])
    (row,) = compute_scorecard(ws, db, NOW, by=["moment"]).rows
    assert row.indicators["nps"].insufficient and row.indicators["nps"].target_met is None


def test_csat_top_box_and_ces_agreement(results_ws, sql, tmp_path):
    ws, db = results_ws
    ws.settings.min_responses = 1
    seed(
        ws,
        db,
        sql,
        tmp_path,
        [(f"C{i}", "pro", {}, "2026-10-01 08:00:00", "2026-10-02 10:00", v) for i, v in enumerate([5, 4, 3, 1])],
        moment="delivery_csat",
        question="csat",
        name="csat.csv",
    )
    seed(
        ws,
        db,
        sql,
        tmp_path,
        [(f"E{i}", "pro", {}, "2026-10-01 08:00:00", "2026-10-02 10:00", v) for i, v in enumerate([7, 5, 4, 2])],
        moment="support_ces",
        question="ces",
        name="ces.csv",
    )
    rows = {r.group["moment"]: r.indicators for r in compute_scorecard(ws, db, NOW, by=["moment"]).rows}
    assert rows["delivery_csat"]["csat"].value == 50.0 and rows["delivery_csat"]["csat"].target_met is False
    assert rows["delivery_csat"]["csat"].interval == pytest.approx(tuple(100 * x for x in wilson(2, 4)))
    assert rows["support_ces"]["ces"].value == 4.5 and rows["support_ces"]["ces"].detail["agree"] == 50.0
    ws.questions["csat"].top_box = 1
    rows = {r.group["moment"]: r.indicators for r in compute_scorecard(ws, db, NOW, by=["moment"]).rows}
    assert rows["delivery_csat"]["csat"].value == 25.0


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["pro", "particulier", None]),
            st.sampled_from(["web", "magasin"]),
            st.integers(1, 28),
            st.integers(9, 10),
            st.integers(0, 10),
        ),
        min_size=1,
        max_size=25,
    )
)
def test_breakdown_totals_equal_overall_counts(results_ws, sql, tmp_path_factory, answers):
    ws, db = results_ws
    db.execute("DELETE FROM responses")
    db.execute("DELETE FROM invitations")
    db.execute("DELETE FROM contacts")
    tmp = tmp_path_factory.mktemp("seed")
    rows = [
        (f"P{i}", seg, {"canal": canal}, f"2026-{month:02d}-01 08:00:00", f"2026-{month:02d}-{day:02d} 10:00", value)
        for i, (seg, canal, day, month, value) in enumerate(answers)
    ]
    seed(ws, db, sql, tmp, rows)
    overall = (
        compute_scorecard(ws, db, NOW, by=["moment"], since="2026-09-01", until="2026-10-31").rows[0].indicators["nps"]
    )
    for by in (["segment"], ["canal"], ["moment", "month"], ["journey", "week"]):
        parts = [
            r.indicators["nps"]
            for r in compute_scorecard(ws, db, NOW, by=by, since="2026-09-01", until="2026-10-31").rows
            if "nps" in r.indicators
        ]
        assert sum(p.n for p in parts) == overall.n == len(answers)
        promoters = sum(round(p.detail["promoters"] * p.n / 100) for p in parts)
        assert promoters == round(overall.detail["promoters"] * overall.n / 100)
        assert all(-100 <= p.value <= 100 for p in parts)


def test_cli_scorecard_formats(results_ws, sql, tmp_path, cli):
    ws, db = results_ws
    seed(
        ws,
        db,
        sql,
        tmp_path,
        [(f"A{i}", "pro", {"canal": "web"}, "2026-10-01 08:00:00", "2026-10-02 10:00", 9) for i in range(3)],
    )
    base = ["scorecard", "-w", str(ws.root), "--now", "2026-11-10T12:00", "--by", "moment,canal"]
    code, out, _ = cli(*base, "--format", "csv")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("moment,canal,responses,sent,nps,nps_margin,nps_n,nps_insufficient")
    # Three promoters: +100, but not ±0 (adjusted-Wald: p = 3.75/6, d = 0.75/6 → ±56.6)
    assert lines[1].startswith("nps_relational,web,3,3,100.0,56.6,3,1,")
    header, first = next(csv.reader(io.StringIO(out))), list(csv.reader(io.StringIO(out)))[1]
    assert "nps_trend" in header and first[header.index("nps_trend")].strip("▁▂▃▄▅▆▇█ ") == ""
    code, out, _ = cli(*base, "--json")
    data = json.loads(out)
    assert (
        data["rows"][0]["indicators"]["nps"]["n"] == 3 and data["rows"][0]["indicators"]["nps"]["insufficient"] is True
    )
    code, out, _ = cli(*base, "--format", "markdown")
    assert out.startswith("| moment | canal | responses |") and "| nps_trend |" in out
    code, out, err = cli(*base, "--format", "pdf")
    assert code == 2 and "use table, json, csv or markdown" in err
    code, out, _ = cli(*base)
    assert code == 0 and "too few" in out and "too few: n under 30" in out
    # People without the attribute form a named group in the table ("" in JSON and CSV, for scripts).
    seed(ws, db, sql, tmp_path, [("NOATTR", "pro", {}, "2026-10-01 08:00:00", "2026-10-02 10:00", 7)], name="more.csv")
    code, out, _ = cli(*base)
    assert code == 0 and "(none)" in out
    code, out, _ = cli(*base, "--json")
    assert "" in {r["group"]["canal"] for r in json.loads(out)["rows"]}
    # A typo is refused with a suggestion, not shown as one blank group.
    code, out, err = cli(*base[:-1], "moment,segmnet")
    assert code == 2 and "--by 'segmnet': no contact or event has this attribute (did you mean 'segment'?)" in err
    code, out, err = cli(*base[:-1], "moment,cannal")
    assert code == 2 and "(did you mean 'canal'?)" in err and "a contact attribute (canal)" in err


@pytest.mark.parametrize("towns", [15, 40, 300])
def test_breakdowns_with_few_or_many_attribute_values_agree(results_ws, sql, tmp_path, towns):
    """Per-value columns (few values), a sorted group vector (many), two-byte groups (over 255 values)."""
    ws, db = results_ws
    ws.settings.min_responses = 1
    rows = [
        (f"V{i}", "pro", {"ville": f"ville-{i % towns}"}, "2026-10-01 08:00:00", "2026-10-02 10:00", i % 11)
        for i in range(2 * towns)
    ]
    rows.append(("NOATTR", "pro", {}, "2026-10-01 08:00:00", "2026-10-02 10:00", 10))
    seed(ws, db, sql, tmp_path, rows)
    card = compute_scorecard(ws, db, NOW, by=["ville"], since="2026-10-01", until="2026-10-31")
    by_town = {r.group["ville"]: r for r in card.rows}
    assert len(by_town) == towns + 1 and by_town[""].indicators["nps"].n == 1
    assert (
        sum(r.indicators["nps"].n for r in card.rows) == 2 * towns + 1
        and sum(r.sent for r in card.rows) == 2 * towns + 1
    )
    for town in ("ville-0", f"ville-{towns - 1}"):
        values = [i % 11 for i in range(2 * towns) if f"ville-{i % towns}" == town]
        expected = 100.0 * (sum(v >= 9 for v in values) - sum(v <= 6 for v in values)) / len(values)
        assert by_town[town].indicators["nps"].n == len(values) and by_town[town].indicators["nps"].value == expected
