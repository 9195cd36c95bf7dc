"""Figures and ``report.md`` of an experiment run (see :mod:`mixtures.experiment`).

Every figure draws a method in the same colour (:func:`method_colors`: the
config's method order, ``C0``, ``C1``, ...), whichever methods it shows, and
figures with several panels carry one legend below them.

Figures (in ``figures/``, one file per figure and format; which ones are drawn is
``output.figures`` in the config, and each only where it applies):

``ellipses_<dataset>[_<point>][_<init>_seed<s>]``
    the data with each method's 2σ covariance ellipses (one panel per method,
    all on the same limits), the truth dashed when known; one figure per sweep
    point (first init and seed), at most ``output.max_cell_figures`` per dataset,
    plus, when K or the covariance type is swept, always the cell of each
    criterion's winner (lowest BIC, AIC, ICL; its own init and seed). Both axes
    share one scale (``aspect="equal"``, circles look round) for synthetic data
    and for real data whose two features spread alike (:func:`same_units`);
    otherwise (Old Faithful: eruptions and waiting, in minutes, spread 12× apart)
    each axis has its own scale and the caption says so. Axes are labelled with
    the data's column names when known. 1-D data: histograms with the densities.
``traces_<dataset>``
    log-likelihood and ELBO per point against iteration and wall time, every
    method on one plot (first cell of the dataset). NUTS rows are posterior
    draws (x = draw index, labelled so); it has no ELBO, and histories whose
    column is all NaN are left out of that panel.
``kl_gap_<dataset>``
    the recorded ``log-likelihood − ELBO`` (nats per point) against iteration and
    wall time: ``KL(q_t ‖ p(Z|X,θ_t))`` for the ``q_t`` each row's ELBO used (for
    EM the E step's posterior under ``θ_{t−1}``, see ``KL_GAP_EXPLAINED``), on a
    symmetric-log axis that keeps exact zeros (MAP's gap is identically 0, drawn
    dotted at 0 and named; a mean-field SVI's row 0 is a dot at 0).
``error_vs_<key>_<dataset>``
    parameter errors, ARI, KL to the truth and held-out log-likelihood minus the
    truth's against a swept key (``n``, ``separation``, ``imbalance``,
    ``n_features``), mean ± standard error over seeds; synthetic data only.
    Methods are dodged sideways with their own markers and line styles (EM and
    an unregularized MAP coincide); KL is on a symmetric-log axis with estimates
    within two Monte Carlo standard errors of 0 hollow; sample-size sweeps get
    1/√n (parameter errors) and 1/n (KL) guide lines.
``bic_<dataset>``
    BIC, AIC and ICL against K per covariance type (mclust style, higher is better
    on the plot), singular fits hollow, excluded and breaking the line; the y axis
    zoomed on the best models; when K or the covariance type is swept.
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

``report.md`` embeds the PNGs and: the methods (routine, options, prior; a
"MAP" without a prior is said to be maximum likelihood by Adam); summary tables
per dataset, sweep point and method, mean ± sd over seeds of every metric (sd 0
below the mean's last digit), with the final KL gap, convergence ("k at budget"
for fits that ran their whole step budget), the Monte Carlo sample size of KL to
the truth, and the posterior columns when there are posteriors; a "Findings"
paragraph per dataset of facts read off the table (:func:`findings`); model
selection winners; log-likelihood after a number of data passes (when the
passes figure applies); and the failed fits.
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


def _last_place(value: float, digits: int) -> float:
    """The value of the last digit :func:`_format_number` shows of ``value``."""
    if value == 0 or not math.isfinite(value):
        return 0.0
    exponent = math.floor(math.log10(abs(value)))
    if abs(value) >= 10 ** max(digits + 1, 5) or abs(value) < 1e-3:
        return 10.0 ** (exponent - (digits - 1))  # scientific: digits - 1 decimals of the mantissa
    return 10.0 ** (exponent - digits + 1)


def mean_sd(values: Iterable[Any], digits: int = 4) -> str:
    """``"mean ± sd"`` of the finite values (sample sd; just the value when there is one).

    The sd has two significant digits, and is ``0`` when it is below half the last
    digit the mean shows (``-4.15538 ± 0``, not ``± 1.3e-11``: rounding noise of
    fits that reach the same optimum).
    """
    numbers = [float(v) for v in values if _finite(v)]
    if not numbers:
        return "–"
    if len(numbers) == 1:
        return _format_number(numbers[0], digits)
    mean, sd = float(np.mean(numbers)), float(np.std(numbers, ddof=1))
    place = _last_place(mean, digits)
    if sd == 0 or sd < 0.5 * place:
        return f"{_format_number(mean, digits)} ± 0"
    return f"{_format_number(mean, digits)} ± {_format_sd(sd)}"


def _format_sd(sd: float) -> str:
    """Two significant digits, without an exponent between 0.001 and 10⁵ (107.7 -> ``110``)."""
    if sd >= 1e5 or sd < 1e-3:
        return f"{sd:.1e}"
    if sd >= 10:
        return f"{round(sd, 1 - math.floor(math.log10(sd))):.0f}"
    return f"{sd:#.2g}".rstrip(".")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _point_label(point: dict) -> str:
    """``{"covariance_type": "diag", "n_components": 6}`` -> ``"diag, K=6"``."""
    names = {"n_components": "K", "n_features": "D"}
    return ", ".join(str(value) if key == "covariance_type" else f"{names.get(key, key)}={value}"
                     for key, value in point.items())


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


def method_colors(state: RunState) -> dict[str, str]:
    """The run's method→colour map (config order), used by every figure."""
    from mixtures import plot

    return plot.method_colors(m.name for m in state.config.methods)


