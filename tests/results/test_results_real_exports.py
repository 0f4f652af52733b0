"""Issue 12: what real survey-tool exports and a new team met — date orders, unread questions, stray `t`
columns, missing-value markers, partial rows, surveys without invitation, unrecognised formats."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from cxctl.core.errors import ImportFileError
from cxctl.results.importer import import_responses

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_an_export_without_tokens_needs_no_secret(results_ws, sql, tmp_path, monkeypatch):
    """Matching by email uses no token, so no secret: `responses import` demanded CXCTL_SECRET all the same."""
    ws, db = results_ws
    cid = sql.add_contact(db, "ALICE", "alice@example.fr")
    sql.add_invitation(db, cid, "nps_relational", "2026-10-01 08:00:00")
    monkeypatch.delenv("CXCTL_SECRET")
    path = write(
        tmp_path,
        "r.csv",
        "response_id,email,submitted_at,nps,nps_why,nps_reason\n"
        "1,alice@example.fr,2026-10-05 10:00,9,,\n2,bob@example.fr,2026-10-05 11:00,3,,\n",
    )
    report = import_responses(ws, db, path, NOW, moment="nps_relational")
    assert report.counted == 1 and report.quarantined == {"unmatched": 1}


def invite(db, sql, moment: str, sent_at: str, *names: str) -> dict[str, str]:
    """A contact per name (external id NAME, name@example.com) with a sent invitation to `moment`; their tokens."""
    out = {}
    for name in names:
        row = db.execute("SELECT id FROM contacts WHERE external_id = ?", [name.upper()]).fetchone()
        cid = row[0] if row else sql.add_contact(db, name.upper(), f"{name}@example.com")
        out[name] = sql.add_invitation(db, cid, moment, sent_at)
    return out


def days(db) -> list[str]:
    return [r[0] for r in db.execute("SELECT day FROM responses ORDER BY submitted_at")]


GOOGLE_US_HEAD = "Timestamp,Email Address,Êtes-vous satisfait de votre livraison ?,Un commentaire ?,token\n"


def test_a_us_google_forms_export_is_read_month_first_in_a_french_workspace(results_ws, sql, tmp_path):
    """Issue 12: in a French workspace, `7/1/2024 22:05:36` was read 7 January while `7/13/2024` was 13 July —
    one file, two readings. The 13 decides the order of the whole file, rows before it included."""
    ws, db = results_ws
    t = invite(db, sql, "web_csat", "2024-06-30 08:00:00", "ann", "ben", "cat", "dan")
    path = write(
        tmp_path,
        "google_us.csv",
        GOOGLE_US_HEAD
        + f"7/1/2024 22:05:36,ann@example.com,5,,{t['ann']}\n7/2/2024 9:15:00,ben@example.com,4,,{t['ben']}\n"
        + f"7/13/2024 10:00:00,cat@example.com,3,,{t['cat']}\n7/6/2024 23:59:59,dan@example.com,5,,{t['dan']}\n",
    )
    report = import_responses(ws, db, path, NOW)
    assert report.format == "google_forms" and report.counted == 4 and report.problems == []
    stored = sorted(r[0] for r in db.execute("SELECT submitted_at FROM responses"))
    # Europe/Paris is UTC+2 in July: 7/1/2024 22:05:36 is 1 July, 20:05:36 UTC.
    assert stored == ["2024-07-01 20:05:36", "2024-07-02 07:15:00", "2024-07-06 21:59:59", "2024-07-13 08:00:00"]


def test_an_ambiguous_file_is_refused_with_the_fix_and_read_with_date_format(results_ws, sql, tmp_path, cli):
    ws, db = results_ws
    t = invite(db, sql, "web_csat", "2024-06-30 08:00:00", "ann", "ben")
    path = write(
        tmp_path,
        "google_us.csv",
        GOOGLE_US_HEAD
        + f"7/1/2024 22:05:36,ann@example.com,5,,{t['ann']}\n7/2/2024 9:15:00,ben@example.com,4,,{t['ben']}\n",
    )
    with pytest.raises(ImportFileError) as caught:
        import_responses(ws, db, path, NOW)
    message = str(caught.value)
    assert message.startswith(f"{path}:2: the dates of column 'Timestamp' read both day first and month first")
    assert (
        "--date-format '%m/%d/%Y %H:%M:%S' (month first" in message
        and "--date-format '%d/%m/%Y %H:%M:%S' (day first)" in message
    )
    assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 0  # nothing read, nothing guessed
    code, out, err = cli(
        "responses",
        "import",
        str(path),
        "--date-format",
        "%m/%d/%Y %H:%M:%S",
        "--json",
        "--now",
        "2026-11-10T12:00",
        "-w",
        str(ws.root),
    )
    assert code == 0, err
    assert sorted(days(db)) == ["2024-07-01", "2024-07-02"]


def test_a_file_never_mixes_two_date_orders(results_ws, sql, tmp_path):
    """A row that can only be read the other way (13/7 in a month-first file) is quarantined with the reason,
    never read in another order than the rest of the file."""
    ws, db = results_ws
    t = invite(db, sql, "web_csat", "2024-06-30 08:00:00", "ann", "ben", "cat")
    path = write(
        tmp_path,
        "mixed.csv",
        GOOGLE_US_HEAD
        + f"7/13/2024 10:00:00,ann@example.com,5,,{t['ann']}\n7/1/2024 10:00:00,ben@example.com,4,,{t['ben']}\n"
        + f"14/7/2024 10:00:00,cat@example.com,3,,{t['cat']}\n",
    )
    report = import_responses(ws, db, path, NOW)
    assert report.counted == 2 and days(db) == ["2024-07-01", "2024-07-13"]
    assert [(p.row, p.kind) for p in report.problems] == [(4, "invalid")]
    assert (
        "'14/7/2024 10:00:00' cannot be read month first (mm/dd/yyyy), the order of the file's other dates"
        in report.problems[0].reason
    )


def test_excel_resaved_short_us_dates_are_read_month_first(results_ws, sql, tmp_path):
    """A CSV resaved by a US Excel: `M/D/YY H:MM`, two-digit years, no seconds."""
    ws, db = results_ws
    t = invite(db, sql, "nps_relational", "2024-06-30 08:00:00", "ann", "ben")
    path = write(
        tmp_path,
        "excel.csv",
        "response_id,token,submitted_at,nps,nps_why,nps_reason\n"
        f"1,{t['ann']},7/1/24 22:05,9,,\n2,{t['ben']},12/25/24 9:30,6,,\n",
    )
    report = import_responses(ws, db, path, NOW, moment="nps_relational")
    assert report.counted == 2 and days(db) == ["2024-07-01", "2024-12-25"]


def test_a_declared_date_format_is_checked_by_validate(results_ws, cli):
    ws, _ = results_ws
    path = ws.root / "ecommerce.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "      format: google_forms\n", '      format: google_forms\n      date_format: "%m/%d/%Y %H:%M:%S"\n'
        ),
        encoding="utf-8",
    )
    assert cli("validate", str(ws.root))[0] == 0
    path.write_text(path.read_text(encoding="utf-8").replace('"%m/%d/%Y %H:%M:%S"', '"mm/dd/yyyy"'), encoding="utf-8")
    code, out, err = cli("validate", str(ws.root))
    assert code == 1 and "moments.web_csat.responses.date_format" in out + err and "has no % code" in out + err


def qualtrics(tmp_path: Path, name: str, rows: list[str], questions: tuple[str, ...]) -> Path:
    """A Qualtrics CSV export (three header rows: ids, question texts, ImportIds with the time zone)."""
    ids = (
        [
            "StartDate",
            "EndDate",
            "Status",
            "Progress",
            "Finished",
            "RecordedDate",
            "ResponseId",
            "RecipientEmail",
            "ExternalReference",
        ]
        + [f"Q{i + 1}" for i in range(len(questions))]
        + ["t"]
    )
    texts = [
        "Start Date",
        "End Date",
        "Response Type",
        "Progress",
        "Finished",
        "Recorded Date",
        "Response ID",
        "Recipient Email",
        "External Data Reference",
        *questions,
        "t",
    ]
    imports = ['"{""ImportId"":""' + c + '"",""timeZone"":""Europe/Paris""}"' for c in ids]
    quoted = ",".join('"' + t.replace('"', '""') + '"' for t in texts)
    return write(tmp_path, name, "\n".join([",".join(ids), quoted, ",".join(imports), *rows]) + "\n")


def test_a_question_no_column_answers_is_an_error_not_silently_unread(results_ws, sql, tmp_path):
    """Issue 12: the NPS question's wording differed from the export's column title and no mapping was given:
    `counted 40`, no problem, exit 0 — and an empty NPS cell beside a 100 % response rate."""
    ws, db = results_ws
    t = invite(db, sql, "store_visit", "2026-10-01 08:00:00", "ann")
    path = qualtrics(
        tmp_path,
        "q.csv",
        [f"2026-10-05 10:00:00,2026-10-05 10:01:00,IP Address,100,True,2026-10-05 10:01:00,R_1,,,9,Super,{t['ann']}"],
        ("How likely are you to recommend us?", "Why this score?"),
    )
    with pytest.raises(ImportFileError) as caught:
        import_responses(ws, db, path, NOW, moment="store_visit")
    message = str(caught.value)
    assert (
        "question 'nps' of moment 'store_visit' ('Recommanderiez-vous notre boutique à un proche ?') matches no column "
        "of the export"
    ) in message
    assert "map it under moments.store_visit.responses.columns (nps: <export column>)" in message
    assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 0


def test_a_secondary_question_missing_from_a_generic_file_is_a_note(results_ws, sql, tmp_path):
    ws, db = results_ws
    t = invite(db, sql, "nps_relational", "2026-10-01 08:00:00", "ann")
    path = write(tmp_path, "g.csv", f"response_id,token,submitted_at,nps,why\n1,{t['ann']},2026-10-05 10:00,9,Bien\n")
    report = import_responses(ws, db, path, NOW, moment="nps_relational")
    assert report.counted == 1
    assert [n.split(": ", 1)[1].split(" (")[0] for n in report.notes] == [
        "question 'nps_why' of moment 'nps_relational'",
        "question 'nps_reason' of moment 'nps_relational'",
    ]
    assert all(n.endswith("its answers are not read") for n in report.notes)


def test_a_reimport_after_a_mapping_change_rereads_the_rows(results_ws, sql, tmp_path):
    """Issue 12: after the mapping was fixed, the re-import said `unchanged 40` and the scores never arrived."""
    from cxctl.results.scorecard import compute_scorecard
    from cxctl.validation import load_workspace

    ws, db = results_ws
    t = invite(db, sql, "nps_relational", "2026-10-01 08:00:00", "ann", "ben")
    questions = (
        "How likely are you to buy from us again?",
        "Why this score?",
        "What matters most?",
        "How likely are you to recommend us to a friend?",
    )
    path = qualtrics(
        tmp_path,
        "q.csv",
        [
            f"2026-10-05 10:00:00,2026-10-05 10:01:00,IP Address,100,True,2026-10-05 10:01:00,R_1,,,3,Bien,Le prix,10,{t['ann']}",
            f"2026-10-05 11:00:00,2026-10-05 11:01:00,IP Address,100,True,2026-10-05 11:01:00,R_2,,,2,Bof,Le prix,9,{t['ben']}",
        ],
        questions,
    )
    first = import_responses(ws, db, path, NOW)  # the moment's mapping says nps: Q1 — the wrong column
    assert first.counted == 2
    card = compute_scorecard(ws, db, NOW, moment="nps_relational")
    assert card.rows[0].indicators["nps"].value == -100
    yaml = ws.root / "ecommerce.yaml"
    yaml.write_text(yaml.read_text(encoding="utf-8").replace("{nps: Q1,", "{nps: Q4,"), encoding="utf-8")
    ws = load_workspace(ws.root)
    again = import_responses(ws, db, path, NOW)
    assert (again.replaced, again.unchanged, again.counted) == (2, 0, 2)
    card = compute_scorecard(ws, db, NOW, moment="nps_relational")
    assert card.rows[0].indicators["nps"].value == 100 and card.rows[0].responses == 2
    assert sorted(r[0] for r in db.execute("SELECT score_nps FROM responses")) == [9, 10]
    # The same file and mapping once more: nothing to re-read, unless asked for.
    assert import_responses(ws, db, path, NOW).unchanged == 2
    forced = import_responses(ws, db, path, NOW, reread=True)
    assert (forced.replaced, forced.unchanged, forced.counted, forced.duplicates) == (2, 0, 2, 0)
    rolled = db.execute("SELECT SUM(n) FROM response_rollup WHERE moment = 'nps_relational'").fetchone()[0]
    assert (
        rolled == 2 and compute_scorecard(ws, db, NOW, moment="nps_relational").rows[0].indicators["nps"].value == 100
    )


def test_cli_reread_and_notes(results_ws, sql, tmp_path, cli):
    ws, db = results_ws
    t = invite(db, sql, "nps_relational", "2026-10-01 08:00:00", "ann")
    path = write(tmp_path, "g.csv", f"response_id,token,submitted_at,nps\n1,{t['ann']},2026-10-05 10:00,9\n")
    args = ("responses", "import", str(path), "-m", "nps_relational", "--now", "2026-11-10T12:00", "-w", str(ws.root))
    code, out, err = cli(*args)
    assert code == 0 and "question 'nps_why' of moment 'nps_relational'" in err
    code, out, err = cli(*args, "--reread", "--json")
    assert code == 0 and '"replaced": 1' in out


def test_a_column_named_t_that_holds_hours_is_not_the_token(results_ws, sql, tmp_path):
    """Issue 12: a `t` column holding the hour of the visit was read as the token, and every row quarantined as
    forged although its external_id matched an invitation."""
    ws, db = results_ws
    invite(db, sql, "nps_relational", "2026-10-01 08:00:00", "ann", "ben")
    path = write(
        tmp_path,
        "export.csv",
        "response_id,external_id,submitted_at,t,nps,nps_why,nps_reason\n"
        "1,ANN,2026-10-05 10:00,14,9,,\n2,BEN,2026-10-05 11:00,09:30,4,,\n",
    )
    report = import_responses(ws, db, path, NOW, moment="nps_relational")
    assert report.counted == 2 and report.problems == []
    assert any("column 't' holds no invitation tokens (2 cell(s), e.g. '14')" in note for note in report.notes)


def test_a_real_token_in_a_t_column_is_still_checked(results_ws, sql, tmp_path):
    from cxctl.core import tokens

    ws, db = results_ws
    t = invite(db, sql, "nps_relational", "2026-10-01 08:00:00", "ann")
    forged = tokens.new_token(b"another-workspace-secret-0123456789")
    path = write(
        tmp_path,
        "export.csv",
        "response_id,external_id,submitted_at,t,nps,nps_why,nps_reason\n"
        f"1,,2026-10-05 10:00,{t['ann']},9,,\n2,ANN,2026-10-05 11:00,{forged},4,,\n",
    )
    report = import_responses(ws, db, path, NOW, moment="nps_relational")
    assert report.counted == 1 and report.notes == []
    assert [p.row for p in report.problems] == [3] and "invalid token signature" in report.problems[0].reason


@pytest.mark.parametrize("marker", ["", "NA", "N/A", "n/a", "-", "#N/A"])
def test_usual_missing_markers_are_no_answer_not_a_rejected_row(results_ws, sql, tmp_path, marker):
    """Issue 12: `NA` (R's missing value) in a secondary question rejected the whole row, NPS included."""
    ws, db = results_ws
    t = invite(db, sql, "nps_relational", "2026-10-01 08:00:00", "ann")
    path = write(
        tmp_path,
        "r.csv",
        f"response_id,token,submitted_at,nps,nps_why,nps_reason\n1,{t['ann']},2026-10-05 10:00,9,{marker},{marker}\n",
    )
    report = import_responses(ws, db, path, NOW, moment="nps_relational")
    assert report.counted == 1 and report.problems == []
    answers = db.execute("SELECT question, value_num, value_text FROM answers ORDER BY question").fetchall()
    assert answers == [("nps", 9.0, None)]


TYPEFORM_HEAD = (
    "#,Êtes-vous satisfait de votre livraison ?,Un commentaire ?,t,Response Type,Submit Date (UTC),Network ID\n"
)


def test_typeform_partial_rows_are_partial_not_a_missing_column(results_ws, sql, tmp_path):
    """Issue 12: Typeform rows with an empty Submit Date were quarantined as "no submission time: export the
    submission date column" — the column was there; the row is partial."""
    ws, db = results_ws
    t = invite(db, sql, "delivery_csat", "2026-10-19 08:00:00", "ann", "ben")
    path = write(
        tmp_path,
        "typeform.csv",
        TYPEFORM_HEAD
        + f"8x2k0qj1,5,Parfait,{t['ann']},completed,2026-10-20 08:00:12,a1b2\n"
        + f"9y3l1rk2,2,,{t['ben']},partial,,b2c3\n"
        + "0z4m2sl3,,,,partial,,c3d4\n",
    )
    report = import_responses(ws, db, path, NOW)
    assert report.format == "typeform" and report.counted == 1
    assert report.skipped == {"partial": 2} and report.problems == []


def test_an_unfinished_qualtrics_row_is_reported_unfinished_not_unmatched(results_ws, sql, tmp_path):
    ws, db = results_ws
    t = invite(db, sql, "nps_relational", "2026-10-01 08:00:00", "ann", "ben")
    row = "2026-10-05 {h}:00:00,2026-10-05 {h}:01:00,IP Address,{p},{f},2026-10-05 {h}:01:00,R_{h},,,{nps},,,{t}"
    path = qualtrics(
        tmp_path,
        "q.csv",
        [
            row.format(h=10, p=100, f="True", nps=9, t=t["ann"]),
            row.format(h=11, p=40, f="False", nps=3, t=""),
            row.format(h=12, p=60, f="False", nps=7, t=t["ben"]),
        ],
        ("How likely?", "Why?", "What matters most?"),
    )
    report = import_responses(ws, db, path, NOW)
    assert (report.counted, report.partial) == (1, 1)  # ben's unfinished row is tied to his invitation: kept, partial
    assert report.skipped == {"unfinished": 1} and report.problems == []


def match_mode(ws, moment_block_end: str, mode: str):
    """The workspace reloaded with `responses.match: mode` added to the moment whose responses block ends so."""
    from cxctl.validation import load_workspace

    path = ws.root / "ecommerce.yaml"
    text = path.read_text(encoding="utf-8")
    assert moment_block_end in text
    path.write_text(text.replace(moment_block_end, f"{moment_block_end}      match: {mode}\n"), encoding="utf-8")
    return load_workspace(ws.root)


def rollups_exact(db) -> bool:
    raw = db.execute(
        "SELECT moment, day, COUNT(*) FROM responses WHERE status = 'counted' GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    rolled = db.execute("SELECT moment, day, n FROM response_rollup WHERE n <> 0 ORDER BY 1, 2").fetchall()
    return raw == rolled


def test_match_contact_counts_answers_without_invitation_in_scores_not_in_the_rate(results_ws, sql, tmp_path, cli):
    """Issue 12: an in-the-moment survey (a link on the website) has answers without invitation; they were all
    quarantined. With responses.match: contact they count — in the scores, not in the response rate."""
    from cxctl.results.scorecard import compute_scorecard

    ws, db = results_ws
    ws = match_mode(ws, "      keep: last\n", "contact")
    t = invite(db, sql, "web_csat", "2026-10-01 08:00:00", "ann", "dan")  # 2 sent
    for name in ("ben", "cat"):
        sql.add_contact(db, name.upper(), f"{name}@example.com")
    path = write(
        tmp_path,
        "web.csv",
        "Horodateur,Adresse e-mail,Êtes-vous satisfait de votre livraison ?,Un commentaire ?,token\n"
        f"15/10/2026 09:00:00,ann@example.com,5,,{t['ann']}\n15/10/2026 10:00:00,ben@example.com,4,,\n"
        "16/10/2026 11:00:00,cat@example.com,2,,\n16/10/2026 12:00:00,nobody@example.com,5,,\n",
    )
    report = import_responses(ws, db, path, NOW)
    assert report.counted == 3 and [p.kind for p in report.problems] == ["unmatched"]
    assert "no contact with this email" in report.problems[0].reason
    free = db.execute(
        "SELECT COUNT(*) FROM responses WHERE invitation_id IS NULL AND contact_id IS NOT NULL"
    ).fetchone()[0]
    assert free == 2
    card = compute_scorecard(ws, db, NOW, moment="web_csat")
    row = card.rows[0]
    assert (row.responses, row.sent, row.uninvited) == (3, 2, 2)
    assert row.indicators["csat"].n == 3
    assert row.indicators["response_rate"].value == 50.0  # ann of the 2 invited; ben and cat were not invited
    assert card.notes == [
        "2 response(s) came without invitation (web_csat: responses.match contact/none): they count "
        "in the scores and in `responses`, not in the response rate"
    ]
    code, out, err = cli("scorecard", "-m", "web_csat", "--now", "2026-11-10T12:00", "-w", str(ws.root))
    assert code == 0 and "not in the response rate" in err
    by_segment = compute_scorecard(ws, db, NOW, moment="web_csat", by=["segment"])
    assert sum(r.uninvited for r in by_segment.rows) == 2
    # Again: nothing new; a newer version of ben's answer replaces it and still counts.
    assert import_responses(ws, db, path, NOW).unchanged == 3
    newer = write(
        tmp_path,
        "web2.csv",
        "Horodateur,Adresse e-mail,Êtes-vous satisfait de votre livraison ?,Un commentaire ?,token\n"
        "15/10/2026 10:00:00,ben@example.com,1,Finalement non,\n",
    )
    assert import_responses(ws, db, newer, NOW).counted == 1
    assert db.execute("SELECT COUNT(*) FROM responses WHERE status = 'counted'").fetchone()[0] == 4
    assert rollups_exact(db)


def test_match_none_counts_anonymous_answers(results_ws, sql, tmp_path):
    """A QR code on a receipt: no invitation, often no email either."""
    ws, db = results_ws
    ws = match_mode(ws, "      match_window: 10d\n", "none")
    path = write(
        tmp_path,
        "store.csv",
        "Respondent ID,Collector ID,Start Date,End Date,IP Address,Email Address,How likely are you to recommend our shop to a friend?,Why this score?\n"
        ",,,,,,Response,Open-Ended Response\n"
        "1001,77,10/12/2026 09:15:02 AM,10/12/2026 09:16:40 AM,203.0.113.21,,10,Accueil\n"
        "1002,77,10/12/2026 02:01:00 PM,10/12/2026 02:03:10 PM,203.0.113.22,,3,\n",
    )
    report = import_responses(ws, db, path, NOW)
    assert report.counted == 2 and report.problems == []
    assert (
        db.execute("SELECT COUNT(*) FROM responses WHERE contact_id IS NULL AND status = 'counted'").fetchone()[0] == 2
    )
    assert rollups_exact(db)


def test_match_is_a_checked_key(results_ws, cli):
    ws, _ = results_ws
    path = ws.root / "ecommerce.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("      keep: last\n", "      keep: last\n      match: contacts\n"),
        encoding="utf-8",
    )
    code, out, err = cli("validate", str(ws.root))
    assert code == 1 and "moments.web_csat.responses.match" in out + err


def test_an_unrecognised_export_says_so_instead_of_going_to_the_plain_csv_moment(results_ws, sql, tmp_path, cli):
    """Issue 12: an export of an unknown shape went to the only generic moment and failed on that moment's column."""
    ws, db = results_ws
    yaml = ws.root / "ecommerce.yaml"
    yaml.write_text(
        yaml.read_text(encoding="utf-8").replace("      format: google_forms\n", "      format: generic\n"),
        encoding="utf-8",
    )
    path = write(tmp_path, "export.csv", "Réponse n°,Date de la réponse,Note,Commentaire\n1,2026-10-05 10:00,5,Bien\n")
    code, out, err = cli("responses", "import", str(path), "--now", "2026-11-10T12:00", "-w", str(ws.root))
    assert code == 1 and out == ""
    assert (
        f"{path}: export format not recognised (columns 'Réponse n°', 'Date de la réponse', 'Note', 'Commentaire')"
        in err
    )
    assert "looked for Qualtrics (ResponseId and Finished columns" in err and "generic CSV (a submitted_at" in err
    assert "name the format with --format (qualtrics, surveymonkey" in err
    assert db.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0] == 0


