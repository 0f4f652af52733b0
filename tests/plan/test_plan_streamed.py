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

from cxctl import store
from cxctl.core import output
from cxctl.planning.engine import compute_plan
from cxctl.planning.streamed import streamed_plan
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
