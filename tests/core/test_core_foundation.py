"""The foundation every area relies on: durations, tokens, times, emails, the store's migrations,
and the CLI's single error handler."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxctl import store
from cxctl.core import tokens
from cxctl.core.durations import format_duration, parse_duration
from cxctl.core.emails import normalise
from cxctl.core.errors import StoreError, UsageError
from cxctl.core.timeutil import from_db, parse_now, to_db


@pytest.mark.parametrize(
    "text, expected",
    [
        ("36h", timedelta(hours=36)),
        ("14d", timedelta(days=14)),
        ("2w", timedelta(weeks=2)),
        ("90m", timedelta(minutes=90)),
        ("1d12h", timedelta(days=1, hours=12)),
        (" 3 d ", timedelta(days=3)),
        ("3y", timedelta(days=1095)),
        ("18mo", timedelta(days=540)),
        ("1y6mo", timedelta(days=545)),
        ("18m", timedelta(minutes=18)),
    ],
)
def test_parse_duration_reads_the_units_people_write(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "14", "d14", "2 weeks", "1.5d", "-3d", "3years", "18mon"])
def test_parse_duration_refuses_malformed_durations_naming_the_forms(text):
    with pytest.raises(ValueError, match=r"e\.g\. 90m, 36h, 14d, 2w"):
        parse_duration(text)


@given(st.integers(min_value=1, max_value=10 * 365 * 86400))
def test_format_duration_round_trips(seconds):
    delta = timedelta(seconds=seconds)
    assert parse_duration(format_duration(delta)) == delta


@given(st.integers(min_value=1, max_value=20 * 365))
def test_whole_days_round_trip_in_one_unit(days):
    text = format_duration(timedelta(days=days))
    assert parse_duration(text) == timedelta(days=days) and sum(ch.isalpha() for ch in text.replace("mo", "M")) == 1


@pytest.mark.parametrize(
    "days, shown", [(1095, "3y"), (540, "18mo"), (180, "6mo"), (30, "30d"), (14, "2w"), (10, "10d"), (400, "400d")]
)
def test_durations_are_shown_as_people_write_them(days, shown):
    """A retention of 1095 days read `156w3d`; it reads `3y`."""
    assert format_duration(timedelta(days=days)) == shown


def test_tokens_verify_only_what_the_secret_signed():
    token = tokens.new_token(b"s3cret")
    assert tokens.verify(b"s3cret", token)
    assert not tokens.verify(b"other", token)
    random_id, tag = token.split(".")
    assert not tokens.verify(b"s3cret", random_id + "." + tag[::-1])
    assert not tokens.verify(b"s3cret", "x" + token)
    assert not tokens.verify(b"s3cret", "no-dot")
    assert not tokens.verify(b"s3cret", "é.é")


@settings(max_examples=50)
@given(st.text(min_size=1, max_size=5, alphabet="0123456789"))
def test_one_click_values_cannot_be_altered(value):
    token = tokens.new_token(b"k")
    tag = tokens.sign_value(b"k", token, value)
    assert tokens.verify_value(b"k", token, value, tag)
    assert not tokens.verify_value(b"k", token, value + "0", tag)


def test_tokens_are_unique_and_url_safe():
    seen = {tokens.new_token(b"k") for _ in range(2000)}
    assert len(seen) == 2000
    assert all(set(t) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") for t in seen)


def test_times_are_stored_as_utc_text_and_read_back():
    paris = datetime(2026, 3, 29, 3, 30, tzinfo=timezone(timedelta(hours=2)))
    assert to_db(paris) == "2026-03-29 01:30:00"
    assert from_db("2026-03-29 01:30:00") == paris
    with pytest.raises(ValueError):
        to_db(datetime(2026, 1, 1))


def test_now_reads_naive_times_in_the_workspace_zone():
    assert to_db(parse_now("2026-07-01T09:00", "Europe/Paris")) == "2026-07-01 07:00:00"
    assert to_db(parse_now("2026-01-01T09:00", "Europe/Paris")) == "2026-01-01 08:00:00"
    assert to_db(parse_now("2026-01-01T09:00Z", "Europe/Paris")) == "2026-01-01 09:00:00"
    with pytest.raises(UsageError, match="--now"):
        parse_now("22/11/2026")


def test_emails_are_normalised_once_for_everyone():
    assert normalise("  Jean.Dupont@Exemple.FR ") == "Jean.Dupont@exemple.fr"
    assert normalise("élodie@café.fr") == "élodie@xn--caf-dma.fr"
    with pytest.raises(ValueError, match="invalid email"):
        normalise("jean.dupont@")
    assert store.email_hash("A@b.fr ") == store.email_hash("a@b.fr")


def test_store_migrates_once_and_records_versions(tmp_path):
    path = tmp_path / "cx.db"
    db = store.connect(path)
    versions = [r[0] for r in db.execute("SELECT version FROM migrations ORDER BY version")]
    assert versions == [v for v, _, _ in store.MIGRATIONS]
    assert store.migrate(store.connect(path)) == []
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_store_upgrades_a_version_4_database_in_place(tmp_path):
    """A store made before migration 5 keeps its rows and loses only the index on contacts(email)."""
    path = tmp_path / "cx.db"
    db = store.connect(path)
    db.execute("CREATE INDEX contacts_email ON contacts(email)")
    db.execute("DELETE FROM migrations WHERE version >= 5")
    db.execute(
        "INSERT INTO contacts (external_id, email, email_hash, created_at, updated_at) "
        "VALUES ('C1', 'a@b.fr', ?, '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
        [store.email_hash("a@b.fr")],
    )
    db.conn.close()
    again = store.connect(path)
    indexes = {
        r[0] for r in again.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'contacts'")
    }
    assert "contacts_email" not in indexes and "contacts_email_hash" in indexes
    assert again.execute("SELECT external_id FROM contacts").fetchall() == [("C1",)]
    assert store.status(again, path).version == max(v for v, _, _ in store.MIGRATIONS)


def test_store_refuses_a_database_from_a_newer_cxctl(tmp_path):
    path = tmp_path / "cx.db"
    store.connect(path).execute("INSERT INTO migrations VALUES (999, 'future', '2030-01-01 00:00:00')")
    with pytest.raises(StoreError, match="upgrade cxctl"):
        store.connect(path)


def test_store_reports_a_file_that_is_not_a_database(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("hello, this is not sqlite " * 100)
    with pytest.raises(StoreError, match="cannot open the database"):
        store.connect(path)


def test_cli_exit_codes(cli, tmp_path):
    code, out, err = cli("--version")
    assert code == 0 and out.startswith("cxctl ")
    code, out, err = cli("no-such-command")
    assert code == 2 and "No such command" in err
    code, out, err = cli("db", "status", "--workspace", str(tmp_path / "missing"))
    assert code == 2 and "no such file or folder" in err


def test_db_status_shows_version_and_counts(cli, workspace_dir):
    code, out, err = cli("db", "status", "-w", str(workspace_dir), "--json")
    assert code == 0, err
    import json

    data = json.loads(out)
    assert data["version"] == data["latest"] == max(v for v, _, _ in store.MIGRATIONS)
    assert data["counts"]["contacts"] == 0
    assert (workspace_dir / "cxctl.db").exists()


@settings(max_examples=60, deadline=None)
@given(
    planned=st.lists(st.tuples(st.integers(), st.text(max_size=8), st.none() | st.text(max_size=4)), max_size=30),
    counts=st.dictionaries(st.text(max_size=6), st.integers(), max_size=4),
)
def test_streamed_json_says_what_the_one_shot_json_says(planned, counts):
    """`plan --json` writes its lists item by item (a million exclusions would not fit in memory as one
    document): whatever the content — accents, quotes, empty lists, nested dataclasses — it parses to
    exactly what print_json prints."""
    import contextlib
    import dataclasses
    import io
    import json

    from cxctl.core import output

    @dataclasses.dataclass(slots=True)
    class Item:
        contact_id: int
        moment: str
        wave: str | None
        send_at: datetime

    @dataclasses.dataclass
    class Wrapper:
        item: Item
        tags: tuple

    items = [Item(i, m, w, datetime(2026, 11, 20, 10, tzinfo=UTC)) for i, m, w in planned]
    data = {
        "now": datetime(2026, 11, 20, tzinfo=UTC),
        "planned": items,
        "empty": [],
        "counts": counts,
        "wrapped": [Wrapper(item, ("é", '"')) for item in items[:3]],
    }
    one_shot, streamed = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(one_shot):
        output.print_json(data)
    with contextlib.redirect_stdout(streamed):
        output.print_json_streamed(data)
    assert json.loads(streamed.getvalue()) == json.loads(one_shot.getvalue())
    assert streamed.getvalue().endswith("}\n")
    # Items already encoded (plan --json's exclusions, built by SQLite) are written as the encoder would.
    encoded = io.StringIO()
    texts = [
        json.dumps(dataclasses.asdict(item), separators=(", ", ": "), ensure_ascii=False, default=datetime.isoformat)
        for item in items
    ]
    with contextlib.redirect_stdout(encoded):
        output.print_json_streamed({**data, "planned": output.EncodedItems(iter(texts))})
    assert encoded.getvalue() == streamed.getvalue()


def test_long_lists_are_streamed_and_still_the_same_json(monkeypatch):
    """Above STREAM_ABOVE items print_json writes item by item (a top-level list or a dict of lists)."""
    import contextlib
    import io
    import json

    from cxctl.core import output

    monkeypatch.setattr(output, "STREAM_ABOVE", 3)
    for data in (
        [{"id": i, "note": 'é"\n'} for i in range(5)],
        {"n": 1, "rows": list(range(5)), "none": []},
        [],
        [1, 2],
    ):
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            output.print_json(data)
        assert json.loads(buffer.getvalue()) == data
        if isinstance(data, list) and len(data) > 3:
            assert buffer.getvalue().count("\n") == len(data) + 2  # "[", one line per item, "]"


def test_the_signing_secret_must_be_long_enough(workspace_dir, monkeypatch):
    """A short secret can be recovered offline from a single link, and every link then forged."""
    from cxctl.validation import load_workspace

    ws = load_workspace(workspace_dir)
    monkeypatch.setenv("CXCTL_SECRET", "hunter2")
    with pytest.raises(UsageError, match="is 7 characters long: a secret that signs links needs at least 16"):
        ws.secret()
    monkeypatch.delenv("CXCTL_SECRET")
    with pytest.raises(UsageError, match="CXCTL_SECRET is not set"):
        ws.secret()
    monkeypatch.setenv("CXCTL_SECRET", "0123456789abcdef")
    assert ws.secret() == b"0123456789abcdef"
