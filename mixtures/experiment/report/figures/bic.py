"""``bic_<dataset>``: BIC, AIC and ICL against K per covariance type, when K or the type is swept.

mclust style (higher is better on the plot), singular fits hollow, excluded and breaking
the line; the y axis zoomed on the best models.
"""

from __future__ import annotations

from mixtures import plot
from mixtures.experiment.report.figures.drawing import save
from mixtures.experiment.report.figures.registry import Figure, register
from mixtures.experiment.report.formatting import slug
from mixtures.experiment.report.reading import CRITERIA, selects_models
from mixtures.experiment.store import RunState
from mixtures.experiment.tasks import Task

CAPTION = ("Information criteria against K per covariance type, mclust's sign (higher is better), the best start "
           "per (K, type); hollow markers are singular fits (a covariance at the reg_covar floor), excluded from the "
           "choice: the line breaks there, as mclust leaves NA out; the star marks the best model. The y axes are "
           "zoomed on the best models (the top 60% of the regular fits), so poor fits such as K = 1 or spherical "
           "covariances may lie below them.")


@register("bic")
def draw(state: RunState, dataset: str, tasks: list[Task]) -> list[Figure]:
    if not selects_models(state):
        return []
    methods = list(dict.fromkeys(t.method.name for t in tasks))
    fig, axes = plot.subplots(len(methods), 3, squeeze=False, figsize=(15.0, 4.6 * len(methods)))
    drawn = False
    for i, method in enumerate(methods):
        rows = [state.row(t) for t in tasks if t.method.name == method and state.ok(t)]
        for j, criterion in enumerate(CRITERIA):
            table = [{"n_components": r["n_components"], "covariance_type": r["covariance_type"],
                      "bic": r[criterion], "singular": bool(r["singular"])} for r in rows]
            plot.plot_bic(axes[i, j], table, title=f"{method}: {criterion.upper()}")
            axes[i, j].set_ylabel(f"−{criterion.upper()} (higher is better)")
            drawn = drawn or bool(table)
    if not drawn:
        return []
    title = f"{dataset}: model selection"
    fig.suptitle(title)
    return [Figure("bic", title, save(state, fig, f"bic_{slug(dataset)}"), CAPTION, dataset)]