def test_a_legacy_qualtrics_export_is_read_as_qualtrics(results_ws, sql, tmp_path):
    ws, db = results_ws
    t = invite(db, sql, "nps_relational", "2026-10-01 08:00:00", "ann")
    head = [f"V{i}" for i in range(1, 11)] + ["Q1", "Q2", "Q3", "t"]
    names = [
        "ResponseID",
        "ResponseSet",
        "Name",
        "ExternalDataReference",
        "EmailAddress",
        "IPAddress",
        "Status",
        "StartDate",
        "EndDate",
        "Finished",
        "How likely are you to recommend us?",
        "Why?",
        "What matters most?",
        "t",
    ]
    path = write(
        tmp_path,
        "legacy.csv",
        ",".join(head)
        + "\n"
        + ",".join(names)
        + "\n"
        + f"R_1,Default Response Set,,,,203.0.113.7,0,2026-10-05 09:58:12,2026-10-05 10:01:40,1,9,Bien,Le prix,{t['ann']}\n"
        + "R_2,Default Response Set,,,,,1,2026-10-05 11:00:00,2026-10-05 11:01:00,1,0,test,,\n",
    )
    report = import_responses(ws, db, path, NOW)
    assert report.format == "qualtrics" and report.moment == "nps_relational"
    assert report.counted == 1 and report.skipped == {"preview": 1} and report.problems == []
    assert db.execute("SELECT submitted_at FROM responses").fetchone()[0] == "2026-10-05 08:01:40"


