"""``weights_<dataset>``: mixing weights of every method of the first cell.

Posterior mean with a 90% credible interval for fits with a posterior, markers for
point estimates; drawn when some fit of the dataset has a posterior.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from mixtures import plot
from mixtures.experiment.report.figures.drawing import method_colors, save
from mixtures.experiment.report.figures.posterior import posteriors
from mixtures.experiment.report.figures.registry import Figure, register
from mixtures.experiment.report.formatting import cell_label, slug
from mixtures.experiment.report.reading import base_cell
from mixtures.experiment.store import RunState, params_from_record
from mixtures.experiment.tasks import Task


@register("weights")
def draw(state: RunState, dataset: str, tasks: list[Task]) -> list[Figure]:
    cell = base_cell(tasks)
    draws = posteriors(state, cell)
    if not draws:
        return []
    results: dict[str, Any] = {}
    for task in cell:
        if state.ok(task):
            name = task.method.name
            # plot_weight_intervals reads ``.posterior`` of a result, or plain parameters
            results[name] = SimpleNamespace(posterior=draws[name]) if name in draws \
                else params_from_record(state.records[task.key])
    fig, axes = plot.subplots(1, 1, squeeze=False, figsize=(max(5.0, 1.2 * len(results) + 2), 4.0))
    ax = axes[0, 0]
    plot.plot_weight_intervals(ax, results, level=0.9, colors=method_colors(state))
    ax.tick_params(axis="x", labelsize="small")
    truth = state.data.get(cell[0]).truth
    if truth is not None:
        for weight in truth.weights.tolist():
            ax.axhline(weight, color="0.5", linestyle=":", linewidth=0.8)
    title = f"{dataset}: mixing weights ({cell_label(cell[0])})"
    fig.suptitle(title)
    caption = ("Mixing weights per method, sorted within each method (component labels are arbitrary): posterior "
               "mean with a 90% equal-tailed credible interval for fits with a posterior, plain markers for point "
               "estimates (EM, MAP-EM...)" + ("; dotted lines: the true weights" if truth is not None else "") + ".")
    return [Figure("weights", title, save(state, fig, f"weights_{slug(dataset)}"), caption, dataset)]
