"""Importing real-format exports of each survey tool: what lands, what is skipped, what goes to quarantine."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cxctl.core import tokens
from cxctl.core.errors import ImportFileError, UsageError
from cxctl.results.cases import open_cases
from cxctl.results.formats import open_export
from cxctl.results.importer import import_responses, list_quarantine, rebuild_rollups

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


def people(db, sql, moment: str, sent_at: str, names=("alice", "bob", "carol", "erin")) -> dict[str, str]:
    """Contacts alice, bob, carol, erin (segment particulier) and C-004 denis (pro), each with a sent invitation."""
    found = {}
    for name in names:
        row = db.execute("SELECT id FROM contacts WHERE external_id = ?", [name.upper()]).fetchone()
        cid = (
            row[0]
            if row
            else sql.add_contact(db, name.upper(), f"{name}@example.fr", "particulier", first_name=name.title())
        )
        found[name] = sql.add_invitation(db, cid, moment, sent_at)
    row = db.execute("SELECT id FROM contacts WHERE external_id = 'C-004'").fetchone()
    cid = row[0] if row else sql.add_contact(db, "C-004", "denis@example.fr", "pro", first_name="Denis")
    found["denis"] = sql.add_invitation(db, cid, moment, sent_at)
    return found


def export(tmp_path, name: str, *rows: str, head: str = "response_id,token,submitted_at,nps") -> Path:
    """A generic CSV export written for a test: the header, then one line per row."""
    path = tmp_path / name
    path.write_text("\n".join([head, *rows]) + "\n", encoding="utf-8")
    return path


def statuses(db) -> dict[str, str]:
    return dict(
        db.execute(
            "SELECT c.external_id || '/' || r.moment, group_concat(r.status) FROM responses r"
            " JOIN contacts c ON c.id = r.contact_id GROUP BY 1"
        ).fetchall()
    )


def answer(db, external_id: str, moment: str, question: str):
    row = db.execute(
        """SELECT a.value_num, a.value_text FROM answers a JOIN responses r ON r.id = a.response_id
                        JOIN contacts c ON c.id = r.contact_id WHERE c.external_id = ? AND r.moment = ?
                        AND a.question = ? AND r.status = 'counted'""",
        [external_id, moment, question],
    ).fetchone()
    return None if row is None else (row[0] if row[0] is not None else row[1])


def rollup_matches_raw(db) -> bool:
    """The rollups equal a full recount of the counted responses (the invariant the scorecard relies on)."""
    raw = db.execute("""SELECT r.moment, r.day, a.question, CAST(a.value_num AS INTEGER), COUNT(*) FROM responses r
                        JOIN answers a ON a.response_id = r.id WHERE r.status = 'counted' AND a.value_num IS NOT NULL
                        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4""").fetchall()
    rolled = db.execute(
        "SELECT moment, day, question, value, n FROM score_rollup WHERE n <> 0 ORDER BY 1, 2, 3, 4"
    ).fetchall()
    raw_r = db.execute(
        "SELECT moment, day, COUNT(*) FROM responses WHERE status = 'counted' GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    rolled_r = db.execute("SELECT moment, day, n FROM response_rollup WHERE n <> 0 ORDER BY 1, 2").fetchall()
    return raw == rolled and raw_r == rolled_r


@pytest.mark.parametrize(
    "name,expected",
    [
        ("qualtrics_nps.csv", "qualtrics"),
        ("surveymonkey_store.csv", "surveymonkey"),
        ("google_forms_web.csv", "google_forms"),
        ("typeform_delivery.csv", "typeform"),
        ("limesurvey_support.csv", "limesurvey"),
        ("generic_mixed.csv", "generic"),
        ("responses.jsonl", "jsonl"),
    ],
)
def test_format_is_detected_from_the_headers(tmp_path, sql, name, expected):
    export = open_export(sql.fixture_copy(name, tmp_path))
    try:
        assert export.format == expected
    finally:
        export.close()


def test_qualtrics_previews_tests_spam_skipped_partial_kept_duplicate_and_quarantine(results_ws, sql, tmp_path):
    ws, db = results_ws
    t = people(db, sql, "nps_relational", "2026-10-01 08:00:00")
    t["forged"] = t["alice"][:-3] + ("AAA" if not t["alice"].endswith("AAA") else "BBB")
    report = import_responses(ws, db, sql.fixture_copy("qualtrics_nps.csv", tmp_path, **t), NOW)

    assert report.format == "qualtrics" and report.moment == "nps_relational"
    assert report.rows_read == 10
    assert report.skipped == {"preview": 1, "test": 1, "spam": 1}
    assert (report.inserted, report.counted, report.partial, report.duplicates) == (5, 3, 1, 1)
    assert report.quarantined == {"invalid": 1, "unmatched": 1}
    assert [(p.row, p.kind) for p in report.problems] == [(11, "invalid"), (12, "unmatched")]
    assert "outside the 0–10 scale" in report.problems[0].reason
    assert "signature" in report.problems[1].reason
    # Alice answered twice: the first completed response counts, the second is kept as a duplicate.
    assert statuses(db)["ALICE/nps_relational"] == "counted,duplicate"
    assert statuses(db)["CAROL/nps_relational"] == "partial"
    assert answer(db, "ALICE", "nps_relational", "nps") == 10  # "10 - Extremely likely"
    assert answer(db, "ALICE", "nps_relational", "nps_reason") == "delai"  # label "Le délai de livraison"
    assert answer(db, "C-004", "nps_relational", "nps") == 7  # matched by ExternalReference, no token
    # Times are read in the export's time zone (ImportId row: Europe/Paris) and stored in UTC.
    submitted = db.execute(
        "SELECT submitted_at FROM responses WHERE response_key LIKE '%R_1a2B3c4D5e6F7g8'"
    ).fetchone()[0]
    assert submitted == "2026-10-05 08:01:41"
    stored = list_quarantine(db)
    assert [q.row_number for q in stored] == [11, 12] and stored[0].raw["ResponseId"] == "R_5e6F7g8H9i0J1k2"
    assert rollup_matches_raw(db)


def test_reimporting_the_same_export_changes_nothing(results_ws, sql, tmp_path):
    ws, db = results_ws
    t = people(db, sql, "nps_relational", "2026-10-01 08:00:00")
    t["forged"] = t["bob"][:-2] + "xx"
    path = sql.fixture_copy("qualtrics_nps.csv", tmp_path, **t)
    import_responses(ws, db, path, NOW)
    before = [
        db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
        for table in ("responses", "answers", "quarantine", "score_rollup")
    ]
    again = import_responses(ws, db, path, NOW)
    after = [
        db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
        for table in ("responses", "answers", "quarantine", "score_rollup")
    ]
    assert (again.inserted, again.replaced, again.unchanged) == (0, 0, 5)
    assert before == after


def test_surveymonkey_two_header_rows_us_dates_email_window_and_labels(results_ws, sql, tmp_path):
    ws, db = results_ws
    t = people(db, sql, "store_visit", "2026-10-10 08:00:00")
    report = import_responses(ws, db, sql.fixture_copy("surveymonkey_store.csv", tmp_path, **t), NOW)

    assert report.format == "surveymonkey" and report.moment == "store_visit"
    assert (report.inserted, report.counted) == (3, 3)
    assert answer(db, "ALICE", "store_visit", "nps") == 10
    assert answer(db, "BOB", "store_visit", "nps") == 2  # matched by email (any case) within match_window (10d)
    assert answer(db, "C-004", "store_visit", "nps") == 9  # "9 - Very likely", matched by Custom Data 1
    reasons = {p.row: p.reason for p in report.problems}
    assert "no contact with this email" in reasons[6]
    assert "within the match window" in reasons[7]  # carol answered 23 days after her invitation
    assert "'twelve' is neither a number nor a known label" in reasons[8]
    alice = db.execute("SELECT submitted_at FROM responses WHERE response_key LIKE '%114587236501'").fetchone()[0]
    assert alice == "2026-10-12 07:16:40"  # 10/12/2026 09:16:40 AM, Paris, month first


def test_quarantined_row_lands_once_its_contact_exists(results_ws, sql, tmp_path):
    ws, db = results_ws
    t = people(db, sql, "store_visit", "2026-10-10 08:00:00")
    path = sql.fixture_copy("surveymonkey_store.csv", tmp_path, **t)
    import_responses(ws, db, path, NOW)
    assert any("nobody@example.fr" in json.dumps(q.raw) for q in list_quarantine(db))
    cid = sql.add_contact(db, "NOBODY", "nobody@example.fr", "particulier")
    sql.add_invitation(db, cid, "store_visit", "2026-10-10 08:00:00")
    again = import_responses(ws, db, path, NOW)
    assert again.inserted == 1 and answer(db, "NOBODY", "store_visit", "nps") == 8
    assert not any("nobody@example.fr" in json.dumps(q.raw) for q in list_quarantine(db))


def test_google_forms_french_day_first_labels_and_keep_last(results_ws, sql, tmp_path):
    ws, db = results_ws
    t = people(db, sql, "web_csat", "2026-10-11 08:00:00")
    report = import_responses(ws, db, sql.fixture_copy("google_forms_web.csv", tmp_path, **t), NOW)

    assert report.format == "google_forms" and report.moment == "web_csat"
    assert (report.inserted, report.counted, report.duplicates) == (3, 2, 1)
    assert answer(db, "ALICE", "web_csat", "csat") == 5  # "Très satisfait"
    assert answer(db, "BOB", "web_csat", "csat") == 4  # keep: last → the later "Satisfait" counts
    assert statuses(db)["BOB/web_csat"] in ("duplicate,counted", "counted,duplicate")
    assert report.problems[0].row == 5 and "outside the 1–5 scale" in report.problems[0].reason
    days = [r[0] for r in db.execute("SELECT day FROM responses ORDER BY submitted_at").fetchall()]
    assert days == ["2026-10-12", "2026-10-12", "2026-10-14"]  # 12/10/2026 is 12 October for a French workspace


def test_typeform_hidden_token_utc_dates_partial_and_unknown_token(results_ws, sql, tmp_path):
    ws, db = results_ws
    t = people(db, sql, "delivery_csat", "2026-10-19 08:00:00")
    t["unknown"] = tokens.new_token(sql.secret.encode())  # signed, but no invitation carries it
    report = import_responses(ws, db, sql.fixture_copy("typeform_delivery.csv", tmp_path, **t), NOW)

    assert report.format == "typeform"
    assert (report.inserted, report.counted, report.partial) == (3, 2, 1)
    assert statuses(db)["CAROL/delivery_csat"] == "partial"
    assert report.problems[0].kind == "unmatched" and "unknown token" in report.problems[0].reason
    alice = db.execute(
        "SELECT submitted_at FROM responses WHERE response_key = 'typeform:delivery_csat:8x2k0qj1mz7c4v5b'"
    ).fetchone()
    assert alice == ("2026-10-20 08:00:12",)


def test_limesurvey_bom_semicolons_codes_and_out_of_range(results_ws, sql, tmp_path):
    ws, db = results_ws
    t = people(db, sql, "support_ces", "2026-10-24 08:00:00")
    report = import_responses(ws, db, sql.fixture_copy("limesurvey_support.csv", tmp_path, **t), NOW)

    assert report.format == "limesurvey"
    assert (report.counted, report.partial) == (2, 1)
    assert answer(db, "ALICE", "support_ces", "ces") == 7
    assert answer(db, "BOB", "support_ces", "ces") == 1  # "Pas du tout d'accord"
    assert report.quarantined == {"invalid": 1} and "outside the 1–7 scale" in report.problems[0].reason


def test_generic_csv_with_a_moment_column_and_no_way_to_match(results_ws, sql, tmp_path):
    ws, db = results_ws
    t = people(db, sql, "nps_relational", "2026-10-01 08:00:00", names=("alice",))
    t.update({"bob": people(db, sql, "delivery_csat", "2026-10-01 08:00:00", names=("bob",))["bob"]})
    report = import_responses(ws, db, sql.fixture_copy("generic_mixed.csv", tmp_path, **t), NOW)

    assert report.counted == 2
    assert answer(db, "ALICE", "nps_relational", "nps") == 9
    assert answer(db, "BOB", "delivery_csat", "csat") == 3
    assert "no token, email or external reference" in report.problems[0].reason
    assert (
        db.execute("SELECT submitted_at FROM responses WHERE response_key LIKE '%:g-1'").fetchone()[0]
        == "2026-10-05 08:00:00"
    )


def test_jsonl_nested_hidden_fields_and_bad_lines(results_ws, sql, tmp_path):
    ws, db = results_ws
    t = people(db, sql, "nps_relational", "2026-10-01 08:00:00", names=("alice", "bob"))
    report = import_responses(ws, db, sql.fixture_copy("responses.jsonl", tmp_path, **t), NOW, moment="nps_relational")
    assert report.format == "jsonl" and report.counted == 2
    assert answer(db, "BOB", "nps_relational", "nps") == 4
    assert report.problems[0].row == 3 and report.problems[0].kind == "unreadable"


def test_newer_version_replaces_older_is_ignored_and_rollups_follow(results_ws, sql, tmp_path):
    ws, db = results_ws
    t = people(db, sql, "nps_relational", "2026-10-01 08:00:00", names=("alice",))
    first = tmp_path / "v1.csv"
    first.write_text(f"response_id,token,submitted_at,nps\nx-1,{t['alice']},2026-10-05 10:00,3\n", encoding="utf-8")
    import_responses(ws, db, first, NOW, moment="nps_relational")
    newer = tmp_path / "v2.csv"
    newer.write_text(f"response_id,token,submitted_at,nps\nx-1,{t['alice']},2026-10-06 10:00,9\n", encoding="utf-8")
    report = import_responses(ws, db, newer, NOW, moment="nps_relational")
    assert report.replaced == 1 and answer(db, "ALICE", "nps_relational", "nps") == 9
    assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 1
    assert rollup_matches_raw(db)
    older = import_responses(ws, db, first, NOW, moment="nps_relational")
    assert older.unchanged == 1 and answer(db, "ALICE", "nps_relational", "nps") == 9
    # Another writer deleting a response (forget, prune) keeps the rollups exact through the triggers.
    db.execute("DELETE FROM responses")
    assert rollup_matches_raw(db)


def test_keep_first_promotes_the_earlier_response_arriving_later(results_ws, sql, tmp_path):
    ws, db = results_ws
    t = people(db, sql, "nps_relational", "2026-10-01 08:00:00", names=("alice",))
    late = tmp_path / "late.csv"
    late.write_text(f"response_id,token,submitted_at,nps\nb,{t['alice']},2026-10-09 10:00,2\n", encoding="utf-8")
    early = tmp_path / "early.csv"
    early.write_text(f"response_id,token,submitted_at,nps\na,{t['alice']},2026-10-03 10:00,10\n", encoding="utf-8")
    import_responses(ws, db, late, NOW, moment="nps_relational")
    report = import_responses(ws, db, early, NOW, moment="nps_relational")
    assert report.counted == 1
    assert answer(db, "ALICE", "nps_relational", "nps") == 10
    assert rollup_matches_raw(db)


def test_unreadable_inputs_raise_with_the_fix(results_ws, sql, tmp_path):
    ws, db = results_ws
    with pytest.raises(UsageError, match="--moment"):
        bare = tmp_path / "bare.csv"
        bare.write_text("email,submitted_at,nps\na@example.fr,2026-10-05,9\n", encoding="utf-8")
        import_responses(ws, db, bare, NOW)
    with pytest.raises(ImportFileError, match="no column answers a question"):
        other = tmp_path / "other.csv"
        other.write_text("email,submitted_at,score\na@example.fr,2026-10-05,9\n", encoding="utf-8")
        import_responses(ws, db, other, NOW, moment="nps_relational")
    with pytest.raises(UsageError, match="unknown moment"):
        import_responses(ws, db, other, NOW, moment="nps_relationel")


def test_cli_import_reports_quarantine_and_exits_1(results_ws, sql, tmp_path, cli):
    ws, db = results_ws
    t = people(db, sql, "support_ces", "2026-10-24 08:00:00")
    path = sql.fixture_copy("limesurvey_support.csv", tmp_path, **t)
    code, out, err = cli("responses", "import", str(path), "-w", str(ws.root), "--json", "--now", "2026-11-10T12:00")
    assert code == 1
    data = json.loads(out)
    assert data["counted"] == 2 and data["quarantined"] == {"invalid": 1}
    assert f"{path}:5: invalid: ces: '0' is outside the 1–7 scale" in err
    code, out, _ = cli("responses", "quarantine", "-w", str(ws.root), "--json")
    assert code == 0 and json.loads(out)[0]["row_number"] == 5
    code, out, _ = cli("responses", "quarantine", "--moment", "support_ces", "-w", str(ws.root), "--json")
    assert code == 0 and len(json.loads(out)) == 1
    code, _, err = cli("responses", "quarantine", "--moment", "support_cs", "-w", str(ws.root))
    assert code == 2 and "unknown moment 'support_cs'" in err


def test_a_survey_url_in_the_token_column_carries_the_token(results_ws, sql, tmp_path):
    """Some tools export the landing URL instead of the hidden field: t= or token= in its query is the token."""
    ws, db = results_ws
    t = people(db, sql, "nps_relational", "2026-10-01 08:00:00")
    path = export(
        tmp_path,
        "urls.csv",
        f"u1,https://survey.example/s/nps_relational?lang=fr&t={t['alice']},2026-10-02 10:00,9",
        f"u2,https://survey.example/s/nps_relational?token={t['bob']}&utm_source=mail,2026-10-02 11:00,3",
    )
    report = import_responses(ws, db, path, NOW, moment="nps_relational")
    assert (report.inserted, report.counted, report.quarantined_total) == (2, 2, 0)
    assert answer(db, "ALICE", "nps_relational", "nps") == 9 and answer(db, "BOB", "nps_relational", "nps") == 3


def test_a_forgotten_persons_row_is_kept_in_quarantine_without_its_cells(results_ws, sql, tmp_path):
    """After `forget`, an old export that still carries the person must not bring their data back: the row is
    recorded (file, row, reason) with empty cells."""
    from cxctl.privacy.erasure import forget

    ws, db = results_ws
    t = people(db, sql, "store_visit", "2026-10-10 08:00:00")
    forget(ws, db, "BOB", NOW)
    report = import_responses(ws, db, sql.fixture_copy("surveymonkey_store.csv", tmp_path, **t), NOW)
    reasons = {p.row: p.reason for p in report.problems}
    assert reasons[4].startswith("forgotten (GDPR erasure)")
    [raw] = [json.loads(r[0]) for r in db.execute("SELECT raw FROM quarantine WHERE row_number = 4")]
    assert set(raw.values()) == {""} and len(raw) > 5
    assert not any("Bob@Example.FR" in r[0] or "Durand" in r[0] for r in db.execute("SELECT raw FROM quarantine"))


def test_a_forgotten_persons_answer_arriving_by_token_counts_without_its_free_text(results_ws, sql, tmp_path):
    from cxctl.privacy.erasure import forget

    ws, db = results_ws
    t = people(db, sql, "nps_relational", "2026-10-01 08:00:00")
    forget(ws, db, "ALICE", NOW)
    path = export(
        tmp_path,
        "late.csv",
        f"r1,{t['alice']},2026-10-02 10:00,4,Alice Martin ici : rappelez-moi au 06 12 34 56 78",
        f"r2,{t['bob']},2026-10-02 10:00,9,Très bien",
        head="response_id,token,submitted_at,nps,nps_why",
    )
    assert import_responses(ws, db, path, NOW, moment="nps_relational").counted == 2
    texts = dict(
        db.execute(
            "SELECT r.response_key, a.value_text FROM answers a JOIN responses r ON r.id = a.response_id "
            "WHERE a.question = 'nps_why'"
        ).fetchall()
    )
    assert sorted(texts.values(), key=str) == [None, "Très bien"]
    assert db.execute("SELECT COUNT(*) FROM answers WHERE question = 'nps' AND value_num = 4").fetchone()[0] == 1


def test_a_row_quarantined_again_shows_the_latest_reason(results_ws, sql, tmp_path):
    ws, db = results_ws
    t = people(db, sql, "store_visit", "2026-10-10 08:00:00")
    path = sql.fixture_copy("surveymonkey_store.csv", tmp_path, **t)
    import_responses(ws, db, path, NOW)
    first = db.execute("SELECT reason FROM quarantine WHERE row_number = 7").fetchone()[0]
    assert "within the match window" in first  # carol answered 23 days after her invitation
    db.execute("DELETE FROM invitations WHERE contact_id = (SELECT id FROM contacts WHERE external_id = 'CAROL')")
    db.execute("DELETE FROM contacts WHERE external_id = 'CAROL'")
    import_responses(ws, db, path, NOW)
    rows = db.execute("SELECT reason FROM quarantine WHERE row_number = 7").fetchall()
    assert rows == [("no contact with this email or external reference: import the contacts, then import again",)]


def test_a_corrected_response_leaves_the_quarantine(results_ws, sql, tmp_path):
    """r1 is exported with an impossible score, quarantined, corrected in the tool and exported again: once it
    lands, its old invalid version is no longer listed (same tool, moment and response id)."""
    ws, db = results_ws
    t = people(db, sql, "nps_relational", "2026-10-01 08:00:00")
    first = export(tmp_path, "v1.csv", f"r1,{t['alice']},2026-10-02 10:00,11", f"r2,{t['bob']},2026-10-02 10:00,12")
    second = export(tmp_path, "v2.csv", f"r1,{t['alice']},2026-10-02 10:05,10")
    assert import_responses(ws, db, first, NOW, moment="nps_relational").quarantined == {"invalid": 2}
    report = import_responses(ws, db, second, NOW, moment="nps_relational")
    assert report.counted == 1
    left = [json.loads(r[0])["response_id"] for r in db.execute("SELECT raw FROM quarantine")]
    assert left == ["r2"]  # r2 was never corrected


def test_a_row_quarantined_without_its_moment_leaves_the_quarantine_when_it_lands(results_ws, sql, tmp_path):
    """A row with a response id is staged without its digest; when it lands on a later import (its invitation
    now known), its quarantine entry — kept without a moment, so only its digest names it — must still go."""
    ws, db = results_ws
    t = people(db, sql, "nps_relational", "2026-10-01 08:00:00")
    late = tokens.new_token(sql.secret.encode())
    path = export(tmp_path, "v.csv", f"r2,{late},2026-10-02 10:00,3", f"r1,{t['alice']},2026-10-02 10:00,9")
    first = import_responses(ws, db, path, NOW)
    assert (first.inserted, first.quarantined) == (1, {"unmatched": 1})
    assert db.execute("SELECT moment FROM quarantine").fetchall() == [(None,)]
    cid = sql.add_contact(db, "LATE", "late@example.fr")
    sql.add_invitation(db, cid, "nps_relational", "2026-10-01 08:00:00", token=late)
    again = import_responses(ws, db, path, NOW)
    assert (again.inserted, again.unchanged, again.quarantined) == (1, 1, {})
    assert db.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0] == 0


def test_nan_and_infinite_scores_are_invalid_rows_not_a_crash(results_ws, sql, tmp_path):
    """float() reads 'NaN' and 'inf': such a cell is quarantined as invalid, the other rows land."""
    ws, db = results_ws
    t = people(db, sql, "nps_relational", "2026-10-01 08:00:00")
    path = export(
        tmp_path,
        "odd.csv",
        f"a,{t['alice']},2026-10-02 10:00,NaN",
        f"b,{t['bob']},2026-10-02 10:00,inf",
        f"c,{t['carol']},2026-10-02 10:00,-Infinity",
        f"d,{t['erin']},2026-10-02 10:00,8",
    )
    report = import_responses(ws, db, path, NOW, moment="nps_relational")
    assert (report.counted, report.quarantined) == (1, {"invalid": 3})
    assert all("is not a number of the 0–10 scale" in p.reason for p in report.problems)


def test_cli_import_wrong_arguments_exit_2_and_write_nothing(results_ws, sql, tmp_path, cli):
    ws, db = results_ws
    t = people(db, sql, "support_ces", "2026-10-24 08:00:00")
    path = sql.fixture_copy("limesurvey_support.csv", tmp_path, **t)
    for args, message in [
        ((str(tmp_path / "absent.csv"),), "absent.csv: no such file"),
        ((str(tmp_path / "absent.jsonl"),), "absent.jsonl: no such file"),
        ((str(path), "--format", "qualtrix"), "unknown format 'qualtrix'"),
        ((str(path), "--encoding", "klingon"), "unknown encoding 'klingon'"),
    ]:
        code, _, err = cli("responses", "import", *args, "-w", str(ws.root), "--now", "2026-11-10T12:00")
        assert code == 2 and message in err, (args, code, err)
    assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 0


def test_validate_rejects_a_mapping_of_a_question_the_moment_does_not_ask(results_ws, cli):
    ws, _ = results_ws
    path = ws.root / "ecommerce.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("columns: {ces: CES1}", "columns: {ces: CES1, nps: Q9}"),
        encoding="utf-8",
    )
    code, out, err = cli("validate", str(ws.root))
    assert code == 1
    assert "moments.support_ces.responses.columns.nps" in out + err and "is not asked by this moment" in out + err


def test_any_sequence_of_imports_keeps_one_counted_response_per_invitation_and_exact_rollups(results_ws, sql, tmp_path):
    """Random files (repeated response ids and tokens, partials, unknown tokens, newer and older versions) go
    through both the bulk path (each invitation answered once) and the choosing path; the store stays coherent."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    ws, db = results_ws
    invitations = list(people(db, sql, "nps_relational", "2026-10-01 08:00:00").values())
    forged = tokens.new_token(b"another workspace")
    # The reason is sometimes not a choice of the question: that row is rejected although its NPS is valid.
    row = st.tuples(
        st.integers(0, len(invitations)),
        st.sampled_from("abcdef"),
        st.integers(1, 9),
        st.integers(0, 10),
        st.booleans(),
        st.sampled_from(["prix", "", "Le délai de livraison", "inconnu"]),
    )

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.lists(row, min_size=1, max_size=6), min_size=1, max_size=3))
    def check(batches):
        for table in (
            "followup_history",
            "followups",
            "answers",
            "responses",
            "score_rollup",
            "response_rollup",
            "quarantine",
        ):
            db.execute(f"DELETE FROM {table}")
        path = tmp_path / "export.csv"
        for batch in batches:
            lines = ["response_id,token,submitted_at,nps,complete,nps_reason"]
            for invitation, rid, day, nps, complete, reason in batch:
                token = invitations[invitation] if invitation < len(invitations) else forged
                lines.append(f"{rid},{token},2026-10-0{day} 10:00,{nps},{int(complete)},{reason}")
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            report = import_responses(ws, db, path, NOW, moment="nps_relational")
            assert report.rows_read == len(batch)
        assert rollup_matches_raw(db)
        per_invitation = db.execute("""SELECT invitation_id, SUM(status = 'counted'), SUM(complete) FROM responses
                                       GROUP BY invitation_id""").fetchall()
        for _, counted, complete in per_invitation:
            assert counted == (1 if complete else 0)
        again = import_responses(ws, db, path, NOW, moment="nps_relational")
        assert again.inserted == again.replaced == 0 and rollup_matches_raw(db)
        # With the follow-up cases opened, the rollups kept by the imports equal a rebuild from scratch, and
        # every id written with the foreign-key checks off (settle) points at its row.
        open_cases(ws, db, NOW)
        kept = rollups(db)
        rebuild_rollups(db)
        assert kept == rollups(db) and db.execute("PRAGMA foreign_key_check").fetchall() == []

    check()


