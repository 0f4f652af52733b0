"""Durations as CX people write them: `36h`, `14d`, `2w`, `90m`, `1d12h`, and for retention `18mo`, `3y`.

A month is 30 days and a year 365 days: durations are fixed lengths (a retention cut-off is `now −
period`), not calendar arithmetic.
"""

from __future__ import annotations

import re
from datetime import timedelta

DAY = 86400
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": DAY, "w": 7 * DAY, "mo": 30 * DAY, "y": 365 * DAY}
# `mo` before `m`: 18mo is eighteen months, not eighteen minutes and a stray "o".
_PART = re.compile(r"(\d+)\s*(mo|[smhdwy])")
_WHOLE = re.compile(r"^\s*(?:\d+\s*(?:mo|[smhdwy])\s*)+$")
PATTERN = _WHOLE.pattern


def parse_duration(text: str) -> timedelta:
    """Return the timedelta for `text`; raise ValueError naming the accepted forms."""
    if not isinstance(text, str) or not _WHOLE.match(text):
        raise ValueError(
            f"invalid duration {text!r}: write a number and a unit, e.g. 90m, 36h, 14d, 2w, 18mo, 3y "
            f"(s, m, h, d, w; mo = 30 days, y = 365 days)"
        )
    seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(text))
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Inverse of parse_duration for display, as a person would write it: whole days in the largest unit
    that divides them exactly (`3y` for 1095 days, `6mo` for 180, `2w` for 14, `10d` rather than `1w3d`),
    anything shorter as days, hours, minutes and seconds (`1d12h`, `90m` → `1h30m`)."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    if seconds % DAY == 0:
        days = seconds // DAY
        if days % 365 == 0:
            return f"{days // 365}y"
        if days % 30 == 0 and days >= 60:  # 30d stays 30d: "1mo" would read as a calendar month
            return f"{days // 30}mo"
        if days % 7 == 0:
            return f"{days // 7}w"
        return f"{days}d"
    parts = []
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size:
            n, seconds = divmod(seconds, size)
            parts.append(f"{n}{unit}")
    return "".join(parts)
