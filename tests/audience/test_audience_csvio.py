"""cxctl.audience.csvio on real export quirks, and the round-trip property: any table written as CSV in any
supported encoding and delimiter reads back to the same contacts."""

from __future__ import annotations

import codecs
import csv
import io
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cxctl import store
from cxctl.audience.contacts import import_contacts
from cxctl.audience.csvio import open_csv
from cxctl.core import emails
from cxctl.core.csvnames import normalise_header
from cxctl.core.errors import ImportFileError, UsageError


@pytest.mark.parametrize(
    "name, key",
    [
        (" Prénom ", "prenom"),
        ("Adresse e-mail", "adresse_e_mail"),
        ("Date d'achat", "date_d_achat"),
        ("Country/Region", "country_region"),
        ("(Do Not Modify) Contact", "do_not_modify_contact"),
        ("N° client", "n_client"),
        ("", "column"),
        ("ÉTAPE", "etape"),
    ],
)
def test_header_names_are_normalised(name, key):
    assert normalise_header(name) == key


def test_record_numbers_are_file_lines_even_with_quoted_newlines(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text('a,b\n1,"two\nlines"\n\n3,x\n', encoding="utf-8")
    with open_csv(path) as table:
        assert [(r.number, r.values) for r in table.records()] == [
            (2, {"a": "1", "b": "two\nlines"}),
            (5, {"a": "3", "b": "x"}),
        ]


def test_repeated_headers_keep_every_column(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("Email,Phone,Phone\na@b.fr,1,2\n")
    with open_csv(path) as table:
        assert table.keys == ["email", "phone", "phone_2"]


def test_trailing_delimiters_are_tolerated_but_extra_values_are_a_problem(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a;b\n1;2;\n1;2;3\n1\n")
    with open_csv(path) as table:
        rows = list(table.rows())
    assert rows[0] == (2, ["1", "2"], None)
    assert rows[1][2].startswith("the row has 3 fields but the header has 2: quote values that contain ';'")
    assert rows[2][2].startswith("the row has 1 fields but the header has 2")


def test_short_rows_at_the_end_without_a_blank_line_are_rows_not_a_footer(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n3\n")
    with open_csv(path) as table:
        rows = list(table.rows())
        assert table.footer == []
    assert [r[0] for r in rows] == [2, 3] and rows[1][2] is not None


def test_french_salesforce_footer(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text(
        '"Prénom","E-mail"\n"A","a@b.fr"\n""\n"Total général (1 enregistrement)"\n"Informations confidentielles - Ne pas diffuser"\n',
        encoding="utf-8",
    )
    with open_csv(path) as table:
        assert len(list(table.rows())) == 1
        assert table.footer[-1] == "Informations confidentielles - Ne pas diffuser"


def test_unquoted_footer_split_at_its_own_commas_is_still_a_footer(tmp_path):
    """A report re-saved by a spreadsheet loses the quotes: the copyright line then splits at its comma."""
    path = tmp_path / "x.csv"
    path.write_text(
        "Prénom,E-mail,Ville,Pays,Segment\nA,a@b.fr,Lyon,FR,b2c\n\nGrand Totals (1 records)\n\n"
        "Confidential Information - Do Not Distribute\n"
        "Copyright (c) 2000-2024 salesforce.com, inc. All rights reserved.\n",
        encoding="utf-8",
    )
    with open_csv(path) as table:
        rows = list(table.rows())
        assert [(n, p) for n, _, p in rows] == [(2, None)]
        assert table.footer == [
            "Grand Totals (1 records)",
            "Confidential Information - Do Not Distribute",
            "Copyright (c) 2000-2024 salesforce.com, inc. All rights reserved.",
        ]


def test_a_data_row_with_a_footer_like_first_cell_stays_data(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("Société,E-mail,Ville\n(c) Studio,a@b.fr,Lyon\nCopyright Rennes,b@b.fr,Rennes\n", encoding="utf-8")
    with open_csv(path) as table:
        assert [(n, f[0], p) for n, f, p in table.rows()] == [(2, "(c) Studio", None), (3, "Copyright Rennes", None)]
        assert table.footer == []


def test_cp1252_is_detected_even_when_the_first_accent_is_far_into_the_file(tmp_path):
    path = tmp_path / "late.csv"
    with open(path, "wb") as handle:
        handle.write(b"email;nom\n" + b"x@example.fr;Dupont\n" * 70_000 + "y@example.fr;Lefèvre\n".encode("cp1252"))
    with open_csv(path) as table:
        assert table.encoding == "cp1252" and table.delimiter == ";"
        assert list(table.rows())[-1][1] == ["y@example.fr", "Lefèvre"]


def test_excel_unicode_text_is_utf16_with_tabs(tmp_path):
    path = tmp_path / "unicode.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + "Courriel\tPrénom\r\nzoe@exemple.fr\tZoé\r\n".encode("utf-16-le"))
    with open_csv(path) as table:
        assert (table.encoding, table.delimiter, table.header) == ("utf-16", "\t", ["Courriel", "Prénom"])
        assert [r.values for r in table.records()] == [{"Courriel": "zoe@exemple.fr", "Prénom": "Zoé"}]


def test_a_wrong_forced_encoding_names_the_line_and_the_fix(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes("email;nom\nx@example.fr;Lefèvre\n".encode("cp1252"))
    with (
        pytest.raises(ImportFileError, match=r"x.csv:\d+: not valid utf-8 .*--encoding"),
        open_csv(path, encoding="utf-8") as table,
    ):
        list(table.rows())


def test_unreadable_inputs_are_clear_errors(tmp_path):
    (tmp_path / "empty.csv").write_text("\n\n")
    with pytest.raises(ImportFileError, match="the file is empty"):
        open_csv(tmp_path / "empty.csv")


def test_wrong_arguments_are_usage_errors(tmp_path):
    """A missing file or an impossible option is the command line's fault: exit 2, not 1."""
    with pytest.raises(UsageError, match="no such file: check the path"):
        open_csv(tmp_path / "missing.csv")
    (tmp_path / "x.csv").write_text("a\n")
    with pytest.raises(UsageError, match="invalid delimiter"):
        open_csv(tmp_path / "x.csv", delimiter="::")
    with pytest.raises(UsageError, match="unknown encoding"):
        open_csv(tmp_path / "x.csv", encoding="klingon")


# --- the email fast path gives exactly email-validator's answer ------------------------------------

_ATOMS = st.text(alphabet="abcXYZ09._%+-'!@", min_size=1, max_size=12)  # @: the fast path splits at the last one
_LABELS = st.text(alphabet="abcXYZ09-", min_size=1, max_size=10)
_ADDRESSES = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
    _ATOMS,
    st.lists(_LABELS, min_size=1, max_size=3),
    st.sampled_from(["fr", "COM", "test", "local", "x", "co.uk", "123"]),
)


@settings(max_examples=300, deadline=None)
@given(_ADDRESSES)
def test_email_fast_path_agrees_with_email_validator(address):
    try:
        result = validate_email(address, check_deliverability=False, allow_smtputf8=True)
        expected = f"{result.local_part}@{(result.ascii_domain or result.domain).lower()}"
    except EmailNotValidError:
        expected = None
    fast = emails._fast(address)
    if fast is not None:
        assert fast == expected
    assert (emails.normalise(address) if emails.is_valid(address) else None) == expected


# --- round trip ------------------------------------------------------------------------------------

_TEXT = st.text(alphabet="abcdeéèàçôüÉÀ ;,\t\"'-\n€", max_size=12).map(str.strip)
_PEOPLE = st.lists(
    st.fixed_dictionaries({"first_name": _TEXT, "last_name": _TEXT, "company": _TEXT, "note": _TEXT}),
    min_size=1,
    max_size=8,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(
    people=_PEOPLE,
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "latin-1", "utf-16"]),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    crlf=st.booleans(),
)
def test_any_contacts_table_reads_back_the_same_in_any_encoding_and_delimiter(people, encoding, delimiter, crlf):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "contacts.csv"
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n" if crlf else "\n")
        writer.writerow(["ID client", "Courriel", "Prénom", "Nom", "Société", "Note"])
        for n, person in enumerate(people):
            writer.writerow(
                [
                    f"K{n}",
                    f"p{n}@exemple.fr",
                    person["first_name"],
                    person["last_name"],
                    person["company"],
                    person["note"],
                ]
            )
        try:
            path.write_bytes(buffer.getvalue().encode(encoding))
        except UnicodeEncodeError:
            assume(False)  # Latin-1 has no €: such a table cannot be written in it
        db = store.connect(Path(folder) / "x.db")
        result = import_contacts(None, db, path, datetime(2026, 1, 1, tzinfo=UTC))
        assert (result.inserted, result.rejected) == (len(people), 0)
        stored = db.execute(
            "SELECT external_id, email, first_name, last_name, company, json_extract(attributes, '$.note') "
            "FROM contacts ORDER BY id"
        ).fetchall()
        db.conn.close()
    assert stored == [
        (
            f"K{n}",
            f"p{n}@exemple.fr",
            p["first_name"] or None,
            p["last_name"] or None,
            p["company"] or None,
            p["note"] or None,
        )
        for n, p in enumerate(people)
    ]


def test_excel_sep_line_names_the_delimiter_and_is_not_the_header(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("sep=;\r\nCourriel;Société\r\nzoe@exemple.fr;Café, Thé & Co\r\n".encode("cp1252"))
    with open_csv(path) as table:
        assert (table.delimiter, table.header, table.header_line) == (";", ["Courriel", "Société"], 2)
        assert [(r.number, r.values) for r in table.records()] == [
            (3, {"Courriel": "zoe@exemple.fr", "Société": "Café, Thé & Co"})
        ]
