"""``ellipses_<dataset>[_<point>][_<init>_seed<s>]``: each method's 2σ covariance ellipses on the data.

One panel per method, all on the same limits, the truth dashed when known; one figure
per sweep point (first init and seed), at most ``output.max_cell_figures`` per dataset,
plus, when K or the covariance type is swept, always the cell of each criterion's
winner (lowest BIC, AIC, ICL; its own init and seed). Both axes share one scale for
synthetic data and for real data whose two features spread alike (:func:`.drawing.same_units`);
otherwise each axis has its own and the caption says so. 1-D data: histograms with the densities.
"""

from __future__ import annotations

import math
from collections import defaultdict

from mixtures import plot
from mixtures.experiment.report.figures.drawing import (
    common_limits,
    feature_names,
    figure_legend,
    method_colors,
    same_units,
    save,
    scale_note,
)
from mixtures.experiment.report.figures.registry import Figure, register
from mixtures.experiment.report.formatting import point_label, point_slug, slug, wrap_title
from mixtures.experiment.report.reading import run_inits, selection_winners
from mixtures.experiment.store import RunState, params_from_record
from mixtures.experiment.tasks import Task, comparable_params


def chosen_cells(state: RunState, tasks: list[Task]) -> tuple[dict[int, list[Task]], dict[int, list[str]]]:
    """``({cell: its tasks}, {cell: criteria it wins})``: the first ``max_cell_figures`` sweep points
    (first init and seed), then each model-selection winner's cell."""
    inits, seeds = run_inits(state), state.config.seeds
    firsts = list(dict.fromkeys(t.cell for t in tasks if t.init == inits[0] and t.seed == seeds[0]))
    chosen = firsts[:state.config.output.max_cell_figures]
    won: dict[int, list[str]] = defaultdict(list)
    for criterion, task in selection_winners(state, tasks).items():
        won[task.cell].append(criterion.upper())
        if task.cell not in chosen:
            chosen.append(task.cell)
    return {cell: [t for t in tasks if t.cell == cell] for cell in chosen}, dict(won)


@register("ellipses")
def draw(state: RunState, dataset: str, tasks: list[Task]) -> list[Figure]:
    if state.config.output.max_cell_figures == 0:
        return []
    cells, won = chosen_cells(state, tasks)
    figures = []
    for cell, cell_tasks in cells.items():
        # noisy fits are drawn by their clusters, t fits by their scale matrices
        fitted = [(t, comparable_params(params_from_record(state.records[t.key]))) for t in cell_tasks if state.ok(t)]
        if fitted:
            figures.append(_cell_figure(state, dataset, cell_tasks, fitted, won.get(cell, [])))
    return figures


def _cell_figure(state: RunState, dataset: str, cell_tasks: list[Task], fitted: list, won: list[str]) -> Figure:
    bundle = state.data.get(cell_tasks[0])
    ncols = min(len(fitted), 3)
    nrows = math.ceil(len(fitted) / ncols)
    fig, axes = plot.subplots(nrows, ncols, squeeze=False, figsize=(4.3 * ncols, 3.9 * nrows + 0.5))
    for ax, (task, params) in zip(axes.flat, fitted):
        per_point = state.row(task)["log_likelihood_per_point"]
        plot.plot_mixture(ax, bundle.X, {task.method.name: params}, truth=bundle.truth,
                          title=f"{task.method.name}: log-lik {per_point:.4g}/pt", colors=method_colors(state),
                          aspect="equal" if same_units(bundle) else "auto", feature_names=feature_names(bundle),
                          legend=False)
    used = list(axes.flat)[:len(fitted)]
    for ax in list(axes.flat)[len(fitted):]:
        ax.set_visible(False)
    two_d = bundle.X.shape[1] >= 2
    if two_d:
        common_limits(used)
    if bundle.truth is not None:  # the panel titles name the methods; the legend adds the truth
        figure_legend(fig, used)
    first, point = cell_tasks[0], cell_tasks[0].point
    title = f"{dataset}" + (f" ({point_label(point)})" if point else "") + f", init {first.init}, seed {first.seed}"
    if won:
        title += " — lowest " + "/".join(won)
    fig.suptitle(wrap_title(title, ncols))
    name = f"ellipses_{slug(dataset)}" + ("_" + point_slug(point) if point else "")
    if first.init != run_inits(state)[0] or first.seed != state.config.seeds[0]:
        name += f"_{slug(first.init)}_seed{first.seed}"
    truth = bundle.truth is not None
    if two_d:
        caption = "2σ covariance ellipses and means (×) of each method's fit" + (
            ", the true mixture dashed (+: true means)." if truth else ".")
    else:
        caption = "Histogram of the data with each method's fitted density" + (
            ", the true density dashed." if truth else ".")
    if won:
        caption += (f" This model has the lowest {', '.join(won)} of the sweep (non-singular fits), shown whatever "
                    "max_cell_figures says.")
    if two_d:
        caption += scale_note(bundle)
    return Figure("ellipses", title, save(state, fig, name), caption, dataset)
