"""Fit histories: a column (log-likelihood, ELBO...) per iteration or second, and the KL gap.

History columns hold totals over the data (nats); ``per_point=True`` divides them
by the number of points, the scale on which routines fitted to different N compare.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from mixtures.core.history import History
from mixtures.core.result import FitResult
from mixtures.plot.figure import load_matplotlib
from mixtures.plot.inputs import to_numpy
from mixtures.plot.style import color_for, symlog_ticks

#: a gap within this fraction of |log-likelihood| (at least 1 nat) is rounding: the gap is 0
_ZERO_GAP_RTOL = 1e-12


def _as_history(value: Any, name: str) -> History:
    if isinstance(value, FitResult):
        return value.history
    if isinstance(value, History):
        return value
    if isinstance(value, Mapping):
        return History.from_dict(value)
    raise TypeError(f"histories[{name!r}] must be a History, FitResult or dict of columns; "
                    f"got {type(value).__name__}.")


def _divisor(per_point: bool, n_points: Any, name: str) -> float:
    """What ``name``'s totals are divided by: 1, or its number of points when ``per_point``."""
    if not per_point:
        return 1.0
    if isinstance(n_points, Mapping):
        n_points = n_points.get(name)
    if n_points is None:
        raise ValueError("per_point=True divides the history's totals by the number of data points: "
                         "pass n_points=N (or a dict {label: N}), or per_point=False for totals.")
    if isinstance(n_points, bool) or not int(n_points) == n_points or n_points < 1:
        raise ValueError(f"n_points must be a positive integer; got {n_points!r}.")
    return float(n_points)


def _x_values(history: History, x: str) -> np.ndarray:
    """The history's ``x`` column ``(T,)``: ``"iteration"`` or ``"time"``."""
    if x not in ("iteration", "time"):
        raise ValueError(f"x must be 'iteration' or 'time'; got {x!r}.")
    if x not in history:
        raise KeyError(f"the history has no {x!r} column; columns are {list(history.columns)}.")
    return to_numpy(history[x])


def _log_likelihood_scale(history: History, length: int) -> np.ndarray:
    """``|log_likelihood|`` per row ``(T,)`` (1 where it is unknown): what a rounding-sized gap is relative to."""
    if "log_likelihood" not in history:
        return np.ones(length)
    scale = np.abs(to_numpy(history["log_likelihood"]))
    return np.where(np.isfinite(scale), scale, 1.0)


def plot_traces(ax: Any, histories: Mapping[str, History | FitResult], column: str = "log_likelihood",
                x: str = "iteration", per_point: bool = True, *,
                n_points: int | Mapping[str, int] | None = None,
                logx: bool = False, title: str = "", colors: Mapping[str, str] | None = None,
                legend: bool = True):
    """One line per routine: ``column`` against ``x`` (``"iteration"`` or ``"time"``).

    History columns hold totals over the data (nats); ``per_point=True`` divides
    by ``n_points`` (an int, or a dict per label) to show nats per point, the
    scale on which routines fitted to different N compare. Histories without
    ``column`` are skipped (k-means has no ELBO, say); NaN entries leave gaps.
    ``colors`` maps labels to colours (default: ``C<i>`` by position, skipped
    histories included). Returns ``ax``.
    """
    histories = {str(k): _as_history(v, str(k)) for k, v in histories.items()}
    drawn = 0
    for i, (name, history) in enumerate(histories.items()):
        if column not in history or len(history) == 0:
            continue
        values = to_numpy(history[column]) / _divisor(per_point, n_points, name)
        ax.plot(_x_values(history, x), values, color=color_for(colors, name, i),
                marker="." if len(history) < 50 else None, linewidth=1.5, label=name)
        drawn += 1
    if histories and not drawn:
        raise KeyError(f"no history has a {column!r} column.")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel("iteration" if x == "iteration" else "time (s)")
    label = {"log_likelihood": "log-likelihood", "elbo": "ELBO"}.get(column, column.replace("_", " "))
    ax.set_ylabel(f"{label} " + ("(nats per point)" if per_point else "(nats, total)"))
    if title:
        ax.set_title(title)
    if drawn and legend:
        ax.legend(loc="best", fontsize="small")
    return ax


def kl_gap_values(history: History) -> np.ndarray:
    """The recorded gap ``log_likelihood − elbo`` per history row ``(T,)`` (the ``kl`` column,
    completed from its definition where it is missing or NaN; NaN where neither is known)."""
    gap = to_numpy(history["kl"]) if "kl" in history else np.full(len(history), np.nan)
    if "log_likelihood" in history and "elbo" in history:
        gap = np.where(np.isnan(gap), to_numpy(history["log_likelihood"]) - to_numpy(history["elbo"]), gap)
    return gap


def gap_is_zero(history: History, rtol: float = _ZERO_GAP_RTOL) -> bool:
    """Whether every recorded gap is 0 up to rounding (``|gap| <= rtol |log_likelihood|``).

    True for MAP and a delta-guide SVI with enumerated assignments: their ELBO is
    the log-likelihood itself.
    """
    gap = kl_gap_values(history)
    finite = np.isfinite(gap)
    if not finite.any():
        return False
    scale = _log_likelihood_scale(history, len(gap))
    return bool((np.abs(gap[finite]) <= rtol * np.maximum(scale[finite], 1.0)).all())


