"""Dimension rollups (`dimensions:` in cxctl.yaml): the breakdown they give equals the one that scans the
responses, whatever happens to the contacts, events, invitations and imports before and after they are built."""

from __future__ import annotations

import csv
import json
import sqlite3
import uuid
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxctl import store
from cxctl.core.errors import UsageError
from cxctl.privacy.erasure import forget
from cxctl.results.importer import import_responses, rebuild_rollups
from cxctl.results.scorecard import compute_scorecard
from cxctl.store import dimensions
from cxctl.validation import load_workspace

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
DIMENSIONS = ["region", "segment", "event.nature"]
# (by, since): the period labels of a scorecard, few (October) and many (the weeks since June, 28 labels).
BREAKDOWNS = [
    (["region"], "2026-10-01"),
    (["segment", "week"], "2026-10-01"),
    (["moment", "event.nature"], "2026-10-01"),
    (["region", "month"], "2026-10-01"),
    (["region", "week"], "2026-06-01"),
]
REGIONS = st.sampled_from(["nord", "sud", "est", None, 3])
NATURES = st.sampled_from(["vol", "bris", None])


def _attributes(region) -> str:
    return json.dumps({} if region is None else {"region": region, "autre": 1})


def _figures(ws, db):
    """Rows and notes of each breakdown, or the refusal (a dimension no contact or event has)."""
    out = []
    for by, since in BREAKDOWNS:
        try:
            card = compute_scorecard(ws, db, NOW, by=by, since=since, until="2026-10-31")
        except UsageError as exc:
            out.append(str(exc))
        else:
            out.append((card.rows, card.notes))
    return out


def _uses_rollups(db) -> bool:
    return bool(db.execute("SELECT COUNT(*) FROM rollup_dimensions").fetchone()[0])


class World:
    """A store the operations write through the same paths as cxctl (imports, SQL updates the triggers see)."""

    def __init__(self, ws, db, sql, folder):
        self.ws, self.db, self.sql, self.folder = ws, db, sql, folder
        self.contacts: list[int] = []
        self.events: list[int] = []
        self.tokens: list[str] = []
        self.externals: list[str] = []
        self.imports = 0

    def contact(self, region, segment) -> None:
        external = f"C{uuid.uuid4().hex[:8]}"
        self.externals.append(external)
        self.contacts.append(self.sql.add_contact(self.db, external, None, segment, _attributes(region)))

    def invite(self, contact: int, nature, day: int, sent: bool, moment: str = "nps_relational") -> None:
        cid = self.contacts[contact % len(self.contacts)]
        event = None
        if nature != "none":
            event = self.sql.add_event(
                self.db,
                cid,
                "claim",
                f"2026-10-{day:02d} 08:00:00",
                json.dumps({} if nature is None else {"nature": nature}),
                key=uuid.uuid4().hex,
            )
            self.events.append(event)
        self.tokens.append(
            self.sql.add_invitation(
                self.db,
                cid,
                moment,
                f"2026-10-{day:02d} 0{day % 10}:00:00",
                status="sent" if sent else "planned",
                event_id=event,
            )
        )

    def move(self, contact: int, region) -> None:
        """A contact's region changes (the triggers move its counts)."""
        cid = self.contacts[contact % len(self.contacts)]
        self.db.execute("UPDATE contacts SET attributes = ? WHERE id = ?", [_attributes(region), cid])

    def resegment(self, contact: int, segment) -> None:
        cid = self.contacts[contact % len(self.contacts)]
        self.db.execute("UPDATE contacts SET segment = ? WHERE id = ?", [segment, cid])

    def answer(self, rows) -> None:
        """rows: (response id number, invitation number, day, score); a known response id is replaced when later."""
        self.imports += 1
        path = self.folder / f"import-{self.imports}-{uuid.uuid4().hex[:6]}.csv"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["response_id", "token", "submitted_at", "nps"])
            for key, invitation, day, score in rows:
                token = self.tokens[invitation % len(self.tokens)]
                writer.writerow([f"r{key}", token, f"2026-10-{day:02d} {10 + self.imports % 10}:00", score])
        import_responses(self.ws, self.db, path, NOW, moment="nps_relational")

    def answer_free(self, moment: str, rows) -> None:
        """rows: (response id number, contact number or None for an unknown person, day, score, token of an
        invitation number or None): answers to a moment matched by contact (web_csat) or by nothing
        (store_visit), most without token, so most are stored without invitation."""
        self.imports += 1
        question = "csat" if moment == "web_csat" else "nps"
        path = self.folder / f"free-{self.imports}-{uuid.uuid4().hex[:6]}.csv"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["response_id", "token", "external_id", "submitted_at", question])
            for key, contact, day, score, invitation in rows:
                external = "nobody" if contact is None else self.externals[contact % len(self.externals)]
                token = "" if invitation is None else self.tokens[invitation % len(self.tokens)]
                value = 1 + score % 5 if question == "csat" else score
                writer.writerow(
                    [f"{moment}{key}", token, external, f"2026-10-{day:02d} {10 + self.imports % 10}:00", value]
                )
        import_responses(self.ws, self.db, path, NOW, moment=moment)


