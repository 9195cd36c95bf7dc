"""Comparisons across seeds for the Findings: the paired difference of two methods over the seeds they
share, with a t interval, and a winner named only when every interval excludes a tie.

Two methods of one cell fitted with the same seed see the same data and the same start, so their
difference at that seed carries no noise of separate draws; across ``n`` seeds the differences
``d_s = better − other`` (signed so that positive favours the method with the best mean) give the
interval ``mean(d) ± t_{0.975, n−1} · sd(d) / √n``. The best method is the winner only when that interval
lies beyond ``tie`` (rounding-sized differences, e.g. 1e-5 nats per point, are no win) for every other
method; with one seed there is no interval and no winner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: coverage of the intervals of the Findings
LEVEL = 0.95

SeedValues = dict[int, float]  # {seed: value}


@dataclass(frozen=True)
class Difference:
    """``best − other`` over the seeds both have (positive favours ``best``): mean and interval (NaN below 2 seeds)."""

    other: str
    n_seeds: int
    mean: float
    low: float
    high: float

    def beyond(self, tie: float) -> bool:
        """Whether the interval excludes ``[-tie, tie]`` on the side of ``best`` (a win at this number of seeds)."""
        return self.n_seeds >= 2 and self.low > tie


@dataclass(frozen=True)
class Comparison:
    """The method with the best mean, its mean, and its difference to each other method."""

    best: str
    value: float
    differences: list[Difference]
    n_seeds: int  # most seeds any method has
    tie: float = 0.0

    @property
    def winner(self) -> str | None:
        """``best`` when it beats every other method beyond the tie, else ``None``."""
        return self.best if self.differences and all(d.beyond(self.tie) for d in self.differences) else None


def paired_difference(best: SeedValues, other: SeedValues, name: str, sign: float) -> Difference:
    """``sign · (best − other)`` over the shared seeds, with its :data:`LEVEL` t interval."""
    seeds = sorted(set(best) & set(other))
    d = np.array([sign * (best[s] - other[s]) for s in seeds], dtype=float)
    if d.size == 0:
        return Difference(name, 0, math.nan, math.nan, math.nan)
    if d.size == 1:
        return Difference(name, 1, float(d[0]), math.nan, math.nan)
    half = float(stats.t.ppf(0.5 + LEVEL / 2, d.size - 1)) * float(d.std(ddof=1)) / math.sqrt(d.size)
    mean = float(d.mean())
    return Difference(name, int(d.size), mean, mean - half, mean + half)


def compare(values: dict[str, SeedValues], better: str, tie: float = 0.0) -> Comparison | None:
    """The comparison of methods ``{method: {seed: value}}`` (``better``: ``"max"`` or ``"min"``); ``None``
    below two methods with values."""
    values = {m: v for m, v in values.items() if v}
    if len(values) < 2:
        return None
    means = {m: float(np.mean(list(v.values()))) for m, v in values.items()}
    sign = 1.0 if better == "max" else -1.0
    best = max(means, key=lambda m: sign * means[m])
    differences = [paired_difference(values[best], values[m], m, sign) for m in values if m != best]
    return Comparison(best, means[best], differences, max(len(v) for v in values.values()), tie)
