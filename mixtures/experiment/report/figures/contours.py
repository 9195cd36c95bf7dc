"""``contours_<dataset>``: density contours of the first EM method at its start, after one iteration and at the end.

As in seed notebook 003. The three parameter sets come from the task's record (the run
stores the start and the first iteration at fit time: drawing never fits a model).
"""

from __future__ import annotations

from mixtures import plot
from mixtures.experiment.report.figures.drawing import feature_names, same_units, save, scale_note
from mixtures.experiment.report.figures.registry import Figure, register
from mixtures.experiment.report.formatting import cell_label, slug
from mixtures.experiment.report.reading import base_cell
from mixtures.experiment.store import RunState, params_from_record
from mixtures.experiment.tasks import Task

#: the routine whose first steps the figure shows
ROUTINE = "em"


def _wants_first_iteration(task: Task) -> bool:
    return task.method.method == ROUTINE


@register("contours", first_iteration=_wants_first_iteration)
def draw(state: RunState, dataset: str, tasks: list[Task]) -> list[Figure]:
    em = [t for t in base_cell(tasks) if t.method.method == ROUTINE and state.ok(t)]
    if not em:
        return []
    task = em[0]
    bundle = state.data.get(task)
    record = state.records[task.key]
    stages = [params_from_record(record, stage) for stage in ("init", "first_iteration", "params")]
    if bundle.X.shape[1] < 2 or any(params is None for params in stages):
        return []
    equal = same_units(bundle)
    fig, axes = plot.subplots(1, 3, squeeze=False, sharex=not equal, sharey=not equal,
                              figsize=(12.0, 4.6) if equal else (13.5, 4.4))
    labels = ("initialization", "after 1 iteration", f"after {record['row']['n_iter']} iterations")
    quick = {"grid_size": 60, "n_samples": 2000} if state.smoke else {}
    for ax, params, label in zip(axes[0], stages, labels):
        plot.plot_density_contours(ax, bundle.X, params, feature_names=feature_names(bundle), **quick)
        ax.set_title(label)
    if equal:  # the data's box on every panel, one scale on both axes (the panel box adapts)
        data = bundle.X[:, :2].detach().cpu().double().numpy()
        low, high = data.min(0), data.max(0)
        pad = 0.12 * (high - low).max()
        for ax in axes[0]:
            ax.set_xlim(low[0] - pad, high[0] + pad)
            ax.set_ylim(low[1] - pad, high[1] + pad)
            ax.set_aspect("equal", adjustable="box")
    title = f"{dataset}: {task.method.name} density ({cell_label(task)})"
    fig.suptitle(title)
    caption = ("Highest-density contours (50%, 80%, 95% of the fitted mixture's mass), as in seed notebook 003."
               + scale_note(bundle))
    return [Figure("contours", title, save(state, fig, f"contours_{slug(dataset)}"), caption, dataset)]