OPERATIONS = st.one_of(
    st.tuples(st.just("contact"), REGIONS, st.sampled_from(["pro", "part", None])),
    st.tuples(
        st.just("invite"),
        st.integers(0, 20),
        st.sampled_from(["vol", "bris", None, "none"]),
        st.integers(1, 28),
        st.booleans(),
    ),
    st.tuples(
        st.just("answer"),
        st.lists(
            st.tuples(st.integers(0, 12), st.integers(0, 30), st.integers(1, 28), st.integers(0, 10)),
            min_size=1,
            max_size=6,
        ),
    ),
    st.tuples(st.just("move"), st.integers(0, 20), REGIONS),
    st.tuples(st.just("resegment"), st.integers(0, 20), st.sampled_from(["pro", "part", None])),
    st.tuples(st.just("renature"), st.integers(0, 20), NATURES),
    st.tuples(st.just("send"), st.integers(0, 30), st.integers(1, 28)),
    st.tuples(st.just("unsend"), st.integers(0, 30)),
    st.tuples(
        st.just("sync"),
    ),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(OPERATIONS, min_size=3, max_size=14))
def test_rollup_breakdown_equals_the_raw_breakdown(results_ws, sql, tmp_path_factory, operations):
    """Random contacts, invitations, imports (new, replaced, duplicate answers), attribute and event changes and
    sends, with the dimensions built at a random moment (or at the end): the scorecards by region, segment
    and event.nature read from the rollups equal the ones that scan the responses, and a rebuild changes nothing."""
    ws, _ = results_ws
    ws.settings.min_responses = 1
    folder = tmp_path_factory.mktemp("dims")
    db = store.connect(folder / "cxctl.db")
    world = World(ws, db, sql, folder)
    world.contact("nord", "pro")
    world.invite(0, "vol", 3, True)
    for operation in operations:
        kind, *args = operation
        if kind == "contact":
            world.contact(*args)
        elif kind == "invite":
            world.invite(*args)
        elif kind == "answer":
            world.answer(args[0])
        elif kind == "move":
            world.move(*args)
        elif kind == "resegment":
            world.resegment(*args)
        elif kind == "renature" and world.events:
            event = world.events[args[0] % len(world.events)]
            db.execute(
                "UPDATE events SET attributes = ? WHERE id = ?",
                [json.dumps({} if args[1] is None else {"nature": args[1]}), event],
            )
        elif kind == "send":
            db.execute(
                "UPDATE invitations SET status = 'sent', sent_at = ? WHERE token = ?",
                [f"2026-10-{args[1]:02d} 12:00:00", world.tokens[args[0] % len(world.tokens)]],
            )
        elif kind == "unsend":
            db.execute(
                "UPDATE invitations SET status = 'failed' WHERE token = ?", [world.tokens[args[0] % len(world.tokens)]]
            )
        elif kind == "sync":
            dimensions.sync(db, DIMENSIONS)
    dimensions.sync(db, DIMENSIONS)
    assert _uses_rollups(db)
    from_rollups = _figures(ws, db)
    rebuild_rollups(db)
    assert _figures(ws, db) == from_rollups
    assert dimensions.sync(db, []).dropped == DIMENSIONS
    assert not _uses_rollups(db)
    assert _figures(ws, db) == from_rollups
    db.conn.close()


