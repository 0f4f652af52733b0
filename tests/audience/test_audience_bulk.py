"""The bulk paths of the contacts import give the same contacts, counts and rejects whichever runs:
the in-process loop or the worker process, the direct insert into an empty table or the merge."""

from __future__ import annotations

import csv
import io
import multiprocessing
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxctl import store
from cxctl.audience import contact_bulk
from cxctl.audience.contacts import import_contacts, rejects_path
from cxctl.store import email_hash

from .conftest import NOW, contacts, read_rejects

MESSY = (
    "id;email;first_name;language;Ne pas contacter;tier\n"
    "K1;Zoe@Example.FR;Zoé;fr;;gold\n"
    "K2;luc@example.fr;Luc;English;Oui;silver\n"
    ";sans.id@example.fr;Sans;fr;;\n"
    "K3;pas-une-adresse;Eve;fr;;gold\n"
    "K1;zoe@example.fr;Zoé B;fr;;platinum\n"  # the last row of K1 wins
    ";sans.id@example.fr;Sans bis;fr;;bronze\n"  # the last id-less row of an address wins
    ";luc@example.fr;Luc sans id;fr;;\n"  # merged into K2 (same address)
    "K4;oubli@example.fr;Oublié;fr;;\n"  # forgotten: rejected, cells blanked
    "K5;ana@example.fr;Ana;klingon!;;\n"  # unknown language
    "K6;max@example.fr;Max;fr;Oui;\n"
    "\n"
    "Grand Totals (10 records)\n"
)


def _outcome(db, path, result) -> tuple:
    people = {
        key: {k: v for k, v in row.items() if k not in ("id", "created_at", "updated_at")}
        for key, row in contacts(db).items()
    }
    rejects = read_rejects(rejects_path(path)) if result.rejects_file else []
    suppressed = db.execute("SELECT email, reason FROM suppressions ORDER BY email").fetchall()
    return people, result.counts(), result.footer, rejects, suppressed


def _import(workspace, database: Path, source: str, tmp: Path, *, worker: bool, existing: bool):
    """Import `source` into a new database; `existing` first adds an unrelated contact (the merge path)."""
    db = store.connect(database)
    db.execute(
        "INSERT INTO forgotten (email_hash, forgotten_at) VALUES (?, '2026-01-01 00:00:00')",
        [email_hash("oubli@example.fr")],
    )
    if existing:
        other = tmp / "other.csv"
        other.write_text("id;email\nZ9;someone.else@example.org\n", encoding="utf-8")
        import_contacts(workspace, db, other, NOW)
    path = tmp / "crm.csv"
    path.write_text(source, encoding="utf-8")
    saved = contact_bulk.PARALLEL_BYTES
    contact_bulk.PARALLEL_BYTES = 0 if worker else 10**15
    try:
        result = import_contacts(workspace, db, path, NOW)
    finally:
        contact_bulk.PARALLEL_BYTES = saved
    outcome = _outcome(db, path, result)
    if existing:
        outcome[0].pop("Z9")
    return outcome


@pytest.mark.skipif(not contact_bulk.parallel_possible(10**12), reason="needs fork and a second core")
def test_the_worker_process_gives_the_same_import_as_the_in_process_loop(workspace, tmp_path):
    for existing in (False, True):
        runs = []
        for worker in (False, True):
            folder = tmp_path / f"{existing}-{worker}"
            folder.mkdir()
            runs.append(_import(workspace, folder / "cx.db", MESSY, folder, worker=worker, existing=existing))
        assert runs[0] == runs[1]
        people, counts, footer, rejects, suppressed = runs[1]
        assert counts == {
            "read": 10,
            "inserted": 4,
            "updated": 0,
            "unchanged": 0,
            "duplicates": 3,
            "rejected": 3,
            "suppressed": 2,
        }
        assert people["K1"]["first_name"] == "Zoé B" and people["sans.id@example.fr"]["first_name"] == "Sans bis"
        assert footer == ["Grand Totals (10 records)"]
        assert [(r["row"], r["email"]) for r in rejects] == [
            ("5", "pas-une-adresse"),
            ("9", ""),
            ("10", "ana@example.fr"),
        ]
        assert suppressed == [("luc@example.fr", "do_not_contact"), ("max@example.fr", "do_not_contact")]


def test_an_error_in_the_worker_process_reaches_the_caller_and_writes_nothing(workspace, db, tmp_path, monkeypatch):
    path = tmp_path / "crm.csv"
    path.write_text("id;email\nK1;a@example.fr\nK2;b@example.fr\n", encoding="utf-8")
    monkeypatch.setattr(contact_bulk, "PARALLEL_BYTES", 0)

    def broken(number, fields):
        raise KeyError("boom")

    import cxctl.audience.contacts as audience

    real = audience.build_converter

    def build(*args):
        convert, staged, keys = real(*args)
        broken.digest, broken.key, broken.suppressed = convert.digest, convert.key, convert.suppressed
        return broken, staged, keys

    monkeypatch.setattr(audience, "build_converter", build)
    with pytest.raises(KeyError, match="boom"):
        import_contacts(workspace, db, path, NOW)
    assert db.execute("SELECT COUNT(*) FROM contacts").fetchone() == (0,)
    assert db.execute("SELECT COUNT(*) FROM import_log").fetchone() == (0,)
    assert multiprocessing.active_children() == []  # the worker was stopped and reaped


KEYS = st.sampled_from(["", "K1", "K2", "K3"])
EMAILS = st.sampled_from(["", "a@example.fr", "A@Example.fr", "b@example.fr", "c@example.fr", "not-an-address"])
ROWS = st.lists(st.tuples(KEYS, EMAILS, st.sampled_from(["", "gold", "silver"])), min_size=1, max_size=12)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(rows=ROWS)
def test_an_empty_table_and_a_table_with_other_contacts_get_the_same_contacts(workspace, rows):
    """The direct insert into an empty table (no merge machinery) keeps the merge's rules: last row
    of a key wins, an id-less row with the address of a row with an id is merged into it."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(["id", "email", "tier"])
    writer.writerows(rows)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        (tmp / "fresh").mkdir()
        (tmp / "merge").mkdir()
        fresh = _import(workspace, tmp / "fresh" / "cx.db", out.getvalue(), tmp / "fresh", worker=False, existing=False)
        merged = _import(workspace, tmp / "merge" / "cx.db", out.getvalue(), tmp / "merge", worker=False, existing=True)
    assert fresh == merged


@pytest.mark.skipif(not contact_bulk.parallel_possible(10**12), reason="needs fork and a second core")
def test_a_reimport_through_the_worker_recognises_unchanged_rows(workspace, db, tmp_path, monkeypatch):
    path = tmp_path / "crm.csv"
    path.write_text("id;email;tier\n" + "".join(f"K{n};k{n}@example.fr;gold\n" for n in range(50)), encoding="utf-8")
    import_contacts(workspace, db, path, NOW)
    path.write_text(
        "id;email;tier\n" + "".join(f"K{n};k{n}@example.fr;{'silver' if n == 7 else 'gold'}\n" for n in range(50)),
        encoding="utf-8",
    )
    monkeypatch.setattr(contact_bulk, "PARALLEL_BYTES", 0)
    result = import_contacts(workspace, db, path, NOW)
    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 49)
    assert contacts(db)["K7"]["attributes"] == {"tier": "silver"}
