"""forget and export-person: nothing personal left anywhere, scores kept, the person stays blocked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxctl.core.errors import UsageError
from cxctl.core.timeutil import parse_now
from cxctl.privacy import erasure as privacy
from cxctl.privacy.erasure import PersonNotFound
from cxctl.store import email_hash

NOW = parse_now("2026-11-22T09:00:00+00:00")
ZOE_TRACES = ["zoe.martin", "Zoé", "Martin-Dubois", "Livreur impoli", "Rappelée", "ORD-C-1"]


def scores(db):
    return db.execute(
        "SELECT r.moment, c.segment, a.question, a.value_num FROM answers a JOIN responses r ON r.id = a.response_id "
        "JOIN contacts c ON c.id = r.contact_id WHERE a.value_num IS NOT NULL ORDER BY 1, 2, 3, 4"
    ).fetchall()


@pytest.mark.parametrize("target", ["Zoe.Martin@exemple.fr", "ZOE.MARTIN@EXEMPLE.FR", "C-1"])
def test_forget_leaves_no_trace_of_the_person_in_any_table(populated, target, helpers):
    text_cells_containing = helpers.text_cells_containing
    ws, db, people = populated
    before = scores(db)
    result = privacy.forget(ws, db, target, NOW)
    assert result.contacts == [people["zoe"]["contact_id"]]
    for trace in ZOE_TRACES:
        assert text_cells_containing(db, trace) == [], trace
    # Paul is untouched, and every score (Zoé's included) still counts.
    assert text_cells_containing(db, "paul.leroy@example.com")
    assert sorted(text_cells_containing(db, "Rapide et soigné")) == [("answers", "value_text"), ("quarantine", "raw")]
    assert scores(db) == before


def test_forget_keeps_a_hash_that_blocks_the_address(populated, helpers):
    ws, db, people = populated
    privacy.forget(ws, db, "C-1", NOW)
    hashed = email_hash(people["zoe"]["email"])
    assert db.execute("SELECT forgotten_at FROM forgotten WHERE email_hash = ?", [hashed]).fetchone() == (
        "2026-11-22 09:00:00",
    )
    # The existing opt-out keeps its reason, its address and note are gone.
    assert db.execute("SELECT email, reason, note FROM suppressions WHERE email_hash = ?", [hashed]).fetchone() == (
        None,
        "opt_out",
        None,
    )
    assert privacy.is_forgotten(db, "zoe.martin@EXEMPLE.fr")
    assert not privacy.is_forgotten(db, "paul.leroy@example.com")
    row = db.execute(
        "SELECT external_id, email, forgotten_at, segment, country, language FROM contacts WHERE id = ?",
        [people["zoe"]["contact_id"]],
    ).fetchone()
    assert row == (None, None, "2026-11-22 09:00:00", "retail", "FR", "fr")


def test_forget_deletes_only_the_persons_rendered_messages(populated, helpers):
    ws, db, people = populated
    result = privacy.forget(ws, db, "C-1", NOW)
    remaining = sorted(p.name for p in ws.outbox_dir.glob("*.eml"))
    assert [p.rsplit("/", 1)[-1] for p in result.files] == [f"{people['zoe']['invitation_id']:06d}.eml"]
    assert remaining == [f"{people['paul']['invitation_id']:06d}.eml"]


def test_forget_also_deletes_the_persons_previews(populated, helpers, monkeypatch):
    """`cxctl preview --contact` writes the person's name and address to disk: forget erases it (the .eml and
    the .html beside it); another person's preview and the sample preview stay."""
    from cxctl.delivery.render import preview

    ws, db, people = populated
    monkeypatch.setenv("CXCTL_SECRET", "test-secret-of-some-length")
    moment = next(iter(ws.moments))
    mine = preview(ws, db, moment, NOW, contact="C-1", out_dir=ws.outbox_dir / "zoe")
    other = preview(ws, db, moment, NOW, contact=str(people["paul"]["contact_id"]), out_dir=ws.outbox_dir / "paul")
    sample = preview(ws, db, moment, NOW, out_dir=ws.outbox_dir / "sample")
    result = privacy.forget(ws, db, "C-1", NOW)
    assert {mine.eml_path, mine.html_path} <= set(result.files)
    assert not Path(mine.eml_path).exists() and not Path(mine.html_path).exists()
    assert all(Path(p).exists() for p in (other.eml_path, other.html_path, sample.eml_path, sample.html_path))


def test_dry_run_reports_exact_counts_and_changes_nothing(populated, helpers):
    ws, db, people = populated
    dump = list(db.conn.iterdump())
    planned = privacy.forget(ws, db, "zoe.martin@exemple.fr", NOW, dry_run=True)
    assert list(db.conn.iterdump()) == dump
    assert len(list(ws.outbox_dir.glob("*.eml"))) == 2
    done = privacy.forget(ws, db, "zoe.martin@exemple.fr", NOW)
    assert planned.changes == done.changes
    assert planned.files == done.files
    assert done.changes["contacts"] == 1 and done.changes["answers"] == 1 and done.changes["quarantine"] == 1


