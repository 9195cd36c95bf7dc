"""Model selection: BIC against the number of components, one line per covariance type (mclust style)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from mixtures.plot.inputs import is_finite_number
from mixtures.plot.style import COVARIANCE_STYLES, covariance_style

#: (covariance type, K) -> (singular, bic) of the row shown there
_Cells = dict[tuple[str, int], tuple[bool, float]]


def plot_bic(ax: Any, table: Iterable[Mapping[str, Any]], *, title: str = "", mark_best: bool = True,
             zoom: bool = True):
    """BIC against the number of components, mclust style.

    ``table`` rows have ``n_components``, ``covariance_type``, ``bic`` (our sign,
    lower is better) and optionally ``singular`` (a covariance collapsed onto the
    ``reg_covar`` floor, see :func:`mixtures.metrics.is_singular`). Plotted is
    ``−bic`` (mclust's sign: higher is better), one line per covariance type.
    Singular fits are hollow markers off the line, which breaks there (mclust
    reports them as NA and leaves a gap), and can never be "best"; failed fits
    (no BIC) leave a gap too. Where several rows share ``(covariance_type,
    n_components)`` (restarts), the best non-singular one is shown. The best fit
    gets a star.

    ``zoom``: the y axis covers the best models (the top 60% of the regular
    fits, at least five), so that K = 1 and spherical fits far below do not
    squash the differences that decide the choice; a note says when values lie
    below the axis, and types wholly below it are marked so in the legend.

    Returns ``ax``.
    """
    cells = _best_per_cell(table)
    regular = sorted((-bic for singular, bic in cells.values() if not singular), reverse=True)
    low = _zoom_floor(regular) if zoom else None
    all_ks = sorted({k for _, k in cells})
    ks = list(range(min(all_ks), max(all_ks) + 1)) if all_ks else []
    best: tuple[float, int, str] | None = None
    for cov_type, (color, marker) in _type_styles({cov_type for cov_type, _ in cells}).items():
        candidate = _draw_type(ax, cov_type, color, marker, ks, cells, low)
        if candidate is not None and (best is None or candidate[0] > best[0]):
            best = candidate
    if any(singular for singular, _ in cells.values()):
        ax.scatter([], [], facecolors="none", edgecolors="0.3", marker="o", label="singular (excluded)")
    if mark_best and best is not None:
        ax.scatter([best[1]], [best[0]], marker="*", s=220, color="gold", edgecolors="black", zorder=4,
                   label=f"best: {best[2]}, K={best[1]}")
    if low is not None:
        ax.set_ylim(low, regular[0] + 0.08 * (regular[0] - low))
        ax.text(0.99, 0.01, "lower values below the axis", transform=ax.transAxes, ha="right", va="bottom",
                fontsize="x-small", color="0.35")
    if cells:
        ax.set_xticks(all_ks)
        ax.legend(loc="best", fontsize="small")
    ax.set_xlabel("number of components K")
    ax.set_ylabel("BIC (mclust sign: −BIC, higher is better)")
    if title:
        ax.set_title(title)
    return ax


def _best_per_cell(table: Iterable[Mapping[str, Any]]) -> _Cells:
    """The row shown per ``(covariance_type, K)``: non-singular beats singular, then lower BIC;
    rows without a finite BIC (failed fits) are left out."""
    cells: _Cells = {}
    for row in table:
        missing = {"n_components", "covariance_type", "bic"} - set(row)
        if missing:
            raise KeyError(f"plot_bic table rows need keys {sorted(missing)}; got {sorted(row)}.")
        if not is_finite_number(row["bic"]):
            continue
        key = (str(row["covariance_type"]), int(row["n_components"]))
        candidate = (bool(row.get("singular", False)), float(row["bic"]))
        if key not in cells or candidate < cells[key]:  # False < True: non-singular first
            cells[key] = candidate
    return cells


def _type_styles(types: set[str]) -> dict[str, tuple[str, str]]:
    """``{type: (colour, marker)}`` in legend order: registered types in registration order with their
    styles, then types the registry does not know (a table from elsewhere) by name, continuing the cycle."""
    registered = list(COVARIANCE_STYLES)
    styles = {name: COVARIANCE_STYLES[name] for name in registered if name in types}
    unknown = sorted(name for name in types if name not in styles)
    styles.update({name: covariance_style(len(registered) + i) for i, name in enumerate(unknown)})
    return styles


def _zoom_floor(regular: list[float]) -> float | None:
    """Bottom of a y axis showing the best of the regular scores (−BIC, descending), or ``None``
    when all of them fit without squashing the top: the top 60% (at least five), plus 12% margin."""
    if len(regular) <= 4:
        return None
    cut = regular[min(len(regular) - 1, max(4, math.ceil(0.6 * len(regular)) - 1))]
    low = cut - 0.12 * max(regular[0] - cut, 1e-9)
    return None if low <= regular[-1] else low


def _draw_type(ax: Any, cov_type: str, color: str, marker: str, ks: list[int], cells: _Cells,
               low: float | None) -> tuple[float, int, str] | None:
    """One covariance type's −BIC line over ``ks``, broken at singular and failed fits, singular fits
    hollow; returns its best regular ``(−bic, K, type)``, if any."""
    entries = [cells.get((cov_type, k)) for k in ks]
    scores = np.array([-entry[1] if entry is not None else np.nan for entry in entries])
    singular = np.array([entry is not None and entry[0] for entry in entries])
    line_scores = np.where(singular, np.nan, scores)  # mclust's NA: the line breaks there
    off_scale = low is not None and bool(np.all(scores[np.isfinite(scores)] < low))
    ax.plot(ks, line_scores, color=color, linewidth=1.3, marker=marker, markersize=5.5,
            label=cov_type + (" (below the axis)" if off_scale else ""))
    if singular.any():
        ax.scatter(np.array(ks)[singular], scores[singular], facecolors="none", edgecolors=color,
                   marker=marker, s=30, linewidths=1.3, zorder=3)
    best = None
    for k, score, is_singular in zip(ks, scores, singular):
        if np.isfinite(score) and not is_singular and (best is None or score > best[0]):
            best = (float(score), k, cov_type)
    return best
