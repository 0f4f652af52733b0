"""Phone columns of real-looking French exports (issue 16): national forms, dots, `+33 (0)`, `0033`, the
leading 0 Excel drops, Belgian, Swiss and Canadian numbers; every unreadable or non-mobile number goes to
the rejects file with its row and reason, and the good rows land in E.164 with their consent."""

from __future__ import annotations

import pytest

from cxctl.audience.contacts import import_contacts, rejects_path
from cxctl.audience.phones import mobile_e164, phone_hash

FRENCH_EXPORT = (
    "N° client;Prénom;Email;Pays;Portable;Consentement SMS\r\n"
    "P01;Camille;camille@example.fr;FR;06 12 34 56 78;oui\r\n"
    "P02;Jules;jules@example.fr;FR;06.98.76.54.32;Oui\r\n"
    "P03;Léa;lea@example.fr;FR;+33 (0)7 81 22 33 44;1\r\n"
    "P04;Hugo;hugo@example.fr;FR;0033 6 45 67 89 01;non\r\n"
    "P05;Inès;ines@example.fr;FR;612345679;x\r\n"  # Excel read the number as an integer: its 0 is gone
    "P06;Noé;noe@example.be;BE;0470 12 34 56;oui\r\n"
    "P07;Zoé;zoe@example.ch;CH;079 123 45 67;oui\r\n"
    "P08;Liam;liam@example.ca;CA;(514) 555-0123;yes\r\n"
    "P09;Chloé;chloe@example.fr;FR;01 23 45 67 89;oui\r\n"  # a landline
    "P10;Louis;louis@example.fr;FR;n/a;oui\r\n"
    "P11;Rose;rose@example.fr;FR;06 12 34 56;oui\r\n"  # two digits short
    "P12;Arthur;arthur@example.fr;FR;;\r\n"  # no phone: an email-only contact
    "P13;Alice;alice@example.fr;FR;06 11 22 33 44;peut-être\r\n"
)


@pytest.mark.parametrize(
    "raw, region, expected",
    [
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("06.12.34.56.78", "FR", "+33612345678"),
        ("06-12-34-56-78", "FR", "+33612345678"),
        ("0033 6 12 34 56 78", "FR", "+33612345678"),
        ("+33 (0)6 12 34 56 78", "FR", "+33612345678"),
        ("+33 6 12 34 56 78", "BE", "+33612345678"),
        ("612345678", "FR", "+33612345678"),
        ("33612345678", "FR", "+33612345678"),
        ("0470 12 34 56", "BE", "+32470123456"),
        ("+32 470 12 34 56", "FR", "+32470123456"),
        ("079 123 45 67", "CH", "+41791234567"),
        ("(514) 555-0123", "CA", "+15145550123"),
    ],
)
def test_national_and_international_forms_are_stored_in_e164(raw, region, expected):
    assert mobile_e164(raw, region) == expected


@pytest.mark.parametrize(
    "raw, region, reason",
    [
        ("01 23 45 67 89", "FR", "is a landline, which cannot receive an SMS"),
        ("n/a", "FR", "is not a phone number"),
        ("06 12 34 56", "FR", "is not a valid number in FR"),
        ("0470 12 34 56", "FR", "is a landline"),  # a Belgian mobile read in France is a landline of the Alps: no guess
    ],
)
def test_unreadable_and_non_mobile_numbers_are_refused_with_the_reason(raw, region, reason):
    with pytest.raises(ValueError, match=reason) as caught:
        mobile_e164(raw, region)
    assert "or empty the cell" in str(caught.value)


def test_a_french_export_lands_its_mobiles_in_e164_and_rejects_the_rest_with_row_and_reason(
    workspace, db, tmp_path, rows_of, rejects_of, now
):
    path = tmp_path / "export_crm.csv"
    path.write_bytes(FRENCH_EXPORT.encode("cp1252"))
    result = import_contacts(workspace, db, path, now)
    assert result.counts() == {
        "read": 13,
        "inserted": 9,
        "updated": 0,
        "unchanged": 0,
        "duplicates": 0,
        "rejected": 4,
        "suppressed": 0,
    }
    rows = rows_of(db)
    assert {k: (v["phone"], v["sms_consent"]) for k, v in rows.items()} == {
        "P01": ("+33612345678", 1),
        "P02": ("+33698765432", 1),
        "P03": ("+33781223344", 1),
        "P04": ("+33645678901", 0),
        "P05": ("+33612345679", 1),
        "P06": ("+32470123456", 1),
        "P07": ("+41791234567", 1),
        "P08": ("+15145550123", 1),
        "P12": (None, None),
    }
    assert rows["P01"]["phone_hash"] == phone_hash("+33612345678") and rows["P12"]["phone_hash"] is None
    rejects = rejects_of(rejects_path(path))
    assert [(r["row"], r["reason"].split(":")[0]) for r in rejects] == [
        ("10", "phone '01 23 45 67 89' is a landline, which cannot receive an SMS"),
        ("11", "phone 'n/a' is not a phone number"),
        ("12", "phone '06 12 34 56' is not a valid number in FR (read as +33 6123456)"),
        ("14", "consent 'peut-être' is neither yes nor no"),
    ]
    assert rejects[0]["Prénom"] == "Chloé"  # the row as written, to correct and import again


def test_the_workspace_default_region_reads_numbers_of_rows_without_a_country(workspace_dir, tmp_path, now):
    from cxctl import store
    from cxctl.validation import load_workspace

    text = (workspace_dir / "cxctl.yaml").read_text(encoding="utf-8")
    (workspace_dir / "cxctl.yaml").write_text(
        text.replace(
            "  token_secret_env: CXCTL_SECRET\n", "  token_secret_env: CXCTL_SECRET\n  sms: {default_region: BE}\n"
        ),
        encoding="utf-8",
    )
    ws = load_workspace(workspace_dir)
    db = store.connect(ws.database)
    path = tmp_path / "be.csv"
    path.write_text("id,email,mobile,sms_consent\nB1,b1@example.be,0470 12 34 56,yes\n", encoding="utf-8")
    result = import_contacts(ws, db, path, now)
    assert result.inserted == 1 and result.rejected == 0
    assert db.execute("SELECT phone FROM contacts").fetchone()[0] == "+32470123456"


def test_a_reimport_with_a_corrected_phone_updates_it(workspace, db, tmp_path, rows_of, now):
    path = tmp_path / "c.csv"
    path.write_text("id,email,phone,sms_consent\nC1,c1@example.fr,06 12 34 56 78,oui\n", encoding="utf-8")
    import_contacts(workspace, db, path, now)
    path.write_text("id,email,phone,sms_consent\nC1,c1@example.fr,07 81 22 33 44,non\n", encoding="utf-8")
    result = import_contacts(workspace, db, path, now)
    assert result.updated == 1
    assert (rows_of(db)["C1"]["phone"], rows_of(db)["C1"]["sms_consent"]) == ("+33781223344", 0)
