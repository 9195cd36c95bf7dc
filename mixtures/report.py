"""Figures and ``report.md`` of an experiment run (see :mod:`mixtures.experiment`).

Figures (in ``figures/``, one file per figure and format; which ones are drawn is
``output.figures`` in the config, and each only where it applies):

``ellipses_<dataset>[_<point>]``
    the data with each method's 2σ covariance ellipses (one panel per method),
    the truth dashed when known; one figure per sweep point (first init and seed),
    at most ``output.max_cell_figures`` per dataset.
``traces_<dataset>``
    log-likelihood and ELBO per point against iteration and wall time, every
    method on one plot (first cell of the dataset). NUTS rows are posterior
    draws (x = draw index, labelled so); it has no ELBO, and histories whose
    column is all NaN are left out of that panel.
``kl_gap_<dataset>``
    ``log-likelihood − ELBO`` (nats per point) against iteration and wall time.
``error_vs_<key>_<dataset>``
    parameter errors, ARI, KL to the truth and held-out log-likelihood against a
    swept key (``n``, ``separation``, ``imbalance``, ``n_features``), mean ± standard
    error over seeds; synthetic data only.
``bic_<dataset>``
    BIC, AIC and ICL against K per covariance type (mclust style, higher is better
    on the plot), singular fits hollow and excluded; when K or the covariance
    type is swept.
``contours_<dataset>``
    density contours of the first EM method at its initialization, after one
    iteration and at the end (seed notebook 003).
``init_<dataset>``
    box and strip plots of the final log-likelihood per point and of the
    iterations, per initializer and method; when several inits are compared.
``posterior_<dataset>``
    one panel per fit with a posterior (VB, SVI with a distributional guide,
    NUTS): the data with the 2σ ellipses of stored posterior draws, the truth
    dashed when known (first cell; 2-D and up, first two dimensions).
``weights_<dataset>``
    mixing weights of every method of the first cell, posterior mean with 90%
    credible interval for fits with a posterior, markers for point estimates;
    drawn when some fit of the dataset has a posterior.
``passes_<dataset>``
    log-likelihood per point against data passes and against wall time (first
    cell), when an online method is compared (``stepwise_em``, or a routine with
    ``subsample_size``). Passes (:func:`data_passes`): the history's ``passes``
    column when it has one (stepwise EM), ``step × B / N`` for minibatch SVI/MAP,
    one per iteration for batch routines; NUTS is left out.

``report.md`` embeds the PNGs and summary tables: per dataset, sweep point and
method the mean ± sd over seeds of every metric (with the posterior columns
when there are posteriors), model selection winners, log-likelihood after a
number of data passes (when the passes figure applies), and the failed fits.
"""

from __future__ import annotations

import math
import re
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from mixtures.experiment import RunState, Task

NUMERIC_SWEEP_KEYS = ("n", "separation", "imbalance", "n_features", "n_components")
ERROR_METRICS = ("means_rmse", "covariances_frobenius", "weights_l1", "ari", "kl_truth", "held_out_ll")
CRITERIA = ("bic", "aic", "icl")


@dataclass
class Figure:
    """A written figure: its kind (see ``FIGURES``), title, files and a caption."""

    kind: str
    title: str
    paths: list[Path]
    caption: str = ""
    dataset: str = ""


@dataclass
class FigureSet:
    figures: list[Figure] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


