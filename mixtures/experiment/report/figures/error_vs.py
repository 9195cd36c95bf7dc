"""``error_vs_<key>_<dataset>``: accuracy against a swept key (``n``, ``separation``, ``imbalance``, ``n_features``).

Parameter errors, ARI, KL to the truth and held-out log-likelihood minus the truth's,
median and a band over seeds (:mod:`mixtures.plot.bands`); synthetic data only. Methods are dodged sideways with
their own markers and line styles (EM and an unregularized MAP coincide); KL is on a
symmetric-log axis with estimates within two Monte Carlo standard errors of 0 hollow;
sample-size sweeps get 1/√n (parameter errors) and 1/n (KL) guide lines.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

from mixtures import plot
from mixtures.experiment.report.figures.drawing import figure_legend, group_colors, method_markers, save
from mixtures.experiment.report.figures.registry import Figure, register
from mixtures.experiment.report.formatting import finite, point_label, slug
from mixtures.experiment.report.reading import run_inits
from mixtures.experiment.store import RunState
from mixtures.experiment.tasks import Task
from mixtures.plot.bands import band_label

NUMERIC_SWEEP_KEYS = ("n", "separation", "imbalance", "n_features", "n_components", "outliers", "missing")
#: the panels: held_out_ll is drawn as the gap to the truth's (held_out_gap)
ERROR_METRICS = ("means_rmse", "covariances_frobenius", "weights_l1", "ari", "kl_truth", "held_out_gap")
#: axis labels of results.csv columns and sweep keys
LABELS = {
    "means_rmse": "means RMSE", "means_max": "largest mean error",
    "covariances_frobenius": "covariance error (Frobenius)",
    "covariances_relative": "relative covariance error", "weights_l1": "weights L1 error",
    "weights_max": "largest weight error", "ari": "adjusted Rand index", "nmi": "normalized mutual information",
    "kl_truth": "KL(truth ‖ fit) (nats)", "held_out_ll": "held-out log-lik (nats per point)",
    "held_out_gap": "held-out log-lik − truth's (nats/pt)",
    "log_likelihood_per_point": "log-likelihood (nats per point)",
    "n": "training points n", "separation": "separation c", "imbalance": "imbalance (ratio of consecutive weights)",
    "n_features": "dimension D", "n_components": "components K", "outliers": "fraction of uniform outliers",
    "missing": "fraction of entries removed at random",
}
#: error panels that get a rate guide on a sample-size sweep: exponent and label
RATE_GUIDES = {"means_rmse": (-0.5, "∝ 1/√n"), "covariances_frobenius": (-0.5, "∝ 1/√n"),
               "weights_l1": (-0.5, "∝ 1/√n"), "kl_truth": (-1.0, "∝ 1/n")}


def grouped_rows(state: RunState, tasks: list[Task], x: str) -> tuple[list[str], list[dict]]:
    """Ok rows of ``tasks`` labelled for a plot against ``x``.

    Returns the other swept keys and the rows, each with ``group`` (the method, plus
    the init when several are compared), ``panel`` (the other swept keys' values) and
    ``held_out_gap``.
    """
    others = [k for k in state.config.sweep if k not in (x, "method", "init") and any(k in t.point for t in tasks)]
    many_inits = len(run_inits(state)) > 1
    rows = []
    for task in tasks:
        if not state.ok(task):
            continue
        row = dict(state.row(task))
        if row.get(x) is None:
            row[x] = task.point.get(x)
        row["group"] = task.method.name + (f", {task.init}" if many_inits else "")
        row["panel"] = point_label({k: task.point[k] for k in others if k in task.point})
        if finite(row.get("held_out_ll")) and finite(row.get("held_out_ll_truth")):
            row["held_out_gap"] = float(row["held_out_ll"]) - float(row["held_out_ll_truth"])
        rows.append(row)
    return others, rows


@register("error_vs")
def draw(state: RunState, dataset: str, tasks: list[Task]) -> list[Figure]:
    """One figure per swept numeric key: a row of panels per value of the other swept keys, one panel per metric."""
    if state.data.get(tasks[0]).truth is None:
        return []
    figures = []
    for x in NUMERIC_SWEEP_KEYS:
        if x in state.config.sweep and any(x in t.point for t in tasks):
            figure = _against(state, dataset, tasks, x)
            if figure is not None:
                figures.append(figure)
    return figures


def _panel_grid(n_rows: int, n_metrics: int) -> tuple[Any, np.ndarray]:
    """``(fig, axes (rows, metrics))``; a single row of panels wraps into a 3-column grid."""
    if n_rows > 1:
        return plot.subplots(n_rows, n_metrics, squeeze=False, figsize=(3.5 * n_metrics, 3.0 * n_rows + 0.6))
    ncols = min(3, n_metrics)
    nrows = math.ceil(n_metrics / ncols)
    fig, grid = plot.subplots(nrows, ncols, squeeze=False, figsize=(4.4 * ncols, 3.5 * nrows + 0.6))
    for ax in list(grid.flat)[n_metrics:]:
        ax.set_visible(False)
    return fig, np.array(list(grid.flat)[:n_metrics], dtype=object).reshape(1, n_metrics)


def _against(state: RunState, dataset: str, tasks: list[Task], x: str) -> Figure | None:
    others, rows = grouped_rows(state, tasks, x)
    ys = [y for y in ERROR_METRICS if any(finite(r.get(y)) for r in rows)]
    panels = list(dict.fromkeys(r["panel"] for r in rows))
    if not ys or not panels:
        return None
    groups = list(dict.fromkeys(r["group"] for r in rows))
    markers = method_markers(state)
    style = {"colors": group_colors(state, groups), "markers": {g: markers.get(g.split(", ")[0], "o") for g in groups},
             "dodge": 0.12 if len(groups) > 1 else 0.0}
    fig, axes = _panel_grid(len(panels), len(ys))
    near_zero = False
    for i, panel in enumerate(panels):
        panel_rows = [r for r in rows if r["panel"] == panel]
        for j, y in enumerate(ys):
            _metric_panel(axes[i, j], rows, panel_rows, x, y, style)
            near_zero = near_zero or (y == "kl_truth" and kl_near_zero(panel_rows, x))
            if panel:
                axes[i, j].set_title(panel, fontsize="small")
    figure_legend(fig, axes.flat)
    title = f"{dataset}: accuracy against {LABELS.get(x, x)}"
    fig.suptitle(title)
    return Figure("error_vs", title, save(state, fig, f"error_vs_{x}_{slug(dataset)}"),
                  _caption(state, x, others, near_zero), dataset)


def _metric_panel(ax: Any, rows: list[dict], panel_rows: list[dict], x: str, y: str, style: dict) -> None:
    values = [float(r[y]) for r in rows if finite(r.get(y))]
    positive = bool(values) and min(values) > 0
    logy = x == "n" and positive and y not in ("ari", "nmi", "held_out_gap", "kl_truth")
    plot.plot_metric_vs(ax, panel_rows, x, y, group="group", logx=(x == "n"), logy=logy, symlogy=(y == "kl_truth"),
                        se="kl_truth_se" if y == "kl_truth" else None, xlabel=LABELS.get(x, x),
                        ylabel=LABELS.get(y, y), legend=False, band=True, **style)
    if y == "held_out_gap":
        ax.axhline(0.0, color="0.6", linewidth=0.8, zorder=0)
    if x == "n" and y in RATE_GUIDES:
        rate_guide(ax, panel_rows, y, *RATE_GUIDES[y])


def _caption(state: RunState, x: str, others: list[str], near_zero: bool) -> str:
    seeds = len(state.config.seeds)
    caption = (f"Each method's {band_label(seeds)} (shaded) against {LABELS.get(x, x)}"
               + (f", one row per {', '.join(others)}" if others else "")
               + "; methods are shifted slightly sideways (and differ in marker and line style) so that coinciding "
               "curves stay visible. Errors are measured after matching fitted to true components (Hungarian "
               f"algorithm); KL(truth ‖ fit) is a Monte Carlo estimate ({state.config.metrics.kl_samples} draws of the "
               "truth per fit, the same draws for every method of a cell), on a log axis, or a symmetric-log one "
               "(linear near 0) when an estimate comes out ≤ 0"
               + ("; hollow markers: within two Monte Carlo standard errors of 0" if near_zero else "")
               + "; held-out: the fit's mean log density per point on an independent sample minus the truth's on the "
               "same sample (0 = as good as the truth).")
    if x == "n":
        caption += (" Grey: rate guides through the first method's value at the smallest n, 1/√n dashed for the "
                    "parameter errors (the parametric rate) and 1/n dotted for the KL.")
    return caption


def kl_near_zero(rows: list[dict], x: str) -> bool:
    """Whether some plotted KL mean is within two Monte Carlo standard errors of 0."""
    cells: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        if finite(r.get("kl_truth")) and finite(r.get("kl_truth_se")):
            cells[(r["group"], r.get(x))].append((float(r["kl_truth"]), float(r["kl_truth_se"])))
    return any(abs(np.mean([v for v, _ in pairs])) <= 2 * math.sqrt(sum(e * e for _, e in pairs)) / len(pairs)
               for pairs in cells.values())


def rate_guide(ax: Any, rows: list[dict], y: str, power: float, label: str) -> None:
    """A guide ``∝ n^power`` through the first method's mean at the smallest n."""
    xs = sorted({float(r["n"]) for r in rows if finite(r.get(y)) and finite(r.get("n"))})
    if len(xs) < 2:
        return
    first_group = next(r["group"] for r in rows if finite(r.get(y)))
    at_first = [float(r[y]) for r in rows if r["group"] == first_group and finite(r.get(y)) and float(r["n"]) == xs[0]]
    plot.add_rate_guide(ax, xs, float(np.mean(at_first)) if at_first else math.nan, power, label=label)
