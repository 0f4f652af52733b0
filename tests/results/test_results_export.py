"""`cxctl export`: the store's tables as Parquet (read back with DuckDB), CSV and JSON Lines, with keyed
pseudonyms, personal data only on request and never for forgotten people, and incremental exports."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from cxctl import store
from cxctl.results.export import TABLES, schema_markdown

DEMO_NOW = "2026-11-23T09:00:00+00:00"
SECRET = "export-test-secret"


@pytest.fixture
def demo_copy(demo_folder: Path, tmp_path: Path, monkeypatch) -> Path:
    folder = tmp_path / "ws"
    shutil.copytree(demo_folder, folder)
    monkeypatch.setenv("CXCTL_EXPORT_SECRET", SECRET)
    return folder


def _export(cli, folder: Path, to: Path, *args: str) -> dict:
    code, out, err = cli("export", "-w", str(folder), "--to", str(to), "--now", DEMO_NOW, "--json", *args)
    assert code == 0, err
    return json.loads(out)


def test_duckdb_recomputes_nps_by_moment_and_month_as_the_scorecard(demo_copy: Path, tmp_path: Path, cli):
    duckdb = pytest.importorskip("duckdb")
    result = _export(cli, demo_copy, tmp_path / "out")
    assert {t["name"] for t in result["tables"]} == {t.name for t in TABLES}
    code, out, _ = cli("scorecard", "-w", str(demo_copy), "--now", DEMO_NOW, "--by", "moment,month", "--json")
    expected = {
        (r["group"]["moment"], r["period"]): r["indicators"]["nps"]
        for r in json.loads(out)["rows"]
        if "nps" in r["indicators"]
    }
    assert expected
    con = duckdb.connect()
    rows = con.execute(f"""
        SELECT moment, strftime(day, '%Y-%m') AS month, COUNT(*) AS n,
               100.0 * (COUNT(*) FILTER (WHERE nps >= 9) - COUNT(*) FILTER (WHERE nps <= 6)) / COUNT(*) AS nps
        FROM read_parquet('{tmp_path / "out" / "responses.parquet"}')
        WHERE status = 'counted' AND nps IS NOT NULL GROUP BY 1, 2""").fetchall()
    got = {(m, month): (n, score) for m, month, n, score in rows}
    assert set(got) == set(expected)
    for key, ind in expected.items():
        assert got[key][0] == ind["n"]
        assert got[key][1] == pytest.approx(ind["value"], abs=1e-9)
    # The long answers table has the same NPS answers, with the question's type and scale.
    answers = con.execute(f"""SELECT COUNT(*), MIN(scale_min), MAX(scale_max) FROM read_parquet('{tmp_path / "out" / "answers.parquet"}')
                              WHERE question_type = 'nps'""").fetchone()
    assert answers[1:] == (0, 10)
    manifest = json.loads((tmp_path / "out" / "export.json").read_text())
    assert manifest["schema_version"] == 1 and manifest["tables"]["responses"]["rows"] == result["tables"][0]["rows"]


def test_pseudonyms_are_keyed_stable_and_join(demo_copy: Path, tmp_path: Path, cli, monkeypatch):
    duckdb = pytest.importorskip("duckdb")
    _export(cli, demo_copy, tmp_path / "a")
    _export(cli, demo_copy, tmp_path / "b")

    def read(folder, table):
        parquet = folder / (table + ".parquet")
        return duckdb.connect().execute(f"SELECT * FROM read_parquet('{parquet}') ORDER BY ALL").fetchall()

    assert read(tmp_path / "a", "contacts") == read(tmp_path / "b", "contacts")
    monkeypatch.setenv("CXCTL_EXPORT_SECRET", "another-secret")
    _export(cli, demo_copy, tmp_path / "c")
    first = {r[0] for r in read(tmp_path / "a", "contacts")}
    other = {r[0] for r in read(tmp_path / "c", "contacts")}
    assert first and not first & other, "another key, other pseudonyms"
    con = duckdb.connect()
    orphans = con.execute(f"""SELECT COUNT(*) FROM read_parquet('{tmp_path / "a" / "responses.parquet"}') r
                              WHERE r.contact NOT IN (SELECT contact FROM read_parquet('{tmp_path / "a" / "contacts.parquet"}'))""").fetchone()[
        0
    ]
    assert orphans == 0
    # No personal data by default: no address, no name, no CRM id anywhere in the files.
    db = store.read(demo_copy / "cxctl.db")
    email, external_id, last_name = db.execute(
        "SELECT email, external_id, last_name FROM contacts WHERE email IS NOT NULL LIMIT 1"
    ).fetchone()
    for path in (tmp_path / "a").iterdir():
        data = path.read_bytes()
        assert email.encode() not in data and external_id.encode() not in data and last_name.encode() not in data, (
            path.name
        )


def test_personal_data_on_request_never_for_forgotten_people(demo_copy: Path, tmp_path: Path, cli):
    db = store.connect(demo_copy / "cxctl.db")
    contact_id, email = db.execute(
        "SELECT id, email FROM contacts WHERE email IS NOT NULL ORDER BY id LIMIT 1"
    ).fetchone()
    other = db.execute(
        "SELECT email FROM contacts WHERE email IS NOT NULL AND id <> ? LIMIT 1", [contact_id]
    ).fetchone()[0]
    # Marked forgotten with its columns still there (an erasure half done): the flag must not bring them out.
    db.execute("UPDATE contacts SET forgotten_at = '2026-11-22 00:00:00' WHERE id = ?", [contact_id])
    db.conn.close()
    code, out, err = cli(
        "export",
        "-w",
        str(demo_copy),
        "--to",
        str(tmp_path / "p"),
        "--format",
        "csv",
        "--now",
        DEMO_NOW,
        "--with-personal-data",
    )
    assert code == 0, err
    assert "withheld for 1 forgotten person" in err
    rows = list(csv.DictReader((tmp_path / "p" / "contacts.csv").open(encoding="utf-8")))
    assert any(r["email"] == other for r in rows)
    assert not any(r["email"] == email for r in rows)
    assert sum(r["forgotten"] == "true" for r in rows) == 1
    forgotten = next(r for r in rows if r["forgotten"] == "true")
    assert forgotten["external_id"] == forgotten["first_name"] == forgotten["last_name"] == ""
    assert email not in (tmp_path / "p" / "invitations.csv").read_text(encoding="utf-8")


def test_since_exports_only_what_changed(demo_copy: Path, tmp_path: Path, cli):
    full = {t["name"]: t["rows"] for t in _export(cli, demo_copy, tmp_path / "full", "--format", "jsonl")["tables"]}
    db = store.connect(demo_copy / "cxctl.db")
    db.execute(
        "UPDATE responses SET imported_at = '2030-01-01 00:00:00' WHERE id IN (SELECT id FROM responses ORDER BY id LIMIT 3)"
    )
    db.conn.close()
    later = {
        t["name"]: t["rows"]
        for t in _export(cli, demo_copy, tmp_path / "inc", "--format", "jsonl", "--since", "2029-12-31")["tables"]
    }
    assert full["responses"] > 3 and later["responses"] == 3 and later["events"] == 0
    lines = [
        json.loads(line) for line in (tmp_path / "inc" / "responses.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert len(lines) == 3 and all(line["imported_at"] == "2030-01-01T00:00:00Z" for line in lines)
    assert 3 <= later["answers"] < full["answers"]


def test_a_missing_secret_and_a_bad_format_are_refused(demo_copy: Path, tmp_path: Path, cli, monkeypatch):
    monkeypatch.delenv("CXCTL_EXPORT_SECRET")
    code, _, err = cli("export", "-w", str(demo_copy), "--to", str(tmp_path / "x"))
    assert code == 2 and "CXCTL_EXPORT_SECRET is not set" in err and "openssl rand" in err
    monkeypatch.setenv("CXCTL_EXPORT_SECRET", SECRET)
    code, _, err = cli("export", "-w", str(demo_copy), "--to", str(tmp_path / "x"), "--format", "xlsx")
    assert code == 2 and "parquet, csv or jsonl" in err


def test_texts_with_quotes_commas_and_newlines_survive_every_format(demo_copy: Path, tmp_path: Path, cli):
    duckdb = pytest.importorskip("duckdb")
    tricky = 'Il a dit "non", puis\nrien; d\'accord ?'
    db = store.connect(demo_copy / "cxctl.db")
    rid = db.execute("SELECT response_id FROM answers WHERE value_text IS NOT NULL LIMIT 1").fetchone()[0]
    db.execute("UPDATE answers SET value_text = ? WHERE response_id = ? AND value_text IS NOT NULL", [tricky, rid])
    db.conn.close()
    for fmt in ("parquet", "csv", "jsonl"):
        _export(cli, demo_copy, tmp_path / fmt, "--format", fmt)
    parquet = (
        duckdb.connect()
        .execute(
            f"SELECT value_text FROM read_parquet('{tmp_path / 'parquet' / 'answers.parquet'}') "
            f"WHERE response_id = {rid} AND value_text IS NOT NULL"
        )
        .fetchall()
    )
    assert (tricky,) in parquet
    assert tricky in [
        r["value_text"] for r in csv.DictReader((tmp_path / "csv" / "answers.csv").open(encoding="utf-8", newline=""))
    ]
    assert tricky in [
        json.loads(line)["value_text"]
        for line in (tmp_path / "jsonl" / "answers.jsonl").read_text(encoding="utf-8").splitlines()
    ]


def test_the_schema_page_documents_every_column():
    page = (Path(__file__).resolve().parents[2] / "docs" / "export-schema.md").read_text(encoding="utf-8")
    assert schema_markdown() in page, (
        "regenerate the tables of docs/export-schema.md from cxctl.results.export.schema_markdown()"
    )