def rollups(db) -> list:
    """The three rollup tables' counts (zero counts left by the triggers are no count)."""
    return [
        db.execute(f"SELECT * FROM {table} WHERE n <> 0 ORDER BY 1, 2, 3").fetchall()
        for table in ("score_rollup", "response_rollup", "sent_rollup")
    ]


def test_fast_local_time_reading_agrees_with_the_full_parser_across_dst():
    """The import caches the UTC hour of each local hour; it must give what the full parser gives, including
    the spring-forward and fall-back hours of Europe/Paris."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from cxctl.core.timeutil import to_db
    from cxctl.results.formats import DAY_FIRST, Clock, parse_time

    paris = ZoneInfo("Europe/Paris")
    clock = Clock(paris, paris, utc=False, order=DAY_FIRST)
    around = st.sampled_from(
        [datetime(2026, 3, 29), datetime(2026, 10, 25), datetime(2026, 12, 31), datetime(2026, 6, 1)]
    )

    @settings(max_examples=200, deadline=None)
    @given(
        around,
        st.integers(-3 * 3600, 3 * 3600),
        st.sampled_from(["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]),
    )
    def check(base, seconds, pattern):
        text = (base + timedelta(seconds=seconds)).strftime(pattern)
        when = parse_time(text, paris)
        assert clock.read(text) == (to_db(when), when.astimezone(paris).date().isoformat())

    check()


def test_a_forked_worker_reading_the_file_gives_the_same_import(results_ws, sql, tmp_path, monkeypatch):
    """Big files are read by a forked worker while this process writes; forced here on a small file, the
    report and what lands must equal the in-process import (and a failure in the worker must surface)."""
    import cxctl.results.importer as responses

    ws, db = results_ws
    t = people(db, sql, "nps_relational", "2026-10-01 08:00:00")
    path = tmp_path / "mixed.csv"
    path.write_text(
        "response_id,token,submitted_at,nps,nps_reason\n"
        f"a,{t['alice']},2026-10-05 10:00,9,prix\nb,{t['bob']},2026-10-05 11:00,11,prix\n"
        f"c,{tokens.new_token(b'forged')},2026-10-05 12:00,3,\nd,{t['carol']},15/10/2026 13:00,4,inconnu\n"
        f"e,{t['erin']},2026-10-06 09:30,0,Le prix\n",
        encoding="utf-8",
    )

    def run(parallel: bool):
        for table in ("answers", "responses", "score_rollup", "response_rollup", "quarantine"):
            db.execute(f"DELETE FROM {table}")
        monkeypatch.setattr(responses, "parallel_possible", lambda size: parallel)
        report = import_responses(ws, db, path, NOW, moment="nps_relational")
        stored = db.execute("SELECT response_key, status, day, score_nps FROM responses ORDER BY 1").fetchall()
        kept = db.execute("SELECT row_number, kind, reason FROM quarantine ORDER BY 1").fetchall()
        return report, stored, kept

    in_worker, in_process = run(True), run(False)
    assert in_worker == in_process
    report, stored, kept = in_worker
    assert report.counted == 2 and [row[0] for row in kept] == [3, 4, 5] and rollup_matches_raw(db)
    # Bytes that are not UTF-8 on line 3, with --encoding utf-8: the error is raised while reading.
    path.write_bytes(b"response_id,token,submitted_at,nps\na,x,2026-10-05 10:00,9\nb,\xff,2026-10-05 10:00,9\n")
    errors = []
    for parallel in (True, False):
        monkeypatch.setattr(responses, "parallel_possible", lambda size, parallel=parallel: parallel)
        with pytest.raises(ImportFileError, match="not valid utf-8") as caught:
            import_responses(ws, db, path, NOW, moment="nps_relational", encoding="utf-8")
        errors.append(str(caught.value))
    assert errors[0] == errors[1]


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "31/11/2026 10:32",
            "the date '31/11/2026 10:32' does not exist: November 2026 has 30 days; fix the day in the file",
        ),
        (
            "26/11/2026 25:00",
            "unreadable date '26/11/2026 25:00' (hour must be in 0..23): check the day, month and time",
        ),
        ("demain", "unreadable date 'demain': use ISO 8601 (2026-11-20 14:05:00) or dd/mm/yyyy hh:mm"),
    ],
)
def test_an_impossible_date_names_its_value_and_the_fix(text, message):
    from zoneinfo import ZoneInfo

    from cxctl.results.formats import DAY_FIRST, parse_time

    with pytest.raises(ValueError) as caught:
        parse_time(text, ZoneInfo("Europe/Paris"), order=DAY_FIRST)
    assert str(caught.value) == message


def test_a_jsonl_number_too_long_for_python_is_an_unreadable_line_not_a_crash(results_ws, sql, tmp_path):
    """json.loads raises a plain ValueError (no `msg`, no `colno`) for an integer of more than 4300 digits: the
    line goes to quarantine like any other line that is not JSON, and the lines around it land."""
    ws, db = results_ws
    t = people(db, sql, "nps_relational", "2026-10-01 08:00:00", names=("alice",))
    path = tmp_path / "big.jsonl"
    path.write_text(
        f'{{"response_id": "j-1", "token": "{t["alice"]}", "submitted_at": "2026-10-05T08:00:00Z", "nps": 9}}\n'
        f'{{"response_id": "j-2", "submitted_at": "2026-10-05T09:00:00Z", "nps": {"1" * 5000}}}\n',
        encoding="utf-8",
    )
    report = import_responses(ws, db, path, NOW, moment="nps_relational")
    assert report.counted == 1 and answer(db, "ALICE", "nps_relational", "nps") == 9
    assert [(p.row, p.kind) for p in report.problems] == [(2, "unreadable")]
    assert report.problems[0].reason.startswith("not valid JSON (")


def test_an_import_into_a_store_in_use_reads_no_table_of_the_store_in_full(results_ws, sql, tmp_path):
    """Issue 18: a daily import costs what its file holds, not what the store holds. Every statement of a
    second import (new rows, a newer version, a second answer to one invitation, a row matched by email,
    unknown tokens and addresses) and of the cases it opens is planned without a full scan of a store table (SQLite
    without statistics assumes big tables, so these plans are the ones a big store gets)."""
    ws, db = results_ws
    t = people(db, sql, "nps_relational", "2026-10-01 08:00:00")
    path = tmp_path / "first.csv"
    path.write_text(
        f"response_id,token,submitted_at,nps\nr1,{t['alice']},2026-10-02 10:00,9\nr2,{t['bob']},2026-10-02 10:00,3\n",
        encoding="utf-8",
    )
    import_responses(ws, db, path, NOW, moment="nps_relational")
    open_cases(ws, db, NOW)
    forged = tokens.new_token(b"another workspace")
    path = tmp_path / "second.csv"
    path.write_text(
        "response_id,token,submitted_at,nps,email\n"
        f"r1,{t['alice']},2026-10-03 10:00,2,\nr3,{t['bob']},2026-10-03 10:00,8,\nr4,{t['carol']},2026-10-03 10:00,1,\n"
        f"r5,,2026-10-03 10:00,4,erin@example.fr\nr6,{forged},2026-10-03 10:00,5,\n"
        # More than 100 rows: the import asks whether anyone was forgotten of the store, not row by row.
        + "".join(f"x{i},,2026-10-03 10:00,5,nobody{i}@example.fr\n" for i in range(100)),
        encoding="utf-8",
    )
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    report = import_responses(ws, db, path, NOW, moment="nps_relational")
    opened = open_cases(ws, db, NOW)
    db.conn.set_trace_callback(None)
    assert (report.inserted, report.replaced, report.quarantined_total) == (3, 1, 101) and opened
    store_tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    # One row per dimension, migration, signing key, and the mark of the cases checked.
    store_tables -= {"rollup_dimensions", "migrations", "signing_keys", "case_scan"}
    full_scans = []
    for statement in dict.fromkeys(statements):
        if statement.split(None, 1)[0].upper() not in ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH"):
            continue
        if statement.strip() == "SELECT EXISTS (SELECT 1 FROM responses)":
            continue  # stops at the first row
        for row in db.execute("EXPLAIN QUERY PLAN " + statement).fetchall():
            words = row[3].split()
            if words[0] == "SCAN" and words[1] in store_tables:
                full_scans.append((row[3], " ".join(statement.split())[:160]))
    assert full_scans == [], "\n".join(map(str, full_scans))