# -------------------------------------------------------------------------------------------
# helpers
# -------------------------------------------------------------------------------------------
def _slug(text: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", str(text)).strip("_") or "x"


def _finite(value: Any) -> bool:
    try:
        return value is not None and not isinstance(value, bool) and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _format_number(value: float, digits: int = 4) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 10 ** max(digits + 1, 5) or abs(value) < 1e-3:
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def mean_sd(values: Iterable[Any], digits: int = 4) -> str:
    """``"mean ± sd"`` of the finite values (sample sd; just the value when there is one)."""
    numbers = [float(v) for v in values if _finite(v)]
    if not numbers:
        return "–"
    if len(numbers) == 1:
        return _format_number(numbers[0], digits)
    return (f"{_format_number(float(np.mean(numbers)), digits)} ± "
            f"{_format_number(float(np.std(numbers, ddof=1)))}")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _point_label(point: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in point.items())


_SHORT_KEYS = {"n": "n", "n_components": "K", "n_features": "D", "separation": "sep", "imbalance": "imb"}


def point_slug(point: dict) -> str:
    """File-name part for a sweep point: ``{"covariance_type": "full", "n_components": 3}`` -> ``full_K3``."""
    parts = [f"{_SHORT_KEYS[key]}{value}" if key in _SHORT_KEYS else str(value)
             for key, value in point.items()]
    return _slug("_".join(parts))


def _tasks_by_dataset(state: RunState) -> dict[str, list[Task]]:
    groups: dict[str, list] = defaultdict(list)
    for task in state.tasks:
        groups[task.dataset.name].append(task)
    return dict(groups)


def _ok(state: RunState, task: Task) -> bool:
    record = state.records.get(task.key)
    return record is not None and record["row"]["status"] == "ok"


def _inits(state: RunState) -> tuple:
    return tuple(state.config.sweep.get("init", state.config.inits))


def _save(state: RunState, fig: Any, name: str) -> list[Path]:
    from mixtures import plot

    dpi = state.config.output.dpi
    if state.smoke:
        dpi = min(dpi, 60)  # smoke runs check the pipeline, not the pictures
    paths = plot.save_figure(fig, state.out_dir / "figures" / name, formats=state.config.output.formats,
                             dpi=dpi)
    fig.clear()
    return paths


# -------------------------------------------------------------------------------------------
# figures
# -------------------------------------------------------------------------------------------
def make_figures(state: RunState) -> FigureSet:
    """Draw every applicable figure of ``output.figures``; returns what was written.

    A figure that cannot be drawn is reported (in ``problems`` and in report.md),
    never fatal: the fits are already safe on disk.
    """
    wanted = set(state.config.output.figures)
    result = FigureSet()
    drawers = [("ellipses", _ellipses), ("traces", _traces), ("kl_gap", _kl_gap), ("error_vs", _error_vs),
               ("bic", _bic), ("contours", _contours), ("init_spread", _init_spread),
               ("posterior", _posterior), ("weights", _weights), ("passes", _passes)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # matplotlib layout chatter must not fail a finished run
        for dataset, tasks in _tasks_by_dataset(state).items():
            for kind, drawer in drawers:
                if kind not in wanted:
                    continue
                try:
                    result.figures += drawer(state, dataset, tasks)
                except Exception as error:  # noqa: BLE001 - reported in report.md
                    result.problems.append(f"{kind} figure for {dataset}: {type(error).__name__}: {error}")
    return result


def _base_cell(tasks: list[Task]) -> list[Task]:
    first = tasks[0].cell
    return [t for t in tasks if t.cell == first]


def _ellipses(state, dataset, tasks) -> list[Figure]:
    from mixtures import plot
    from mixtures.experiment import params_from_record

    limit = state.config.output.max_cell_figures
    if limit == 0:
        return []
    inits, seeds = _inits(state), state.config.seeds
    cells: dict[int, list] = {}
    for task in tasks:
        if task.init == inits[0] and task.seed == seeds[0]:
            cells.setdefault(task.cell, []).append(task)
    figures = []
    for cell_tasks in list(cells.values())[:limit]:
        fitted = [(t, params_from_record(state.records[t.key])) for t in cell_tasks if _ok(state, t)]
        if not fitted:
            continue
        bundle = state.data.get(cell_tasks[0])
        ncols = min(len(fitted), 3)
        nrows = math.ceil(len(fitted) / ncols)
        fig, axes = plot.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
        for ax, (task, params) in zip(axes.flat, fitted):
            row = state.records[task.key]["row"]
            plot.plot_mixture(ax, bundle.X, {task.method.name: params}, truth=bundle.truth,
                              title=f"{task.method.name}: log-lik {row['log_likelihood_per_point']:.4g}/pt")
        for ax in list(axes.flat)[len(fitted):]:
            ax.set_visible(False)
        point = cell_tasks[0].point
        title = f"{dataset}" + (f" ({_point_label(point)})" if point else "") + \
            f", init {cell_tasks[0].init}, seed {cell_tasks[0].seed}"
        fig.suptitle(title)
        name = f"ellipses_{_slug(dataset)}" + ("_" + point_slug(point) if point else "")
        caption = "2σ covariance ellipses of each method's fit" + \
            (" with the true mixture dashed." if bundle.truth is not None else ".")
        figures.append(Figure("ellipses", title, _save(state, fig, name), caption, dataset))
    return figures


def _histories(state, tasks) -> dict[str, Any]:
    from mixtures.experiment import read_history

    histories = {}
    for task in tasks:
        if _ok(state, task):
            path = state.out_dir / state.records[task.key]["row"]["history"]
            histories[task.method.name] = read_history(path)
    return histories


def _has_values(history: Any, column: str) -> bool:
    """Whether ``column`` exists and has a finite entry (NUTS's ELBO is all NaN)."""
    return column in history and len(history) > 0 and bool(np.isfinite(history[column].numpy()).any())


def _traces(state, dataset, tasks) -> list[Figure]:
    from mixtures import plot
    from mixtures.result import History

    cell = _base_cell(tasks)
    histories = _histories(state, cell)
    if not histories:
        return []
    routines = {t.method.name: t.method.method for t in cell}
    # NUTS history rows are draws: say so in the legend rather than call them iterations
    labels = {name: f"{name} (x: draw)" if routines.get(name) == "nuts" else name for name in histories}
    n = state.data.get(cell[0]).X.shape[0]
    fig, axes = plot.subplots(2, 2, squeeze=False)
    left_out = set()
    for i, column in enumerate(("log_likelihood", "elbo")):
        for j, x in enumerate(("iteration", "time")):
            # Histories without values stay in the dict as empty ones: plot_traces skips them
            # but keeps counting, so every method has the same colour in every panel.
            shown = {labels[k]: h if _has_values(h, column) else History() for k, h in histories.items()}
            available = {k: h for k, h in shown.items() if len(h)}
            left_out |= {k for k, h in histories.items() if column in h and not _has_values(h, column)}
            if available:
                plot.plot_traces(axes[i, j], shown, column=column, x=x, n_points=n)
                _spread_x(axes[i, j], available, x)
                if x == "iteration" and any(routines.get(k) == "nuts" for k in histories
                                            if labels[k] in available):
                    axes[i, j].set_xlabel("iteration (NUTS: posterior draw)")
            else:
                axes[i, j].text(0.5, 0.5, f"no {column.replace('_', ' ')} to show", ha="center",
                                va="center", transform=axes[i, j].transAxes)
    title = f"{dataset}: traces ({_cell_label(cell[0])})"
    fig.suptitle(title)
    caption = ("Log-likelihood (exact, top) and ELBO (bottom) in nats per point, against iteration (left) "
               "and wall-clock time (right).")
    if any(routine == "nuts" for routine in routines.values()):
        caption += (" NUTS rows are posterior draws (x: draw index; time counts warmup), each with its "
                    "exact log-likelihood.")
    if left_out:
        caption += f" Without an ELBO (not drawn there): {', '.join(sorted(left_out))}."
    return [Figure("traces", title, _save(state, fig, f"traces_{_slug(dataset)}"), caption, dataset)]


def _spread_x(ax: Any, histories: dict, x: str) -> None:
    """Symmetric-log x axis when routines end decades apart (EM in 10 iterations, SVI in 1000).

    ``symlog`` keeps row 0 (iteration 0, time 0), which a log axis would drop.
    """
    ends = [float(h[x][-1]) for h in histories.values() if len(h) and float(h[x][-1]) > 0]
    if len(ends) < 2 or max(ends) / min(ends) < 20:
        return
    linthresh = 1.0 if x == "iteration" else max(min(ends) / 2, 1e-4)
    ax.set_xscale("symlog", linthresh=linthresh)
    ax.set_xlim(left=0)  # iterations and times are never negative


def _cell_label(task) -> str:
    parts = [_point_label(task.point)] if task.point else []
    return ", ".join(parts + [f"K={task.n_components}", task.covariance_type, f"init {task.init}",
                              f"seed {task.seed}"])


def _kl_gap(state, dataset, tasks) -> list[Figure]:
    from mixtures import plot
    from mixtures.result import History

    cell = _base_cell(tasks)
    every = _histories(state, cell)
    histories = {k: h for k, h in every.items() if _has_values(h, "elbo")}
    if not histories:
        return []
    # methods without an ELBO (NUTS) stay as empty histories: same colours as the traces figure
    shown = {k: h if k in histories else History() for k, h in every.items()}
    n = state.data.get(cell[0]).X.shape[0]
    fig, axes = plot.subplots(1, 2, squeeze=False)
    for j, x in enumerate(("iteration", "time")):
        plot.plot_kl_gap(axes[0, j], shown, x=x, per_point=True, n_points=n)
        _spread_x(axes[0, j], histories, x)
    title = f"{dataset}: KL gap ({_cell_label(cell[0])})"
    fig.suptitle(title)
    caption = ("The gap log p(X|θ) − ELBO = KL(q ‖ p(Z|X,θ)) per point: zero after an exact E step, "
               "positive for hard assignments and for approximate guides.")
    missing = sorted(set(every) - set(histories))
    if missing:
        caption += f" Without an ELBO (not shown): {', '.join(missing)}."
    return [Figure("kl_gap", title, _save(state, fig, f"kl_gap_{_slug(dataset)}"), caption, dataset)]


def _grouped_rows(state, tasks, x: str) -> tuple[list[str], list[dict]]:
    """Ok rows of ``tasks`` labelled for a plot against ``x``.

    Returns the other swept keys and the rows, each with ``group`` (the method, plus
    the init when several are compared) and ``panel`` (the other swept keys' values).
    """
    others = [k for k in state.config.sweep
              if k not in (x, "method", "init") and any(k in t.point for t in tasks)]
    many_inits = len(_inits(state)) > 1
    rows = []
    for task in tasks:
        if not _ok(state, task):
            continue
        row = dict(state.records[task.key]["row"])
        if row.get(x) is None:
            row[x] = task.point.get(x)
        row["group"] = task.method.name + (f", {task.init}" if many_inits else "")
        row["panel"] = _point_label({k: task.point[k] for k in others if k in task.point})
        rows.append(row)
    return others, rows


def _error_vs(state, dataset, tasks) -> list[Figure]:
    """One row of panels per value of the other swept keys, one panel per metric."""
    from mixtures import plot

    figures = []
    if state.data.get(tasks[0]).truth is None:
        return []
    for x in NUMERIC_SWEEP_KEYS:
        if x not in state.config.sweep or not any(x in t.point for t in tasks):
            continue
        others, rows = _grouped_rows(state, tasks, x)
        ys = [y for y in ERROR_METRICS if any(_finite(r.get(y)) for r in rows)]
        panels = list(dict.fromkeys(r["panel"] for r in rows))
        if not ys or not panels:
            continue
        if len(panels) == 1:  # a single panel row wraps into a 3-column grid
            ncols = min(3, len(ys))
            fig, grid = plot.subplots(math.ceil(len(ys) / ncols), ncols, squeeze=False, sharex=True)
            for ax in list(grid.flat)[len(ys):]:
                ax.set_visible(False)
            axes = np.array(list(grid.flat)[:len(ys)], dtype=object).reshape(1, len(ys))
        else:
            fig, axes = plot.subplots(len(panels), len(ys), squeeze=False,
                                      figsize=(3.4 * len(ys), 3.0 * len(panels)), sharex=True)
        for i, panel in enumerate(panels):
            panel_rows = [r for r in rows if r["panel"] == panel]
            for j, y in enumerate(ys):
                ax = axes[i, j]
                positive = all(float(r[y]) > 0 for r in rows if _finite(r.get(y)))
                plot.plot_metric_vs(ax, panel_rows, x, y, group="group", logx=(x == "n"),
                                    logy=(x == "n" and positive and y not in ("ari", "held_out_ll")))
                if panel:
                    ax.set_title(panel, fontsize="small")
                legend = ax.get_legend()
                if legend is not None and (i, j) != (0, 0):
                    legend.remove()  # one legend: every panel has the same methods
        title = f"{dataset}: accuracy against {x}"
        fig.suptitle(title)
        caption = (f"Mean ± standard error over seeds against {x}"
                   + (f", one row per {', '.join(others)}" if others else "")
                   + "; errors are measured after matching fitted to true components (Hungarian "
                   "algorithm); KL to the truth is a Monte Carlo estimate of KL(truth ‖ fit); held-out "
                   "log-likelihood per point on an independent sample.")
        figures.append(Figure("error_vs", title, _save(state, fig, f"error_vs_{x}_{_slug(dataset)}"),
                              caption, dataset))
    return figures


def _bic(state, dataset, tasks) -> list[Figure]:
    from mixtures import plot

    if not ({"n_components", "covariance_type"} & set(state.config.sweep)):
        return []
    methods = list(dict.fromkeys(t.method.name for t in tasks))
    fig, axes = plot.subplots(len(methods), 3, squeeze=False)
    drawn = False
    for i, method in enumerate(methods):
        rows = [state.records[t.key]["row"] for t in tasks if t.method.name == method and _ok(state, t)]
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
    caption = ("Information criteria against K per covariance type, mclust's sign (higher is better); "
               "hollow markers are singular fits (a covariance at the reg_covar floor), excluded from the "
               "choice; the star marks the best model.")
    return [Figure("bic", title, _save(state, fig, f"bic_{_slug(dataset)}"), caption, dataset)]


def _contours(state, dataset, tasks) -> list[Figure]:
    from mixtures import plot
    from mixtures.experiment import build_model, params_from_record
    from mixtures.inference import fit

    cell = _base_cell(tasks)
    em = [t for t in cell if t.method.method == "em" and _ok(state, t)]
    if not em:
        return []
    task = em[0]
    bundle = state.data.get(task)
    if bundle.X.shape[1] < 2:
        return []
    options = dict(task.method.options)
    reg_covar = options.pop("reg_covar", state.config.model.reg_covar)
    options["max_iter"] = 1
    model = build_model(task)  # MAP-EM keeps its prior
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = fit(model, bundle.X, "em", init=task.init, seed=task.seed, reg_covar=reg_covar, **options)
    final = params_from_record(state.records[task.key])
    n_iter = state.records[task.key]["row"]["n_iter"]
    fig, axes = plot.subplots(1, 3, squeeze=False, sharex=True, sharey=True)
    for ax, params, label in zip(axes[0], (one.init, one.params, final),
                                 ("initialization", "after 1 iteration", f"after {n_iter} iterations")):
        if state.smoke:
            plot.plot_density_contours(ax, bundle.X, params, grid_size=60, n_samples=2000)
        else:
            plot.plot_density_contours(ax, bundle.X, params)
        ax.set_title(label)
    title = f"{dataset}: {task.method.name} density ({_cell_label(task)})"
    fig.suptitle(title)
    caption = ("Highest-density contours (50%, 80%, 95% of the fitted mixture's mass), as in seed "
               "notebook 003.")
    return [Figure("contours", title, _save(state, fig, f"contours_{_slug(dataset)}"), caption, dataset)]


def _init_spread(state, dataset, tasks) -> list[Figure]:
    from mixtures import plot

    inits = _inits(state)
    if len(inits) < 2:
        return []
    # Compare inits at one sweep point (the first): other points are different problems.
    first_point = tasks[0].point
    tasks = [t for t in tasks if all(t.point.get(k) == v for k, v in first_point.items() if k != "init")]
    methods = list(dict.fromkeys(t.method.name for t in tasks))
    fig, axes = plot.subplots(1, 2, squeeze=False, figsize=(5.5 * 2, 4.0))
    rng = np.random.default_rng(0)  # fixed jitter: reruns draw the same picture
    for ax, column, label in zip(axes[0], ("log_likelihood_per_point", "n_iter"),
                                 ("final log-likelihood (nats per point)", "iterations")):
        width = 0.8 / len(methods)
        for j, method in enumerate(methods):
            offset = (j - (len(methods) - 1) / 2) * width
            for i, init in enumerate(inits):
                values = [float(state.records[t.key]["row"][column]) for t in tasks
                          if t.method.name == method and t.init == init and _ok(state, t)
                          and _finite(state.records[t.key]["row"][column])]
                if not values:
                    continue
                position = i + offset
                ax.boxplot([values], positions=[position], widths=width * 0.8, showfliers=False,
                           patch_artist=False, medianprops={"color": f"C{j % 10}"},
                           boxprops={"color": f"C{j % 10}"}, whiskerprops={"color": f"C{j % 10}"},
                           capprops={"color": f"C{j % 10}"})
                jitter = rng.uniform(-width * 0.3, width * 0.3, len(values))
                ax.scatter(position + jitter, values, s=10, color=f"C{j % 10}", alpha=0.6, linewidths=0,
                           label=method if i == 0 else None, zorder=3)
        ax.set_xticks(range(len(inits)))
        ax.set_xticklabels(inits)
        ax.set_xlim(-0.6, len(inits) - 0.4)
        ax.set_xlabel("initialization")
        ax.set_ylabel(label)
        ax.legend(loc="best", fontsize="small")
    point = {k: v for k, v in first_point.items() if k != "init"}
    title = f"{dataset}: initializations over {len(state.config.seeds)} seeds" + \
        (f" ({_point_label(point)})" if point else "")
    fig.suptitle(title)
    caption = "Distribution over seeds of the final log-likelihood per point and of the iterations used."
    return [Figure("init_spread", title, _save(state, fig, f"init_{_slug(dataset)}"), caption, dataset)]


def _posteriors(state, tasks) -> dict[str, Any]:
    """``{method name: Posterior}`` of the ok tasks with stored draws."""
    from mixtures.experiment import read_posterior

    out = {}
    for task in tasks:
        if not _ok(state, task):
            continue
        relative = state.records[task.key]["row"].get("posterior")
        if relative and (state.out_dir / relative).exists():
            out[task.method.name] = read_posterior(state.out_dir / relative)
    return out


def _posterior_title(name: str, row: dict) -> str:
    parts = [name]
    if _finite(row.get("expected_components")):
        parts.append(f"E[#w>1%] = {float(row['expected_components']):.2f}")
    if _finite(row.get("max_r_hat")):
        parts.append(f"R̂ ≤ {float(row['max_r_hat']):.3f}")
    if _finite(row.get("min_ess")):
        parts.append(f"ESS ≥ {float(row['min_ess']):.0f}")
    return ", ".join(parts)


def _posterior(state, dataset, tasks) -> list[Figure]:
    from mixtures import plot

    cell = _base_cell(tasks)
    posteriors = _posteriors(state, cell)
    bundle = state.data.get(cell[0])
    if not posteriors or bundle.X.shape[1] < 2:
        return []  # 1-D data: the weights figure shows the uncertainty
    rows = {t.method.name: state.records[t.key]["row"] for t in cell if t.method.name in posteriors}
    ncols = min(len(posteriors), 3)
    nrows = math.ceil(len(posteriors) / ncols)
    fig, axes = plot.subplots(nrows, ncols, squeeze=False)
    n_draws = 15 if state.smoke else 40
    # Limits from the data: draws of components the data hardly use (a Dirichlet process's
    # spare sticks) come from the prior and can be huge; they must not shrink the data away.
    data = bundle.X[:, :2].detach().cpu().double().numpy()
    low, high = data.min(0), data.max(0)
    pad = 0.15 * np.maximum(high - low, 1e-12)
    limits = (low - pad, high + pad)
    for ax, (name, posterior) in zip(axes.flat, posteriors.items()):
        plot.plot_posterior_ellipses(ax, bundle.X, posterior, n_draws=n_draws,
                                     title=_posterior_title(name, rows[name]))
        if bundle.truth is not None:
            truth = bundle.truth
            for k in range(truth.n_components):
                plot.add_covariance_ellipse(ax, truth.locs[k, :2], truth.covariances[k, :2, :2],
                                            edgecolor="black", linestyle="--", linewidth=1.0)
        ax.title.set_fontsize("small")
        ax.set_xlim(limits[0][0], limits[1][0])
        ax.set_ylim(limits[0][1], limits[1][1])
    for ax in list(axes.flat)[len(posteriors):]:
        ax.set_visible(False)
    title = f"{dataset}: posterior uncertainty ({_cell_label(cell[0])})"
    fig.suptitle(title)
    caption = (f"2σ covariance ellipses of {n_draws} posterior draws per method (faint lines pile up where "
               "the posterior is sure; components a draw leaves empty are not drawn; axes cover the data)"
               + (", the true mixture dashed" if bundle.truth is not None else "")
               + ". E[#w>1%]: posterior mean number of components with weight above 1%.")
    return [Figure("posterior", title, _save(state, fig, f"posterior_{_slug(dataset)}"), caption, dataset)]


def _weights(state, dataset, tasks) -> list[Figure]:
    from types import SimpleNamespace

    from mixtures import plot
    from mixtures.experiment import params_from_record

    cell = _base_cell(tasks)
    posteriors = _posteriors(state, cell)
    if not posteriors:
        return []
    results: dict[str, Any] = {}
    for task in cell:
        if not _ok(state, task):
            continue
        name = task.method.name
        results[name] = SimpleNamespace(posterior=posteriors[name]) if name in posteriors \
            else params_from_record(state.records[task.key])
    fig, axes = plot.subplots(1, 1, squeeze=False, figsize=(max(5.0, 1.2 * len(results) + 2), 4.0))
    plot.plot_weight_intervals(axes[0, 0], results, level=0.9)
    axes[0, 0].tick_params(axis="x", labelsize="small")
    truth = state.data.get(cell[0]).truth
    if truth is not None:
        for weight in truth.weights.tolist():
            axes[0, 0].axhline(weight, color="0.5", linestyle=":", linewidth=0.8)
    title = f"{dataset}: mixing weights ({_cell_label(cell[0])})"
    fig.suptitle(title)
    caption = ("Mixing weights per method, sorted within each method (component labels are arbitrary): "
               "posterior mean with a 90% equal-tailed credible interval for fits with a posterior, plain "
               "markers for point estimates (EM, MAP-EM...)"
               + ("; dotted lines: the true weights" if truth is not None else "") + ".")
    return [Figure("weights", title, _save(state, fig, f"weights_{_slug(dataset)}"), caption, dataset)]


def data_passes(history: Any, routine: str, options: dict, n_points: int) -> np.ndarray | None:
    """Data passes at each history row ``(T,)``; ``None`` when they have no meaning (NUTS).

    The ``passes`` column when the routine records it (stepwise EM); minibatch
    SVI/MAP: ``step × B / N`` with ``B = subsample_size``; other routines touch
    every point once per iteration (EM, VB, k-means; full-batch SVI/MAP: once per
    step). Evaluation passes (the exact log-likelihood of the history) are not counted.
    """
    if "passes" in history and _has_values(history, "passes"):
        return history["passes"].numpy()
    if routine == "nuts":
        return None
    steps = history["iteration"].numpy()
    batch = options.get("subsample_size")
    if routine in ("svi", "map") and batch:
        return steps * min(int(batch), n_points) / n_points
    return steps


def _is_online(task) -> bool:
    return task.method.method == "stepwise_em" or bool(task.method.options.get("subsample_size"))


def _pass_traces(state, cell) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``{method: (passes, time, log-likelihood per point)}`` of the cell's ok fits (NUTS excluded)."""
    from mixtures.experiment import read_history

    n = state.data.get(cell[0]).X.shape[0]
    out = {}
    for task in cell:
        if not _ok(state, task):
            continue
        history = read_history(state.out_dir / state.records[task.key]["row"]["history"])
        passes = data_passes(history, task.method.method, task.method.options, n)
        if passes is None or not _has_values(history, "log_likelihood"):
            continue
        out[task.method.name] = (passes, history["time"].numpy(), history["log_likelihood"].numpy() / n)
    return out


def _passes(state, dataset, tasks) -> list[Figure]:
    from mixtures import plot

    cell = _base_cell(tasks)
    if not any(_is_online(t) for t in cell):
        return []
    traces = _pass_traces(state, cell)
    if not traces:
        return []
    fig, axes = plot.subplots(2, 2, squeeze=False, figsize=(11.0, 8.0))
    finite = np.concatenate([v[np.isfinite(v)] for _, _, v in traces.values()])
    best = float(finite.max()) if finite.size else math.nan
    for i, (name, (passes, seconds, values)) in enumerate(traces.items()):
        style = {"color": f"C{i % 10}", "linewidth": 1.5, "label": name,
                 "marker": "." if len(values) < 50 else None}
        # the gap to the best value any method reached; its zero (the best point) is not drawn
        gap = best - values
        gap = np.where(gap > 0, gap, np.nan)
        for j, x in enumerate((passes, seconds)):
            axes[0, j].plot(x, values, **style)
            axes[1, j].plot(x, gap, **style)
    # Zoom on the approach to the optimum: the initialization's log-likelihood is often far below.
    after_half = [v[(p >= 0.5) & np.isfinite(v)][0] for p, _, v in traces.values()
                  if ((p >= 0.5) & np.isfinite(v)).any()]
    if finite.size and after_half:
        low = min(after_half)
        pad = 0.1 * max(best - low, 1e-6)
        for ax in axes[0]:
            ax.set_ylim(low - pad, best + pad)
    for ax in axes[1]:
        if np.isfinite(best) and any(np.nansum(best - v) > 0 for _, _, v in traces.values()):
            ax.set_yscale("log")
    time_ends = [float(t[-1]) for _, t, _ in traces.values() if len(t) and t[-1] > 0]
    for i in range(2):
        # the first pass is where online methods differ from batch EM: stretch it
        axes[i, 0].set_xscale("symlog", linthresh=0.1, linscale=0.5)
        axes[i, 0].set_xlim(left=0)
        if len(time_ends) > 1 and max(time_ends) / min(time_ends) > 20:
            axes[i, 1].set_xscale("symlog", linthresh=max(min(time_ends) / 2, 1e-4), linscale=0.5)
        axes[i, 1].set_xlim(left=0)
        axes[i, 0].set_xlabel("data passes (points processed / N)")
        axes[i, 1].set_xlabel("wall time (s, initialization excluded)")
    for ax in axes[0]:
        ax.set_ylabel("log-likelihood (nats per point)")
        ax.legend(loc="lower right", fontsize="small")
    for ax in axes[1]:
        ax.set_ylabel("best − log-likelihood (nats per point)")
    title = f"{dataset}: log-likelihood per point vs data passes and time ({_cell_label(cell[0])})"
    fig.suptitle(title)
    caption = ("Exact log-likelihood per point on the training data at each evaluation. Passes: stepwise "
               "EM's own count, step × B / N for minibatch SVI (B = subsample_size), one per iteration for "
               "batch EM; the evaluations themselves are not counted as passes (they are in the wall "
               "time). Top: the log-likelihood, its y axis starting at the lowest value reached after half "
               "a pass; bottom: the distance to the best value any method reached, log scale. The x axes "
               "are linear up to 0.1 (passes) and logarithmic beyond.")
    if any(t.method.method == "nuts" for t in cell):
        caption += " NUTS is not shown (its draws are not data passes)."
    return [Figure("passes", title, _save(state, fig, f"passes_{_slug(dataset)}"), caption, dataset)]


# -------------------------------------------------------------------------------------------
# tables and report.md
# -------------------------------------------------------------------------------------------
SUMMARY_COLUMNS = (
    ("log-lik/pt", "log_likelihood_per_point"),
    ("ELBO/pt", "elbo_per_point"),
    ("BIC", "bic"),
    ("iterations", "n_iter"),
    ("time (s)", "time"),
)
PRECISE_COLUMNS = ("log_likelihood_per_point", "elbo_per_point", "bic", "held_out_ll")
POSTERIOR_SUMMARY = (
    ("E[#w>1%]", "expected_components"),
    ("max R-hat", "max_r_hat"),
    ("min ESS", "min_ess"),
    ("divergences", "num_divergences"),
)
TRUTH_COLUMNS = (
    ("weights L1", "weights_l1"),
    ("means RMSE", "means_rmse"),
    ("cov. Frobenius", "covariances_frobenius"),
    ("ARI", "ari"),
    ("NMI", "nmi"),
    ("held-out LL/pt", "held_out_ll"),
)


def summary_rows(state: RunState) -> list[tuple[dict, list[dict]]]:
    """Rows grouped by (dataset, sweep point, init if several, method), in task order."""
    many_inits = len(_inits(state)) > 1
    groups: dict[tuple, tuple[dict, list[dict]]] = {}
    for task in state.tasks:
        record = state.records.get(task.key)
        if record is None:
            continue
        label = {"dataset": task.dataset.name}
        label.update({k: v for k, v in task.point.items()})
        if many_inits:
            label["init"] = task.init
        label["method"] = task.method.name
        key = tuple(label.items())
        groups.setdefault(key, (label, []))[1].append(record["row"])
    return list(groups.values())


def summary_table(state: RunState) -> str:
    """Markdown table of every group: fits, converged and mean ± sd over seeds of each metric."""
    groups = summary_rows(state)
    if not groups:
        return "_No finished fits._"
    present = {k for label, _ in groups for k in label}
    order = dict.fromkeys(["dataset", *state.config.sweep, "init", "method"])
    label_keys = [k for k in order if k in present]
    has_truth = any(_finite(r.get("means_rmse")) or _finite(r.get("ari")) for _, rows in groups for r in rows)
    columns = list(SUMMARY_COLUMNS) + (list(TRUTH_COLUMNS) if has_truth else [])
    columns += [(name, column) for name, column in POSTERIOR_SUMMARY
                if any(_finite(r.get(column)) for _, rows in groups for r in rows)]
    header = label_keys + ["ok/fits", "converged", "singular"] + [name for name, _ in columns]
    if has_truth:
        header.append("KL to truth (MC se)")
    table_rows = []
    for label, rows in groups:
        ok = [dict(r, elbo_per_point=r["elbo"] / r["n"] if _finite(r.get("elbo")) else None)
              for r in rows if r["status"] == "ok"]
        cells = [label.get(k, "") for k in label_keys]
        cells += [f"{len(ok)}/{len(rows)}", f"{sum(bool(r['converged']) for r in ok)}/{len(ok)}",
                  str(sum(bool(r["singular"]) for r in ok))]
        # log-likelihoods of routines at the same optimum differ in the 4th-6th digit
        cells += [mean_sd((r.get(column) for r in ok), 6 if column in PRECISE_COLUMNS else 4)
                  for _, column in columns]
        if has_truth:
            kl = mean_sd(r.get("kl_truth") for r in ok)
            se = [float(r["kl_truth_se"]) for r in ok if _finite(r.get("kl_truth_se"))]
            cells.append(kl + (f" ({_format_number(float(np.mean(se)))})" if se else ""))
        table_rows.append(cells)
    return markdown_table(header, table_rows)


def model_selection(state: RunState) -> str:
    """Best model per dataset and criterion (non-singular ok fits), when K or the type is swept."""
    if not ({"n_components", "covariance_type"} & set(state.config.sweep)):
        return ""
    lines = []
    for dataset, tasks in _tasks_by_dataset(state).items():
        rows = [state.records[t.key]["row"] for t in tasks if _ok(state, t)]
        usable = [r for r in rows if not r["singular"]]
        excluded = len(rows) - len(usable)
        for criterion in CRITERIA:
            finite = [r for r in usable if _finite(r.get(criterion))]
            if not finite:
                continue
            best = min(finite, key=lambda r: float(r[criterion]))
            lines.append(f"- **{dataset}**, lowest {criterion.upper()}: K={best['n_components']}, "
                         f"{best['covariance_type']} ({best['method']}, {criterion.upper()} "
                         f"{_format_number(float(best[criterion]))})")
        if excluded:
            lines.append(f"- {dataset}: {excluded} singular fit(s) excluded (a covariance collapsed to the "
                         "reg_covar floor).")
    return "\n".join(lines)


PASS_MARKS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)


def passes_table(state: RunState) -> str:
    """Log-likelihood per point after a number of data passes (mean ± sd over seeds), per dataset.

    For each method the value at its last evaluation within the budget; only for
    datasets with an online method (where the passes figure applies).
    """
    sections = []
    for dataset, tasks in _tasks_by_dataset(state).items():
        first_point = tasks[0].point
        tasks = [t for t in tasks if t.point == first_point and t.init == tasks[0].init]
        if not any(_is_online(t) for t in tasks):
            continue
        per_method: dict[str, list] = defaultdict(list)
        for seed in state.config.seeds:
            cell = [t for t in tasks if t.seed == seed]
            if not cell:
                continue
            for name, trace in _pass_traces(state, cell).items():
                per_method[name].append(trace)
        if not per_method:
            continue
        longest = max(float(p[-1]) for traces in per_method.values() for p, _, _ in traces)
        marks = [m for m in PASS_MARKS if m <= longest] or [longest]
        header = ["method"] + [f"≤ {m:g} pass" + ("es" if m != 1 else "") for m in marks] + \
            ["final", "passes", "time (s)"]
        rows = []
        for name, traces in per_method.items():
            cells = [name]
            for mark in marks:
                values = []
                for passes, _, values_ in traces:
                    within = np.flatnonzero((passes <= mark + 1e-9) & np.isfinite(values_))
                    values.append(values_[within[-1]] if within.size else None)
                cells.append(mean_sd(values, 6))
            cells.append(mean_sd((v[np.isfinite(v)][-1] for _, _, v in traces), 6))
            cells.append(mean_sd((float(p[-1]) for p, _, _ in traces), 3))
            cells.append(mean_sd((float(t[-1]) for _, t, _ in traces), 3))
            rows.append(cells)
        label = f"**{dataset}**" + (f" ({_point_label(first_point)})" if first_point else "")
        sections.append(f"{label}, init {tasks[0].init}:\n\n" + markdown_table(header, rows))
    return "\n\n".join(sections)


def failures(state: RunState) -> str:
    rows = [r for r in state.rows() if r["status"] != "ok"]
    if not rows:
        return ""
    return markdown_table(("dataset", "method", "K", "covariance", "init", "seed", "error"),
                          [(r["dataset"], r["method"], r["n_components"], r["covariance_type"], r["init"],
                            r["seed"], r["error"]) for r in rows])


def write_report(state: RunState, figures: FigureSet) -> Path:
    """Write ``report.md`` (atomically) and return its path."""
    from mixtures.experiment import atomic_write_text

    config = state.config
    rows = state.rows()
    ok = [r for r in rows if r["status"] == "ok"]
    lines = [f"# {config.name}", ""]
    if config.header:
        lines += ["> " + line if line else ">" for line in config.header.splitlines()] + [""]
    if config.description:
        lines += [config.description.strip(), ""]
    mode = " in **smoke mode** (tiny sizes, few steps: not for conclusions)" if state.smoke else ""
    lines += [f"Config: [`config.yaml`](config.yaml) (resolved from `{config.source}`){mode}. "
              f"Per-fit rows: [`results.csv`](results.csv); traces: `histories/`.", "",
              f"{len(rows)} fits of {len(state.tasks)}: {len(ok)} ok, {len(rows) - len(ok)} failed, "
              f"{sum(bool(r['singular']) for r in ok)} singular.", ""]
    lines += ["## Results by method", "",
              "Mean ± sd over seeds. log-lik/pt: final log p(X|θ) per point; ELBO/pt: the routine's final "
              "ELBO per point; BIC lower is better (scikit-learn's sign)"
              + ("; errors against the true parameters after matching components, KL(truth ‖ fit) by "
                 "Monte Carlo with its mean standard error in parentheses; held-out LL/pt on an "
                 "independent sample" if any(_finite(r.get("ari")) for r in ok) else "") + ".", "",
              summary_table(state), ""]
    selection = model_selection(state)
    if selection:
        lines += ["## Model selection", "", selection, ""]
    passes = passes_table(state)
    if passes:
        lines += ["## Log-likelihood per data pass", "",
                  "Log-likelihood per point (exact, training data) at each method's last evaluation within "
                  "the given number of data passes; mean ± sd over seeds. Passes: see the passes figure.",
                  "", passes, ""]
    if figures.figures:
        lines += ["## Figures", ""]
        for figure in figures.figures:
            png = next((p for p in figure.paths if p.suffix == ".png"), figure.paths[0])
            relative = png.relative_to(state.out_dir).as_posix()
            others = [p.relative_to(state.out_dir).as_posix() for p in figure.paths if p != png]
            lines += [f"### {figure.title}", "", f"![{figure.title}]({relative})", ""]
            also = " Also: " + ", ".join(f"[{o}]({o})" for o in others) if others else ""
            caption = figure.caption + also
            if caption:
                lines += [caption, ""]
    problems = failures(state)
    if problems:
        lines += ["## Failed fits", "", problems, ""]
    if figures.problems:
        lines += ["## Figures that could not be drawn", ""] + [f"- {p}" for p in figures.problems] + [""]
    path = state.out_dir / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path
