"""``views_<dataset>_<view>``: mclust's classification, uncertainty and density views of the best model.

When K or the covariance type is swept: the dataset's best model by BIC in mclust's sign (its best
non-singular fit, :func:`~mixtures.experiment.report.reference.best_per_model`), drawn from its stored
parameters (:func:`mixtures.plot.view_figure`: one panel for 2-D data, pairs plots for D > 2; memberships
from the parameters, nothing fitted). 1-D data have no such views.
"""

from __future__ import annotations

from mixtures import plot
from mixtures.experiment.report.figures.drawing import feature_names, save
from mixtures.experiment.report.figures.registry import Figure, register
from mixtures.experiment.report.formatting import slug
from mixtures.experiment.report.reading import selects_models
from mixtures.experiment.report.reference import best_per_model
from mixtures.experiment.store import RunState, params_from_record
from mixtures.experiment.tasks import Task, comparable_params

CAPTIONS = {
    "classification": "Points coloured by their most probable component, with each component's 2σ ellipse and "
                      "mean (×).",
    "uncertainty": "Each point's classification uncertainty 1 − max_k r_nk as its shade, and as its size in mclust's "
                   "groups (below the 75% quantile of the uncertainties, up to the 95% quantile, above it).",
    "density": "Highest-density contours (50%, 80%, 95% of the fitted mixture's mass).",
}


@register("views")
def draw(state: RunState, dataset: str, tasks: list[Task]) -> list[Figure]:
    if not selects_models(state):
        return []
    best = best_per_model(state, tasks)
    if not best:
        return []
    (structure, k), row = max(best.items(), key=lambda item: float(item[1]["mclust_bic"]))
    task = next(t for t in tasks if t.key == row["task"])
    bundle = state.data.get(task)
    if bundle.X.shape[1] < 2:
        return []
    params = comparable_params(params_from_record(state.records[task.key]))
    figures = []
    for view in plot.VIEWS:
        title = f"{dataset}: {view}, {row['covariance_type']} K={k} (best BIC)"
        quick = {"grid_size": 60, "n_samples": 2000} if state.smoke and view == "density" else {}
        fig, _ = plot.view_figure(view, bundle.X, params, feature_names=feature_names(bundle), title=title, **quick)
        figures.append(Figure("views", title, save(state, fig, f"views_{slug(dataset)}_{view}"), CAPTIONS[view],
                              dataset))
    return figures