def test_forget_twice_is_harmless_and_says_so(populated, helpers):
    ws, db, _ = populated
    privacy.forget(ws, db, "zoe.martin@exemple.fr", NOW)
    again = privacy.forget(ws, db, "zoe.martin@exemple.fr", NOW)
    assert again.already_forgotten
    assert again.contacts == []  # the address no longer leads to any contact
    assert sum(again.changes.values()) == 0


def test_forget_an_address_never_imported_still_blocks_it(populated, helpers):
    ws, db, _ = populated
    result = privacy.forget(ws, db, "inconnu@example.org", NOW)
    assert result.contacts == [] and result.changes["forgotten"] == 1
    assert privacy.is_forgotten(db, "inconnu@example.org")
    assert db.execute(
        "SELECT reason, source FROM suppressions WHERE email_hash = ?", [email_hash("inconnu@example.org")]
    ).fetchone() == ("do_not_contact", "forget")


def test_unknown_external_id_and_bad_address_are_clear_errors(populated, helpers):
    ws, db, _ = populated
    with pytest.raises(PersonNotFound, match="no contact has the external id 'C-404'"):
        privacy.forget(ws, db, "C-404", NOW)
    with pytest.raises(UsageError, match="invalid email"):
        privacy.forget(ws, db, "zoe@@exemple", NOW)


def test_export_person_holds_everything_stored_but_no_token(populated, helpers):
    ws, db, people = populated
    data = privacy.export_person(db, "C-1", NOW)
    text = json.dumps(data, ensure_ascii=False).lower()
    for trace in (
        "zoe.martin@exemple.fr",
        "Zoé",
        "Martin-Dubois",
        helpers.ZOE["free_text"],
        helpers.ZOE["note"],
        "rue des Lilas",
    ):
        assert trace.lower() in text
    assert "paul" not in text
    assert people["zoe"]["token"] not in text
    assert data["contacts"][0]["attributes"]["loyalty"] == "gold"
    assert [a["question"] for a in data["responses"][0]["answers"]] == ["nps", "nps_why"]
    assert len(data["quarantine"]) == 1 and data["suppressions"][0]["reason"] == "opt_out"
    assert data["forgotten"] == []
    privacy.forget(ws, db, "C-1", NOW)
    after = privacy.export_person(db, "zoe.martin@exemple.fr", NOW)
    assert after["forgotten"] == [{"forgotten_at": "2026-11-22 09:00:00"}]
    assert "Zoé" not in json.dumps(after, ensure_ascii=False)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    local=st.from_regex(r"[a-z][a-z0-9._%+-]{0,15}[a-z0-9]", fullmatch=True).filter(lambda s: ".." not in s),
    first=st.text(st.characters(codec="utf-8", categories=["L"]), min_size=3, max_size=12),
    free=st.text(st.characters(codec="utf-8", categories=["L", "Zs", "P"]), min_size=8, max_size=60).filter(
        lambda s: s.strip() and "%" not in s and "_" not in s
    ),
)
def test_forget_erases_any_address_name_and_text(workspace_dir, tmp_path_factory, helpers, local, first, free):
    seed_person = helpers.seed_person
    """Addresses with LIKE wildcards (_ %), accented names and any free text leave no trace."""
    from cxctl import store
    from cxctl.validation import load_workspace

    ws = load_workspace(workspace_dir)
    db = store.connect(tmp_path_factory.mktemp("db") / "cx.db")
    seed_person(
        db,
        external_id="P-1",
        email=f"{local}@exemple.fr",
        first_name=first,
        last_name="Zzyzx",
        free_text=f"⟦{free}⟧",
        note=f"⟦{free}⟧",
    )
    seed_person(
        db, external_id="P-2", email="autre@example.com", first_name="Autre", last_name="Personne", free_text="ok ok ok"
    )
    privacy.forget(ws, db, f"{local}@exemple.fr", NOW)
    # The comment is wrapped in markers, so a short one cannot match unrelated text (a table name).
    for needle in (f"{local}@exemple.fr", "Zzyzx", f"⟦{free}⟧"):
        assert not any(
            needle.lower() in str(value).lower()
            for table in db.table_names()
            for row in db.execute(f"SELECT * FROM [{table}]").fetchall()
            for value in row
            if isinstance(value, str)
        ), needle
    assert db.execute("SELECT COUNT(*) FROM answers WHERE value_num IS NOT NULL").fetchone()[0] == 2


def test_forgotten_values_do_not_linger_in_the_database_files(populated):
    """Not only no query: the bytes of the database file and its WAL no longer hold the address."""
    ws, db, _ = populated
    for secure in ("OFF", "ON"):
        db.execute(f"PRAGMA secure_delete = {secure}")  # whatever the build's default, forget turns it on
    privacy.forget(ws, db, "C-1", NOW)
    files = [p for p in ws.database.parent.glob(ws.database.name + "*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        for needle in ("zoe.martin@exemple.fr", "Martin-Dubois", "Livreur impoli"):
            assert needle.encode("utf-8") not in data, (path.name, needle)
