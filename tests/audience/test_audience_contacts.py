"""Contacts import from real-format exports: each preset, each quirk, merges, rejects and summaries."""

from __future__ import annotations

import pytest

from cxctl.audience.contacts import FORGOTTEN, import_contacts, rejects_path
from cxctl.core.errors import UsageError
from cxctl.store import email_hash


def test_salesforce_report_export_with_footer_duplicate_and_bad_email(
    workspace, db, fixture_file, rows_of, rejects_of, now
):
    path = fixture_file("salesforce_report.csv")
    result = import_contacts(workspace, db, path, now)
    assert result.preset == "salesforce_report"
    assert result.counts() == {
        "read": 5,
        "inserted": 3,
        "updated": 0,
        "unchanged": 0,
        "duplicates": 1,
        "rejected": 1,
        "suppressed": 1,
    }
    assert result.footer == [
        "Grand Totals (5 records)",
        "Confidential Information - Do Not Distribute",
        "Copyright (c) 2000-2024 salesforce.com, inc. All rights reserved.",
    ]
    rows = rows_of(db)
    assert set(rows) == {"0035g00000AbCdE01", "0035g00000AbCdE02", "0035g00000AbCdE03"}
    jeanne = rows["0035g00000AbCdE01"]
    # The later duplicate row wins; the domain is lower-cased, the local part kept.
    assert (jeanne["first_name"], jeanne["last_name"], jeanne["email"]) == (
        "Jeanne",
        "Martin-Durand",
        "jeanne.martin@example.fr",
    )
    assert jeanne["company"] == "Boulangerie Martin" and jeanne["role"] == "Gérante" and jeanne["country"] == "France"
    assert jeanne["attributes"] == {
        "mailing_street": "12 rue de la Paix",
        "email_opt_out": "0",
        "created_date": "03/04/2021",
    }
    assert jeanne["email_hash"] == email_hash("jeanne.martin@example.fr")
    assert rows["0035g00000AbCdE02"]["company"] == "Bernard & Fils, SARL"
    assert db.execute("SELECT email, reason, source FROM suppressions").fetchall() == [
        ("luc.bernard@example.com", "opt_out", "import")
    ]
    rejects = rejects_of(rejects_path(path))
    assert len(rejects) == 1 and rejects[0]["row"] == "7" and "invalid email 'paul@@example'" in rejects[0]["reason"]
    assert rejects[0]["Contact ID"] == "0035g00000AbCdE04" and rejects[0]["Last Name"] == "Sans Courriel"


def test_reimporting_the_same_file_changes_nothing(workspace, db, fixture_file, rows_of, now):
    path = fixture_file("salesforce_report.csv")
    import_contacts(workspace, db, path, now)
    before = rows_of(db)
    again = import_contacts(workspace, db, path, now.replace(day=2))
    assert (again.inserted, again.updated, again.unchanged, again.duplicates) == (0, 0, 3, 1)
    assert again.previously_imported == "2026-04-01 08:00:00"
    assert rows_of(db) == before  # not even updated_at moved
    assert db.execute("SELECT COUNT(*), COUNT(DISTINCT sha256) FROM import_log").fetchone() == (2, 1)


def test_salesforce_data_loader_export(workspace, db, fixture_file, rows_of, now):
    result = import_contacts(workspace, db, fixture_file("salesforce_dataloader.csv"), now)
    assert result.preset == "salesforce_dataloader" and (result.inserted, result.rejected) == (3, 0)
    rows = rows_of(db)
    john = rows["0035g00000XyZ0002"]
    assert (john["first_name"], john["email"], john["country"], john["company"]) == (
        "John",
        "John.Smith@example.co.uk",
        "GB",
        "Smith Ltd",
    )
    assert "createddate" not in john["attributes"]  # system timestamps are ignored by the preset
    suppressed = dict(db.execute("SELECT email, reason FROM suppressions").fetchall())
    assert suppressed == {"John.Smith@example.co.uk": "opt_out", "emile.zola@example.fr": "bounce"}


def test_hubspot_export(workspace, db, fixture_file, rows_of, now):
    result = import_contacts(workspace, db, fixture_file("hubspot.csv"), now)
    assert result.preset == "hubspot" and result.inserted == 3
    rows = rows_of(db)
    assert [(r["language"], r["timezone"]) for r in rows.values()] == [
        ("fr", "Europe/Paris"),
        ("en", "Europe/London"),
        ("fr-FR", None),
    ]
    assert rows["1501"]["company"] == "Lefèvre, Conseil" and rows["1501"]["role"] == "Directrice"
    assert rows["1501"]["attributes"]["lifecycle_stage"] == "customer"
    assert db.execute("SELECT email FROM suppressions").fetchall() == [("tom.baker@example.com",)]


