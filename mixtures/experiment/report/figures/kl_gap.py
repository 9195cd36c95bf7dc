"""``kl_gap_<dataset>``: the recorded ``log-likelihood − ELBO`` (nats per point) against iteration and time.

It is ``KL(q_t ‖ p(Z|X,θ_t))`` for the ``q_t`` each row's ELBO used; each routine's
record explains its own (``Routine.gap``). A symmetric-log axis keeps exact zeros (MAP's
gap is identically 0, drawn dotted at 0 and named; a mean-field SVI's row 0 is a dot at 0).
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
from mixtures.inference.registry import ROUTINES


@register("kl_gap")
def draw(state: RunState, dataset: str, tasks: list[Task]) -> list[Figure]:
    cell = base_cell(tasks)
    every = histories(state, cell)
    with_elbo = {k: h for k, h in every.items() if has_values(h, "elbo")}
    if not with_elbo:
        return []
    shown = {k: h if k in with_elbo else History() for k, h in every.items()}
    n = state.data.get(cell[0]).X.shape[0]
    fig, axes = plot.subplots(1, 2, squeeze=False, figsize=(10.0, 4.4))
    for j, x in enumerate(("iteration", "time")):
        plot.plot_kl_gap(axes[0, j], shown, x=x, per_point=True, n_points=n, colors=method_colors(state),
                         legend=False)
        spread_x(axes[0, j], with_elbo, x)
    figure_legend(fig, axes.flat)
    title = f"{dataset}: KL gap ({cell_label(cell[0])})"
    fig.suptitle(title)
    routines = {t.method.name: t.method.method for t in cell}
    explained = [ROUTINES[r].gap for r in dict.fromkeys(routines[k] for k in with_elbo) if ROUTINES[r].gap]
    caption = ("The recorded gap log p(X|θ_t) − ELBO(q_t, θ_t) per point at each history row t, with θ_t the "
               "parameters after step t and q_t the distribution over assignments that step's ELBO used: "
               "KL(q_t ‖ p(Z|X,θ_t)). " + "; ".join(explained) + ". The y axis is linear from 0 to the first "
               "labelled decade and logarithmic above, so gaps of exactly 0 stay visible.")
    zero = [name for name, h in with_elbo.items() if plot.gap_is_zero(h)]
    if zero:
        caption += f" Identically 0 at every row (dotted, at 0): {', '.join(zero)}."
    missing = sorted(set(every) - set(with_elbo))
    if missing:
        caption += f" Without an ELBO (not shown): {', '.join(missing)}."
    return [Figure("kl_gap", title, save(state, fig, f"kl_gap_{slug(dataset)}"), caption, dataset)]
