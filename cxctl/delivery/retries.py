"""Failed messages, tried again: on a clock within the cross-run budget, and by hand with
`send --retry-failed` (a failure on the server's side is not the person's: issue 12, item 7)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlite_utils

from cxctl.core.timeutil import from_db, to_db


def next_try(
    smtp, attempts: int, first_tried_at: str | None, now: datetime, retry_after: float | None = None
) -> datetime | None:
    """When a temporarily failed message is tried again: after the retry_schedule's wait for this attempt
    (or the server's Retry-After, when longer), unless that falls past give_up_after from the first try (or
    max_attempts is reached). `smtp` is the channel's settings: smtp, or sms."""
    if smtp.max_attempts is not None and attempts >= smtp.max_attempts:
        return None
    first = from_db(first_tried_at) or now
    nxt = now + max(smtp.retry_wait(attempts), timedelta(seconds=retry_after or 0))
    return nxt if nxt <= first + smtp.give_up_after else None


@dataclass(frozen=True)
class RetryFailed:
    """`send --retry-failed`: failed, never-delivered invitations to plan again (a failure on the
    server's side is not the person's), optionally of one moment and failed since a time."""

    since: datetime | None = None


def reopen_failed(db: sqlite_utils.Database, now: datetime, moment: str | None, since: datetime | None) -> int:
    """Plan again the invitations that failed and were never delivered (not bounced, not cancelled),
    with a fresh retry clock; return how many. Inside the caller's transaction and lock."""
    cursor = db.execute(
        "UPDATE invitations SET status = 'planned', attempts = 0, first_tried_at = NULL, next_attempt_at = NULL, "
        "send_at = MIN(send_at, ?), reopened = reopened + 1, updated_at = ?, "
        "last_error = 'planned again by --retry-failed after: ' || COALESCE(last_error, '?') "
        "WHERE status = 'failed' AND sent_at IS NULL AND (? IS NULL OR moment = ?) AND (? IS NULL OR updated_at >= ?)",
        [to_db(now), to_db(now), moment, moment, to_db(since) if since else None, to_db(since) if since else None],
    )
    return cursor.rowcount