def test_dynamics_export_saved_by_excel_in_cp1252_with_semicolons(workspace, db, fixture_file, rows_of, now):
    result = import_contacts(workspace, db, fixture_file("dynamics.csv"), now)
    assert (result.preset, result.encoding, result.delimiter) == ("dynamics", "cp1252", ";")
    rows = rows_of(db)
    francois = rows["5d1f0c2a-8e1b-ee11-9cbd-000d3a4b1c01"]
    assert (francois["first_name"], francois["last_name"], francois["company"]) == (
        "François",
        "Lemaître",
        "Société Générale d'Études",
    )
    assert (
        "do_not_modify_row_checksum" not in francois["attributes"]
        and francois["attributes"]["full_name"] == "François Lemaître"
    )
    assert db.execute("SELECT email, reason FROM suppressions").fetchall() == [
        ("helene.roux@societe.example", "opt_out")
    ]


def test_french_excel_sheet_with_a_workspace_mapping(workspace, db, fixture_file, rows_of, now):
    result = import_contacts(workspace, db, fixture_file("excel_fr.csv"), now, mapping_id="excel_fr")
    assert (result.encoding, result.delimiter, result.inserted, result.rejected) == ("cp1252", ";", 3, 0)
    rows = rows_of(db)
    zoe, gerard, anais = rows["C001"], rows["C002"], rows["C003"]
    assert (zoe["first_name"], zoe["last_name"], zoe["email"], zoe["language"]) == (
        "Zoé",
        "Lefèvre",
        "zoe.lefevre@exemple.fr",
        "fr",
    )
    assert (zoe["segment"], gerard["segment"], anais["segment"]) == ("b2c", "b2b", "b2c")  # value map, any case
    assert gerard["language"] == "de" and gerard["last_name"] == "Müller"
    assert zoe["attributes"] == {"revenue": "1234.50", "date_de_1er_achat": "2021-04-03"}
    assert gerard["attributes"] == {"revenue": "98.00", "date_de_1er_achat": "2020-11-12"}


def test_french_headers_are_mapped_automatically_and_ambiguous_values_kept_as_written(
    workspace, db, fixture_file, rows_of, now
):
    result = import_contacts(workspace, db, fixture_file("excel_fr.csv"), now)
    assert result.preset is None
    assert result.columns == {
        "Prénom": "first_name",
        "NOM": "last_name",
        "Adresse e-mail": "email",
        "Langue": "language",
        "Type de client": "segment",
        "Chiffre d'affaires": "attributes.chiffre_d_affaires",
        "Date de 1er achat": "attributes.date_de_1er_achat",
        "N° client": "external_id",
    }
    zoe = rows_of(db)["C001"]
    # No declared date format or decimal comma: values are not guessed.
    assert zoe["attributes"] == {"chiffre_d_affaires": "1 234,50", "date_de_1er_achat": "03/04/2021"}
    assert zoe["segment"] == "Particulier"


def test_tab_separated_utf8_with_bom_and_no_external_id(workspace, db, fixture_file, rows_of, now):
    result = import_contacts(workspace, db, fixture_file("contacts_tab.tsv"), now)
    assert (result.encoding, result.delimiter, result.inserted) == ("utf-8-sig", "\t", 2)
    alice = rows_of(db)["alice@example.org"]
    assert alice["external_id"] is None and alice["country"] == "SE" and alice["attributes"] == {"loyalty_tier": "gold"}


def test_every_bad_row_is_rejected_with_its_row_and_reason_and_the_good_rows_land(
    workspace, db, fixture_file, rows_of, rejects_of, now
):
    path = fixture_file("bad_rows.csv")
    result = import_contacts(workspace, db, path, now)
    assert result.counts() == {
        "read": 7,
        "inserted": 2,
        "updated": 0,
        "unchanged": 0,
        "duplicates": 0,
        "rejected": 5,
        "suppressed": 0,
    }
    assert set(rows_of(db)) == {"B1", "B7"}
    assert rows_of(db)["B7"]["timezone"] == "America/Montreal"
    rejects = rejects_of(rejects_path(path))
    assert [r["row"] for r in rejects] == ["3", "5", "6", "7", "8"]
    reasons = [r["reason"] for r in rejects]
    assert reasons[0].startswith("invalid email 'not-an-email'")
    assert reasons[1].startswith("no email and no external id")
    assert reasons[2].startswith("unknown language 'xx-invalid-language!'")
    assert reasons[3].startswith("unknown time zone 'Mars/Olympus'")
    assert reasons[4].startswith("the row has 6 fields but the header has 5")
    assert rejects[0]["first_name"] == "Mauvais" and result.rejects_file == str(rejects_path(path))