def _group_colors(state: RunState, groups: Iterable[str]) -> dict[str, str]:
    """Colours for plot groups named ``"<method>"`` or ``"<method>, <init>"``: the method's."""
    colors = method_colors(state)
    out = {}
    for group in groups:
        method = group if group in colors else group.split(", ")[0]
        out[group] = colors.get(method, "0.3")
    return out


def _method_markers(state: RunState) -> dict[str, str]:
    from mixtures import plot

    return {m.name: plot.MARKERS[i % len(plot.MARKERS)] for i, m in enumerate(state.config.methods)}


def _figure_legend(fig: Any, axes: Iterable[Any], ncols: int | None = None) -> None:
    """One legend for the figure (below the panels) from the labelled artists of ``axes``."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if not label.startswith("_"):
                handles.setdefault(label, handle)
        legend = ax.get_legend()
        if legend is not None:
            legend.remove()
    for last in [label for label in handles if label == "truth" or label.startswith("∝")]:
        handles[last] = handles.pop(last)  # references (the truth, rate guides) after the methods
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncols=ncols or min(len(handles), 6), fontsize="small", frameon=False)


def same_units(bundle: Any, dims: tuple[int, int] = (0, 1)) -> bool:
    """Whether two features can share one axis scale: synthetic data always (drawn in one
    unit), real data when their spreads are within a factor 3 of each other."""
    if bundle.truth is not None:
        return True
    X = bundle.X.detach().cpu().double().numpy()
    if X.shape[1] < 2:
        return True
    spread = X[:, list(dims)].std(0)
    return bool(spread.min() > 0 and spread.max() / spread.min() <= 3.0)


def _feature_names(bundle: Any) -> list[str] | None:
    names = getattr(bundle, "feature_names", None)
    return list(names) if names else None


def _scale_note(bundle: Any) -> str:
    """Caption sentence on the axis scales of a 2-D data figure."""
    if same_units(bundle):
        return " Both axes are drawn to the same scale, so circles look round."
    X = bundle.X.detach().cpu().double().numpy()
    spread = X[:, :2].std(0)
    names = _feature_names(bundle) or ["x_0", "x_1"]
    return (f" The axes have independent scales (the standard deviations of {names[0]} and {names[1]} are "
            f"{max(spread) / min(spread):.0f}× apart; one scale would flatten the data to a line), so "
            "shapes are stretched: a circle would look like an ellipse.")


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


def selection_winners(state: RunState, tasks: list[Task]) -> dict[str, Task]:
    """The task with the lowest BIC, AIC and ICL among ``tasks``' ok, non-singular fits
    (``{}`` unless K or the covariance type is swept)."""
    if not ({"n_components", "covariance_type"} & set(state.config.sweep)):
        return {}
    usable = [t for t in tasks if _ok(state, t) and not state.records[t.key]["row"]["singular"]]
    winners = {}
    for criterion in CRITERIA:
        finite = [t for t in usable if _finite(state.records[t.key]["row"].get(criterion))]
        if finite:
            # ties to rounding (the same optimum from two seeds) go to the first task
            values = [float(state.records[t.key]["row"][criterion]) for t in finite]
            best = min(values)
            winners[criterion] = next(t for t, v in zip(finite, values) if v <= best + 1e-9 * max(1.0, abs(best)))
    return winners


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
    chosen = list(cells)[:limit]
    # model selection: each criterion's winner is always shown (its own init and seed)
    won: dict[int, list[str]] = defaultdict(list)
    for criterion, task in selection_winners(state, tasks).items():
        won[task.cell].append(criterion.upper())
        if task.cell not in chosen:
            chosen.append(task.cell)
    by_cell: dict[int, list] = defaultdict(list)
    for task in tasks:
        if task.cell in chosen:
            by_cell[task.cell].append(task)
    colors = method_colors(state)
    figures = []
    for cell in chosen:
        cell_tasks = by_cell[cell]
        fitted = [(t, params_from_record(state.records[t.key])) for t in cell_tasks if _ok(state, t)]
        if not fitted:
            continue
        bundle = state.data.get(cell_tasks[0])
        equal = same_units(bundle)
        names = _feature_names(bundle)
        ncols = min(len(fitted), 3)
        nrows = math.ceil(len(fitted) / ncols)
        fig, axes = plot.subplots(nrows, ncols, squeeze=False, figsize=(4.3 * ncols, 3.9 * nrows + 0.5))
        for ax, (task, params) in zip(axes.flat, fitted):
            row = state.records[task.key]["row"]
            plot.plot_mixture(ax, bundle.X, {task.method.name: params}, truth=bundle.truth,
                              title=f"{task.method.name}: log-lik {row['log_likelihood_per_point']:.4g}/pt",
                              colors=colors, aspect="equal" if equal else "auto", feature_names=names,
                              legend=False)
        used = list(axes.flat)[:len(fitted)]
        for ax in list(axes.flat)[len(fitted):]:
            ax.set_visible(False)
        if bundle.X.shape[1] >= 2:
            _common_limits(used)
        if bundle.truth is not None:  # the panel titles name the methods; the legend adds the truth
            _figure_legend(fig, used)
        point = cell_tasks[0].point
        title = f"{dataset}" + (f" ({_point_label(point)})" if point else "") + \
            f", init {cell_tasks[0].init}, seed {cell_tasks[0].seed}"
        if won.get(cell):
            title += " — lowest " + "/".join(won[cell])
        fig.suptitle(_wrap_title(title, ncols))
        name = f"ellipses_{_slug(dataset)}" + ("_" + point_slug(point) if point else "")
        if cell_tasks[0].init != inits[0] or cell_tasks[0].seed != seeds[0]:
            name += f"_{_slug(cell_tasks[0].init)}_seed{cell_tasks[0].seed}"
        caption = ("2σ covariance ellipses and means (×) of each method's fit"
                   + (", the true mixture dashed (+: true means)." if bundle.truth is not None else ".")
                   if bundle.X.shape[1] >= 2 else
                   "Histogram of the data with each method's fitted density"
                   + (", the true density dashed." if bundle.truth is not None else "."))
        if won.get(cell):
            caption += (f" This model has the lowest {', '.join(won[cell])} of the sweep (non-singular fits), "
                        "shown whatever max_cell_figures says.")
        if bundle.X.shape[1] >= 2:
            caption += _scale_note(bundle)
        figures.append(Figure("ellipses", title, _save(state, fig, name), caption, dataset))
    return figures


def _wrap_title(title: str, ncols: int) -> str:
    """Break a figure title over lines at ", " so that it fits ``ncols`` panels (~38 characters each)."""
    width = 38 * ncols
    lines, line = [], ""
    for part in title.split(", "):
        candidate = f"{line}, {part}" if line else part
        if len(candidate) > width and line:
            lines.append(line + ",")
            line = part
        else:
            line = candidate
    return "\n".join(lines + [line])


def _common_limits(axes: list) -> None:
    """The same data limits on every panel, by autoscaling (not fixed limits, which an equal
    aspect with ``adjustable="datalim"`` would have to override) and without shared axes."""
    corners = np.array([[min(ax.dataLim.x0 for ax in axes), min(ax.dataLim.y0 for ax in axes)],
                        [max(ax.dataLim.x1 for ax in axes), max(ax.dataLim.y1 for ax in axes)]])
    for ax in axes:
        ax.update_datalim(corners)
        ax.autoscale_view()


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
    base_colors = method_colors(state)
    colors = {labels[name]: base_colors.get(name, "0.3") for name in histories}
    n = state.data.get(cell[0]).X.shape[0]
    fig, axes = plot.subplots(2, 2, squeeze=False, figsize=(10.0, 7.6))
    left_out = set()
    for i, column in enumerate(("log_likelihood", "elbo")):
        for j, x in enumerate(("iteration", "time")):
            shown = {labels[k]: h if _has_values(h, column) else History() for k, h in histories.items()}
            available = {k: h for k, h in shown.items() if len(h)}
            left_out |= {k for k, h in histories.items() if column in h and not _has_values(h, column)}
            if available:
                plot.plot_traces(axes[i, j], shown, column=column, x=x, n_points=n, colors=colors, legend=False)
                _spread_x(axes[i, j], available, x)
                if x == "iteration" and any(routines.get(k) == "nuts" for k in histories
                                            if labels[k] in available):
                    axes[i, j].set_xlabel("iteration (NUTS: posterior draw)")
            else:
                axes[i, j].text(0.5, 0.5, f"no {column.replace('_', ' ')} to show", ha="center",
                                va="center", transform=axes[i, j].transAxes)
    _figure_legend(fig, axes.flat)
    title = f"{dataset}: traces ({_cell_label(cell[0])})"
    fig.suptitle(title)
    caption = ("Log-likelihood (exact, top) and ELBO (bottom) in nats per point, against iteration (left) "
               "and wall-clock time (right). The x axes are linear from 0 to the first labelled decade and "
               "logarithmic beyond when the routines end decades apart.")
    if any(routine == "nuts" for routine in routines.values()):
        caption += (" NUTS rows are posterior draws (x: draw index; time counts warmup), each with its "
                    "exact log-likelihood.")
    if left_out:
        caption += f" Without an ELBO (not drawn there): {', '.join(sorted(left_out))}."
    return [Figure("traces", title, _save(state, fig, f"traces_{_slug(dataset)}"), caption, dataset)]


def _spread_x(ax: Any, histories: dict, x: str) -> None:
    """Symmetric-log x axis when routines end decades apart (EM in 10 iterations, SVI in 1000).

    ``symlog`` keeps row 0 (iteration 0, time 0), which a log axis would drop. Ticks:
    0 and whole decades from ten times the linear threshold on, so that the labels
    "0" and "10⁻⁴" never sit on top of each other.
    """
    from mixtures import plot

    ends = [float(h[x][-1]) for h in histories.values() if len(h) and float(h[x][-1]) > 0]
    if len(ends) < 2 or max(ends) / min(ends) < 20:
        return
    if x == "iteration":  # 0, 1, 10, 100... as plain counts
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("symlog", linthresh=1.0, linscale=1.0)
        ax.set_xticks([0.0] + [10.0 ** e for e in range(0, math.floor(math.log10(max(ends)) + 1e-9) + 1)])
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    else:
        firsts = [float(v) for h in histories.values() for v in h[x].tolist() if float(v) > 0]
        linthresh = 10.0 ** math.floor(math.log10(max(min(firsts) if firsts else min(ends) / 2, 1e-6)))
        ax.set_xscale("symlog", linthresh=linthresh, linscale=0.6)
        plot.symlog_ticks(ax, "x", linthresh, max(ends))
    ax.set_xlim(left=0, right=max(ends) * 1.15)  # iterations and times are never negative


def _cell_label(task) -> str:
    parts = [_point_label(task.point)] if task.point else []
    parts += [f"K={task.n_components}"] if "n_components" not in task.point else []
    parts += [task.covariance_type] if "covariance_type" not in task.point else []
    return ", ".join(parts + [f"init {task.init}", f"seed {task.seed}"])


KL_GAP_EXPLAINED = {
    "em": "EM: q_t = p(Z | X, θ_{t−1}), the E step's posterior under the previous parameters, so the gap is "
          "KL(p(Z|X,θ_{t−1}) ‖ p(Z|X,θ_t)), what the M step moved the posterior; it shrinks to 0 at "
          "convergence (it would be exactly 0 right after the next E step, which is not what is recorded)",
    "hard_em": "hard EM: q_t is the one-hot MAP assignment of the E step, a gap that stays positive",
    "kmeans": "k-means: the same for its hard assignments under the mixture it implies",
    "kmedians": "k-medians: the same for its hard assignments",
    "map": "MAP (delta guide, assignments summed out): the ELBO is the log-likelihood itself, a gap of 0",
    "svi": "SVI: q_t is the guide's q(Z) at step t (0 when assignments are enumerated exactly; the "
           "mean-field q's KL to the exact posterior with local_guide: mean_field, including row 0, where "
           "q starts at the exact posterior)",
    "vb": "VB: the gap also holds KL(q(θ) ‖ p(θ | X)) of the mean-field posterior",
    "stepwise_em": "stepwise EM: its running bound, minus the exact log-likelihood",
}


def _kl_gap(state, dataset, tasks) -> list[Figure]:
    from mixtures import plot
    from mixtures.result import History

    cell = _base_cell(tasks)
    every = _histories(state, cell)
    histories = {k: h for k, h in every.items() if _has_values(h, "elbo")}
    if not histories:
        return []
    shown = {k: h if k in histories else History() for k, h in every.items()}
    n = state.data.get(cell[0]).X.shape[0]
    colors = method_colors(state)
    fig, axes = plot.subplots(1, 2, squeeze=False, figsize=(10.0, 4.4))
    for j, x in enumerate(("iteration", "time")):
        plot.plot_kl_gap(axes[0, j], shown, x=x, per_point=True, n_points=n, colors=colors, legend=False)
        _spread_x(axes[0, j], histories, x)
    _figure_legend(fig, axes.flat)
    title = f"{dataset}: KL gap ({_cell_label(cell[0])})"
    fig.suptitle(title)
    routines = {t.method.name: t.method.method for t in cell}
    zero = [name for name, h in histories.items() if plot.gap_is_zero(h)]
    explained = [KL_GAP_EXPLAINED[r] for r in dict.fromkeys(routines[k] for k in histories)
                 if r in KL_GAP_EXPLAINED]
    caption = ("The recorded gap log p(X|θ_t) − ELBO(q_t, θ_t) per point at each history row t, with θ_t the "
               "parameters after step t and q_t the distribution over assignments that step's ELBO used: "
               "KL(q_t ‖ p(Z|X,θ_t)). " + "; ".join(explained) + ". "
               "The y axis is linear from 0 to the first labelled decade and logarithmic above, so gaps of "
               "exactly 0 stay visible.")
    if zero:
        caption += f" Identically 0 at every row (dotted, at 0): {', '.join(zero)}."
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


#: axis labels of results.csv columns and sweep keys
LABELS = {
    "means_rmse": "means RMSE",
    "means_max": "largest mean error",
    "covariances_frobenius": "covariance error (Frobenius)",
    "covariances_relative": "relative covariance error",
    "weights_l1": "weights L1 error",
    "weights_max": "largest weight error",
    "ari": "adjusted Rand index",
    "nmi": "normalized mutual information",
    "kl_truth": "KL(truth ‖ fit) (nats)",
    "held_out_ll": "held-out log-lik (nats per point)",
    "held_out_gap": "held-out log-lik − truth's (nats/pt)",
    "log_likelihood_per_point": "log-likelihood (nats per point)",
    "n": "training points n",
    "separation": "separation c",
    "imbalance": "imbalance (ratio of consecutive weights)",
    "n_features": "dimension D",
    "n_components": "components K",
}
#: error panels that get a rate guide on a sample-size sweep: exponent and label
RATE_GUIDES = {"means_rmse": (-0.5, "∝ 1/√n"), "covariances_frobenius": (-0.5, "∝ 1/√n"),
               "weights_l1": (-0.5, "∝ 1/√n"), "kl_truth": (-1.0, "∝ 1/n")}


def _error_vs(state, dataset, tasks) -> list[Figure]:
    """One row of panels per value of the other swept keys, one panel per metric."""
    from mixtures import plot

    figures = []
    if state.data.get(tasks[0]).truth is None:
        return []
    markers = _method_markers(state)
    for x in NUMERIC_SWEEP_KEYS:
        if x not in state.config.sweep or not any(x in t.point for t in tasks):
            continue
        others, rows = _grouped_rows(state, tasks, x)
        for row in rows:
            if _finite(row.get("held_out_ll")) and _finite(row.get("held_out_ll_truth")):
                row["held_out_gap"] = float(row["held_out_ll"]) - float(row["held_out_ll_truth"])
        metrics = [("held_out_gap" if y == "held_out_ll" else y) for y in ERROR_METRICS]
        ys = [y for y in metrics if any(_finite(r.get(y)) for r in rows)]
        panels = list(dict.fromkeys(r["panel"] for r in rows))
        if not ys or not panels:
            continue
        groups = list(dict.fromkeys(r["group"] for r in rows))
        colors = _group_colors(state, groups)
        group_markers = {g: markers.get(g.split(", ")[0], "o") for g in groups}
        if len(panels) == 1:  # a single panel row wraps into a 3-column grid
            ncols = min(3, len(ys))
            fig, grid = plot.subplots(math.ceil(len(ys) / ncols), ncols, squeeze=False,
                                      figsize=(4.4 * ncols, 3.5 * math.ceil(len(ys) / ncols) + 0.6))
            for ax in list(grid.flat)[len(ys):]:
                ax.set_visible(False)
            axes = np.array(list(grid.flat)[:len(ys)], dtype=object).reshape(1, len(ys))
        else:
            fig, axes = plot.subplots(len(panels), len(ys), squeeze=False,
                                      figsize=(3.5 * len(ys), 3.0 * len(panels) + 0.6))
        near_zero = False
        for i, panel in enumerate(panels):
            panel_rows = [r for r in rows if r["panel"] == panel]
            for j, y in enumerate(ys):
                ax = axes[i, j]
                values = [float(r[y]) for r in rows if _finite(r.get(y))]
                positive = bool(values) and min(values) > 0
                logy = x == "n" and positive and y not in ("ari", "nmi", "held_out_gap", "kl_truth")
                plot.plot_metric_vs(ax, panel_rows, x, y, group="group", logx=(x == "n"), logy=logy,
                                    symlogy=(y == "kl_truth"), colors=colors, markers=group_markers,
                                    dodge=0.12 if len(groups) > 1 else 0.0,
                                    se="kl_truth_se" if y == "kl_truth" else None,
                                    xlabel=LABELS.get(x, x), ylabel=LABELS.get(y, y), legend=False)
                if y == "kl_truth":
                    near_zero = near_zero or _kl_near_zero(panel_rows, x)
                if y == "held_out_gap":
                    ax.axhline(0.0, color="0.6", linewidth=0.8, zorder=0)
                if x == "n" and y in RATE_GUIDES:
                    _rate_guide(ax, panel_rows, y, *RATE_GUIDES[y])
                if panel:
                    ax.set_title(panel, fontsize="small")
        _figure_legend(fig, axes.flat)
        title = f"{dataset}: accuracy against {LABELS.get(x, x)}"
        fig.suptitle(title)
        caption = (f"Mean ± standard error over seeds against {LABELS.get(x, x)}"
                   + (f", one row per {', '.join(others)}" if others else "")
                   + "; methods are shifted slightly sideways (and differ in marker and line style) so that "
                   "coinciding curves stay visible. Errors are measured after matching fitted to true "
                   "components (Hungarian algorithm); KL(truth ‖ fit) is a Monte Carlo estimate "
                   f"({state.config.metrics.kl_samples} draws of the truth per fit, the same draws for every "
                   "method of a cell), on a log axis, or a symmetric-log one (linear near 0) when an "
                   "estimate comes out ≤ 0"
                   + ("; hollow markers: within two Monte Carlo standard errors of 0" if near_zero else "")
                   + "; held-out: the fit's mean log density per point on an independent sample minus the "
                   "truth's on the same sample (0 = as good as the truth).")
        if x == "n":
            caption += (" Grey: rate guides through the first method's value at the smallest n, 1/√n dashed "
                        "for the parameter errors (the parametric rate) and 1/n dotted for the KL.")
        figures.append(Figure("error_vs", title, _save(state, fig, f"error_vs_{x}_{_slug(dataset)}"),
                              caption, dataset))
    return figures


def _kl_near_zero(rows: list[dict], x: str) -> bool:
    """Whether some plotted KL mean is within two Monte Carlo standard errors of 0."""
    cells: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        if _finite(r.get("kl_truth")) and _finite(r.get("kl_truth_se")):
            cells[(r["group"], r.get(x))].append((float(r["kl_truth"]), float(r["kl_truth_se"])))
    return any(abs(np.mean([v for v, _ in pairs])) <= 2 * math.sqrt(sum(e * e for _, e in pairs)) / len(pairs)
               for pairs in cells.values())


def _rate_guide(ax: Any, rows: list[dict], y: str, power: float, label: str) -> None:
    from mixtures import plot

    xs = sorted({float(r["n"]) for r in rows if _finite(r.get(y)) and _finite(r.get("n"))})
    if len(xs) < 2:
        return
    first_group = next(r["group"] for r in rows if _finite(r.get(y)))
    at_first = [float(r[y]) for r in rows if r["group"] == first_group and _finite(r.get(y))
                and float(r["n"]) == xs[0]]
    anchor = float(np.mean(at_first)) if at_first else math.nan
    plot.add_rate_guide(ax, xs, anchor, power, label=label)


def _bic(state, dataset, tasks) -> list[Figure]:
    from mixtures import plot

    if not ({"n_components", "covariance_type"} & set(state.config.sweep)):
        return []
    methods = list(dict.fromkeys(t.method.name for t in tasks))
    fig, axes = plot.subplots(len(methods), 3, squeeze=False, figsize=(15.0, 4.6 * len(methods)))
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
    caption = ("Information criteria against K per covariance type, mclust's sign (higher is better), the "
               "best start per (K, type); hollow markers are singular fits (a covariance at the reg_covar "
               "floor), excluded from the choice: the line breaks there, as mclust leaves NA out; the star "
               "marks the best model. The y axes are zoomed on the best models (the top 60% of the "
               "regular fits), so poor fits such as K = 1 or spherical covariances may lie below them.")
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
    equal = same_units(bundle)
    names = _feature_names(bundle)
    fig, axes = plot.subplots(1, 3, squeeze=False, sharex=not equal, sharey=not equal,
                              figsize=(12.0, 4.6) if equal else (13.5, 4.4))
    for ax, params, label in zip(axes[0], (one.init, one.params, final),
                                 ("initialization", "after 1 iteration", f"after {n_iter} iterations")):
        if state.smoke:
            plot.plot_density_contours(ax, bundle.X, params, grid_size=60, n_samples=2000, feature_names=names)
        else:
            plot.plot_density_contours(ax, bundle.X, params, feature_names=names)
        ax.set_title(label)
    if equal:  # the data's box on every panel, one scale on both axes (the panel box adapts)
        data = bundle.X[:, :2].detach().cpu().double().numpy()
        low, high = data.min(0), data.max(0)
        pad = 0.12 * (high - low).max()
        for ax in axes[0]:
            ax.set_xlim(low[0] - pad, high[0] + pad)
            ax.set_ylim(low[1] - pad, high[1] + pad)
            ax.set_aspect("equal", adjustable="box")
    title = f"{dataset}: {task.method.name} density ({_cell_label(task)})"
    fig.suptitle(title)
    caption = ("Highest-density contours (50%, 80%, 95% of the fitted mixture's mass), as in seed "
               "notebook 003." + _scale_note(bundle))
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
    colors = method_colors(state)
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
                color = colors.get(method, f"C{j % 10}")
                ax.boxplot([values], positions=[position], widths=width * 0.8, showfliers=False,
                           patch_artist=False, medianprops={"color": color},
                           boxprops={"color": color}, whiskerprops={"color": color},
                           capprops={"color": color})
                jitter = rng.uniform(-width * 0.3, width * 0.3, len(values))
                ax.scatter(position + jitter, values, s=10, color=color, alpha=0.6, linewidths=0,
                           label=method if i == 0 else None, zorder=3)
        ax.set_xticks(range(len(inits)))
        ax.set_xticklabels(inits)
        ax.set_xlim(-0.6, len(inits) - 0.4)
        ax.set_xlabel("initialization")
        ax.set_ylabel(label)
    _figure_legend(fig, axes.flat)
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
    fig, axes = plot.subplots(nrows, ncols, squeeze=False, figsize=(4.0 * ncols, 4.0 * nrows + 0.3))
    n_draws = 15 if state.smoke else 40
    # Limits from the data: draws of components the data hardly use (a Dirichlet process's
    # spare sticks) come from the prior and can be huge; they must not shrink the data away.
    data = bundle.X[:, :2].detach().cpu().double().numpy()
    low, high = data.min(0), data.max(0)
    pad = 0.15 * np.maximum(high - low, 1e-12)
    limits = (low - pad, high + pad)
    colors = method_colors(state)
    for ax, (name, posterior) in zip(axes.flat, posteriors.items()):
        plot.plot_posterior_ellipses(ax, bundle.X, posterior, n_draws=n_draws, color=colors.get(name, "C3"),
                                     title=_posterior_title(name, rows[name]))
        if bundle.truth is not None:
            truth = bundle.truth
            for k in range(truth.n_components):
                plot.add_covariance_ellipse(ax, truth.locs[k, :2], truth.covariances[k, :2, :2],
                                            edgecolor="black", linestyle="--", linewidth=1.0)
        ax.title.set_fontsize("small")
        ax.set_xlim(limits[0][0], limits[1][0])
        ax.set_ylim(limits[0][1], limits[1][1])
        names = _feature_names(bundle) or [f"$x_{d}$" for d in range(2)]
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        if same_units(bundle):  # limits fixed to the data: the box adjusts instead
            ax.set_aspect("equal", adjustable="box")
    for ax in list(axes.flat)[len(posteriors):]:
        ax.set_visible(False)
    title = f"{dataset}: posterior uncertainty ({_cell_label(cell[0])})"
    fig.suptitle(title)
    caption = (f"2σ covariance ellipses of {n_draws} posterior draws per method (faint lines pile up where "
               "the posterior is sure; components a draw leaves empty are not drawn; axes cover the data)"
               + (", the true mixture dashed" if bundle.truth is not None else "")
               + ". E[#w>1%]: posterior mean number of components with weight above 1%." + _scale_note(bundle))
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
    plot.plot_weight_intervals(axes[0, 0], results, level=0.9, colors=method_colors(state))
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
    colors = method_colors(state)
    for i, (name, (passes, seconds, values)) in enumerate(traces.items()):
        style = {"color": colors.get(name, f"C{i % 10}"), "linewidth": 1.5, "label": name,
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
            linthresh = 10.0 ** math.floor(math.log10(max(min(time_ends) / 2, 1e-4)))
            axes[i, 1].set_xscale("symlog", linthresh=linthresh, linscale=0.5)
            plot.symlog_ticks(axes[i, 1], "x", linthresh, max(time_ends))
        axes[i, 1].set_xlim(left=0)
        axes[i, 0].set_xlabel("data passes (points processed / N)")
        axes[i, 1].set_xlabel("wall time (s, initialization excluded)")
    for ax in axes[0]:
        ax.set_ylabel("log-likelihood (nats per point)")
    _figure_legend(fig, axes.flat)
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
    ("KL gap/pt", "kl_per_point"),
    ("BIC", "bic"),
    ("iterations", "n_iter"),
    ("time (s)", "time"),
)
PRECISE_COLUMNS = ("log_likelihood_per_point", "elbo_per_point", "bic", "held_out_ll")
#: a KL gap per point below this is rounding (MAP's is exactly 0 up to ~1e-15; EM's ends near 1e-11)
ZERO_GAP = 1e-12
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
        ok = [_with_per_point(r) for r in rows if r["status"] == "ok"]
        cells = [label.get(k, "") for k in label_keys]
        cells += [f"{len(ok)}/{len(rows)}", _converged_cell(state, label["method"], ok),
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


def _with_per_point(row: dict) -> dict:
    """``row`` with ``elbo_per_point`` and ``kl_per_point`` (the final gap ``log-lik (+ log prior) − ELBO``)."""
    n = row["n"]
    gap = row["kl"] / n if _finite(row.get("kl")) else None
    if gap is not None and abs(gap) < 1e-12:
        gap = 0.0  # rounding of an exact ELBO (MAP: -2e-16)
    return dict(row, elbo_per_point=row["elbo"] / n if _finite(row.get("elbo")) else None, kl_per_point=gap)


def step_budget(method: Any) -> int | None:
    """The step budget of a method (its routine's ``budget_option``, given or the default)."""
    from mixtures.inference import ROUTINES

    routine = ROUTINES.get(method.method)
    name = routine.budget_option if routine is not None else None
    if name is None:
        return None
    value = method.options.get(name, routine.default(name))
    return int(value) if isinstance(value, int) else None


def _converged_cell(state: RunState, method_name: str, ok: list[dict]) -> str:
    """``"3/3"``, or ``"0/3 (3 at budget)"`` when fits ran their whole step budget."""
    converged = sum(bool(r["converged"]) for r in ok)
    text = f"{converged}/{len(ok)}"
    try:
        budget = step_budget(state.config.method(method_name))
    except KeyError:
        budget = None
    at_budget = sum(1 for r in ok if not r["converged"] and budget is not None and _finite(r.get("n_iter"))
                    and int(r["n_iter"]) >= budget)
    if at_budget:
        text += f" ({at_budget} at budget)"
    return text


def model_selection(state: RunState) -> str:
    """Best model per dataset and criterion (non-singular ok fits), when K or the type is swept."""
    if not ({"n_components", "covariance_type"} & set(state.config.sweep)):
        return ""
    lines = []
    for dataset, tasks in _tasks_by_dataset(state).items():
        rows = [state.records[t.key]["row"] for t in tasks if _ok(state, t)]
        excluded = sum(bool(r["singular"]) for r in rows)
        for criterion, task in selection_winners(state, tasks).items():
            best = state.records[task.key]["row"]
            lines.append(f"- **{dataset}**, lowest {criterion.upper()}: K={best['n_components']}, "
                         f"{best['covariance_type']} ({best['method']}, init {best['init']}, seed "
                         f"{best['seed']}, {criterion.upper()} {_format_number(float(best[criterion]), 6)})")
        if excluded:
            lines.append(f"- {dataset}: {excluded} singular fit(s) excluded (a covariance collapsed to the "
                         "reg_covar floor).")
    return "\n".join(lines)


# -- findings: facts read off the table ------------------------------------------------------------------
#: (column, better, phrase, tie tolerance): statements of the findings paragraph
FINDINGS = (
    ("log_likelihood_per_point", "max", "the highest final log-likelihood per point", 1e-5),
    ("held_out_ll", "max", "the best held-out log-likelihood per point", 1e-5),
    ("kl_truth", "min", "the lowest KL to the truth", 0.0),
    ("time", "min", "the shortest mean fit time", 0.0),
    ("kl_per_point", "max", "the largest final KL gap (log-lik − ELBO)", 0.0),
)
_FINDING_UNITS = {"log_likelihood_per_point": " nats per point", "held_out_ll": " nats per point", "time": " s",
                  "kl_truth": " nats", "kl_per_point": " nats per point", "bic": ""}
_FINDING_DIGITS = {"log_likelihood_per_point": 6, "held_out_ll": 6, "time": 3, "kl_truth": 3, "kl_per_point": 3,
                   "bic": 6}


def _means_by_point(state: RunState, dataset: str) -> dict[tuple, dict[str, dict[str, float]]]:
    """``{sweep point (and init): {method: {column: mean over seeds of the ok fits}}}``."""
    out: dict[tuple, dict[str, dict[str, float]]] = {}
    for label, rows in summary_rows(state):
        if label["dataset"] != dataset:
            continue
        ok = [_with_per_point(r) for r in rows if r["status"] == "ok"]
        point = tuple((k, v) for k, v in label.items() if k not in ("dataset", "method"))
        means = {}
        for column in [c for c, *_ in FINDINGS] + ["bic"]:
            values = [float(r[column]) for r in ok if _finite(r.get(column))]
            if values:
                means[column] = float(np.mean(values))
        out.setdefault(point, {})[label["method"]] = means
    return out


def _winners(by_method: dict[str, dict[str, float]], column: str, better: str, tie: float
             ) -> tuple[list[str], float] | None:
    values = {m: v[column] for m, v in by_method.items() if column in v}
    if len(values) < 2:
        return None
    best = max(values.values()) if better == "max" else min(values.values())
    return [m for m, v in values.items() if abs(v - best) <= tie], best


def _names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def findings(state: RunState) -> str:
    """A short paragraph per dataset of facts read off the summary table (no interpretation)."""
    paragraphs = []
    for dataset, tasks in _tasks_by_dataset(state).items():
        points = _means_by_point(state, dataset)
        sentences = []
        if len(points) == 1:
            (by_method,) = points.values()
            for column, better, phrase, tie in FINDINGS:
                found = _winners(by_method, column, better, tie)
                if found is None:
                    continue
                names, value = found
                digits = _FINDING_DIGITS[column]
                if column == "kl_per_point":
                    zero = [m for m, v in by_method.items() if abs(v.get(column, math.nan)) < ZERO_GAP]
                    if value < ZERO_GAP:
                        continue
                    sentence = f"{_names(names)} {'has' if len(names) == 1 else 'have'} {phrase}: " \
                               f"{_format_number(value, digits)}{_FINDING_UNITS[column]}"
                    if zero:
                        sentence += f"; {_names(zero)} end{'s' if len(zero) == 1 else ''} with a gap of " \
                                    "exactly 0 (to rounding)"
                    sentences.append(sentence + ".")
                    continue
                unit = _FINDING_UNITS[column]
                verb = "reach" if column in ("log_likelihood_per_point", "held_out_ll") else "have"
                if len(names) == 1:
                    verb += "es" if verb == "reach" else ""
                    verb = "has" if verb == "have" else verb
                agree = f" (equal within {tie:g})" if len(names) > 1 and tie else ""
                sentences.append(f"{_names(names)} {verb} {phrase}: {_format_number(value, digits)}{unit}{agree}.")
            if not ({"n_components", "covariance_type"} & set(state.config.sweep)):
                found = _winners(by_method, "bic", "min", 1e-6)
                if found is not None:
                    names, value = found
                    sentences.append(f"The lowest BIC is {_names(names)}'s: {_format_number(value, 6)}.")
        elif len(points) > 1:
            for column, better, phrase, tie in FINDINGS:
                counts: dict[str, int] = defaultdict(int)
                compared = 0
                for by_method in points.values():
                    found = _winners(by_method, column, better, tie)
                    if found is None or (column == "kl_per_point" and found[1] < ZERO_GAP):
                        continue
                    compared += 1
                    for name in found[0]:
                        counts[name] += 1
                if compared:
                    ranked = sorted(counts.items(), key=lambda item: -item[1])
                    sentences.append(f"{phrase[0].upper() + phrase[1:]}: "
                                     + ", ".join(f"{m} at {c} of {compared} sweep points" for m, c in ranked)
                                     + (f" (ties within {tie:g} count for each)" if tie else "") + ".")
        for criterion, task in selection_winners(state, tasks).items():
            row = state.records[task.key]["row"]
            sentences.append(f"The lowest {criterion.upper()} is K={row['n_components']}, "
                             f"{row['covariance_type']}: {_format_number(float(row[criterion]), 6)}.")
        if sentences:
            paragraphs.append(f"**{dataset}.** " + " ".join(sentences))
    return "\n\n".join(paragraphs)


def methods_section(state: RunState) -> str:
    """One line per method: routine, options, prior; says when "MAP"/SVI fit no prior."""
    lines = []
    for method in state.config.methods:
        options = ", ".join(f"{k}={v}" for k, v in method.options.items())
        text = f"- **{method.name}**: routine `{method.method}`" + (f" ({options})" if options else "")
        if method.n_components is not None:
            text += f", K={method.n_components}"
        guide = method.options.get("guide", "delta")
        if method.prior is not None:
            fields = ", ".join(f"{k}={v}" for k, v in method.prior.items()) or "all defaults"
            text += f"; prior: GaussianPrior({fields})"
        elif method.method == "map":
            text += ("; **no prior**: this \"MAP\" is maximum likelihood by Adam on the parameters (the same "
                     "optimum as EM), not a posterior mode")
        elif method.method == "svi" and guide == "delta":
            text += ("; no prior: point estimates of the parameters by maximum likelihood (Adam on the ELBO"
                     + (", a mean-field q over the assignments)" if method.options.get("local_guide") ==
                        "mean_field" else ", assignments summed out)"))
        elif method.method == "em":
            text += "; no prior: maximum likelihood"
        lines.append(text + ".")
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
              f"Per-fit rows: [`results.csv`](results.csv); traces: [`histories.csv`](histories.csv) (every "
              "fit's history in one long table) and `histories/` (one CSV per fit).", "",
              f"{len(rows)} fits of {len(state.tasks)}: {len(ok)} ok, {len(rows) - len(ok)} failed, "
              f"{sum(bool(r['singular']) for r in ok)} singular.", ""]
    has_truth = any(_finite(r.get("ari")) for r in ok)
    budgets = any("at budget" in _converged_cell(state, label["method"], [r for r in rows if r["status"] == "ok"])
                  for label, rows in summary_rows(state))
    lines += ["## Methods", "", methods_section(state), ""]
    lines += ["## Results by method", "",
              "Mean ± sd over seeds (sd 0 when below the mean's last digit). log-lik/pt: final log p(X|θ) "
              "per point; ELBO/pt: the routine's final ELBO per point; KL gap/pt: log-lik − ELBO per point "
              "at the end (with a prior, log-lik + log prior − ELBO): KL(q ‖ p(Z|X,θ)) of the routine's q over "
              "the assignments; BIC lower is better (scikit-learn's sign); converged: fits that met their "
              "routine's stopping rule"
              + ("; \"at budget\": fits that ran their whole step budget (max_iter or num_steps) instead, the "
                 "normal end of an SVI or MAP run given a fixed number of steps, not a failure"
                 if budgets else "")
              + ("; errors against the true parameters after matching components; KL to truth: "
                 f"KL(truth ‖ fit) by Monte Carlo with {config.metrics.kl_samples} draws of the truth per "
                 "fit (the same draws for every method of a cell, so differences between methods are not "
                 "sampling noise of separate draws), its mean Monte Carlo standard error in parentheses; "
                 "held-out LL/pt on an independent sample" if has_truth else "") + ".", "",
              summary_table(state), ""]
    found = findings(state)
    if found:
        lines += ["## Findings", "", "Read off the table above (means over seeds).", "", found, ""]
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
