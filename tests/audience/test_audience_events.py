"""Events import: contacts by external id or email, time zones, keys, unknown contacts."""

from __future__ import annotations

import json

import pytest

from cxctl.audience.contacts import import_contacts, rejects_path
from cxctl.audience.events import import_events
from cxctl.core.errors import UsageError


def _events(db):
    cur = db.execute(
        "SELECT e.event_key, c.external_id, c.email, e.type, e.occurred_at, e.attributes FROM events e "
        "JOIN contacts c ON c.id = e.contact_id ORDER BY e.id"
    )
    return [(k, x, m, t, o, json.loads(a)) for k, x, m, t, o, a in cur.fetchall()]


@pytest.fixture
def known(workspace, db, fixture_file, now):
    import_contacts(workspace, db, fixture_file("salesforce_report.csv"), now)
    return db


def test_deliveries_with_day_first_local_times_and_offsets(workspace, known, fixture_file, rejects_of, now):
    path = fixture_file("livraisons.csv")
    result = import_events(workspace, known, path, now, mapping_id="livraisons")
    assert result.counts() == {
        "read": 5,
        "inserted": 2,
        "updated": 0,
        "unchanged": 0,
        "duplicates": 1,
        "rejected": 2,
        "suppressed": 0,
    }
    assert _events(known) == [
        # 14/03/2026 10:30 in Europe/Paris (UTC+1 before the end-of-March change) → 09:30 UTC.
        (
            "order_delivered:CMD-1001",
            "0035g00000AbCdE01",
            "jeanne.martin@example.fr",
            "order_delivered",
            "2026-03-14 09:30:00",
            {"n_commande": "CMD-1001", "magasin": "Lyon Part-Dieu", "montant": "49.90"},
        ),
        (
            "order_delivered:CMD-1002",
            "0035g00000AbCdE02",
            "luc.bernard@example.com",
            "order_delivered",
            "2026-03-15 08:00:00",
            {"n_commande": "CMD-1002", "magasin": "Paris Rivoli", "montant": "120.00"},
        ),
    ]
    rejects = rejects_of(rejects_path(path))
    # In row order, though row 5 was rejected while reading and row 4 only once the contacts were looked up.
    assert [(r["row"], r["reason"].split(":")[0]) for r in rejects] == [
        ("4", "unknown contact (external id 0035g00000ZZZZZ99 / nouveau.client@example.fr)"),
        ("5", "the date '31/02/2026' does not exist"),
    ]
    assert rejects[0]["reason"].endswith("import the contact first, or use --create-contacts")
    assert rejects[0]["Magasin"] == "Nice"  # the original row, as read
    assert any("read day first" in note for note in result.notes)


def test_reimporting_events_adds_nothing_and_create_contacts_adds_the_unknown_person(
    workspace, known, fixture_file, now
):
    path = fixture_file("livraisons.csv")
    import_events(workspace, known, path, now, mapping_id="livraisons")
    again = import_events(workspace, known, path, now, mapping_id="livraisons", create_contacts=True)
    assert (again.inserted, again.unchanged, again.created_contacts, again.rejected) == (1, 2, 1, 1)
    created = known.execute(
        "SELECT external_id, email FROM contacts WHERE external_id = '0035g00000ZZZZZ99'"
    ).fetchone()
    assert created == ("0035g00000ZZZZZ99", "nouveau.client@example.fr")
    assert known.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 3


def test_type_column_utc_times_and_hashed_keys(workspace, known, fixture_file, now):
    path = fixture_file("tickets.csv")
    result = import_events(workspace, known, path, now)
    assert (result.inserted, result.rejected) == (2, 0)
    events = _events(known)
    assert [(e[3], e[4], e[5]) for e in events] == [
        ("ticket_closed", "2026-03-20 14:00:00", {"channel": "phone", "agent": "Karim"}),
        ("ticket_closed", "2026-03-21 08:30:00", {"channel": "email", "agent": "Sophie"}),
    ]
    assert all(e[0].startswith("ticket_closed:") and len(e[0]) == len("ticket_closed:") + 32 for e in events)
    assert import_events(workspace, known, path, now).inserted == 0