def test_a_changed_attribute_updates_the_contact_and_absent_columns_are_kept(workspace, db, tmp_path, rows_of, now):
    first = tmp_path / "crm.csv"
    first.write_text(
        "id;email;segment;tier;city\nK1;a@example.fr;b2c;gold;Lyon\nK2;b@example.fr;b2b;silver;Paris\n",
        encoding="utf-8",
    )
    import_contacts(workspace, db, first, now)
    second = tmp_path / "crm2.csv"
    second.write_text("id;email;tier\nK1;a@example.fr;platinum\nK2;b@example.fr;silver\n", encoding="utf-8")
    result = import_contacts(workspace, db, second, now)
    assert (result.inserted, result.updated, result.unchanged) == (0, 2, 0)  # K2's row differs from its first import
    rows = rows_of(db)
    assert rows["K1"]["attributes"] == {"tier": "platinum", "city": "Lyon"} and rows["K1"]["segment"] == "b2c"
    again = import_contacts(workspace, db, second, now)
    assert (again.updated, again.unchanged) == (0, 2)
    cleared = tmp_path / "crm3.csv"
    cleared.write_text("id;email;tier\nK1;a@example.fr;\n", encoding="utf-8")
    import_contacts(workspace, db, cleared, now)
    assert rows_of(db)["K1"]["attributes"] == {"city": "Lyon"}  # an empty cell removes the attribute


def test_merge_by_email_when_the_id_arrives_later(workspace, db, fixture_file, tmp_path, rows_of, now):
    import_contacts(workspace, db, fixture_file("contacts_tab.tsv"), now)
    later = tmp_path / "crm.csv"
    # The match is on the email hash, which ignores case: ALICE@ is alice@, and the id-less contact adopts the id.
    later.write_text("Customer ID,Email,First name\nCRM-8,ALICE@EXAMPLE.org,Alicia\n", encoding="utf-8")
    result = import_contacts(workspace, db, later, now)
    assert (result.inserted, result.updated) == (0, 1)
    later.write_text("Customer ID,Email,First name\nCRM-9,alice@example.org,Alice\n", encoding="utf-8")
    result = import_contacts(workspace, db, later, now)
    assert result.inserted == 1  # a second id on the same address is another person (a shared mailbox)
    rows = rows_of(db)
    assert rows["CRM-8"]["first_name"] == "Alicia" and rows["CRM-8"]["attributes"]["loyalty_tier"] == "gold"


def test_in_file_row_without_id_merges_into_the_row_with_the_same_email(workspace, db, tmp_path, rows_of, now):
    path = tmp_path / "mixed.csv"
    path.write_text(
        "email,external_id,first_name\nx@example.fr,,Sans id\nx@example.fr,X1,Avec id\ny@example.fr,,Y\ny@example.fr,,Y bis\n"
    )
    result = import_contacts(workspace, db, path, now)
    assert (result.inserted, result.duplicates) == (2, 2)
    assert rows_of(db)["X1"]["first_name"] == "Avec id" and rows_of(db)["y@example.fr"]["first_name"] == "Y bis"


def test_forgotten_people_are_rejected(workspace, db, fixture_file, rows_of, rejects_of, now):
    db.execute(
        "INSERT INTO forgotten (email_hash, forgotten_at) VALUES (?, '2026-01-01 00:00:00')",
        [email_hash("luc.bernard@example.com")],
    )
    path = fixture_file("salesforce_report.csv")
    result = import_contacts(workspace, db, path, now)
    assert result.rejected == 2 and "0035g00000AbCdE02" not in rows_of(db)
    assert [r["reason"] for r in rejects_of(rejects_path(path))] == [
        FORGOTTEN,
        rejects_of(rejects_path(path))[1]["reason"],
    ]


def test_rejects_file_keeps_no_personal_data_of_forgotten_people(workspace, db, tmp_path, rejects_of, now):
    db.execute(
        "INSERT INTO forgotten (email_hash, forgotten_at) VALUES (?, '2026-01-01 00:00:00')",
        [email_hash("luc@example.fr")],
    )
    path = tmp_path / "crm.csv"
    path.write_text(
        "id;email;first_name;city\nK1;Luc@Example.FR;Luc;Lyon\nK2;ana@example.fr;Ana;Paris\nK3;bad-address;Eve;Nice\n",
        encoding="utf-8",
    )
    result = import_contacts(workspace, db, path, now)
    assert (result.inserted, result.rejected) == (1, 2)
    rejects = rejects_of(rejects_path(path))
    assert rejects[0] == {"row": "2", "reason": FORGOTTEN, "id": "", "email": "", "first_name": "", "city": ""}
    assert "luc" not in rejects_path(path).read_text(encoding="utf-8-sig").lower()
    # Other rejects still carry their original row, so it can be fixed and imported again.
    assert (rejects[1]["row"], rejects[1]["id"], rejects[1]["email"], rejects[1]["city"]) == (
        "4",
        "K3",
        "bad-address",
        "Nice",
    )