def _free_moments(ws):
    """The workspace with answers without invitation: web_csat matched by contact, store_visit by nothing."""
    path = ws.root / "ecommerce.yaml"
    text = path.read_text(encoding="utf-8")
    if "match: contact" not in text:
        text = text.replace("      keep: last\n", "      keep: last\n      match: contact\n", 1)
        text = text.replace("      match_window: 10d\n", "      match_window: 10d\n      match: none\n", 1)
        path.write_text(text, encoding="utf-8")
    ws = load_workspace(ws.root)
    assert ws.moments["web_csat"].responses.match == "contact" and ws.moments["store_visit"].responses.match == "none"
    return ws


FREE_ROWS = st.lists(
    st.tuples(
        st.integers(0, 8),
        st.one_of(st.none(), st.integers(0, 20)),
        st.integers(1, 28),
        st.integers(0, 10),
        st.one_of(st.none(), st.none(), st.none(), st.integers(0, 30)),
    ),
    min_size=1,
    max_size=5,
)
FREE_OPERATIONS = st.one_of(
    st.tuples(st.just("contact"), REGIONS, st.sampled_from(["pro", "part", None])),
    st.tuples(
        st.just("invite"),
        st.integers(0, 20),
        st.sampled_from(["vol", None, "none"]),
        st.integers(1, 28),
        st.booleans(),
        st.sampled_from(["web_csat", "nps_relational"]),
    ),
    st.tuples(st.just("free"), st.sampled_from(["web_csat", "web_csat", "store_visit"]), FREE_ROWS),
    st.tuples(st.just("free"), st.sampled_from(["web_csat", "web_csat", "store_visit"]), FREE_ROWS),
    st.tuples(st.just("move"), st.integers(0, 20), REGIONS),
    st.tuples(st.just("resegment"), st.integers(0, 20), st.sampled_from(["pro", "part", None])),
    st.tuples(st.just("forget"), st.integers(0, 20)),
    st.tuples(st.just("delete"), st.integers(0, 40)),
    st.tuples(st.just("rebuild")),
    st.tuples(st.just("sync")),
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(FREE_OPERATIONS, min_size=3, max_size=12))
def test_answers_without_invitation_count_the_same_from_the_rollups(results_ws, sql, tmp_path_factory, operations):
    """Answers without invitation (web_csat matched by contact, store_visit anonymous or by contact), replaced
    by later versions (another person, now an invitation), their contacts moving, resegmented or forgotten,
    responses deleted, rollups rebuilt: the scorecards by region, segment and event.nature (scores, responses,
    uninvited, response rate) read from the rollups equal the ones that scan the responses."""
    ws = _free_moments(results_ws[0])
    ws.settings.min_responses = 1
    folder = tmp_path_factory.mktemp("free")
    db = store.connect(folder / "cxctl.db")
    world = World(ws, db, sql, folder)
    # Three people, one invited to web_csat late in the month: most answers to it come without invitation.
    for region, segment in (("nord", "pro"), ("sud", "part"), (None, "pro")):
        world.contact(region, segment)
    world.invite(0, "vol", 25, True, "web_csat")
    for kind, *args in operations:
        if kind == "contact":
            world.contact(*args)
        elif kind == "invite":
            world.invite(*args)
        elif kind == "free":
            world.answer_free(*args)
        elif kind == "move":
            world.move(*args)
        elif kind == "resegment":
            world.resegment(*args)
        elif kind == "forget":
            cid = world.contacts[args[0] % len(world.contacts)]
            if db.execute("SELECT forgotten_at IS NULL FROM contacts WHERE id = ?", [cid]).fetchone()[0]:
                forget(ws, db, world.externals[args[0] % len(world.externals)], NOW)
        elif kind == "delete":
            ids = [i for (i,) in db.execute("SELECT id FROM responses ORDER BY id")]
            if ids:
                db.execute("DELETE FROM responses WHERE id = ?", [ids[args[0] % len(ids)]])
        elif kind == "rebuild":
            rebuild_rollups(db)
        elif kind == "sync":
            dimensions.sync(db, DIMENSIONS)
    dimensions.sync(db, DIMENSIONS)
    free = db.execute("SELECT COUNT(*) FROM responses WHERE status = 'counted' AND invitation_id IS NULL").fetchone()[0]
    from_rollups = _figures(ws, db)
    if not isinstance(from_rollups[0], str):  # --by region over October (refused when no one has a region left)
        assert sum(row.uninvited for row in from_rollups[0][0]) == free
    rebuild_rollups(db)
    assert _figures(ws, db) == from_rollups
    dimensions.sync(db, [])
    assert _figures(ws, db) == from_rollups
    db.conn.close()


