"""``coclustering_<dataset>``: the posterior similarity matrix of each fit with a posterior.

``P[i, j]``, the posterior probability that points ``i`` and ``j`` share a component
(:func:`mixtures.evaluation.coclustering.posterior_similarity`), one panel per method, all
panels in one point order (grouped by the true labels when known, else by the first
posterior's mean-parameter labels). Label-invariant: a sampler that switches labels shows
sharp blocks all the same, while a fit unsure of a point shows it as a grey row.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np

from mixtures import plot
from mixtures.evaluation.coclustering import posterior_similarity, similarity_order
from mixtures.experiment.report.figures.drawing import save
from mixtures.experiment.report.figures.posterior import invalid_note, panel_title, posteriors
from mixtures.experiment.report.figures.registry import Figure, register
from mixtures.experiment.report.formatting import cell_label, slug
from mixtures.experiment.report.reading import base_cell
from mixtures.experiment.store import RunState
from mixtures.experiment.tasks import Task

#: points drawn at most (evenly spaced); the matrix has their square
MAX_POINTS = 400


@register("coclustering")
def draw(state: RunState, dataset: str, tasks: list[Task]) -> list[Figure]:
    cell = base_cell(tasks)
    draws = posteriors(state, cell)
    if not draws:
        return []
    bundle = state.data.get(cell[0])
    N = bundle.X.shape[0]
    shown = np.unique(np.linspace(0, N - 1, min(N, MAX_POINTS)).round().astype(int))
    X = bundle.X[shown]
    matrices = {name: posterior_similarity(posterior, X, max_draws=50 if state.smoke else 200)
                for name, posterior in draws.items()}
    first = next(iter(draws.values()))
    labels = bundle.labels[shown].numpy() if bundle.labels is not None else \
        first.mean_params().responsibilities(X).argmax(-1).numpy()
    order = similarity_order(next(iter(matrices.values())), labels)
    rows = {t.method.name: state.row(t) for t in cell if t.method.name in draws}
    ncols = min(len(draws), 3)
    nrows = math.ceil(len(draws) / ncols)
    fig, axes = plot.subplots(nrows, ncols, squeeze=False, figsize=(3.9 * ncols, 3.7 * nrows + 0.4))
    image = None
    for ax, (name, matrix) in zip(axes.flat, matrices.items()):
        image = ax.imshow(matrix.numpy()[np.ix_(order, order)], vmin=0.0, vmax=1.0, cmap="Greys",
                          interpolation="nearest")
        ax.set_title(panel_title(name, rows[name]), fontsize="small")
        ax.set_xticks([])
        ax.set_yticks([])
        note = invalid_note(rows[name])
        if note is not None:  # a sampler that did not explore must not look like a posterior
            ax.title.set_color("red")
            ax.text(0.5, 0.5, textwrap.fill(note, 34), transform=ax.transAxes, ha="center", va="center",
                    color="red", fontsize="small", bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "red"})
    for ax in list(axes.flat)[len(matrices):]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=list(axes.flat)[:len(matrices)], shrink=0.8, label="P(same component)")
    title = f"{dataset}: posterior co-clustering ({cell_label(cell[0])})"
    fig.suptitle(title)
    grouping = "the true labels" if bundle.labels is not None else f"{next(iter(draws))}'s posterior-mean labels"
    caption = (f"Posterior probability that two points share a component, E[Σ_k r_ik r_jk] over the draws "
               f"(assignments summed out, so label switching cannot blur it); {len(shown)} of {N} points, "
               f"ordered by {grouping}. Dark blocks: clusters the posterior is sure of; grey bands: points it "
               "splits between components.")
    return [Figure("coclustering", title, save(state, fig, f"coclustering_{slug(dataset)}"),
                   caption, dataset)]
