"""Bands across seeds: a median line and a quantile band of curves or repeats, for figures that show
every seed of a cell rather than one.

With fewer than :data:`QUANTILE_MIN_SEEDS` seeds a 10–90 % band would be an interpolation between
two or three values, so the band is then the whole range (min–max); :func:`band_quantiles` says which.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: seeds from which the band is the 10–90 % quantile range (fewer: min–max)
QUANTILE_MIN_SEEDS = 10
#: the band's quantiles with enough seeds
QUANTILES = (0.1, 0.9)


def band_quantiles(n_seeds: int) -> tuple[float, float]:
    """The band's lower and upper quantiles for ``n_seeds`` curves: 10–90 % from 10 seeds, else min–max."""
    return QUANTILES if n_seeds >= QUANTILE_MIN_SEEDS else (0.0, 1.0)


def band_label(n_seeds: int) -> str:
    """``"median and 10–90 % over 12 seeds"`` or ``"median and min–max over 3 seeds"``."""
    low, high = band_quantiles(n_seeds)
    spread = "min–max" if (low, high) == (0.0, 1.0) else f"{low:.0%}–{high:.0%}".replace("%–", "–")
    return f"median and {spread} over {n_seeds} seed{'s' if n_seeds != 1 else ''}"


def step_values(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """A curve ``y (T,)`` at ``x (T,)`` (increasing) read at ``grid (G,)`` as a step function: the last finite
    value at or before each grid point (held after the curve ends: a fit that stopped keeps its value);
    NaN before its first finite value."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    out = np.full(len(grid), np.nan)
    if not x.size:
        return out
    index = np.searchsorted(x, grid, side="right") - 1
    seen = index >= 0
    out[seen] = y[index[seen]]
    return out


def seed_bands(curves: Sequence[tuple[np.ndarray, np.ndarray]], grid: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(median, low, high)``, each ``(G,)``: the curves ``[(x (T_s,), y (T_s,)), ...]`` of S seeds read at ``grid``
    (:func:`step_values`) and summarized across seeds at each grid point by their median and the quantiles of
    :func:`band_quantiles` (numpy's linear quantiles); a grid point no curve has reached yet is NaN."""
    values = np.stack([step_values(x, y, grid) for x, y in curves])  # (S, G)
    low_q, high_q = band_quantiles(len(curves))
    median, low, high = np.full((3, len(grid)), np.nan)
    known = np.isfinite(values).any(0)
    if known.any():
        kept = values[:, known]
        median[known] = np.nanquantile(kept, 0.5, axis=0)
        low[known] = np.nanquantile(kept, low_q, axis=0)
        high[known] = np.nanquantile(kept, high_q, axis=0)
    return median, low, high


def common_grid(curves: Sequence[tuple[np.ndarray, np.ndarray]], points: int = 200, log: bool = False) -> np.ndarray:
    """The x grid of a band: every x of the curves when there are few (iterations), else ``points`` values
    from the smallest to the largest x (geometric from the first positive one when ``log``), 0 included."""
    xs = np.unique(np.concatenate([np.asarray(x, dtype=float) for x, _ in curves]))
    xs = xs[np.isfinite(xs)]
    if xs.size <= points:
        return xs
    if log and (xs > 0).any():
        positive = xs[xs > 0]
        return np.concatenate([xs[xs <= 0][:1], np.geomspace(positive.min(), positive.max(), points)])
    return np.linspace(xs.min(), xs.max(), points)


def plot_band(ax: Any, grid: np.ndarray, median: np.ndarray, low: np.ndarray, high: np.ndarray, *,
              color: str, label: str, linestyle: str = "-", marker: str | None = None, steps: bool = False) -> Any:
    """The median line (labelled) over a translucent band from ``low`` to ``high``; ``steps``: drawn as the step
    functions :func:`step_values` reads (each value held until the next grid point). Returns the line."""
    (line,) = ax.plot(grid, median, color=color, label=label, linestyle=linestyle, marker=marker,
                      markersize=4 if marker else None, drawstyle="steps-post" if steps else "default")
    if np.any(high > low):
        ax.fill_between(grid, low, high, color=color, alpha=0.2, linewidth=0, label=f"_{label} band",
                        step="post" if steps else None)
    return line
