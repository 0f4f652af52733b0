"""`plan --json` over a million exclusions: the plan with its exclusions read from SQLite while they are
written, never all held as Python objects (issue 18)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from itertools import chain

import sqlite_utils

from cxctl.planning.engine import Engine
from cxctl.planning.listing import encode_exclusion, iter_exclusion_lines, iter_exclusions
from cxctl.planning.plans import Exclusion, Plan, check_moment


@contextmanager
def streamed_plan(
    ws, db: sqlite_utils.Database, now: datetime, moment: str | None = None
) -> Iterator[tuple[Plan, Iterator[Exclusion]]]:
    """compute_plan for `plan --json`: yields the plan (its `exclusions` left empty) and an iterator over
    every exclusion, in compute_plan's order, read from SQLite as it is consumed — a million exclusions
    are never Python objects at once. The run's working tables live until the block ends; read-only."""
    with _kept_run(ws, db, now, moment) as (engine, plan, reminders):
        listed = iter_exclusions(engine, plan.by_moment)
        try:
            yield plan, chain(listed, reminders)
        finally:
            listed.close()  # a reader stopped half-way holds a cursor that would lock the tables to drop


@contextmanager
def streamed_plan_json(
    ws, db: sqlite_utils.Database, now: datetime, moment: str | None = None
) -> Iterator[tuple[Plan, Iterator[str]]]:
    """streamed_plan with every exclusion already JSON text (`iter_exclusion_lines`), in the same order:
    what `plan --json` writes, with no Python object per exclusion."""
    with _kept_run(ws, db, now, moment) as (engine, plan, reminders):
        listed = iter_exclusion_lines(engine, plan.by_moment)
        try:
            yield plan, chain(listed, map(encode_exclusion, reminders))
        finally:
            listed.close()


@contextmanager
def _kept_run(
    ws, db: sqlite_utils.Database, now: datetime, moment: str | None
) -> Iterator[tuple[Engine, Plan, list[Exclusion]]]:
    """A listed run whose working tables stay until the block ends; the plan's exclusions hold only the
    reminders' (which follow the listed ones), handed apart."""
    check_moment(ws, moment)
    engine = Engine(ws, db, now)
    engine.stream_exclusions = True
    plan = engine.run(moment, list_exclusions=True, keep=True)
    try:
        reminders, plan.exclusions = plan.exclusions, []
        yield engine, plan, reminders
    finally:
        engine.finish()