def test_crm_do_not_contact_column_suppresses_and_later_imports_never_lift_it(workspace, db, tmp_path, now):
    path = tmp_path / "crm.csv"
    path.write_text("email;Ne pas contacter\nsam@example.fr;Oui\nmax@example.fr;Non\n", encoding="utf-8")
    assert import_contacts(workspace, db, path, now).suppressed == 1
    path.write_text("email;Ne pas contacter\nsam@example.fr;Non\n", encoding="utf-8")
    import_contacts(workspace, db, path, now)
    assert db.execute("SELECT email, reason FROM suppressions").fetchall() == [("sam@example.fr", "do_not_contact")]


def test_dry_run_reports_the_same_counts_and_writes_nothing(workspace, db, fixture_file, now):
    path = fixture_file("salesforce_report.csv")
    result = import_contacts(workspace, db, path, now, dry_run=True)
    assert (result.inserted, result.rejected, result.suppressed, result.dry_run) == (3, 1, 1, True)
    assert result.rejects == [{"row": 7, "reason": result.rejects[0]["reason"]}] and result.rejects_file is None
    assert not rejects_path(path).exists()
    assert (
        db.execute(
            "SELECT (SELECT COUNT(*) FROM contacts) + (SELECT COUNT(*) FROM suppressions) + (SELECT COUNT(*) FROM import_log)"
        ).fetchone()[0]
        == 0
    )


def test_a_file_without_email_or_id_column_is_refused_with_the_fix(workspace, db, tmp_path, now):
    path = tmp_path / "x.csv"
    path.write_text("name,city\nA,B\n")
    with pytest.raises(
        UsageError, match=r"no column holds an email or an external id \(columns: name, city\).*--mapping"
    ):
        import_contacts(workspace, db, path, now)


def test_unknown_mapping_and_preset_are_usage_errors(workspace, db, fixture_file, now):
    path = fixture_file("hubspot.csv")
    with pytest.raises(UsageError, match="unknown mapping 'excel'.*did you mean 'excel_fr'"):
        import_contacts(workspace, db, path, now, mapping_id="excel")
    with pytest.raises(UsageError, match="mapping 'livraisons' is for events"):
        import_contacts(workspace, db, path, now, mapping_id="livraisons")
    with pytest.raises(UsageError, match="unknown preset 'sap'"):
        import_contacts(workspace, db, path, now, preset="sap")


def test_a_big_import_rebuilds_the_contact_indexes_it_dropped(workspace, db, tmp_path, rows_of, now):
    indexes = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'contacts' ORDER BY name"
    before = db.execute(indexes).fetchall()
    path = tmp_path / "big.csv"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("id,email,tier\n")
        handle.writelines(f"B{n},b{n}@example.fr,{n % 3}\n" for n in range(50_001))
        handle.write("B7,b7@example.fr,changed\n")  # a duplicate at the end: the last row wins
    result = import_contacts(workspace, db, path, now)
    assert (result.inserted, result.duplicates) == (50_001, 1)
    assert db.execute(indexes).fetchall() == before
    plan = " ".join(
        str(r)
        for r in db.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM contacts WHERE email_hash = ?", [email_hash("b9@example.fr")]
        )
    )
    assert "contacts_email_hash" in plan
    assert db.execute("SELECT attributes FROM contacts WHERE external_id = 'B7'").fetchone() == ('{"tier":"changed"}',)


def test_reimport_recognises_unchanged_rows_and_still_lets_the_last_duplicate_win(
    workspace, db, tmp_path, rows_of, now
):
    path = tmp_path / "crm.csv"
    path.write_text(
        "id;email;tier\nK1;k1@example.fr;gold\nK2;k2@example.fr;gold\nK3;k3@example.fr;gold\nK4;k4@example.fr;gold\n"
    )
    import_contacts(workspace, db, path, now)
    path.write_text(
        "id;email;tier\n"
        "K1;k1@example.fr;gold\nK1;k1@example.fr;silver\n"  # unchanged, then changed: the change wins
        "K2;k2@example.fr;bronze\nK2;k2@example.fr;gold\n"  # changed, then back as stored: stays as stored
        "K3;k3@example.fr;gold\nK3;k3@example.fr;gold\n"  # unchanged twice
        "K4;k4@example.fr;gold\nK5;k5@example.fr;new\n"
    )
    result = import_contacts(workspace, db, path, now)
    assert (result.inserted, result.updated, result.unchanged, result.duplicates) == (1, 1, 3, 3)
    tiers = {k: v["attributes"]["tier"] for k, v in rows_of(db).items()}
    assert tiers == {"K1": "silver", "K2": "gold", "K3": "gold", "K4": "gold", "K5": "new"}
