"""Durations as CX people write them: `36h`, `14d`, `2w`, `90m`, `1d12h`."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+)\s*([smhdw])")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$")


def parse_duration(text: str) -> timedelta:
    """Return the timedelta for `text`; raise ValueError naming the accepted forms."""
    if not isinstance(text, str) or not _WHOLE.match(text):
        raise ValueError(
            f"invalid duration {text!r}: write a number and a unit, e.g. 90m, 36h, 14d, 2w (s, m, h, d, w)"
        )
    seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(text))
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Inverse of parse_duration for display: the largest units first (`1w3d`, `36h`)."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size:
            n, seconds = divmod(seconds, size)
            parts.append(f"{n}{unit}")
    return "".join(parts)
