"""Issue 14: a bad row must not take good rows with it. Each bad-file case is imported for real (contacts,
events, suppressions) and checked both ways: every good row is stored byte-exact, every bad row is in the
rejects file with its line and a reason."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxctl import store
from cxctl.audience.contacts import import_contacts, rejects_path
from cxctl.audience.csvio import CELL_LIMIT, open_csv
from cxctl.audience.events import import_events
from cxctl.audience.suppressions import import_suppressions
from cxctl.audience.values import ATTRIBUTE_LIMIT, FIELD_LIMIT

HEAD = "id,email,first_name,city\n"
# Five good rows: accents, a quoted comma, a quoted line break, an escaped quote, an empty city.
GOOD = [
    ("Q10", "q10@good.example", "Zoé", "Lyon"),
    ("Q11", "q11@good.example", "François", "Saint-Étienne, Loire"),
    ("Q12", "q12@good.example", "Anaïs", "2 rue Haute\nBâtiment B"),
    ("Q13", "q13@good.example", 'Jean "Jeannot"', "Genève"),
    ("Q14", "q14@good.example", "Hélène", ""),
]


def csv_lines(rows) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def stored(db) -> dict[str, tuple]:
    """id → (email, first_name, city) as stored, the city read back from the attributes."""
    rows = db.execute(
        "SELECT external_id, email, first_name, json_extract(attributes, '$.city') FROM contacts"
    ).fetchall()
    return {x: (e, f, c) for x, e, f, c in rows}


def expected(rows) -> dict[str, tuple]:
    return {x: (e, f, c or None) for x, e, f, c in rows}


def test_an_unclosed_quote_rejects_its_line_and_the_lines_it_swallowed_are_read_again(
    workspace, db, tmp_path, rejects_of, now
):
    """The issue's file: line 7 opens a quote it never closes; Q10-Q14 after it used to vanish into one field."""
    before = [(f"Q{n}", f"q{n}@good.example", "Paul", "Paris") for n in range(1, 6)]
    path = tmp_path / "contacts.csv"
    path.write_text(
        HEAD + csv_lines(before) + 'Q900,"q900@bad.example,Bad,Nowhere\n' + csv_lines(GOOD), encoding="utf-8"
    )
    result = import_contacts(workspace, db, path, now)
    assert stored(db) == expected(before + GOOD)
    assert (result.read, result.inserted, result.rejected) == (11, 10, 1)
    [reject] = rejects_of(rejects_path(path))
    assert reject["row"] == "7" and reject["id"] == "Q900"
    assert reject["reason"].startswith("a quote opened on this line is not closed: it took lines 7-")
    assert "read again one by one" in reject["reason"]
    assert any(note.startswith("line 7: a quote opened on this line was not closed") for note in result.notes)


def test_an_unclosed_quote_with_no_quote_after_it_runs_to_the_end_and_still_loses_nothing(
    workspace, db, tmp_path, rejects_of, now
):
    plain = [(f"P{n}", f"p{n}@good.example", "Inès", "Nantes") for n in range(3)]
    path = tmp_path / "contacts.csv"
    path.write_text(HEAD + 'B1,"b1@bad.example,Bad,Nowhere\n' + csv_lines(plain), encoding="utf-8")
    result = import_contacts(workspace, db, path, now)
    assert stored(db) == expected(plain) and result.rejected == 1
    assert [(r["row"], r["reason"].split(":")[0]) for r in rejects_of(rejects_path(path))] == [
        ("2", "a quote opened on this line is not closed")
    ]
    assert "lines 3-5 read again one by one" in rejects_of(rejects_path(path))[0]["reason"]


