"""Reading results as a person does: tables at 80 and 120 columns, the breakdown by the event's
attributes, the reasons customers chose, and empty results that say why they are empty."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest

from cxctl.results.importer import import_responses
from cxctl.results.scorecard import compute_scorecard

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
NOW_ARG = "2026-11-10T12:00:00+00:00"


def seed_nps(ws, db, sql, tmp_path, rows, name="nps.csv"):
    """rows: (external_id, segment, sent_at, submitted_at, nps, why, reason label) into nps_relational."""
    lines = [["response_id", "token", "submitted_at", "nps", "nps_why", "nps_reason"]]
    for i, (ext, segment, sent, submitted, score, why, reason) in enumerate(rows):
        cid = sql.add_contact(db, ext, f"{ext.lower()}@example.fr", segment, first_name=f"Prénom{i}")
        lines.append(
            [f"{name}-{i}", sql.add_invitation(db, cid, "nps_relational", sent), submitted, score, why, reason]
        )
    buffer = io.StringIO()
    csv.writer(buffer).writerows(lines)
    (tmp_path / name).write_text(buffer.getvalue(), encoding="utf-8")
    return import_responses(ws, db, tmp_path / name, NOW, moment="nps_relational")


def seed_csat(ws, db, sql, tmp_path, rows, name="csat.csv"):
    """rows: (external_id, event attributes, csat, comment) into delivery_csat, each behind an order_delivered event."""
    lines = [["response_id", "token", "submitted_at", "csat", "csat_why"]]
    for i, (ext, attributes, score, comment) in enumerate(rows):
        cid = sql.add_contact(db, ext, f"{ext.lower()}@example.fr", "professionnel")
        event = sql.add_event(db, cid, "order_delivered", "2026-10-02 08:00:00", json.dumps(attributes))
        token = sql.add_invitation(db, cid, "delivery_csat", "2026-10-04 08:00:00", event_id=event)
        lines.append([f"{name}-{i}", token, "2026-10-06 10:00", score, comment])
    buffer = io.StringIO()
    csv.writer(buffer).writerows(lines)
    (tmp_path / name).write_text(buffer.getvalue(), encoding="utf-8")
    return import_responses(ws, db, tmp_path / name, NOW, moment="delivery_csat")


@pytest.fixture
def months(results_ws, sql, tmp_path):
    """Two months of NPS (September and October) and October deliveries by carrier."""
    ws, db = results_ws
    ws.settings.min_responses = 3
    rows = [
        (
            f"S{i}",
            "particulier" if i % 2 else "professionnel",
            "2026-09-01 08:00:00",
            f"2026-09-{10 + i} 10:00",
            v,
            "Livraison en retard" if v <= 6 else "",
            "Le délai de livraison" if v <= 6 else "Le prix",
        )
        for i, v in enumerate([10, 9, 7, 3, 2, 9])
    ]
    rows += [
        (
            f"O{i}",
            "particulier" if i % 2 else "professionnel",
            "2026-10-01 08:00:00",
            f"2026-10-{10 + i} 10:00",
            v,
            "Le colis est arrivé abîmé, personne ne répond au service client" if v <= 6 else "",
            "Le délai de livraison" if v <= 6 else "La qualité",
        )
        for i, v in enumerate([10, 10, 10, 9, 2, 8])
    ]
    seed_nps(ws, db, sql, tmp_path, rows)
    seed_csat(
        ws,
        db,
        sql,
        tmp_path,
        [
            (
                f"D{i}",
                {"carrier": "Colissimo" if i < 3 else "Chronopost", "order": f"CMD-{i}"},
                v,
                "Colis perdu" if v == 1 else "",
            )
            for i, v in enumerate([5, 4, 1, 5, 5, 2])
        ],
    )
    return ws, db


def lines_of(out: str) -> list[str]:
    return [line.rstrip() for line in out.splitlines()]


# --- tables at 80 and 120 columns ----------------------------------------------------------------


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("by", ["moment", "moment,month", "segment,month", "moment,segment"])
def test_scorecard_reads_at_80_and_120_columns(months, cli, monkeypatch, columns, by):
    """At 80 columns the scorecard cut moment names (`nps_relat…`) and wrapped `--by moment,month` into 5-line
    cells; the trend column had no span. One line per measure, names whole, a labelled trend, a legend."""
    ws, _ = months
    monkeypatch.setenv("COLUMNS", str(columns))
    code, out, err = cli(
        "scorecard", "-w", str(ws.root), "--now", NOW_ARG, "--since", "2026-09-01", "--until", "2026-10-31", "--by", by
    )
    assert code == 0, err
    assert max(len(line) for line in lines_of(out)) <= columns
    for name in ("nps_relational", "delivery_csat") if by.startswith("moment") else ("particulier", "professionnel"):
        assert any(name in line for line in lines_of(out)), name
    head = next(line for line in lines_of(out) if "measure" in line)
    assert all(word in head for word in ("value", "n", "goal", "change"))
    assert "8 months" in out  # what the trend spans
    assert "±95 % margin (NPS: adjusted Wald)" in " ".join(lines_of(out))
    cells = [line for line in lines_of(out) if " NPS " in f" {line} "]
    assert cells and all("±" in line or "too few" in line for line in cells)  # a value and its margin on one line


def test_scorecard_of_one_moment_names_it_in_the_title(months, cli, monkeypatch):
    ws, _ = months
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = cli(
        "scorecard", "-w", str(ws.root), "--now", NOW_ARG, "--since", "2026-10-01", "-m", "delivery_csat"
    )
    assert code == 0 and lines_of(out)[0] == "scorecard 2026-10-01 → 2026-11-10 · moment delivery_csat"
    code, out, _ = cli(
        "scorecard", "-w", str(ws.root), "--now", NOW_ARG, "--since", "2026-10-01", "--json", "-m", "delivery_csat"
    )
    assert json.loads(out)["moment"] == "delivery_csat"


def test_piped_tables_are_laid_out_for_80_columns_not_200(months, cli, monkeypatch):
    """Not a terminal and no $COLUMNS: tables read at 80 (they were 200 columns wide)."""
    ws, _ = months
    monkeypatch.delenv("COLUMNS", raising=False)
    for args in (
        ["followups"],
        ["scorecard", "--now", NOW_ARG, "--by", "moment,month", "--since", "2026-09-01"],
        ["reasons"],
    ):
        code, out, err = cli(*args, "-w", str(ws.root))
        assert code == 0, err
        assert max(len(line) for line in lines_of(out)) <= 80, args


@pytest.mark.parametrize("columns", [80, 120])
def test_followups_read_at_80_and_120_columns_with_the_reasons_chosen(months, cli, monkeypatch, columns):
    """`followups` became `reg… │ det… │ nps…` at 80 columns, and showed the category where the customer's
    reasons belong."""
    ws, _ = months
    monkeypatch.setenv("COLUMNS", str(columns))
    code, out, err = cli("followups", "-w", str(ws.root))
    assert code == 0, err
    text = lines_of(out)
    assert max(len(line) for line in text) <= columns
    assert "…" not in out
    assert any("chose: Le délai de livraison" in line for line in text)
    assert any("s3@example.fr" in line for line in text)  # addresses whole, never cut
    assert any("detractor (nps 3)" in line for line in text)
    assert "Colissimo" in out and "CMD-2" in out  # the event behind the survey, with its attributes
    code, out, _ = cli("followups", "-w", str(ws.root), "--json")
    detractor = next(f for f in json.loads(out) if f["contact"]["external_id"] == "S3")
    assert detractor["reasons"] == ["detractor"]  # unchanged for scripts
    assert detractor["chosen_reasons"] == [{"question": "nps_reason", "id": "delai", "label": "Le délai de livraison"}]
    code, out, _ = cli("followups", "-w", str(ws.root), "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    # Columns only ever get added at the end (the case's state, owner and due date came after chosen_reasons).
    assert list(rows[0])[14] == "chosen_reasons" and list(rows[0])[:3] == ["id", "submitted_at", "moment"]
    assert next(r for r in rows if r["external_id"] == "S3")["chosen_reasons"] == "Le délai de livraison"


def test_reasons_show_labels_and_shares(months, cli, monkeypatch):
    ws, _ = months
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = cli("reasons", "-w", str(ws.root), "-m", "nps_relational")
    assert code == 0, err
    text = lines_of(out)
    assert text[0] == "reasons · nps_relational · nps_reason"
    # Detractors: S3, S4 (professionnel/particulier) and O4: each chose "Le délai de livraison".
    assert any(
        line.split() == ["professionnel", "detractor", "Le", "délai", "de", "livraison", "2", "100"] for line in text
    )
    assert any(line.split() == ["particulier", "promoter", "Le", "prix", "2", "50"] for line in text)
    assert max(len(line) for line in text) <= 80
    assert "share of the category's respondents" in err


# --- breakdown by the event's attributes ---------------------------------------------------------


def test_scorecard_breaks_down_by_an_attribute_of_the_event(months):
    """`--by nature` (the claim type) was refused: "no contact has this attribute"."""
    ws, db = months
    card = compute_scorecard(
        ws, db, NOW, by=["carrier"], since="2026-10-01", until="2026-10-31", moment="delivery_csat"
    )
    by_carrier = {r.group["carrier"]: r for r in card.rows}
    assert set(by_carrier) == {"Colissimo", "Chronopost"}
    assert by_carrier["Colissimo"].indicators["csat"].value == pytest.approx(200 / 3)  # 5, 4, 1 → 2 of 3 satisfied
    assert by_carrier["Chronopost"].indicators["csat"].value == pytest.approx(200 / 3)  # 5, 5, 2
    assert by_carrier["Colissimo"].sent == 3 and by_carrier["Colissimo"].responses == 3
    explicit = compute_scorecard(ws, db, NOW, by=["event.carrier", "moment"], since="2026-10-01", until="2026-10-31")
    groups = {(r.group["event.carrier"], r.group["moment"]): r.indicators for r in explicit.rows}
    # Relational answers have no event behind them: a group of their own, not merged into a carrier.
    assert groups[("", "nps_relational")]["nps"].n == 6
    assert groups[("Colissimo", "delivery_csat")]["csat"].n == 3


def test_an_attribute_nobody_has_is_still_refused_with_both_kinds_of_names(months, cli):
    ws, _ = months
    code, _, err = cli("scorecard", "-w", str(ws.root), "--now", NOW_ARG, "--by", "carier")
    assert (
        code == 2
        and "(did you mean 'carrier'?)" in err
        and "attribute of the events behind the answers (carrier, order)" in err
    )


def test_a_breakdown_pooling_relational_and_transactional_nps_says_so(months, sql, cli):
    """`--by segment` merged the quarterly relationship NPS with an NPS asked right after a delivery."""
    ws, db = months
    ws.moments["delivery_csat"].questions.append("nps")
    db.execute("UPDATE responses SET score_nps = 9 WHERE moment = 'delivery_csat'")
    card = compute_scorecard(ws, db, NOW, by=["segment"], since="2026-10-01", until="2026-10-31")
    assert (
        card.notes
        and "relational (nps_relational)" in card.notes[0]
        and "transactional (delivery_csat)" in card.notes[0]
    )
    assert "--by moment,segment" in card.notes[0]
    by_moment = compute_scorecard(ws, db, NOW, by=["moment", "segment"], since="2026-10-01", until="2026-10-31")
    assert by_moment.notes == []
    assert all(len(row.moments) == 1 for row in by_moment.rows)


# --- empty results say why -----------------------------------------------------------------------


def test_reasons_of_a_moment_without_a_choice_question_say_why(months, cli):
    ws, _ = months
    code, out, err = cli("reasons", "-w", str(ws.root), "-m", "delivery_csat")
    assert code == 0 and out == ""
    assert "moment 'delivery_csat' asks no choice question" in err and "the moments with reasons: nps_relational" in err
    code, out, err = cli("reasons", "-w", str(ws.root), "-m", "delivery_csat", "--json")
    assert json.loads(out) == [] and "asks no choice question" in err


def test_verbatims_of_an_empty_category_say_why(months, cli):
    ws, _ = months
    code, out, err = cli("verbatims", "-w", str(ws.root), "-m", "nps_relational", "--category", "promoter")
    assert code == 0 and "no promoter among the 3 open answer(s) (3 detractor)" in err
    code, out, err = cli("verbatims", "-w", str(ws.root), "-m", "delivery_csat", "--category", "promoter", "--json")
    assert "has an NPS score beside it" in json.loads(out)["note"] and "drop --category" in err
    code, out, err = cli("verbatims", "-w", str(ws.root), "-m", "support_ces")
    assert "moment 'support_ces' asks no open question" in err


def test_ops_duration_with_the_events_reversed_says_so(results_ws, sql, cli):
    ws, db = results_ws
    for i in range(3):
        cid = sql.add_contact(db, f"OPS{i}", None)
        sql.add_event(db, cid, "order_placed", "2026-10-01 08:00:00")
        sql.add_event(db, cid, "order_delivered", "2026-10-03 08:00:00")
    code, out, err = cli("ops", "duration", "order_delivered", "order_placed", "-w", str(ws.root), "--json")
    assert code == 0 and json.loads(out) == []
    assert "3 of the 3 order_placed event(s) come before the same person's order_delivered" in err
    assert "`cxctl ops duration order_placed order_delivered`" in err
    code, out, err = cli(
        "ops", "duration", "order_placed", "order_delivered", "-w", str(ws.root), "--since", "2026-11-01"
    )
    assert code == 0 and "no order_delivered event in that period" in err