def test_a_typeform_export_with_a_question_group_row_is_read_as_typeform(results_ws, sql, tmp_path):
    ws, db = results_ws
    t = invite(db, sql, "delivery_csat", "2026-10-19 08:00:00", "ann")
    path = write(
        tmp_path,
        "typeform.csv",
        ",Votre livraison,Votre livraison,,,,\n"
        "#,Êtes-vous satisfait de votre livraison ?,Un commentaire ?,t,Start Date (UTC),Submit Date (UTC),Network ID\n"
        f"8x2k0qj1,5,Parfait,{t['ann']},2026-10-20 07:58:01,2026-10-20 08:00:12,a1b2\n",
    )
    report = import_responses(ws, db, path, NOW)
    assert report.format == "typeform" and report.counted == 1 and report.problems == []


def test_a_trimmed_surveymonkey_export_is_read_as_surveymonkey(results_ws, sql, tmp_path):
    ws, db = results_ws
    invite(db, sql, "store_visit", "2026-10-10 08:00:00", "ann")
    path = write(
        tmp_path,
        "sm.csv",
        "Respondent ID,End Date,Email Address,How likely are you to recommend our shop to a friend?,"
        "Why this score?\n,,,Response,Open-Ended Response\n"
        "114587236501,10/12/2026 09:16:40 AM,ann@example.com,10,Accueil chaleureux\n",
    )
    report = import_responses(ws, db, path, NOW)
    assert report.format == "surveymonkey" and report.counted == 1 and report.problems == []
    assert db.execute("SELECT day FROM responses").fetchone()[0] == "2026-10-12"  # SurveyMonkey's US order


