"""What one `cxctl send` run hands over and records: the report it returns, each prepared message,
and each outcome (split from cxctl.delivery.send to keep that module one loop)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class SendReport:
    """What a `cxctl send` run did (or, with dry_run, would do)."""

    transport: str
    dry_run: bool = False
    planned: int = 0  # invitations newly recorded by this run's plan
    due: int = 0
    sent: int = 0
    reminders: int = 0  # of `sent`, how many were reminders
    failed: int = 0
    bounced: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    in_doubt: int = 0  # rows in doubt after this run: left `sending` by a dead run, not yet resent or accepted
    in_doubt_ids: list[int] = field(default_factory=list)
    resent_in_doubt: int = 0
    accepted_in_doubt: int = 0
    retried_failed: int = 0  # failed invitations planned again by --retry-failed
    max_in_flight: int = 0  # the most messages handed over and not yet recorded, at any moment of the run
    stopped: str | None = None
    elapsed_seconds: float = 0.0
    errors: list[dict[str, Any]] = field(default_factory=list)
    would_send: int = 0
    plan_exclusions: dict[str, int] = field(default_factory=dict)
    by_channel: dict[str, dict[str, Any]] = field(default_factory=dict)  # email / sms: each channel's own counts
    stopped_moments: dict[str, str] = field(default_factory=dict)  # moment → why its complaint rate stopped it
    rates: list[Any] = field(default_factory=list)  # cxctl.delivery.rates.RateRow over deliverability.rate_window

    @property
    def ok(self) -> bool:
        """False when the run needs a look: stopped, failures, messages in doubt, or a moment over its
        complaint ceiling."""
        return self.stopped is None and self.failed == 0 and self.in_doubt == 0 and not self.stopped_moments


@dataclass
class Prepared:
    """A rendered message ready to go, with what is needed to record its outcome."""

    id: int
    address: str
    data: bytes
    message_id: str
    kind: str
    prev_status: str
    prev_attempts: int
    first_tried_at: str | None = None
    channel: str = "email"


@dataclass
class Outcome:
    item: Any  # Prepared, or the raw row for skips
    result: str  # sent | bounce | temporary | rejected | untried
    tries: int = 0
    error: str | None = None
    at: datetime | None = None
    ref: str | None = None  # the provider's id for a sent SMS (delivery receipts name it)
    retry_after: float | None = None  # seconds the server asked to wait before a retry (HTTP 429)
    reason: str | None = None  # a bounce's suppression reason (bounce, or opt_out at the provider)

    @property
    def sent_at(self) -> datetime:
        """When a sent message was handed over (a "sent" outcome always carries its time)."""
        assert self.at is not None, "a sent outcome is made with at=clock()"
        return self.at
