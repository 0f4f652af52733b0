"""The statistics of a scorecard: NPS with its adjusted-Wald interval, Wilson intervals for proportions,
the mean of a scale with its margin, and tests of change between two periods (95 % level, z = 1.96).

Every function takes counts, never raw rows, so the scorecard can work from rollups.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


# Adjusted-Wald for NPS (Rocks 2016, The American Statistician 70(4); recommended by Lewis & Sauro,
# MeasuringU, "Confidence Intervals for Net Promoter Scores", 2020, after comparing it with trinomial means
# and the bootstrap): add 3 to n and ¾ to the promoters and to the detractors (so 1.5 to the passives),
# then the Wald interval of the difference of the two adjusted proportions. The plain Wald interval is
# zero wide when everyone answers alike (`-100 ±0 n=30`), which reads as certainty; this one is not.
NPS_ADD_N = 3.0
NPS_ADD_SIDE = 0.75


@dataclass(frozen=True)
class Nps:
    """NPS in points (−100…100) from counts; `margin` is the 95 % adjusted-Wald half-width in points and
    `interval` the interval itself (centred on the adjusted NPS, clipped to −100…100)."""

    promoters: int
    passives: int
    detractors: int

    @property
    def n(self) -> int:
        return self.promoters + self.passives + self.detractors

    @property
    def score(self) -> float | None:
        return None if self.n == 0 else 100.0 * (self.promoters - self.detractors) / self.n

    def _adjusted(self) -> tuple[float, float]:
        """(adjusted NPS in points, its variance as a proportion) after adding ¾ promoter, ¾ detractor and 3
        answers: (p₊ + p₋ − (p₊ − p₋)²) / n, all adjusted. Defined for n = 0 too (three pseudo-answers)."""
        n = self.n + NPS_ADD_N
        p, d = (self.promoters + NPS_ADD_SIDE) / n, (self.detractors + NPS_ADD_SIDE) / n
        return 100.0 * (p - d), (p + d - (p - d) ** 2) / n

    @property
    def adjusted_score(self) -> float | None:
        """The adjusted NPS, in points: the centre of the interval (pulled a little towards 0)."""
        return None if self.n == 0 else self._adjusted()[0]

    @property
    def variance(self) -> float | None:
        """Variance of the adjusted NPS, as a proportion."""
        return None if self.n == 0 else self._adjusted()[1]

    @property
    def margin(self) -> float | None:
        return None if self.n == 0 else 100.0 * Z95 * math.sqrt(self._adjusted()[1])

    @property
    def interval(self) -> tuple[float, float] | None:
        if self.n == 0:
            return None
        centre, variance = self._adjusted()
        half = 100.0 * Z95 * math.sqrt(variance)
        return max(-100.0, centre - half), min(100.0, centre + half)

    def share(self, part: int) -> float | None:
        return None if self.n == 0 else 100.0 * part / self.n


def nps_from_values(counts: dict[int, int]) -> Nps:
    """Promoters answer 9–10, passives 7–8, detractors 0–6."""
    promoters = sum(n for v, n in counts.items() if v >= 9)
    passives = sum(n for v, n in counts.items() if 7 <= v <= 8)
    detractors = sum(n for v, n in counts.items() if v <= 6)
    return Nps(promoters, passives, detractors)


@dataclass(frozen=True)
class Proportion:
    """k successes out of n, in %, with its 95 % Wilson interval (good at small n and near 0 or 100 %)."""

    k: int
    n: int

    @property
    def value(self) -> float | None:
        return None if self.n == 0 else 100.0 * self.k / self.n

    @property
    def interval(self) -> tuple[float, float] | None:
        if self.n == 0:
            return None
        lo, hi = wilson(self.k, self.n)
        return 100.0 * lo, 100.0 * hi

    @property
    def margin(self) -> float | None:
        """Half the width of the Wilson interval, in points (for a compact ± display)."""
        iv = self.interval
        return None if iv is None else (iv[1] - iv[0]) / 2


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k/n, as proportions in [0, 1]."""
    if n <= 0:
        raise ValueError("a proportion needs n > 0")
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Mean:
    """Mean of a scale from value counts, with the 95 % margin from the sample variance."""

    total: float
    total_sq: float
    n: int

    @classmethod
    def of(cls, counts: dict[int, int]) -> Mean:
        return cls(
            sum(v * n for v, n in counts.items()), sum(v * v * n for v, n in counts.items()), sum(counts.values())
        )

    @property
    def value(self) -> float | None:
        return None if self.n == 0 else self.total / self.n

    @property
    def variance(self) -> float | None:
        if self.n < 2:
            return None
        return max(0.0, (self.total_sq - self.total * self.total / self.n) / (self.n - 1))

    @property
    def margin(self) -> float | None:
        v = self.variance
        return None if v is None else Z95 * math.sqrt(v / self.n)


@dataclass(frozen=True)
class Change:
    """A difference between this period and the previous one, and whether it is significant at 95 %."""

    delta: float
    z: float | None
    significant: bool


def _change(delta: float, variance: float | None) -> Change:
    if variance is None or variance <= 0:
        return Change(delta, None, False)
    z = delta / math.sqrt(variance)
    return Change(delta, z, abs(z) > Z95)


def nps_change(now: Nps, before: Nps) -> Change | None:
    """Two independent NPS, adjusted-Wald (Lewis & Sauro, MeasuringU, "How to Statistically Compare Two Net
    Promoter Scores"): z = (NPS₁,adj − NPS₂,adj) / √(var₁,adj + var₂,adj). `delta` is the difference of
    the NPS as shown (unadjusted); the test uses the adjusted ones."""
    if now.n == 0 or before.n == 0:
        return None
    (centre_now, var_now), (centre_before, var_before) = now._adjusted(), before._adjusted()
    z = (centre_now - centre_before) / (100.0 * math.sqrt(var_now + var_before))
    delta = 100.0 * ((now.promoters - now.detractors) / now.n - (before.promoters - before.detractors) / before.n)
    return Change(delta, z, abs(z) > Z95)


def proportion_change(now: Proportion, before: Proportion) -> Change | None:
    """Two-proportion z-test with the pooled proportion."""
    if now.n == 0 or before.n == 0:
        return None
    pooled = (now.k + before.k) / (now.n + before.n)
    variance = pooled * (1 - pooled) * (1 / now.n + 1 / before.n) * 100.0**2
    now_value, before_value = now.value, before.value
    assert now_value is not None and before_value is not None, "both n > 0 (checked above)"
    return _change(now_value - before_value, variance)


def mean_change(now: Mean, before: Mean) -> Change | None:
    """Welch's z for two means (normal approximation; scorecard cells have n ≥ min_responses)."""
    if now.n == 0 or before.n == 0:
        return None
    now_value, before_value = now.value, before.value
    assert now_value is not None and before_value is not None, "both n > 0 (checked above)"
    if now.variance is None or before.variance is None:
        return Change(now_value - before_value, None, False)
    return _change(now_value - before_value, now.variance / now.n + before.variance / before.n)


SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None], low: float | None = None, high: float | None = None) -> str:
    """One character per period (a space where there is no value), scaled between low and high."""
    present = [v for v in values if v is not None]
    if not present:
        return ""
    lo = min(present) if low is None else low
    hi = max(present) if high is None else high
    span = hi - lo
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        elif span <= 0:
            out.append(SPARK[len(SPARK) // 2])
        else:
            out.append(SPARK[min(len(SPARK) - 1, max(0, int((v - lo) / span * (len(SPARK) - 1) + 0.5)))])
    return "".join(out)