def test_google_forms_email_column_named_email(results_ws, sql, tmp_path):
    """Issue 12: Google Forms writes `Email` as well as `Email Address`; only the latter was found."""
    ws, db = results_ws
    invite(db, sql, "web_csat", "2026-10-11 08:00:00", "ann")
    path = write(
        tmp_path,
        "gf.csv",
        "Timestamp,Email,Êtes-vous satisfait de votre livraison ?,Un commentaire ?\n"
        "12/10/2026 09:15:02,ann@example.com,Très satisfait,Parfait\n"
        "14/10/2026 09:15:02,ann@example.com,Satisfait,\n",
    )
    report = import_responses(ws, db, path, NOW)
    assert report.counted == 1 and report.duplicates == 1 and report.problems == []


def test_an_empty_column_in_the_mapping_is_an_error_with_the_fix(results_ws, sql, tmp_path):
    """`columns: {nps: ""}` named no column: the reader got no column index and the import crashed (TypeError)."""
    from cxctl.validation import load_workspace

    ws, db = results_ws
    yaml = ws.root / "ecommerce.yaml"
    yaml.write_text(yaml.read_text(encoding="utf-8").replace("{nps: Q1,", '{nps: "",'), encoding="utf-8")
    ws = load_workspace(ws.root)
    t = invite(db, sql, "nps_relational", "2026-10-01 08:00:00", "ann")
    path = qualtrics(
        tmp_path,
        "q.csv",
        [
            f"2026-10-05 10:00:00,2026-10-05 10:01:00,IP Address,100,True,2026-10-05 10:01:00,R_1,,,9,Bien,Le prix,{t['ann']}"
        ],
        ("How likely are you to recommend us to a friend?", "Why this score?", "What matters most?"),
    )
    with pytest.raises(ImportFileError) as caught:
        import_responses(ws, db, path, NOW)
    assert "moments.nps_relational.responses.columns.nps is empty" in str(caught.value)
    assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 0
