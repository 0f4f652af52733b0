"""Bounce and complaint rates per moment and per day, read against the bulk-sender thresholds, and the
ceiling at which `cxctl send` stops a moment.

Messages handed over (sent or bounced) are counted on the day they went; bounces and complaints are
counted on the day of the message they answer (so a complaint that arrives a week later still counts
against the day it was sent). Hard bounces are the invitations marked bounced (at send time or by
`bounces import`); soft bounces and complaints come from the bounces table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlite_utils

from cxctl.core.durations import format_duration
from cxctl.core.timeutil import to_db
from cxctl.workspace.deliverability_model import BOUNCE_THRESHOLD, COMPLAINT_THRESHOLD
from cxctl.workspace.loader import Workspace


@dataclass
class RateRow:
    """One moment on one day (day None: the whole period)."""

    moment: str
    day: str | None
    sent: int
    hard_bounces: int
    soft_bounces: int
    complaints: int
    bounce_rate: float | None  # hard bounces ÷ sent, %
    complaint_rate: float | None  # complaints ÷ sent, %
    verdict: str  # ok | watch | over (complaints at or over 0.1 % watch, 0.3 % over; hard bounces over 2 %)


def _verdict(bounce: float | None, complaint: float | None) -> str:
    if (complaint or 0) >= COMPLAINT_THRESHOLD or (bounce or 0) > BOUNCE_THRESHOLD:
        return "over"
    return "watch" if (complaint or 0) >= COMPLAINT_THRESHOLD / 3 else "ok"


def _row(moment: str, day: str | None, sent: int, hard: int, soft: int, complaints: int) -> RateRow:
    bounce = round(100 * hard / sent, 2) if sent else None
    complaint = round(100 * complaints / sent, 2) if sent else None
    return RateRow(moment, day, sent, hard, soft, complaints, bounce, complaint, _verdict(bounce, complaint))


def delivery_rates(
    ws: Workspace, db: sqlite_utils.Database, since: datetime, until: datetime, moments: list[str] | None = None
) -> list[RateRow]:
    """Per moment and local day between `since` and `until`, then one total row per moment (day None)."""
    tz = ZoneInfo(ws.settings.timezone)
    counts: dict[tuple[str, str], list[int]] = {}
    for moment, sent_at, status in db.execute(
        "SELECT moment, sent_at, status FROM invitations WHERE sent_at IS NOT NULL AND sent_at >= ? AND sent_at < ?"
        " AND status IN ('sent', 'bounced')",
        [to_db(since), to_db(until)],
    ):
        day = datetime.fromisoformat(sent_at + "+00:00").astimezone(tz).date().isoformat()
        cell = counts.setdefault((moment, day), [0, 0, 0, 0])
        cell[0] += 1
        cell[1] += status == "bounced"
    first, last = since.astimezone(tz).date().isoformat(), until.astimezone(tz).date().isoformat()
    for moment, day, kind, n in db.execute(
        "SELECT moment, sent_day, kind, COUNT(*) FROM bounces WHERE moment IS NOT NULL AND sent_day BETWEEN ? AND ?"
        " AND kind IN ('soft', 'complaint') GROUP BY moment, sent_day, kind",
        [first, last],
    ):
        cell = counts.setdefault((moment, day), [0, 0, 0, 0])
        cell[2 if kind == "soft" else 3] += n
    wanted = set(moments) if moments else None
    rows: list[RateRow] = []
    totals: dict[str, list[int]] = {}
    for (moment, day), (sent, hard, soft, complaints) in sorted(counts.items()):
        if wanted is not None and moment not in wanted:
            continue
        rows.append(_row(moment, day, sent, hard, soft, complaints))
        total = totals.setdefault(moment, [0, 0, 0, 0])
        for i, value in enumerate((sent, hard, soft, complaints)):
            total[i] += value
    return rows + [_row(moment, None, *total) for moment, total in sorted(totals.items())]


def over_ceiling(ws: Workspace, db: sqlite_utils.Database, now: datetime, moments: list[str]) -> dict[str, str]:
    """moment → why `send` stops it: its complaint rate over deliverability.rate_window reached
    max_complaint_rate, with at least min_sent messages sent in that window."""
    rules = ws.deliverability
    if rules.max_complaint_rate is None:
        return {}
    stopped = {}
    for row in delivery_rates(ws, db, now - rules.rate_window, now + timedelta(seconds=1), moments):
        if row.day is None and row.sent >= rules.min_sent and (row.complaint_rate or 0) >= rules.max_complaint_rate:
            stopped[row.moment] = (
                f"{row.complaints} complaint(s) for {row.sent} message(s) sent in the last "
                f"{format_duration(rules.rate_window)} ({row.complaint_rate:g} %, ceiling "
                f"deliverability.max_complaint_rate {rules.max_complaint_rate:g} %)"
            )
    return stopped
