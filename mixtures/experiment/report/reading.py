"""What the report reads off a run: tasks by dataset and cell, histories, model selection, data passes."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from mixtures.core.history import History
from mixtures.experiment.report.formatting import finite
from mixtures.experiment.store import RunState
from mixtures.experiment.tasks import Task
from mixtures.inference.registry import ROUTINES

CRITERIA = ("bic", "aic", "icl")


def tasks_by_dataset(state: RunState) -> dict[str, list[Task]]:
    groups: dict[str, list[Task]] = defaultdict(list)
    for task in state.tasks:
        groups[task.dataset.name].append(task)
    return dict(groups)


def base_cell(tasks: list[Task]) -> list[Task]:
    """The tasks of the first cell (first sweep point, init and seed)."""
    return [t for t in tasks if t.cell == tasks[0].cell]


def run_inits(state: RunState) -> tuple[str, ...]:
    return tuple(state.config.sweep.get("init", state.config.inits))


def selects_models(state: RunState) -> bool:
    """Whether K or the covariance type is swept (model selection tables and figures apply)."""
    return bool({"n_components", "covariance_type"} & set(state.config.sweep))


def histories(state: RunState, tasks: list[Task]) -> dict[str, History]:
    """``{method name: History}`` of the ok tasks."""
    return {task.method.name: state.history(task) for task in tasks if state.ok(task)}


def has_values(history: History, column: str) -> bool:
    """Whether ``column`` exists and has a finite entry (NUTS's ELBO is all NaN)."""
    return column in history and len(history) > 0 and bool(np.isfinite(history[column].numpy()).any())


def selection_winners(state: RunState, tasks: list[Task]) -> dict[str, Task]:
    """The task with the lowest BIC, AIC and ICL among ``tasks``' ok, non-singular fits
    (``{}`` unless K or the covariance type is swept)."""
    if not selects_models(state):
        return {}
    usable = [t for t in tasks if state.ok(t) and not state.row(t)["singular"]]
    winners = {}
    for criterion in CRITERIA:
        candidates = [t for t in usable if finite(state.row(t).get(criterion))]
        if candidates:
            # ties to rounding (the same optimum from two seeds) go to the first task
            values = [float(state.row(t)[criterion]) for t in candidates]
            best = min(values)
            winners[criterion] = next(t for t, v in zip(candidates, values) if v <= best + 1e-9 * max(1.0, abs(best)))
    return winners


def with_per_point(row: dict) -> dict:
    """``row`` with ``elbo_per_point`` and ``kl_per_point`` (the final gap ``log-lik (+ log prior) − ELBO``)."""
    n = row["n"]
    gap = row["kl"] / n if finite(row.get("kl")) else None
    if gap is not None and abs(gap) < 1e-12:
        gap = 0.0  # rounding of an exact ELBO (MAP: -2e-16)
    return dict(row, elbo_per_point=row["elbo"] / n if finite(row.get("elbo")) else None, kl_per_point=gap)


# -- data passes ------------------------------------------------------------------------------
def data_passes(history: History, routine: str, options: dict, n_points: int) -> np.ndarray | None:
    """Data passes at each history row ``(T,)``; ``None`` when they have no meaning (samplers).

    The routine's record says how to count (``Routine.passes``): its history's
    ``passes`` column (stepwise EM), minibatch ``steps`` (``step × B / N`` with
    ``B = subsample_size``, or one per step on all the data), one per ``iteration``
    (EM, VB, k-means), or ``none`` (NUTS). A ``passes`` column wins whatever the rule.
    Evaluation passes (the exact log-likelihood of the history) are not counted.
    """
    if has_values(history, "passes"):
        return history["passes"].numpy()
    rule = ROUTINES[routine].passes
    if rule == "none":
        return None
    steps = history["iteration"].numpy()
    batch = options.get("subsample_size")
    if rule == "steps" and batch:
        return steps * min(int(batch), n_points) / n_points
    return steps


def is_online(task: Task) -> bool:
    """Whether the task's routine processes minibatches (its passes are not its iterations)."""
    rule = ROUTINES[task.method.method].passes
    return rule == "column" or (rule == "steps" and bool(task.method.options.get("subsample_size")))


def pass_traces(state: RunState, cell: list[Task]) -> dict[str, tuple[Any, Any, Any]]:
    """``{method: (passes, time, log-likelihood per point)}`` (arrays ``(T,)``) of the cell's ok fits
    whose passes mean something."""
    n = state.data.get(cell[0]).X.shape[0]
    out = {}
    for task in cell:
        if not state.ok(task):
            continue
        history = state.history(task)
        passes = data_passes(history, task.method.method, task.method.options, n)
        if passes is not None and has_values(history, "log_likelihood"):
            out[task.method.name] = (passes, history["time"].numpy(), history["log_likelihood"].numpy() / n)
    return out
