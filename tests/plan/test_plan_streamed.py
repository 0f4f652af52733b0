"""`plan --json` streams the exclusions from SQLite to the encoder (issue 18): the document must be the one the
list-building path wrote, byte for byte, on a store where every exclusion reason occurs."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxctl import store
from cxctl.core import output
from cxctl.planning.engine import compute_plan
from cxctl.planning.listing import encode_exclusion, json_quote_like_python
from cxctl.planning.streamed import streamed_plan, streamed_plan_json
from cxctl.validation import load_workspace

BENCH = Path(__file__).resolve().parents[2] / "bench" / "plan_engine.py"
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def bench_store(tmp_path_factory):
    """The planning benchmark's generated store (set-based SQL, 3,000 contacts, 30,000 past invitations)
    with caps low enough that the daily caps exclude people too."""
    spec = importlib.util.spec_from_file_location("plan_engine_bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCH.parent))  # the bench imports its harness
    try:
        spec.loader.exec_module(bench)
    finally:
        sys.path.remove(str(BENCH.parent))
    folder = tmp_path_factory.mktemp("plan-bench")
    bench.generate(folder, 3_000, 6_000, 30_000)
    yaml = (folder / "cxctl.yaml").read_text(encoding="utf-8")
    yaml = yaml.replace("daily_cap: 60000", "daily_cap: 400").replace("daily_cap: 20000", "daily_cap: 150")
    (folder / "cxctl.yaml").write_text(yaml, encoding="utf-8")
    return folder


def listed_document(ws, moment: str | None) -> str:
    """What `plan --json` wrote before streaming: the whole plan built as Python objects, then written."""
    plan = compute_plan(ws, store.read(ws.database), NOW, moment)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        output.print_json_streamed(
            {
                "now": plan.now,
                "waves": plan.waves,
                "planned": plan.planned,
                "counts": plan.counts,
                "by_moment": plan.by_moment,
                "exclusions": plan.exclusions,
            }
        )
    return out.getvalue()


@pytest.mark.parametrize("moment", [None, "delivery", "nps"])
def test_plan_json_streamed_is_byte_for_byte_the_listed_document(bench_store, cli, monkeypatch, moment):
    monkeypatch.setenv("CXCTL_SECRET", "test-secret-do-not-use-in-production")
    ws = load_workspace(bench_store)
    expected = listed_document(ws, moment)
    args = ["plan", "-w", str(bench_store), "--now", NOW.isoformat(), "--json"] + (
        ["--moment", moment] if moment else []
    )
    code, out, err = cli(*args)
    assert code == 0, err
    assert out == expected
    data = json.loads(out)
    if moment is None:  # the corpus exercises every reason, and reminders are planned
        assert set(data["counts"]) >= {
            "expired",
            "no_email",
            "quiet_period",
            "already_invited",
            "lower_priority",
            "not_sampled",
            "suppressed",
            "daily_cap",
        }
        assert any(p["kind"] == "reminder" for p in data["planned"])
    assert len(data["exclusions"]) == sum(data["counts"].values())


def test_a_streamed_plan_leaves_the_connection_as_it_found_it(bench_store):
    ws = load_workspace(bench_store)
    db = store.read(ws.database)
    before = [db.conn.execute(f"PRAGMA {name}").fetchone()[0] for name in ("cache_size", "temp_store")]
    with streamed_plan(ws, db, NOW) as (plan, exclusions):
        assert plan.exclusions == []
        first = next(exclusions)
        assert first.reason in plan.by_moment[first.moment]
    assert not db.conn.in_transaction
    assert db.conn.execute("SELECT COUNT(*) FROM sqlite_temp_master").fetchone()[0] == 0
    assert [db.conn.execute(f"PRAGMA {name}").fetchone()[0] for name in ("cache_size", "temp_store")] == before
    # And a plan computed afterwards on the same connection is the same.
    assert len(compute_plan(ws, db, NOW).exclusions) == sum(plan.counts.values())


def test_this_sqlite_quotes_json_as_python_does(bench_store):
    """The lines `plan --json` writes are built by SQLite's json_quote only where it escapes as Python does;
    on this machine it must, or the byte-for-byte test above would not test the SQL-built lines."""
    assert json_quote_like_python(store.read(load_workspace(bench_store).database).conn)


def test_exclusion_lines_built_by_sqlite_are_the_encoded_exclusions_for_any_text(make_store):
    """A suppression reason is free text carried into the detail: whatever it holds (quotes, backslashes,
    control characters, accents, emoji), the line SQLite builds is the one Python's encoder writes."""
    s = make_store(
        "rules:\n  quiet_period: 30d\n",
        "moments:\n  delivery: {journey: shop, stage: delivery, kind: transactional, questions: [csat],"
        " trigger: {event: order_delivered, delay: 2d, expires: 14d}}\n",
    )
    c = s.contact("c1")
    s.event(c, "order_delivered", "2026-11-17 09:00:00")
    s.suppress("c1@example.com")

    @given(reason=st.text(max_size=40))
    @settings(max_examples=150, deadline=None)
    def check(reason: str) -> None:
        s.db.execute("UPDATE suppressions SET reason = ?", [reason])
        with streamed_plan(s.ws, s.db, NOW) as (_, exclusions):
            expected = [encode_exclusion(x) for x in exclusions]
        with streamed_plan_json(s.ws, s.db, NOW) as (_, lines):
            written = list(lines)
        assert written == expected
        [line] = written
        assert json.loads(line)["detail"].startswith(f"the address is suppressed ({reason}, since ")

    check()
