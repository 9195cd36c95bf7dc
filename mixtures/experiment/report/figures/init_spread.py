"""``init_<dataset>``: final log-likelihood per point and iterations per initializer and method, over seeds.

Box and strip plots; drawn when several inits are compared, at the first sweep point
(other points are different problems).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mixtures import plot
from mixtures.experiment.report.figures.drawing import figure_legend, method_colors, save
from mixtures.experiment.report.figures.registry import Figure, register
from mixtures.experiment.report.formatting import finite, point_label, slug
from mixtures.experiment.report.reading import run_inits
from mixtures.experiment.store import RunState
from mixtures.experiment.tasks import Task

PANELS = (("log_likelihood_per_point", "final log-likelihood (nats per point)"), ("n_iter", "iterations"))


@register("init_spread")
def draw(state: RunState, dataset: str, tasks: list[Task]) -> list[Figure]:
    inits = run_inits(state)
    if len(inits) < 2:
        return []
    first_point = tasks[0].point
    tasks = [t for t in tasks if all(t.point.get(k) == v for k, v in first_point.items() if k != "init")]
    fig, axes = plot.subplots(1, 2, squeeze=False, figsize=(5.5 * 2, 4.0))
    rng = np.random.default_rng(0)  # fixed jitter: reruns draw the same picture
    for ax, (column, label) in zip(axes[0], PANELS):
        _boxes(ax, state, tasks, inits, column, rng)
        ax.set_xticks(range(len(inits)))
        ax.set_xticklabels(inits)
        ax.set_xlim(-0.6, len(inits) - 0.4)
        ax.set_xlabel("initialization")
        ax.set_ylabel(label)
    figure_legend(fig, axes.flat)
    point = {k: v for k, v in first_point.items() if k != "init"}
    title = f"{dataset}: initializations over {len(state.config.seeds)} seeds" + (
        f" ({point_label(point)})" if point else "")
    fig.suptitle(title)
    caption = "Distribution over seeds of the final log-likelihood per point and of the iterations used."
    return [Figure("init_spread", title, save(state, fig, f"init_{slug(dataset)}"), caption, dataset)]


def _boxes(ax: Any, state: RunState, tasks: list[Task], inits: tuple[str, ...], column: str,
           rng: np.random.Generator) -> None:
    """One box and the jittered points per (init, method), methods side by side within an init."""
    methods = list(dict.fromkeys(t.method.name for t in tasks))
    colors = method_colors(state)
    width = 0.8 / len(methods)
    for j, method in enumerate(methods):
        offset = (j - (len(methods) - 1) / 2) * width
        color = colors.get(method, f"C{j % 10}")
        for i, init in enumerate(inits):
            values = [float(state.row(t)[column]) for t in tasks if t.method.name == method and t.init == init
                      and state.ok(t) and finite(state.row(t)[column])]
            if not values:
                continue
            ax.boxplot([values], positions=[i + offset], widths=width * 0.8, showfliers=False, patch_artist=False,
                       medianprops={"color": color}, boxprops={"color": color}, whiskerprops={"color": color},
                       capprops={"color": color})
            jitter = rng.uniform(-width * 0.3, width * 0.3, len(values))
            ax.scatter(i + offset + jitter, values, s=10, color=color, alpha=0.6, linewidths=0,
                       label=method if i == 0 else None, zorder=3)
