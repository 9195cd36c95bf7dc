"""``traces_<dataset>``: log-likelihood and ELBO per point against iteration and wall time.

Every method on one plot (first cell of the dataset). NUTS rows are posterior draws
(x = draw index, labelled so); it has no ELBO, and histories whose column is all NaN
are left out of that panel.
"""

from __future__ import annotations

from mixtures import plot
from mixtures.core.history import History
from mixtures.experiment.report.figures.drawing import figure_legend, method_colors, save, spread_x
from mixtures.experiment.report.figures.registry import Figure, register
from mixtures.experiment.report.formatting import cell_label, slug
from mixtures.experiment.report.reading import base_cell, has_values, histories
from mixtures.experiment.store import RunState
from mixtures.experiment.tasks import Task

CAPTION = ("Log-likelihood (exact, top) and ELBO (bottom) in nats per point, against iteration (left) and "
           "wall-clock time (right). The x axes are linear from 0 to the first labelled decade and logarithmic "
           "beyond when the routines end decades apart.")


@register("traces")
def draw(state: RunState, dataset: str, tasks: list[Task]) -> list[Figure]:
    cell = base_cell(tasks)
    traces = histories(state, cell)
    if not traces:
        return []
    routines = {t.method.name: t.method.method for t in cell}
    # NUTS history rows are draws: say so in the legend rather than call them iterations
    labels = {name: f"{name} (x: draw)" if routines.get(name) == "nuts" else name for name in traces}
    colors = {labels[name]: method_colors(state).get(name, "0.3") for name in traces}
    n = state.data.get(cell[0]).X.shape[0]
    fig, axes = plot.subplots(2, 2, squeeze=False, figsize=(10.0, 7.6))
    left_out = set()
    for i, column in enumerate(("log_likelihood", "elbo")):
        shown = {labels[k]: h if has_values(h, column) else History() for k, h in traces.items()}
        available = {k: h for k, h in shown.items() if len(h)}
        left_out |= {k for k, h in traces.items() if column in h and not has_values(h, column)}
        for j, x in enumerate(("iteration", "time")):
            ax = axes[i, j]
            if not available:
                ax.text(0.5, 0.5, f"no {column.replace('_', ' ')} to show", ha="center", va="center",
                        transform=ax.transAxes)
                continue
            plot.plot_traces(ax, shown, column=column, x=x, n_points=n, colors=colors, legend=False)
            spread_x(ax, available, x)
            if x == "iteration" and any(routines.get(k) == "nuts" for k in traces if labels[k] in available):
                ax.set_xlabel("iteration (NUTS: posterior draw)")
    figure_legend(fig, axes.flat)
    title = f"{dataset}: traces ({cell_label(cell[0])})"
    fig.suptitle(title)
    caption = CAPTION
    if "nuts" in routines.values():
        caption += (" NUTS rows are posterior draws (x: draw index; time counts warmup), each with its exact "
                    "log-likelihood.")
    if left_out:
        caption += f" Without an ELBO (not drawn there): {', '.join(sorted(left_out))}."
    return [Figure("traces", title, save(state, fig, f"traces_{slug(dataset)}"), caption, dataset)]