def test_two_unclosed_quotes_in_a_row_each_reject_only_their_own_line(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text(HEAD + 'B1,"b1@bad,x,y\nB2,"b2@bad,x,y\n' + csv_lines(GOOD), encoding="utf-8")
    with open_csv(path) as table:
        rows = list(table.rows())
    assert [(n, f[0]) for n, f, p in rows if p] == [(2, "B1"), (3, "B2")]
    assert [tuple(f) for n, f, p in rows if not p] == GOOD


def test_a_good_multi_line_value_is_one_record_and_a_swallow_that_happens_to_fit_is_still_found(tmp_path):
    """A quoted value running over lines is one record. A swallow can end with the right number of fields (here it
    closes at the opening quote of `", Jr"`), but what follows its closing quote is not well-formed CSV."""
    path = tmp_path / "x.csv"
    path.write_text(
        HEAD + 'K1,k1@x.fr,Ann,"two\nlines"\nB1,"b1@bad,Bad\nK2,k2@x.fr,", Jr",Lyon\nK3,k3@x.fr,Cy,"a"\n',
        encoding="utf-8",
    )
    with open_csv(path) as table:
        rows = list(table.rows())
    assert [(n, f, p is None) for n, f, p in rows] == [
        (2, ["K1", "k1@x.fr", "Ann", "two\nlines"], True),
        (4, ["B1", "b1@bad,Bad"], False),
        (5, ["K2", "k2@x.fr", ", Jr", "Lyon"], True),
        (6, ["K3", "k3@x.fr", "Cy", "a"], True),
    ]


def test_a_utf8_file_with_a_few_bad_bytes_stays_utf8_and_rejects_only_those_rows(
    workspace, db, tmp_path, rejects_of, now
):
    """`Caf\\xc3\\x28` used to turn the whole file into cp1252: every Zoé stored as ZoÃ©."""
    good = [
        ("K1", "k1@x.fr", "Zoé", "Besançon"),
        ("K2", "k2@x.fr", "Chloé", "Montréal"),
        ("K4", "k4@x.fr", "Gérard", "Orléans"),
    ]
    data = (HEAD + csv_lines(good[:2])).encode() + b"K3,k3@x.fr,Caf\xc3\x28,Lyon\n" + csv_lines(good[2:]).encode()
    path = tmp_path / "contacts.csv"
    path.write_bytes(data)
    result = import_contacts(workspace, db, path, now)
    assert result.encoding == "utf-8"
    assert stored(db) == expected(good)
    [reject] = rejects_of(rejects_path(path))
    offset = data.index(b"\xc3\x28")
    assert reject["row"] == "4" and reject["id"] == "K3" and reject["first_name"] == "Caf\ufffd("
    assert reject["reason"].startswith(f"not valid UTF-8 at byte offset {offset} (bytes C3, line 4)")
    assert any("1 byte sequence(s) are not UTF-8" in note for note in result.notes)


def test_a_windows_1252_file_is_still_windows_1252(workspace, db, tmp_path, now):
    """The counterpart: accents that are not UTF-8 everywhere are another encoding, not bad bytes."""
    good = [("K1", "k1@x.fr", "Zoé", "Besançon"), ("K2", "k2@x.fr", "Chloé", "Montréal")]
    path = tmp_path / "contacts.csv"
    path.write_bytes((HEAD + csv_lines(good)).encode("cp1252"))
    result = import_contacts(workspace, db, path, now)
    assert result.encoding == "cp1252" and result.rejected == 0 and stored(db) == expected(good)


@pytest.mark.parametrize(
    "row, column, reason",
    [
        (
            ("K9", "k9@x.fr", "Bon\x00jour", "Lyon"),
            "first_name",
            "control character U+0000 (NUL) in column 'first_name' at character 4",
        ),
        (
            ("K9", "k9@x.fr", "Zoé", "Ly\x1bon"),
            "city",
            "control character U+001B (ESC) in column 'city' at character 3",
        ),
        (
            ("K9", "k9\x07@x.fr", "Zoé", "Lyon"),
            "email",
            "control character U+0007 (BEL) in column 'email' at character 3",
        ),
        (
            ("K9", "k9@x.fr", "Zoé\x85", "Lyon"),
            "first_name",
            "control character U+0085 in column 'first_name' at character 4",
        ),
        (
            ("K9", "k9@x.fr", "Z" * 10 * 2**20, "Lyon"),
            "first_name",
            f"column 'first_name' holds 10,485,760 characters, more than the {CELL_LIMIT:,} a cell may hold",
        ),
        (
            ("K9", "k9@x.fr", "Z" * (FIELD_LIMIT + 1), "Lyon"),
            "first_name",
            f"column 'first_name' (first_name) holds {FIELD_LIMIT + 1} characters, more than the {FIELD_LIMIT} allowed",
        ),
        (
            ("K9", "k9@x.fr", "Zoé", "L" * (ATTRIBUTE_LIMIT + 1)),
            "city",
            f"column 'city' (city) holds {ATTRIBUTE_LIMIT + 1:,} characters, more than the {ATTRIBUTE_LIMIT:,} allowed",
        ),
    ],
)
def test_control_characters_and_oversized_values_are_rejected_with_their_reason(
    workspace, db, tmp_path, rejects_of, now, row, column, reason
):
    path = tmp_path / "contacts.csv"
    path.write_text(HEAD + csv_lines([GOOD[0], row, *GOOD[1:]]), encoding="utf-8")
    result = import_contacts(workspace, db, path, now)
    assert stored(db) == expected(GOOD) and result.rejected == 1
    [reject] = rejects_of(rejects_path(path))
    assert reject["row"] == "3" and reject["reason"].startswith(reason)
    assert reject[column] == row[HEAD.strip().split(",").index(column)]  # the rejects file keeps the row as read


def test_tabs_and_line_breaks_in_values_are_kept(workspace, db, tmp_path, now):
    rows = [("K1", "k1@x.fr", "Anne\tMarie", "2 rue Haute\r\nBâtiment B")]
    path = tmp_path / "contacts.csv"
    path.write_text(HEAD + csv_lines(rows), encoding="utf-8")
    assert import_contacts(workspace, db, path, now).rejected == 0 and stored(db) == expected(rows)


# --- the same rules for events and suppressions -----------------------------------------------------


def test_events_keep_their_good_rows_around_every_kind_of_bad_one(workspace, db, tmp_path, rejects_of, now):
    import_contacts(workspace, db, _write(tmp_path / "people.csv", HEAD + csv_lines(GOOD)), now)
    head = b"id,email,date,type,order\n"
    good = [
        f"Q1{n},q1{n}@good.example,2026-03-1{n}T10:00+01:00,order_delivered,Cmd-{n} été\n".encode() for n in range(5)
    ]
    bad = [
        b'Q90,"q90@good.example,2026-03-10,order_delivered,x\n',  # line 3: an open quote
        b"Q91,q91@good.example,2026-03-10,order_delivered,Caf\xc3\x28\n",  # line 5: not UTF-8
        b"Q92,q92@good.example,2026-03-10,order_delivered,C\x00md\n",  # line 7: a NUL
        b"Q93,q93@good.example,2026-03-10,order_delivered," + b"x" * (ATTRIBUTE_LIMIT + 1) + b"\n",  # line 9
        b"Q94,q94@good.example,2026-03-10," + b"t" * (FIELD_LIMIT + 1) + b",x\n",
    ]  # line 11: a type too long
    path = tmp_path / "events.csv"
    path.write_bytes(head + b"".join(g + b for g, b in zip(good, bad)))
    result = import_events(workspace, db, path, now)
    attrs = [json.loads(a)["order"] for (a,) in db.execute("SELECT attributes FROM events ORDER BY occurred_at")]
    assert attrs == [f"Cmd-{n} été" for n in range(5)] and result.encoding == "utf-8"
    rejects = [(r["row"], r["reason"]) for r in rejects_of(rejects_path(path))]
    assert [row for row, _ in rejects] == ["3", "5", "7", "9", "11"]
    for (_, reason), start in zip(
        rejects,
        [
            "a quote opened on this line is not closed",
            "not valid UTF-8 at byte offset",
            "control character U+0000 (NUL) in column 'order'",
            f"column 'order' holds {ATTRIBUTE_LIMIT + 1:,} characters",
            f"column 'type' (type) holds {FIELD_LIMIT + 1} characters",
        ],
    ):
        assert reason.startswith(start)


def test_suppressions_keep_their_good_rows_around_every_kind_of_bad_one(db, tmp_path, rejects_of, now):
    data = (
        "email,note\n"
        + csv_lines([("a@x.fr", "Désinscrit")])
        + 'b@x.fr,"open\n'
        + csv_lines([("c@x.fr", "par téléphone")])
        + "d@x.fr,N\x00L\n"
        + csv_lines([("e@x.fr", "n" * (ATTRIBUTE_LIMIT + 1)), ("f@x.fr", 'réclamation, "urgent"')])
    )
    path = _write(tmp_path / "optouts.csv", data)
    result = import_suppressions(db, path, now)
    assert dict(db.execute("SELECT email, note FROM suppressions").fetchall()) == {
        "a@x.fr": "Désinscrit",
        "c@x.fr": "par téléphone",
        "f@x.fr": 'réclamation, "urgent"',
    }
    rejects = [(r["row"], r["reason"]) for r in rejects_of(rejects_path(path))]
    assert [row for row, _ in rejects] == ["3", "5", "6"]
    for (_, reason), start in zip(
        rejects,
        [
            "a quote opened on this line is not closed",
            "control character U+0000 (NUL)",
            f"column 'note' (note) holds {ATTRIBUTE_LIMIT + 1:,} characters",
        ],
    ):
        assert reason.startswith(start)
    assert result.rejected == 3


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- property: whatever the good rows, one broken row never takes any of them -----------------------

# Values that start with the delimiter or a line break are left out: a quoted one (`",,\n;"`) right after
# the broken line can close its quote into a record that is well-formed CSV of the right width — the one
# shape the format itself cannot tell from a good multi-line value (see docs/audience.md).
_VALUE = st.text(alphabet=st.sampled_from("abzéÀü€ ,;\"'\t\n-"), max_size=10).map(lambda v: v.lstrip(" \t\n,").rstrip())
_ROWS = st.lists(st.tuples(_VALUE, _VALUE), min_size=0, max_size=6)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(before=_ROWS, after=_ROWS, broken=_VALUE, bad_byte=st.booleans(), crlf=st.booleans())
def test_any_good_rows_around_one_broken_row_are_all_kept_byte_exact(before, after, broken, bad_byte, crlf):
    """Good rows of any content (quotes, delimiters, tabs, line breaks, accents) before and after one row that
    opens a quote it never closes, or holds a byte that is not UTF-8: every good row lands as written, the
    broken one is the only reject, on its own line."""
    end = "\r\n" if crlf else "\n"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=end)
    writer.writerow(["id", "email", "first_name", "note"])
    before = [("Zoé", "")] + before  # an accent in UTF-8: a file without any is not "UTF-8 but for one byte"
    good = [(f"G{n}", f"g{n}@x.fr", first, note) for n, (first, note) in enumerate(before + after)]
    writer.writerows(good[: len(before)])
    line = len(io.StringIO(buffer.getvalue(), newline="").readlines()) + 1  # lines as the CSV reader counts them
    data = buffer.getvalue().encode()
    if bad_byte:
        data += f"B1,b1@x.fr,{broken.replace(chr(10), ' ').replace(chr(34), '')},x".encode() + b"\xff" + end.encode()
    else:
        data += f'B1,"b1@x.fr,{broken.replace(chr(10), " ").replace(chr(34), "")}{end}'.encode()
    rest = io.StringIO()
    csv.writer(rest, lineterminator=end).writerows(good[len(before) :])
    data += rest.getvalue().encode()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "contacts.csv"
        path.write_bytes(data)
        db = store.connect(Path(folder) / "x.db")
        result = import_contacts(None, db, path, datetime(2026, 1, 1, tzinfo=UTC))
        rows = db.execute(
            "SELECT external_id, email, first_name, json_extract(attributes, '$.note') FROM contacts"
        ).fetchall()
        db.conn.close()
        with open(rejects_path(path), encoding="utf-8-sig", newline="") as handle:
            rejects = list(csv.DictReader(handle))
    assert sorted(rows) == sorted((x, e, f or None, n or None) for x, e, f, n in good)
    assert [(r["row"], r["id"]) for r in rejects] == [(str(line), "B1")] and result.rejected == 1
