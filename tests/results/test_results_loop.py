"""Closing the loop: follow-ups, reasons, verbatims and operational indicators."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest

from cxctl.core.errors import UsageError
from cxctl.results.followups import list_followups, mark_done
from cxctl.results.importer import import_responses
from cxctl.results.operational import counts, durations, percentile
from cxctl.results.verbatims import frequent_words, reason_counts, words

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def answered(results_ws, sql, tmp_path):
    """Four NPS answers and two delivery CSAT answers, with events behind the delivery invitations."""
    ws, db = results_ws
    nps_rows, csat_rows = [], []
    for i, (segment, nps, why, reason) in enumerate(
        [
            ("pro", 3, "Livraison en retard, colis abîmé", "Le délai de livraison"),
            ("particulier", 10, "Livraison rapide, merci", "Le prix"),
            ("pro", 6, "Livraison en retard et service client injoignable", "Le délai de livraison"),
            ("particulier", 8, "", "La qualité"),
        ]
    ):
        cid = sql.add_contact(db, f"N{i}", f"n{i}@example.fr", segment, first_name=f"Nom{i}")
        token = sql.add_invitation(db, cid, "nps_relational", "2026-10-01 08:00:00")
        nps_rows.append([f"n-{i}", token, f"2026-10-0{5 - i} 10:00", nps, why, reason])
    for i, csat in enumerate([1, 5]):
        cid = sql.add_contact(db, f"D{i}", f"d{i}@example.fr", "pro")
        event = sql.add_event(
            db, cid, "order_delivered", "2026-10-02 08:00:00", json.dumps({"order": f"CMD-{i}", "carrier": "Colissimo"})
        )
        token = sql.add_invitation(db, cid, "delivery_csat", "2026-10-04 08:00:00", event_id=event)
        csat_rows.append([f"d-{i}", token, "2026-10-06 10:00", csat, "Colis perdu" if csat == 1 else ""])
    for name, head, rows, moment in (
        (
            "nps.csv",
            ["response_id", "token", "submitted_at", "nps", "nps_why", "nps_reason"],
            nps_rows,
            "nps_relational",
        ),
        ("csat.csv", ["response_id", "token", "submitted_at", "csat", "csat_why"], csat_rows, "delivery_csat"),
    ):
        buffer = io.StringIO()
        csv.writer(buffer).writerows([head] + rows)
        (tmp_path / name).write_text(buffer.getvalue(), encoding="utf-8")
        import_responses(ws, db, tmp_path / name, NOW, moment=moment)
    return ws, db


def test_followups_are_detractors_and_dissatisfied_oldest_first_with_event(answered):
    ws, db = answered
    items = list_followups(ws, db).items
    assert [(f.contact["external_id"], f.reasons) for f in items] == [
        ("N2", ["detractor"]),
        ("N0", ["detractor"]),
        ("D0", ["dissatisfied"]),
    ]
    assert items[0].comment == "Livraison en retard et service client injoignable"
    assert items[2].event == {
        "type": "order_delivered",
        "occurred_at": "2026-10-02 08:00:00",
        "attributes": {"order": "CMD-0", "carrier": "Colissimo"},
    }
    assert [f.contact["external_id"] for f in list_followups(ws, db, moment="delivery_csat").items] == ["D0"]
    assert [f.contact["external_id"] for f in list_followups(ws, db, since="2026-10-04").items] == ["N0", "D0"]


def test_done_followups_leave_the_list_and_keep_their_note(answered):
    ws, db = answered
    first = list_followups(ws, db).items[0]
    assert mark_done(ws, db, first.id, "Rappelée", NOW)["replaced"] is False
    recorded = mark_done(ws, db, first.id, "Rappelée, geste commercial", NOW)
    assert recorded == {
        "id": first.id,
        "status": "done",
        "note": "Rappelée, geste commercial",
        "done_at": "2026-11-10 12:00:00",
        "replaced": True,
    }
    assert first.id not in [f.id for f in list_followups(ws, db).items]
    done = [f for f in list_followups(ws, db, include_done=True).items if f.id == first.id][0]
    assert done.done and done.note == "Rappelée, geste commercial"
    with pytest.raises(UsageError, match="no response 999"):
        mark_done(ws, db, 999, None, NOW)


def test_high_effort_answers_are_followups(results_ws, sql, tmp_path):
    """CES on 1–7: 3 or less needs a call-back ("Pas du tout d'accord" is 1); 7 does not."""
    ws, db = results_ws
    tokens = {
        name: sql.add_invitation(
            db, sql.add_contact(db, name.upper(), f"{name}@example.fr", "pro"), "support_ces", "2026-10-24 08:00:00"
        )
        for name in ("alice", "bob")
    }
    import_responses(ws, db, sql.fixture_copy("limesurvey_support.csv", tmp_path, **tokens), NOW)
    items = list_followups(ws, db).items
    assert [(f.contact["external_id"], f.reasons, f.scores) for f in items] == [("BOB", ["high_effort"], {"ces": 1})]


def test_done_refuses_a_response_that_is_not_a_followup(answered):
    """A mistyped ID must not file a call-back against a promoter (N1 answered 10)."""
    ws, db = answered
    promoter = db.execute(
        "SELECT r.id FROM responses r JOIN contacts c ON c.id = r.contact_id WHERE c.external_id = 'N1'"
    ).fetchone()[0]
    with pytest.raises(UsageError, match=f"response {promoter} is not a follow-up"):
        mark_done(ws, db, promoter, "rappelé", NOW)
    assert db.execute("SELECT COUNT(*) FROM followups").fetchone()[0] == 0


def test_forgotten_people_leave_the_followups_but_their_scores_stay(answered):
    from cxctl.privacy.erasure import forget

    ws, db = answered
    counted = db.execute("SELECT COUNT(*) FROM responses WHERE status = 'counted'").fetchone()[0]
    forget(ws, db, "N0", NOW)
    assert [f.contact["external_id"] for f in list_followups(ws, db).items] == ["N2", "D0"]
    assert all(f.contact["external_id"] for f in list_followups(ws, db, include_done=True).items)
    assert db.execute("SELECT COUNT(*) FROM responses WHERE status = 'counted'").fetchone()[0] == counted


def test_cli_followups_csv_and_done(answered, cli):
    ws, _ = answered
    code, out, _ = cli("followups", "-w", str(ws.root), "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["external_id"] for r in rows] == ["N2", "N0", "D0"]
    assert json.loads(rows[2]["event_attributes"]) == {"order": "CMD-0", "carrier": "Colissimo"}
    code, out, _ = cli("followups", "-w", str(ws.root))
    assert code == 0 and "CMD-0" in out and "Colissimo" in out  # the table shows the event's attributes too
    code, _, err = cli("followups", "done", rows[0]["id"], "--note", "ok", "-w", str(ws.root))
    assert code == 0 and "marked done" in err
    code, out, _ = cli(
        "followups",
        "done",
        rows[0]["id"],
        "--note",
        "rappelée",
        "--json",
        "--now",
        "2026-11-11T09:00",
        "-w",
        str(ws.root),
    )
    assert code == 0 and json.loads(out) == {
        "id": int(rows[0]["id"]),
        "status": "done",
        "note": "rappelée",
        "done_at": "2026-11-11 08:00:00",
        "replaced": True,
    }
    code, out, _ = cli("followups", "-w", str(ws.root), "--json")
    assert [f["contact"]["external_id"] for f in json.loads(out)] == ["N0", "D0"]


def test_reason_counts_by_moment_segment_and_category(answered):
    ws, db = answered
    got = {(r.segment, r.category, r.reason): r.count for r in reason_counts(ws, db, "nps_relational")}
    assert got == {
        ("pro", "detractor", "delai"): 2,
        ("particulier", "promoter", "prix"): 1,
        ("particulier", "passive", "qualite"): 1,
    }


def test_frequent_words_and_pairs_without_stop_words(answered):
    ws, db = answered
    result = frequent_words(ws, db, "nps_relational")
    assert result.answers == 3
    assert result.words[0] == ("livraison", 3)
    assert ("retard", 2) in result.words and not any(w in ("en", "et", "merci") for w, _ in result.words[:2])
    assert result.pairs == [("livraison retard", 2)]
    assert frequent_words(ws, db, "nps_relational", category="promoter").answers == 1
    assert words("L'équipe n'est pas venue, the delivery was late") == ["équipe", "pas venue", "delivery", "late"]


@pytest.mark.parametrize(
    "text, expected_words, expected_pairs",
    [
        (
            "Pas satisfait du tout, jusqu’à présent aucune réponse. Pas content.",
            ["pas satisfait", "présent", "pas réponse", "pas content"],
            [],
        ),
        ("le service client ne répond pas", ["service", "client", "pas répond"], ["service client"]),
        (
            "Prix élevés et la livraison trop lente",
            ["prix", "élevés", "livraison", "lente"],
            ["prix élevés", "livraison lente"],
        ),
        ("téléphone, le service client", ["téléphone", "service", "client"], ["service client"]),
        ("I don't like it, never again", ["not like", "not again"], []),
    ],
)
def test_negations_elisions_and_clause_breaks(text, expected_words, expected_pairs):
    """A negated word is not its positive (pas satisfait ≠ satisfait); jusqu', lorsqu' are elisions; pairs
    stay within a clause and never cross a conjunction or a negation."""
    from cxctl.results.verbatims import pairs

    assert words(text) == expected_words
    assert pairs(text) == expected_pairs


def test_operational_durations_and_counts(results_ws, sql):
    ws, db = results_ws
    for i, hours in enumerate([24, 48, 72, 96, 120]):
        cid = sql.add_contact(db, f"O{i}", None)
        sql.add_event(db, cid, "order_placed", "2026-10-01 08:00:00")
        end = datetime(2026, 10, 1, 8, tzinfo=UTC).timestamp() + hours * 3600
        sql.add_event(db, cid, "order_delivered", datetime.fromtimestamp(end, UTC).strftime("%Y-%m-%d %H:%M:%S"))
        sql.add_event(db, cid, "complaint", f"2026-{10 + i % 2}-15 10:00:00")
    (row,) = durations(ws, db, "order_placed", "order_delivered")
    assert (row.period, row.n, row.median_hours) == ("2026-10", 5, 72)
    assert row.p90_hours == pytest.approx(120 - 0.1 * 4 * 24)  # 10 % of the way from 96 h to 120 h
    assert [(c.period, c.count) for c in counts(ws, db, "complaint")] == [("2026-10", 3), ("2026-11", 2)]
    assert percentile([], 0.5) is None
    with pytest.raises(UsageError, match="week, month or quarter"):
        counts(ws, db, "complaint", by="day")


def test_operational_periods_are_the_workspace_calendar_days(results_ws, sql, cli):
    """--since/--until are local days (Europe/Paris here) while the store holds UTC: an event at 00:30 on
    1 October in Paris is 22:30 UTC on 30 September, and belongs to October on both sides of the filter."""
    ws, db = results_ws
    assert ws.settings.timezone == "Europe/Paris"
    cid = sql.add_contact(db, "TZ", None)
    for utc in [
        "2026-09-30 21:30:00",  # 23:30 on 30 Sept in Paris: out
        "2026-09-30 22:30:00",  # 00:30 on 1 Oct: in
        "2026-10-31 22:30:00",  # 23:30 on 31 Oct (winter time): in
        "2026-10-31 23:30:00",
    ]:  # 00:30 on 1 Nov: out
        sql.add_event(db, cid, "complaint", utc, key=utc)
    got = counts(ws, db, "complaint", since="2026-10-01", until="2026-10-31")
    assert [(c.period, c.count) for c in got] == [("2026-10", 2)]
    assert [(c.period, c.count) for c in counts(ws, db, "complaint")] == [
        ("2026-09", 1),
        ("2026-10", 2),
        ("2026-11", 1),
    ]
    with pytest.raises(UsageError, match="invalid --since '01/10/2026': use an ISO date"):
        counts(ws, db, "complaint", since="01/10/2026")
    with pytest.raises(UsageError, match="--since 2026-11-01 is after --until 2026-10-31"):
        durations(ws, db, "order_placed", "complaint", since="2026-11-01", until="2026-10-31")
    code, _, err = cli("ops", "count", "complaint", "--since", "01/10/2026", "-w", str(ws.root))
    assert code == 2 and "use an ISO date" in err
    code, _, err = cli("followups", "--since", "1er octobre", "-w", str(ws.root))
    assert code == 2 and "invalid --since '1er octobre'" in err


def test_cli_reasons_verbatims_and_ops(answered, sql, cli):
    ws, db = answered
    code, out, _ = cli("reasons", "-w", str(ws.root), "--moment", "nps_relational", "--json")
    # The fields of old stay; the wording and the share of the category's respondents come beside them.
    assert code == 0 and {
        "moment": "nps_relational",
        "segment": "pro",
        "question": "nps_reason",
        "category": "detractor",
        "reason": "delai",
        "count": 2,
        "label": "Le délai de livraison",
        "answered": 2,
        "share": 100.0,
    } in json.loads(out)
    code, out, _ = cli("verbatims", "-w", str(ws.root), "--category", "detractor", "--json")
    assert code == 0 and json.loads(out)["words"][0] == ["livraison", 2]
    cid = sql.add_contact(db, "OPS", None)
    sql.add_event(db, cid, "order_placed", "2026-10-01 08:00:00")
    sql.add_event(db, cid, "order_delivered", "2026-10-03 20:00:00")
    code, out, _ = cli("ops", "duration", "order_placed", "order_delivered", "-w", str(ws.root), "--json")
    assert code == 0 and json.loads(out) == [{"period": "2026-10", "n": 1, "median_hours": 60.0, "p90_hours": 60.0}]
    code, out, _ = cli("ops", "count", "order_delivered", "--by", "week", "-w", str(ws.root), "--json")
    assert code == 0 and json.loads(out) == [{"period": "2026-W40", "count": 3}]
    # A typo reads as 'none happened' unless said: a warning with a suggestion, the output stays valid.
    code, out, err = cli("ops", "count", "order_delivred", "-w", str(ws.root), "--json")
    assert code == 0 and json.loads(out) == [] and "no event of type 'order_delivred'" in err
    assert "(did you mean 'order_delivered'?)" in err


def test_cli_scorecard_shows_operational_indicators_of_the_same_period(answered, sql, cli):
    ws, db = answered
    for i, (placed, delivered) in enumerate(
        [("2026-09-20 08:00:00", "2026-09-22 08:00:00"), ("2026-10-01 08:00:00", "2026-10-03 20:00:00")]
    ):
        cid = sql.add_contact(db, f"OPS{i}", None)
        sql.add_event(db, cid, "order_placed", placed)
        sql.add_event(db, cid, "order_delivered", delivered)
    args = (
        "scorecard",
        "-w",
        str(ws.root),
        "--by",
        "moment,month",
        "--since",
        "2026-10-01",
        "--until",
        "2026-10-31",
        "--now",
        "2026-11-10T12:00:00+00:00",
        "--ops",
        "order_placed..order_delivered",
        "--ops",
        "complaint",
    )
    code, out, _ = cli(*args, "--json")
    result = json.loads(out)
    assert code == 0 and result["scorecard"]["since"] == "2026-10-01"
    # Only the scorecard's period: the September delivery is left out; an event type never seen counts nothing.
    assert result["ops"] == [
        {
            "spec": "order_placed..order_delivered",
            "kind": "duration",
            "rows": [{"period": "2026-10", "n": 1, "median_hours": 60.0, "p90_hours": 60.0}],
        },
        {"spec": "complaint", "kind": "count", "rows": []},
    ]
    code, out, _ = cli(*args)
    assert code == 0 and "order_placed..order_delivered" in out and "60.0" in out
    code, _, err = cli("scorecard", "-w", str(ws.root), "--ops", "order_placed..", "--now", "2026-11-10T12:00:00+00:00")
    assert code == 2 and "START..END" in err
