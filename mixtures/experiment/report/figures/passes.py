"""``passes_<dataset>``: log-likelihood per point against data passes and wall time (first cell).

Drawn when an online method is compared (a routine whose record counts passes by a
history column or by minibatch steps with ``subsample_size``). Passes:
:func:`~mixtures.experiment.report.reading.data_passes`; routines without a meaningful
count (NUTS) are left out.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mixtures import plot
from mixtures.experiment.report.figures.drawing import figure_legend, method_colors, save
from mixtures.experiment.report.figures.registry import Figure, register
from mixtures.experiment.report.formatting import cell_label, slug
from mixtures.experiment.report.reading import base_cell, is_online, pass_traces
from mixtures.experiment.store import RunState
from mixtures.experiment.tasks import Task
from mixtures.inference.registry import ROUTINES

CAPTION = ("Exact log-likelihood per point on the training data at each evaluation. Passes: stepwise EM's own "
           "count, step × B / N for minibatch SVI (B = subsample_size), one per iteration for batch EM; the "
           "evaluations themselves are not counted as passes (they are in the wall time). Top: the log-likelihood, "
           "its y axis starting at the lowest value reached after half a pass; bottom: the distance to the best "
           "value any method reached, log scale. The x axes are linear up to 0.1 (passes) and logarithmic beyond.")


@register("passes")
def draw(state: RunState, dataset: str, tasks: list[Task]) -> list[Figure]:
    cell = base_cell(tasks)
    if not any(is_online(t) for t in cell):
        return []
    traces = pass_traces(state, cell)
    if not traces:
        return []
    fig, axes = plot.subplots(2, 2, squeeze=False, figsize=(11.0, 8.0))
    finite = np.concatenate([v[np.isfinite(v)] for _, _, v in traces.values()])
    best = float(finite.max()) if finite.size else math.nan
    colors = method_colors(state)
    for i, (name, (passes, seconds, values)) in enumerate(traces.items()):
        style = {"color": colors.get(name, f"C{i % 10}"), "linewidth": 1.5, "label": name,
                 "marker": "." if len(values) < 50 else None}
        gap = best - values  # to the best value any method reached; its zero (the best point) is not drawn
        gap = np.where(gap > 0, gap, np.nan)
        for j, x in enumerate((passes, seconds)):
            axes[0, j].plot(x, values, **style)
            axes[1, j].plot(x, gap, **style)
    _scale_axes(axes, traces, best, finite.size > 0)
    figure_legend(fig, axes.flat)
    title = f"{dataset}: log-likelihood per point vs data passes and time ({cell_label(cell[0])})"
    fig.suptitle(title)
    caption = CAPTION
    without = [t.method.name for t in cell if ROUTINES[t.method.method].passes == "none"]
    if without:
        caption += f" Not shown (its draws are not data passes): {', '.join(without)}."
    return [Figure("passes", title, save(state, fig, f"passes_{slug(dataset)}"), caption, dataset)]


def _scale_axes(axes: Any, traces: dict, best: float, any_finite: bool) -> None:
    # Zoom on the approach to the optimum: the initialization's log-likelihood is often far below.
    after_half = [v[(p >= 0.5) & np.isfinite(v)][0] for p, _, v in traces.values()
                  if ((p >= 0.5) & np.isfinite(v)).any()]
    if any_finite and after_half:
        pad = 0.1 * max(best - min(after_half), 1e-6)
        for ax in axes[0]:
            ax.set_ylim(min(after_half) - pad, best + pad)
    if np.isfinite(best) and any(np.nansum(best - v) > 0 for _, _, v in traces.values()):
        for ax in axes[1]:
            ax.set_yscale("log")
    time_ends = [float(t[-1]) for _, t, _ in traces.values() if len(t) and t[-1] > 0]
    for i in range(2):
        # the first pass is where online methods differ from batch EM: stretch it
        axes[i, 0].set_xscale("symlog", linthresh=0.1, linscale=0.5)
        axes[i, 0].set_xlim(left=0)
        if len(time_ends) > 1 and max(time_ends) / min(time_ends) > 20:
            linthresh = 10.0 ** math.floor(math.log10(max(min(time_ends) / 2, 1e-4)))
            axes[i, 1].set_xscale("symlog", linthresh=linthresh, linscale=0.5)
            plot.symlog_ticks(axes[i, 1], "x", linthresh, max(time_ends))
        axes[i, 1].set_xlim(left=0)
        axes[i, 0].set_xlabel("data passes (points processed / N)")
        axes[i, 1].set_xlabel("wall time (s, initialization excluded)")
        for ax in axes[i]:
            ax.set_ylabel("log-likelihood (nats per point)" if i == 0 else "best − log-likelihood (nats per point)")
