"""Metrics across a sweep: one line per method of a results table's ``y`` against ``x``, and rate guides."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from mixtures.plot.bands import band_quantiles, plot_band
from mixtures.plot.inputs import is_finite_number
from mixtures.plot.style import LINESTYLES, MARKERS, color_for, symlog_ticks

#: group name -> x position -> the ``(y, standard error of y)`` of each row there (repeats over seeds)
_Cells = dict[Any, dict[float, list[tuple[float, float]]]]


def plot_metric_vs(ax: Any, table: Iterable[Mapping[str, Any]], x: str, y: str, group: str = "method", *,
                   logx: bool = False, logy: bool = False, symlogy: bool = False, title: str = "",
                   colors: Mapping[str, str] | None = None, markers: Mapping[str, str] | None = None,
                   dodge: float = 0.0, se: str | None = None, xlabel: str | None = None,
                   ylabel: str | None = None, legend: bool = True, band: bool = False):
    """``y`` against ``x`` from a results table (list of row dicts), one line per ``group``.

    Rows sharing ``(group, x)`` (repeats over seeds) are summarized by their mean
    with ± one standard error bars. Rows whose ``y`` (or numeric ``x``) is missing
    or not finite are skipped. String ``x`` values (initializer names, say) are
    categories, placed in order of first appearance. Returns ``ax``.

    Styling: ``colors`` and ``markers`` map group names to a colour and a marker
    (defaults cycle; markers and line styles differ per group, so coinciding
    lines stay visible). ``dodge`` shifts group ``j`` of ``G`` sideways by
    ``(j − (G−1)/2) · dodge`` in units of the smallest gap between x values (a
    factor ``10**(that · log10 gap)`` on a log axis); the lines' data keep the
    dodged positions, the tick labels stay on the true x values.

    ``symlogy``: for estimates that can come out ≤ 0 like Monte Carlo KL: a
    symmetric-log y axis (logarithmic away from 0, linear near it) when some
    value is ≤ 0, a log axis when all are positive. ``se`` names a column of
    per-row standard errors of ``y`` (e.g. ``kl_truth_se``): a mean within two of
    its standard errors (``sqrt(Σ se²) / count``) of 0 is drawn as a hollow marker,
    indistinguishable from 0. ``xlabel``/``ylabel`` replace the column names.

    ``band``: the repeats are summarized by their median (the line) and a shaded band across them
    instead (min–max below ten repeats, 10–90 % from ten: :func:`mixtures.plot.bands.band_quantiles`).
    """
    rows = list(table)
    for row in rows:
        if group is not None and group not in row:
            raise KeyError(f"table row has no {group!r} key (group); keys are {sorted(row)}.")
    categories: list[str] = list(dict.fromkeys(
        row[x] for row in rows if isinstance(row.get(x), str) and is_finite_number(row.get(y))))
    if categories and logx:
        raise ValueError(f"x={x!r} has categorical (string) values; logx needs numbers.")
    cells = _cells(rows, x, y, group, se, categories)
    names = sorted(cells, key=str) if colors is None else \
        sorted(cells, key=lambda n: (list(colors).index(n) if n in colors else len(colors), str(n)))
    positions = sorted({v for by_x in cells.values() for v in by_x})
    gaps = np.diff(np.log10(positions) if logx else np.asarray(positions)) if len(positions) > 1 else []
    unit = float(np.min(gaps)) if len(gaps) else 1.0  # dodging is in units of the smallest gap between xs
    for j, name in enumerate(names):
        marker = markers.get(name, MARKERS[j % len(MARKERS)]) if markers else MARKERS[j % len(MARKERS)]
        _draw_group(ax, cells[name], str(name), (j - (len(names) - 1) / 2) * dodge * unit, logx,
                    color_for(colors, str(name), j), marker, LINESTYLES[j % len(LINESTYLES)], se is not None, band)
    _set_x_axis(ax, categories, positions, logx, dodge)
    _set_y_scale(ax, cells, logy, symlogy)
    ax.set_xlabel(xlabel if xlabel is not None else x.replace("_", " "))
    ax.set_ylabel(ylabel if ylabel is not None else y.replace("_", " "))
    if title:
        ax.set_title(title)
    if cells and legend:
        ax.legend(loc="best", fontsize="small")
    return ax


def _cells(rows: list[Mapping[str, Any]], x: str, y: str, group: str | None, se: str | None,
           categories: list[str]) -> _Cells:
    """The table's finite ``y`` values (with their ``se``, NaN if none) by group and x position
    (a category's index when ``x`` is categorical)."""
    cells: _Cells = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if not is_finite_number(row.get(y)):
            continue
        if categories:
            if not isinstance(row.get(x), str):
                continue
            position = float(categories.index(row[x]))
        elif is_finite_number(row.get(x)):
            position = float(row[x])
        else:
            continue
        name = row[group] if group is not None else y
        error = float(row[se]) if se is not None and is_finite_number(row.get(se)) else math.nan
        cells[name][position].append((float(row[y]), error))
    return cells


def _draw_group(ax: Any, by_x: dict[float, list[tuple[float, float]]], label: str, shift: float, logx: bool,
                color: str, marker: str, linestyle: str, mark_near_zero: bool, band: bool = False) -> None:
    """One group's mean per x ± its standard error over repeats (``band``: median and a band across them),
    at x dodged by ``shift`` (multiplicative on a log axis); means within 2 Monte Carlo SE of 0 hollow if
    ``mark_near_zero``."""
    xs = np.array(sorted(by_x))
    repeats = [[value for value, _ in by_x[position]] for position in xs]
    shown = xs * 10.0 ** shift if logx else xs + shift
    if band:
        means = np.array([np.median(values) for values in repeats])
        bounds = np.array([np.quantile(values, band_quantiles(len(values))) for values in repeats])  # (X, 2)
        line = [plot_band(ax, shown, means, bounds[:, 0], bounds[:, 1], color=color, label=label,
                          linestyle=linestyle, marker=marker)]
    else:
        means = np.array([np.mean(values) for values in repeats])
        errors = np.array([np.std(values, ddof=1) / math.sqrt(len(values)) if len(values) > 1 else 0.0
                           for values in repeats])
        line = ax.errorbar(shown, means, yerr=errors if errors.any() else None, color=color, marker=marker,
                           markersize=5, capsize=3, linewidth=1.4, linestyle=linestyle, label=label)
    if not mark_near_zero:
        return
    # Monte Carlo SE of a mean: sqrt(Σ se²) / count; unknown when a repeat has no finite se
    mc_se = np.array([math.sqrt(sum(e * e for _, e in by_x[position])) / len(by_x[position])
                      if all(math.isfinite(e) for _, e in by_x[position]) else math.nan for position in xs])
    near_zero = np.isfinite(mc_se) & (np.abs(means) <= 2 * mc_se)
    if near_zero.any():
        line[0].set_markevery([i for i in range(len(xs)) if not near_zero[i]])
        ax.scatter(shown[near_zero], means[near_zero], marker=marker, s=30, facecolors="white",
                   edgecolors=color, linewidths=1.3, zorder=3)


def _set_x_axis(ax: Any, categories: list[str], positions: list[float], logx: bool, dodge: float) -> None:
    """Category names as tick labels; a log scale; ticks on the true x values when the lines are dodged."""
    if categories:
        ax.set_xticks(range(len(categories)))
        ax.set_xticklabels(categories)
    if logx:
        ax.set_xscale("log")
    if not categories and dodge and positions:
        ax.set_xticks(positions)
        ax.set_xticklabels([f"{v:g}" for v in positions])
        ax.minorticks_off()


def _set_y_scale(ax: Any, cells: _Cells, logy: bool, symlogy: bool) -> None:
    """A log y axis (``logy``, or ``symlogy`` with every value positive), or a symlog one whose linear part
    reaches the decade of the 10th percentile of ``|y|``."""
    if logy:
        ax.set_yscale("log")
        return
    if not symlogy:
        return
    signed = np.array([v for by_x in cells.values() for pairs in by_x.values() for v, _ in pairs])
    magnitudes = np.abs(signed)
    magnitudes = magnitudes[magnitudes > 0]
    if signed.size and (signed > 0).all():
        ax.set_yscale("log")  # nothing at or below 0: a plain log axis
    elif magnitudes.size:
        linthresh = 10.0 ** math.floor(math.log10(float(np.percentile(magnitudes, 10))))
        ax.set_yscale("symlog", linthresh=linthresh, linscale=0.5)
        symlog_ticks(ax, "y", linthresh, float(magnitudes.max()), max_ticks=6)


def add_rate_guide(ax: Any, xs: Sequence[float], anchor: float, power: float = -0.5, *,
                   label: str = "∝ 1/√n", at: str = "first") -> Any:
    """A grey guide line ``y ∝ x**power`` through ``(x_at, anchor)`` over ``xs``.

    ``at="first"`` anchors it at the smallest x, ``"last"`` at the largest. The dash
    pattern depends on ``power`` (1/√n dashed, 1/n dotted...). Returns the line.
    """
    xs = np.asarray(sorted(float(v) for v in xs if is_finite_number(v) and float(v) > 0))
    if xs.size < 2 or not (is_finite_number(anchor) and anchor > 0):
        return None
    ref = xs[0] if at == "first" else xs[-1]
    dashes = (0, (4, 3)) if power == -0.5 else (0, (1, 2)) if power == -1.0 else (0, (6, 2, 1, 2))
    (line,) = ax.plot(xs, anchor * (xs / ref) ** power, color="0.45", linestyle=dashes, linewidth=1.1,
                      label=label, zorder=1)
    return line
