"""The `deliverability:` section: what bounces and spam complaints that arrive after the SMTP session do
(`cxctl bounces import`), and the complaint rate at which `cxctl send` stops a moment.

Mailbox providers judge a bulk sender on its complaint rate: Gmail and Yahoo ask senders to stay under
0.3 % (and aim under 0.1 %); a moment that crosses the ceiling is stopped before it costs the domain.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from cxctl.workspace.fields import Duration, Model

COMPLAINT_THRESHOLD = 0.3  # % — the bulk-sender rules' limit (Gmail, Yahoo, February 2024)
BOUNCE_THRESHOLD = 2.0  # % — a common ceiling for hard bounces before a provider throttles


class Deliverability(Model):
    """Bounces, complaints and the send ceiling."""

    soft_bounce_limit: int = Field(default=3, ge=1)
    """Suppress an address after this many soft bounces (mailbox full, temporarily unavailable) with no delivery between."""
    max_complaint_rate: float | None = Field(default=COMPLAINT_THRESHOLD, gt=0, le=100)
    """`cxctl send` stops a moment whose complaint rate over `rate_window` reaches this (in %); none: never stop."""
    min_sent: int = Field(default=100, ge=1)
    """The ceiling applies once the moment sent at least this many invitations in the window (one complaint in ten is noise)."""
    rate_window: Duration = timedelta(days=7)
    """The period over which the send ceiling reads the complaint rate."""
