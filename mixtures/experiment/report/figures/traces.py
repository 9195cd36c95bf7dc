"""``traces_<dataset>``: log-likelihood and ELBO per point against iteration and wall time, across seeds.

Every method on one plot, at the dataset's first sweep point and init: each method's median
over seeds with a band (min–max with few seeds, 10–90 % with ten or more:
:func:`mixtures.plot.bands.seed_bands`); a fit that stopped keeps its last value. NUTS rows
are posterior draws (x = draw index, labelled so); it has no ELBO, and histories whose
column is all NaN are left out of that panel.
"""

from __future__ import annotations

from typing import Any

from mixtures import plot
from mixtures.core.history import History
from mixtures.experiment.report.figures.drawing import figure_legend, method_colors, save, spread_x
from mixtures.experiment.report.figures.registry import Figure, register
from mixtures.experiment.report.formatting import point_label, slug
from mixtures.experiment.report.reading import base_cell, has_values
from mixtures.experiment.store import RunState
from mixtures.experiment.tasks import Task
from mixtures.plot.bands import band_label, common_grid, plot_band, seed_bands

CAPTION = ("Log-likelihood (exact, top) and ELBO (bottom) in nats per point, against iteration (left) and "
           "wall-clock time (right): each method's {band} (a fit that stopped keeps its final value). The x axes "
           "are linear from 0 to the first labelled decade and logarithmic beyond when the routines end decades "
           "apart.")


def seed_histories(state: RunState, tasks: list[Task]) -> dict[str, list[tuple[History, int]]]:
    """``{method: [(history, N), ...]}`` over the seeds of the first cell's sweep point and init (ok fits)."""
    first = base_cell(tasks)[0]
    out: dict[str, list[tuple[History, int]]] = {}
    for task in tasks:
        if task.point == first.point and task.init == first.init and state.ok(task):
            out.setdefault(task.method.name, []).append((state.history(task), int(state.data.get(task).X.shape[0])))
    return out


def _panel(ax: Any, runs: dict[str, list[tuple[History, int]]], column: str, x: str, labels: dict[str, str],
           colors: dict[str, str]) -> bool:
    """One panel's bands; whether anything was drawn."""
    longest: dict[str, History] = {}
    for name, histories in runs.items():
        curves = [(h[x].double().numpy(), h[column].double().numpy() / n) for h, n in histories
                  if has_values(h, column) and x in h]
        if not curves:
            continue
        grid = common_grid(curves, log=(x == "time"))
        median, low, high = seed_bands(curves, grid)
        plot_band(ax, grid, median, low, high, color=colors[name], label=labels[name], steps=(x == "time"))
        longest[name] = max((h for h, _ in histories), key=lambda h: float(h[x][-1]) if len(h) else 0.0)
    if not longest:
        ax.text(0.5, 0.5, f"no {column.replace('_', ' ')} to show", ha="center", va="center", transform=ax.transAxes)
        return False
    spread_x(ax, longest, x)
    ax.set_xlabel("iteration" if x == "iteration" else "time (s)")
    ax.set_ylabel(("log-likelihood" if column == "log_likelihood" else "ELBO") + " (nats per point)")
    return True


@register("traces")
def draw(state: RunState, dataset: str, tasks: list[Task]) -> list[Figure]:
    runs = seed_histories(state, tasks)
    if not runs:
        return []
    first = base_cell(tasks)[0]
    routines = {t.method.name: t.method.method for t in tasks}
    # NUTS history rows are draws: say so in the legend rather than call them iterations
    labels = {name: f"{name} (x: draw)" if routines.get(name) == "nuts" else name for name in runs}
    colors = {name: method_colors(state).get(name, "0.3") for name in runs}
    fig, axes = plot.subplots(2, 2, squeeze=False, figsize=(10.0, 7.6))
    for i, column in enumerate(("log_likelihood", "elbo")):
        for j, x in enumerate(("iteration", "time")):
            drawn = _panel(axes[i, j], runs, column, x, labels, colors)
            if drawn and x == "iteration" and "nuts" in routines.values():
                axes[i, j].set_xlabel("iteration (NUTS: posterior draw)")
    figure_legend(fig, axes.flat)
    seeds = max(len(histories) for histories in runs.values())
    where = ", ".join(filter(None, [point_label(first.point), f"K={first.n_components}", first.covariance_type,
                                    f"init {first.init}", f"{seeds} seed{'s' if seeds != 1 else ''}"]))
    title = f"{dataset}: traces ({where})"
    fig.suptitle(title)
    caption = CAPTION.format(band=band_label(seeds))
    if "nuts" in routines.values():
        caption += (" NUTS rows are posterior draws (x: draw index; time counts warmup), each with its exact "
                    "log-likelihood.")
    left_out = sorted(name for name, runs_ in runs.items()
                      if any("elbo" in h for h, _ in runs_) and not any(has_values(h, "elbo") for h, _ in runs_))
    if left_out:
        caption += f" Without an ELBO (not drawn there): {', '.join(left_out)}."
    return [Figure("traces", title, save(state, fig, f"traces_{slug(dataset)}"), caption, dataset)]
