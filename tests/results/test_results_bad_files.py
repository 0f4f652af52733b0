"""Issue 14 for survey exports: a bad row (an open quote, bytes that are not UTF-8, a control character) goes to
quarantine with its line and reason; every other row lands, its free text byte-exact."""

from __future__ import annotations

from datetime import UTC, datetime

from cxctl.results.importer import import_responses, list_quarantine

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


def test_bad_rows_of_an_export_are_quarantined_and_the_rows_around_them_land(results_ws, sql, tmp_path):
    ws, db = results_ws
    t = {}
    for name in ("alice", "bob", "carol", "erin", "denis"):
        cid = sql.add_contact(db, name.upper(), f"{name}@example.fr", "particulier", first_name=name.title())
        t[name] = sql.add_invitation(db, cid, "nps_relational", "2026-10-01 08:00:00")
    data = (
        "\n".join(
            [
                "response_id,token,submitted_at,nps,nps_why",
                f'a,{t["alice"]},2026-10-02 10:00,9,"Très bien, ""vraiment""',  # lines 2-3: a good multi-line answer
                'À bientôt"',
                f'b,{t["bob"]},2026-10-02 10:00,8,"Trop cher',  # line 4: an open quote
                f"c,{t['carol']},2026-10-02 10:00,7,Livraison rapide",
                f"e,{t['erin']},2026-10-02 10:00,10,Caf\udcc3(",  # line 6: not UTF-8
                f'd,{t["denis"]},2026-10-02 10:00,6,"Bof, bof"',
                f"n,{t['bob']},2026-10-02 10:00,5,Nu\x00ll",  # line 8: a NUL
            ]
        )
        + "\n"
    )
    path = tmp_path / "export.csv"
    path.write_bytes(data.encode("utf-8", "surrogateescape"))
    report = import_responses(ws, db, path, NOW, moment="nps_relational")
    answers = dict(
        db.execute("""SELECT c.external_id, a.value_text FROM answers a JOIN responses r ON r.id = a.response_id
                                 JOIN contacts c ON c.id = r.contact_id WHERE a.question = 'nps_why'""").fetchall()
    )
    assert answers == {"ALICE": 'Très bien, "vraiment"\nÀ bientôt', "CAROL": "Livraison rapide", "DENIS": "Bof, bof"}
    assert report.counted == 3 and report.quarantined == {"unreadable": 3}
    problems = [(q.row_number, q.kind, q.reason) for q in list_quarantine(db)]
    assert [(row, kind) for row, kind, _ in problems] == [(4, "unreadable"), (6, "unreadable"), (8, "unreadable")]
    assert problems[0][2].startswith("a quote opened on this line is not closed: it took lines 4-")
    assert problems[1][2].startswith(
        f"not valid UTF-8 at byte offset {data.encode('utf-8', 'surrogateescape').index(b'Caf') + 3}"
    )
    assert problems[2][2].startswith("control character U+0000 (NUL) in column 'nps_why'")