def _seeded(ws, db, sql, folder) -> World:
    world = World(ws, db, sql, folder)
    for region, segment in (("nord", "pro"), ("sud", "part"), (None, "pro")):
        world.contact(region, segment)
    for i in range(6):
        world.invite(i, "vol" if i % 2 else "bris", 5 + i, True)
    world.answer([(i, i, 12, 10 - i) for i in range(6)])
    return world


def test_sync_builds_the_listed_and_drops_the_unlisted(results_ws, sql, tmp_path):
    ws, db = results_ws
    _seeded(ws, db, sql, tmp_path)
    first = dimensions.sync(db, ["region", "event.nature"])
    assert first.built == ["region", "event.nature"] and first.dropped == [] and first.skipped is None
    assert set(dimensions.built(db)) == {"region", "event.nature"}
    counts = dict(
        db.execute("SELECT value, SUM(n) FROM dim_response_rollup WHERE dimension = 'region' GROUP BY 1").fetchall()
    )
    assert counts == {"nord": 2, "sud": 2, "": 2}
    assert dimensions.sync(db, ["region", "event.nature"]) == dimensions.SyncResult()  # nothing to do, nothing written
    second = dimensions.sync(db, ["region"])
    assert second.built == [] and second.dropped == ["event.nature"]
    for table in ("dim_score_rollup", "dim_response_rollup", "dim_sent_rollup"):
        assert db.execute(f"SELECT COUNT(*) FROM {table} WHERE dimension = 'event.nature'").fetchone()[0] == 0
        assert db.execute(f"SELECT COUNT(*) FROM {table} WHERE dimension = 'region'").fetchone()[0] > 0


def test_a_contact_moving_moves_its_counts(results_ws, sql, tmp_path):
    """Current value: the contact now in `sud` counts in sud, for the past answers too, as without rollups."""
    ws, db = results_ws
    world = _seeded(ws, db, sql, tmp_path)
    dimensions.sync(db, ["region"])
    db.execute("UPDATE contacts SET attributes = ? WHERE id = ?", [_attributes("sud"), world.contacts[0]])
    counts = dict(
        db.execute("SELECT value, SUM(n) FROM dim_response_rollup WHERE dimension = 'region' GROUP BY 1").fetchall()
    )
    assert counts == {"nord": 0, "sud": 4, "": 2}
    sent = dict(
        db.execute("SELECT value, SUM(n) FROM dim_sent_rollup WHERE dimension = 'region' GROUP BY 1").fetchall()
    )
    assert sent == {"nord": 0, "sud": 4, "": 2}


def test_a_read_only_store_is_never_written(results_ws, sql, tmp_path):
    ws, db = results_ws
    _seeded(ws, db, sql, tmp_path)
    db.conn.close()
    path = ws.database
    before = path.read_bytes()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    result = dimensions.sync(__import__("sqlite_utils").Database(conn), ["region"])
    conn.close()
    assert result.built == [] and result.skipped is not None and "cannot be written" in result.skipped
    assert path.read_bytes() == before
    # The empty in-memory store of a workspace with no database yet is not written either.
    empty = store.read(tmp_path / "none" / "cxctl.db")
    assert dimensions.sync(empty, ["region"]).skipped == "the store is not created yet"
    assert not (tmp_path / "none").exists()


