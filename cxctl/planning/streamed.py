"""`plan --json` over a million exclusions: the plan with its exclusions read from SQLite while they are
written, never all held as Python objects (issue 18)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from itertools import chain

import sqlite_utils

from cxctl.planning.engine import Engine
from cxctl.planning.listing import iter_exclusions
from cxctl.planning.plans import Exclusion, Plan, check_moment


@contextmanager
def streamed_plan(
    ws, db: sqlite_utils.Database, now: datetime, moment: str | None = None
) -> Iterator[tuple[Plan, Iterator[Exclusion]]]:
    """compute_plan for `plan --json`: yields the plan (its `exclusions` left empty) and an iterator over
    every exclusion, in compute_plan's order, read from SQLite as it is consumed — a million exclusions
    are never Python objects at once. The run's working tables live until the block ends; read-only."""
    check_moment(ws, moment)
    engine = Engine(ws, db, now)
    engine.stream_exclusions = True
    plan = engine.run(moment, list_exclusions=True, keep=True)
    listed = iter_exclusions(engine, plan.by_moment)
    try:
        reminders, plan.exclusions = plan.exclusions, []  # the reminders' exclusions follow the listed ones
        yield plan, chain(listed, reminders)
    finally:
        listed.close()  # a reader stopped half-way holds a cursor that would lock the tables to drop
        engine.finish()