def test_declared_date_format_reads_month_first(workspace, known, tmp_path, now):
    path = tmp_path / "us.csv"
    path.write_text("email,date,order\nluc.bernard@example.com,03/04/2026 5:30 PM,A1\n")
    import_events(workspace, known, path, now, event_type="order_delivered", date_format="%m/%d/%Y %I:%M %p")
    assert _events(known)[0][4] == "2026-03-04 16:30:00"


def test_missing_type_and_date_columns_are_usage_errors(workspace, known, tmp_path, now):
    path = tmp_path / "e.csv"
    path.write_text("email,date\nluc.bernard@example.com,2026-03-01\n")
    with pytest.raises(UsageError, match="no event type column: give --type"):
        import_events(workspace, known, path, now)
    path.write_text("email,store\nluc.bernard@example.com,Lyon\n")
    with pytest.raises(UsageError, match="no date column"):
        import_events(workspace, known, path, now, event_type="x")


def test_local_times_at_the_clock_changes_are_read_and_said(workspace, known, tmp_path, now):
    """02:30 happens twice on the last Sunday of October (Paris) and not at all on the last Sunday of March:
    each is stored (first reading; one hour later) and the summary says so."""
    path = tmp_path / "dst.csv"
    path.write_text(
        "Contact ID;Type;Date\n0035g00000AbCdE01;order_delivered;25/10/2026 02:30\n"
        "0035g00000AbCdE02;order_delivered;29/03/2026 02:30\n0035g00000AbCdE03;order_delivered;26/10/2026 02:30\n",
        encoding="utf-8",
    )
    result = import_events(workspace, known, path, now)
    assert result.inserted == 3
    stored = sorted(r[0] for r in known.execute("SELECT occurred_at FROM events"))
    assert stored == ["2026-03-29 01:30:00", "2026-10-25 00:30:00", "2026-10-26 01:30:00"]
    notes = " ".join(result.notes)
    assert "1 local time(s) happen twice" in notes and "'25/10/2026 02:30'" in notes
    assert "1 local time(s) do not exist" in notes and "'29/03/2026 02:30'" in notes


def test_a_customer_email_column_names_the_contact(workspace, known, tmp_path, now):
    """Issue 12: `customer_email` (a usual name in order exports) was an attribute, so every row was refused
    with "no column names the contact"."""
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,customer_email,delivered_at\nA-1,luc.bernard@example.com,2026-03-04 17:30\n", encoding="utf-8"
    )
    result = import_events(workspace, known, path, now, event_type="order_delivered")
    assert result.inserted == 1 and result.columns["customer_email"] == "email"


@pytest.mark.parametrize(
    "date_format, text",
    [("%d/%m/%Y %H:%M", "31/11/2026 10:00"), (None, "31/11/2026 10:00"), ("%m/%d/%Y", "02/29/2026")],
)
def test_an_impossible_date_is_said_not_to_exist(workspace, known, tmp_path, now, rejects_of, date_format, text):
    """Issue 12: `unreadable date '31/11/2026 10:00': expected the declared format` hid the real cause."""
    path = tmp_path / "e.csv"
    path.write_text(f"email,date\nluc.bernard@example.com,{text}\n", encoding="utf-8")
    result = import_events(workspace, known, path, now, event_type="x", date_format=date_format)
    reason = result.rejects[0]["reason"]
    assert f"the date {text!r} does not exist" in reason
    assert ("November 2026 has 30 days" if "11" in text[:5] else "February 2026 has 28 days") in reason


def test_contacts_import_outside_a_workspace_is_a_usage_error(tmp_path, monkeypatch, cli):
    """Issue 12: exit 1 pointing at a cxctl.yaml that does not exist; now exit 2 saying how to point at one."""
    monkeypatch.delenv("CXCTL_WORKSPACE", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.csv").write_text("email\na@example.fr\n", encoding="utf-8")
    code, out, err = cli("contacts", "import", "c.csv")
    assert code == 2 and out == ""
    assert f"{tmp_path}: not a cxctl workspace" in err and "--workspace" in err and "cxctl init" in err