def test_cli_says_when_it_builds_and_reads_the_rollups(results_ws, sql, tmp_path, cli):
    ws, db = results_ws
    _seeded(ws, db, sql, tmp_path)
    raw = compute_scorecard(ws, db, NOW, by=["region"], since="2026-10-01", until="2026-10-31")
    db.conn.close()
    config = ws.root / "cxctl.yaml"
    config.write_text(
        config.read_text().replace("workspace:\n", "workspace:\n  dimensions: [region]\n", 1), encoding="utf-8"
    )
    base = (
        "scorecard",
        "-w",
        str(ws.root),
        "--by",
        "region",
        "--since",
        "2026-10-01",
        "--until",
        "2026-10-31",
        "--now",
        NOW.isoformat(),
        "--json",
    )
    code, out, err = cli(*base)
    assert (
        code == 0
        and "built the rollups of dimension(s) region in " in err
        and "scorecards by it now read counts per value" in err
    )
    assert [row["group"] for row in json.loads(out)["rows"]] == [{"region": r.group["region"]} for r in raw.rows]
    assert [row["responses"] for row in json.loads(out)["rows"]] == [r.responses for r in raw.rows]
    code, _, err = cli(*base)
    assert code == 0 and "built the rollups" not in err  # built once
    config.write_text(config.read_text().replace("  dimensions: [region]\n", ""), encoding="utf-8")
    code, _, err = cli(*base)
    assert code == 0 and "dropped the rollups of dimension(s) region" in err


def test_a_period_that_is_not_one_range_of_days_is_counted_through_the_join(results_ws, sql, tmp_path):
    """Scorecard periods are ranges of days; should one not be (days 10 and 12 without 11), the breakdown
    joins each rollup row to its days instead of summing a key range, and counts the same."""
    from cxctl.results.dimension_breakdown import fetch_by_dimension

    ws, db = results_ws
    _seeded(ws, db, sql, tmp_path)  # invitations sent on days 5…10, every answer on day 12
    dimensions.sync(db, ["region"])

    def counts(days: list[int]) -> dict:
        db.execute("CREATE TEMP TABLE IF NOT EXISTS sc_days (day TEXT, label TEXT)")
        db.execute("CREATE TEMP TABLE IF NOT EXISTS sc_hours (hour TEXT, label TEXT)")
        db.execute("CREATE TEMP TABLE IF NOT EXISTS sc_moments (moment TEXT PRIMARY KEY)")
        for table in ("sc_days", "sc_hours", "sc_moments"):
            db.execute(f"DELETE FROM temp.{table}")
        db.execute("INSERT INTO temp.sc_moments VALUES ('nps_relational')")
        for day in days:
            db.execute("INSERT INTO temp.sc_days VALUES (?, 'p')", [f"2026-10-{day:02d}"])
            for hour in range(24):
                db.execute("INSERT INTO temp.sc_hours VALUES (?, 'p')", [f"2026-10-{day:02d} {hour:02d}"])
        out = fetch_by_dimension(ws, db, "region", ["nps_relational"])
        return {key: (cell["responses"], cell["sent"], dict(cell["scores"])) for key, cell in out.items()}

    joined = counts([10, 12])
    assert joined == {
        ("nord", "nps_relational", "p"): (2, 0, {("nps", 10): 1, ("nps", 7): 1}),
        ("sud", "nps_relational", "p"): (2, 0, {("nps", 9): 1, ("nps", 6): 1}),
        ("", "nps_relational", "p"): (2, 1, {("nps", 8): 1, ("nps", 5): 1}),
    }
    assert counts([10, 11, 12]) == joined  # one range: summed, same counts (nothing on day 11)


def test_anonymous_answers_alone_in_their_cell_are_counted_by_the_raw_breakdown(results_ws, sql, tmp_path):
    """A store_visit answer without contact (match: none), the only one of its day and score: the raw
    breakdown by region put it in no group (it crashed summing a column of no contact, NULL)."""
    ws = _free_moments(results_ws[0])
    ws.settings.min_responses = 1
    db = results_ws[1]
    world = World(ws, db, sql, tmp_path)
    world.contact("nord", "pro")
    world.answer_free("store_visit", [(1, None, 4, 9, None), (2, 0, 5, 3, None)])
    card = compute_scorecard(ws, db, NOW, by=["region"], since="2026-10-01", until="2026-10-31")
    assert [(r.group["region"], r.responses, r.uninvited) for r in card.rows] == [("", 1, 1), ("nord", 1, 1)]
    dimensions.sync(db, ["region"])
    rolled = compute_scorecard(ws, db, NOW, by=["region"], since="2026-10-01", until="2026-10-31")
    assert (rolled.rows, rolled.notes) == (card.rows, card.notes)
