"""The report's charts: matplotlib drawing inline SVG, no JavaScript, no font file, nothing fetched.

Why matplotlib: it is the best-kept Python plotting library, its SVG backend needs no browser and no
network, text stays text (`svg.fonttype: none`, so the page's own sans-serif font is used, the file
stays small and the labels can be searched and copied), and a chart is a few kilobytes. Figures are
made with `matplotlib.figure.Figure` directly (no pyplot, no global figure registry), so the web side
can render from several threads; rcParams are set in one locked context.

Each SVG gets a salt of its own, so the ids of its clip paths are stable from run to run and distinct
between the charts of one page; ids nobody references are dropped.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType  # the rcParams names rc_context accepts

STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": None,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 9,
    "text.parse_math": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#888888",
    "axes.titlesize": 9,
    "axes.titleweight": "bold",
    "xtick.color": "#444444",
    "ytick.color": "#444444",
    "path.simplify": True,
}
COLOURS = {
    "line": "#1f5f99",
    "band": "#9cc3e6",
    "target": "#b35900",
    "detractors": "#c0392b",
    "passives": "#b7b7b7",
    "promoters": "#2e8540",
    "bar": "#1f5f99",
    "cumulative": "#b35900",
}
WIDTH = 4.6  # inches: two charts side by side on an A4 page
_lock = threading.Lock()


def chart(function):
    """Draw under the report's style, one chart at a time (rcParams are global), with a salt made of the
    chart's own data: ids stable from run to run, distinct between different charts of a page."""

    @functools.wraps(function)
    def drawn(*args, **kwargs) -> str:
        import matplotlib

        salt = "cx" + hashlib.sha256(repr((function.__name__, args, kwargs)).encode()).hexdigest()[:8]
        with _lock, matplotlib.rc_context({**STYLE, "svg.hashsalt": salt}):
            return function(*args, **kwargs)

    return drawn


def _svg(fig) -> str:
    """The figure as an SVG element to inline: no XML prolog, no metadata, unreferenced ids removed."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    used = set(re.findall(r"#([A-Za-z_][\w.-]*)", text))
    text = re.sub(r'\s(id)="([^"]+)"', lambda m: m.group(0) if m.group(2) in used else "", text)
    return text.replace("<svg ", '<svg role="img" aria-hidden="true" ', 1)


def _figure(height: float = 2.2, width: float = WIDTH, margins: dict | None = None):
    """A figure with fixed margins (a tight bounding box would draw every chart twice)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(**{"left": 0.11, "right": 0.98, "top": 0.88, "bottom": 0.16, **(margins or {})})
    return fig, fig.add_subplot()


@chart
def trend(
    title: str,
    periods: list[str],
    values: list[float | None],
    lows: list[float | None],
    highs: list[float | None],
    target: float | None = None,
    limits: tuple[float, float] | None = None,
) -> str:
    """A line of the indicator per period with its 95 % band; gaps where a period is empty or insufficient."""
    fig, ax = _figure()
    x = list(range(len(periods)))
    nan = float("nan")
    ys = [nan if v is None else v for v in values]
    lo = [nan if v is None or values[i] is None else v for i, v in enumerate(lows)]
    hi = [nan if v is None or values[i] is None else v for i, v in enumerate(highs)]
    ax.fill_between(x, lo, hi, color=COLOURS["band"], alpha=0.55, linewidth=0, label="95 %")
    ax.plot(x, ys, color=COLOURS["line"], marker="o", markersize=3, linewidth=1.5)
    # Error bars too: a lone period (no neighbour to draw a band to) still shows its 95 % interval.
    # (clamped at 0: a Wilson bound can miss 0 % or 100 % by a rounding error)
    below = [max(0.0, y - low) if y == y and low == low else nan for y, low in zip(ys, lo)]
    above = [max(0.0, h - y) if y == y and h == h else nan for y, h in zip(ys, hi)]
    ax.errorbar(x, ys, yerr=[below, above], fmt="none", ecolor=COLOURS["line"], elinewidth=0.8, capsize=2)
    if target is not None:
        ax.axhline(target, color=COLOURS["target"], linestyle="--", linewidth=1)
    if limits is not None:
        ax.set_ylim(*limits)
    step = max(1, len(periods) // 8)
    ax.set_xticks(x[::step], [p for p in periods[::step]], fontsize=7)
    ax.set_xlim(-0.5, len(periods) - 0.5)
    ax.set_title(title, loc="left")
    ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)
    return _svg(fig)


@chart
def stacked(title: str, labels: list[str], shares: list[float], colours: list[str] | None = None) -> str:
    """One horizontal bar split into the shares (in %) of each category or scale value."""
    fig, ax = _figure(height=1.1, margins={"left": 0.02, "bottom": 0.25, "top": 0.78})
    left = 0.0
    palette = colours or _ramp(len(labels))
    for label, share, colour in zip(labels, shares, palette):
        ax.barh([0], [share], left=left, color=colour, edgecolor="white", linewidth=0.8)
        if share >= 7:
            ax.text(
                left + share / 2,
                0,
                f"{label}\n{share:.0f} %",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if colour != COLOURS["passives"] else "black",
            )
        left += share
    ax.set_xlim(0, 100)
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
    ax.set_title(title, loc="left")
    return _svg(fig)


@chart
def pareto(title: str, labels: list[str], counts: list[int]) -> str:
    """Bars of the reasons, most frequent first, with the cumulative share as a line."""
    fig, ax = _figure(height=2.6, margins={"right": 0.9, "bottom": 0.3})
    x = list(range(len(labels)))
    ax.bar(x, counts, color=COLOURS["bar"])
    total = sum(counts) or 1
    running, cumulative = 0, []
    for n in counts:
        running += n
        cumulative.append(100.0 * running / total)
    twin = ax.twinx()
    twin.plot(x, cumulative, color=COLOURS["cumulative"], marker="o", markersize=3, linewidth=1.2)
    twin.set_ylim(0, 105)
    twin.spines["top"].set_visible(False)
    ax.set_xticks(
        x, [label if len(label) <= 18 else label[:17] + "…" for label in labels], rotation=30, ha="right", fontsize=7
    )
    ax.set_title(title, loc="left")
    return _svg(fig)


@chart
def bars(title: str, labels: list[str], counts: list[int]) -> str:
    """Plain vertical bars (follow-ups by age, events per period)."""
    fig, ax = _figure(height=1.9, margins={"bottom": 0.18})
    x = list(range(len(labels)))
    ax.bar(x, counts, color=COLOURS["bar"])
    step = max(1, len(labels) // 8)
    ax.set_xticks(x[::step], labels[::step], fontsize=7)
    ax.set_title(title, loc="left")
    ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)
    return _svg(fig)


def _ramp(count: int) -> list[str]:
    """Red to green over a scale's values (low is bad for CSAT and CES)."""
    start, end = (0xC0, 0x39, 0x2B), (0x2E, 0x85, 0x40)
    if count <= 1:
        return ["#{:02x}{:02x}{:02x}".format(*end)]
    return [
        "#{:02x}{:02x}{:02x}".format(*(round(s + (e - s) * i / (count - 1)) for s, e in zip(start, end)))
        for i in range(count)
    ]