def plot_kl_gap(ax: Any, histories: Mapping[str, History | FitResult], x: str = "iteration", *,
                per_point: bool = False, n_points: int | Mapping[str, int] | None = None,
                log: bool = True, title: str = "", colors: Mapping[str, str] | None = None,
                legend: bool = True):
    """The recorded gap ``log_likelihood − elbo`` against ``x``, one line per routine.

    Uses the ``kl`` column (``log_likelihood − elbo`` where it is missing or NaN):
    ``KL(q_t || p(Z | X, θ_t)) ≥ 0`` for the ``q_t`` the routine's ELBO used at that
    row. The y axis is symmetric-log (``log=True``): logarithmic above a linear
    threshold at the smallest positive gap, linear through 0, so gaps of exactly
    0 (row 0 of a mean-field SVI; MAP throughout) stay on the plot instead of
    falling to −∞ as on a log axis: exactly-zero rows of a positive trace are dots
    on the 0 line (not joined to the curve), and a routine whose gap is 0 at every
    row (:func:`gap_is_zero`) is a dotted line at 0, labelled ``"<name> (≡ 0)"`` and
    named in a note on the axis.
    ``log=False`` keeps a linear axis. Returns ``ax``.
    """
    histories = {str(k): _as_history(v, str(k)) for k, v in histories.items()}
    drawn = 0
    positive: list[float] = []
    zero_names: list[str] = []
    has_zero = False
    for i, (name, history) in enumerate(histories.items()):
        if len(history) == 0:
            continue
        gap = kl_gap_values(history)
        if np.isnan(gap).all():
            continue
        color = color_for(colors, name, i)
        xs = _x_values(history, x)
        if gap_is_zero(history):
            ax.plot(xs, np.where(np.isfinite(gap), 0.0, np.nan), color=color, linewidth=2.2, linestyle=":",
                    label=f"{name} (≡ 0)")
            zero_names.append(name)
        else:
            shown, exact = _draw_gap(ax, xs, gap, history, _divisor(per_point, n_points, name), log, color, name)
            positive += [float(v) for v in shown[np.isfinite(shown) & (shown > 0)]]
            has_zero = has_zero or bool(exact.any())
        drawn += 1
    if log and positive:
        _symlog_gap_axis(ax, min(positive), max(positive), reaches_zero=bool(zero_names) or has_zero)
    if zero_names:
        _note_zero_gaps(ax, zero_names)
    ax.set_xlabel("iteration" if x == "iteration" else "time (s)")
    ax.set_ylabel("log-likelihood − ELBO " + ("(nats per point)" if per_point else "(nats)"))
    if title:
        ax.set_title(title)
    if drawn and legend:
        ax.legend(loc="best", fontsize="small")
    return ax


def _draw_gap(ax: Any, xs: np.ndarray, gap: np.ndarray, history: History, divisor: float, log: bool,
              color: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Draw one routine's gap ``(T,)`` against ``xs`` ``(T,)``; return the drawn gap (divided, rounding
    zeros made exact) and the mask ``(T,)`` of its exactly-zero rows."""
    scale = _log_likelihood_scale(history, len(gap))
    exact = np.isfinite(gap) & (np.abs(gap) <= _ZERO_GAP_RTOL * np.maximum(scale, 1.0))
    gap = np.where(exact, 0.0, gap) / divisor
    shown = gap
    if log and exact.any() and not exact.all():
        # an exactly-zero row (a mean-field q at the exact posterior) is a dot on the 0 line: joined to
        # the curve, it would draw a slope across every decade of the symlog axis
        ax.plot(xs[exact], gap[exact], linestyle="none", marker="o", markersize=4, color=color, clip_on=False,
                zorder=3)
        shown = np.where(exact, np.nan, gap)
    ax.plot(xs, shown, color=color, linewidth=1.5, label=name)
    return gap, exact


def _symlog_gap_axis(ax: Any, smallest: float, largest: float, reaches_zero: bool) -> None:
    """A symlog y axis for positive gaps in ``[smallest, largest]``: linear below the smallest gap's
    decade, with 0 just above the bottom spine when some gap is 0, and headroom above the largest."""
    linthresh = 10.0 ** math.floor(math.log10(max(smallest, largest * 1e-12)))
    ax.set_yscale("symlog", linthresh=linthresh, linscale=0.6)
    top = 2.0 * largest  # a factor 2 on the log part
    symlog_ticks(ax, "y", linthresh, top)
    bottom, _ = ax.get_ylim()
    if reaches_zero:
        if bottom > -linthresh:  # rounding below 0 only: the axis starts (just below) 0
            ax.set_ylim(bottom=-0.25 * linthresh)
    else:  # nothing at 0: the axis looks like a log one, from the smallest decade
        ax.set_ylim(bottom=linthresh)
    ax.set_ylim(top=top)


def _note_zero_gaps(ax: Any, zero_names: list[str]) -> None:
    """Name the routines whose gap is identically 0 just above the 0 line, at the left edge."""
    blended = load_matplotlib("transforms").blended_transform_factory(ax.transAxes, ax.transData)
    ax.text(0.02, 0.0, f"  gap ≡ 0: {', '.join(zero_names)}", transform=blended, ha="left", va="bottom",
            fontsize="x-small", color="0.3")
