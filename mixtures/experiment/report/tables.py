"""The tables of report.md: results by method, model selection, log-likelihood per data pass,
the methods as run, and the failed fits."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

from mixtures.experiment.config.methods import MethodConfig
from mixtures.experiment.report.exports import Table
from mixtures.experiment.report.formatting import finite, format_number, mean_sd, point_label
from mixtures.experiment.report.prior_weight import prior_weight_text
from mixtures.experiment.report.reading import (
    is_online,
    pass_traces,
    run_inits,
    selection_winners,
    selects_models,
    tasks_by_dataset,
    with_per_point,
)
from mixtures.experiment.store import RunState
from mixtures.families.student_t.prior import StudentTPrior
from mixtures.inference.registry import ROUTINES

SUMMARY_COLUMNS = (("log-lik/pt", "log_likelihood_per_point"), ("ELBO/pt", "elbo_per_point"),
                   ("KL gap/pt", "kl_per_point"), ("BIC", "bic"), ("iterations", "n_iter"), ("time (s)", "time"))
#: columns shown to 6 digits: log-likelihoods of routines at the same optimum differ in the 4th-6th
PRECISE_COLUMNS = ("log_likelihood_per_point", "elbo_per_point", "bic", "held_out_ll")
POSTERIOR_SUMMARY = (("E[#w>1%]", "expected_components"), ("max R-hat", "max_r_hat"), ("min ESS", "min_ess"),
                     ("divergences", "num_divergences"))
TRUTH_COLUMNS = (("weights L1", "weights_l1"), ("means RMSE", "means_rmse"),
                 ("cov. Frobenius", "covariances_frobenius"), ("ARI", "ari"), ("NMI", "nmi"),
                 ("held-out LL/pt", "held_out_ll"))
#: planted or known outliers: how many, how many the fit flagged (noise wins; a t fit: beyond the χ²_D 0.99
#: quantile, runner.flagged_outliers), false alarms
OUTLIER_SUMMARY = (("outliers planted", "outliers_planted"), ("outliers flagged", "outliers_flagged"),
                   ("inliers flagged", "inliers_flagged"))
PASS_MARKS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
#: summary columns report.md leaves to tables/summary.csv (a narrower table; the Findings and figures use them)
CSV_ONLY = ("ELBO/pt", "weights L1", "cov. Frobenius", "min ESS", "outliers planted", "inliers flagged")


def summary_rows(state: RunState) -> list[tuple[dict, list[dict]]]:
    """Rows grouped by (dataset, sweep point, init if several, method), in task order."""
    many_inits = len(run_inits(state)) > 1
    groups: dict[tuple, tuple[dict, list[dict]]] = {}
    for task in state.tasks:
        record = state.records.get(task.key)
        if record is None:
            continue
        label = {"dataset": task.dataset.name, **task.point}
        if many_inits:
            label["init"] = task.init
        label["method"] = task.method.name
        groups.setdefault(tuple(label.items()), (label, []))[1].append(record["row"])
    return list(groups.values())


def restarts_only(state: RunState) -> bool:
    """Whether the seeds of every cell are restarts on the same data (no dataset resamples), so that a cell
    is summarized by its best restart, as a fit with ``n_init`` starts would keep; else seeds are
    replicates (fresh data each) and a cell is summarized by mean ± sd."""
    return not any(task.dataset.resample for task in state.tasks)


def best_restart(ok: list[dict]) -> dict | None:
    """The start a fit with several starts keeps: the non-singular one with the highest log-likelihood
    (a singular one only when all are); ``None`` without a finite log-likelihood."""
    usable = [r for r in ok if finite(r.get("log_likelihood"))]
    if not usable:
        return None
    return max(usable, key=lambda r: (not r.get("singular"), float(r["log_likelihood"])))


def spread(values: Any, digits: int = 6) -> str:
    """``"median [min, max]"`` of the finite values (``–`` without any; the value alone for one)."""
    numbers = [float(v) for v in values if finite(v)]
    if not numbers:
        return "–"
    if len(numbers) == 1:
        return format_number(numbers[0], digits)
    return (f"{format_number(float(np.median(numbers)), digits)} [{format_number(min(numbers), digits)}, "
            f"{format_number(max(numbers), digits)}]")


def undefined_r_hat(row: dict) -> bool:
    """Whether a sampler's R-hat is stored as undefined (NaN): a chain never moved."""
    value = row.get("max_r_hat")
    return value is not None and not isinstance(value, str) and math.isnan(float(value))


def cell_value(row: dict, column: str) -> str:
    """One fit's value of ``column`` as a table cell; a stuck sampler's R-hat reads ``undefined (stuck)``."""
    if column == "max_r_hat" and undefined_r_hat(row):
        return "undefined (stuck)"
    if not finite(row.get(column)):
        return "–"
    return format_number(float(row[column]), 6 if column in PRECISE_COLUMNS else 4)


def _best_cells(ok: list[dict], columns: list[tuple[str, str]]) -> list[str]:
    """The best restart's value of each column, its seed, and the spread of log-lik/pt across seeds."""
    best = best_restart(ok)
    if best is None:
        return ["–"] * len(columns) + ["–", "–"]
    cells = [cell_value(best, column) for _, column in columns]
    return cells + [str(best["seed"]), spread(r.get("log_likelihood_per_point") for r in ok)]


def summary_table(state: RunState) -> str:
    """Markdown table of every group (:func:`summary_data`, the columns of :data:`CSV_ONLY` left to its CSV)."""
    table = summary_data(state)
    return table.narrow(csv_only(table)).markdown() if table is not None else "_No finished fits._"


def csv_only(table: Table) -> list[str]:
    """The columns report.md leaves to the CSV: :data:`CSV_ONLY`, and ``singular`` when no fit is."""
    column = table.header.index("singular")
    return list(CSV_ONLY) + (["singular"] if all(row[column] == "0" for row in table.rows) else [])


def summary_data(state: RunState) -> Table | None:
    """The table of every group: fits, converged, singular, then each metric of the best restart with
    the spread of log-lik/pt across seeds (:func:`restarts_only`), or mean ± sd over seeds (replicates);
    ``None`` without finished fits."""
    groups = summary_rows(state)
    if not groups:
        return None
    present = {k for label, _ in groups for k in label}
    label_keys = [k for k in dict.fromkeys(["dataset", *state.config.sweep, "init", "method"]) if k in present]
    every = [r for _, rows in groups for r in rows]
    has_truth = any(finite(r.get("means_rmse")) or finite(r.get("kl_truth")) for r in every)  # true parameters
    has_labels = any(finite(r.get("ari")) for r in every)  # labels only (a file's label column)
    columns = list(SUMMARY_COLUMNS) + (list(TRUTH_COLUMNS) if has_truth else
                                       [("ARI", "ari"), ("NMI", "nmi")] if has_labels else [])
    columns += [(name, column) for name, column in POSTERIOR_SUMMARY + OUTLIER_SUMMARY
                if any(finite(r.get(column)) or (column == "max_r_hat" and undefined_r_hat(r)) for r in every)]
    best = restarts_only(state)
    header = label_keys + ["ok/fits", "converged", "singular"] + [name for name, _ in columns]
    if has_truth:
        header.append("KL to truth (MC se)")
    if best:
        header += ["best seed", "log-lik/pt across seeds"]
    table_rows = []
    for label, rows in groups:
        ok = [with_per_point(r) for r in rows if r["status"] == "ok"]
        cells = [label.get(k, "") for k in label_keys]
        cells += [f"{len(ok)}/{len(rows)}", converged_cell(state, label["method"], ok),
                  str(sum(bool(r["singular"]) for r in ok))]
        if best:
            chosen = best_restart(ok)
            cells += _best_cells(ok, columns + ([("KL to truth", "kl_truth")] if has_truth else []))
            if has_truth and chosen is not None and finite(chosen.get("kl_truth_se")):
                cells[-3] += f" ({format_number(float(chosen['kl_truth_se']))})"
        else:
            cells += [mean_sd((r.get(column) for r in ok), 6 if column in PRECISE_COLUMNS else 4)
                      + (" (some undefined: stuck)" if column == "max_r_hat" and any(map(undefined_r_hat, ok)) else "")
                      for _, column in columns]
        if has_truth and not best:
            se = [float(r["kl_truth_se"]) for r in ok if finite(r.get("kl_truth_se"))]
            cells.append(mean_sd(r.get("kl_truth") for r in ok) + (f" ({format_number(float(np.mean(se)))})"
                                                                    if se else ""))
        table_rows.append(cells)
    return Table("summary", header, table_rows, "Results by method")


def step_budget(method: MethodConfig) -> int | None:
    """The step budget of a method (its routine's ``budget_option``, given or the default)."""
    routine = ROUTINES.get(method.method)
    if routine is None or routine.budget_option is None:
        return None
    value = method.options.get(routine.budget_option, routine.default(routine.budget_option))
    return int(value) if isinstance(value, int) else None


def converged_cell(state: RunState, method_name: str, ok: list[dict]) -> str:
    """``"3/3"``, or ``"0/3 (3 at budget)"`` when fits ran their whole step budget, or ``"0/3 (3 INVALID)"``
    when fits failed their validity checks (a sampler that did not explore: its ``problems``)."""
    text = f"{sum(bool(r['converged']) for r in ok)}/{len(ok)}"
    invalid = sum(1 for r in ok if r.get("problems"))
    if invalid:
        return text + f" ({invalid} INVALID)"
    try:
        budget = step_budget(state.config.method(method_name))
    except KeyError:
        budget = None
    at_budget = sum(1 for r in ok if not r["converged"] and budget is not None and finite(r.get("n_iter"))
                    and int(r["n_iter"]) >= budget)
    return text + (f" ({at_budget} at budget)" if at_budget else "")


def model_selection(state: RunState) -> str:
    """Best model per dataset and criterion (non-singular ok fits), when K or the type is swept."""
    if not selects_models(state):
        return ""
    lines = []
    for dataset, tasks in tasks_by_dataset(state).items():
        excluded = sum(bool(state.row(t)["singular"]) for t in tasks if state.ok(t))
        for criterion, task in selection_winners(state, tasks).items():
            best = state.row(task)
            lines.append(f"- **{dataset}**, lowest {criterion.upper()}: K={best['n_components']}, "
                         f"{best['covariance_type']} ({best['method']}, init {best['init']}, seed {best['seed']}, "
                         f"{criterion.upper()} {format_number(float(best[criterion]), 6)})")
        if excluded:
            lines.append(f"- {dataset}: {excluded} singular fit(s) excluded (a covariance collapsed to the "
                         "reg_covar floor).")
    return "\n".join(lines)


def methods_section(state: RunState) -> str:
    """One line per method: routine, options, prior; says what a routine that may take a prior fits without one."""
    lines = []
    for method in state.config.methods:
        options = ", ".join(f"{k}={v}" for k, v in method.options.items())
        text = f"- **{method.name}**: routine `{method.method}`" + (f" ({options})" if options else "")
        if method.n_components is not None:
            text += f", K={method.n_components}"
        if method.prior is not None:
            text += f"; prior: {_prior_text(method)}" + prior_weight_text(state, method)
        elif ROUTINES[method.method].prior == "optional":
            text += _without_prior(method)
        lines.append(text + ".")
    return "\n".join(lines)


def _prior_text(method: MethodConfig) -> str:
    """The prior as fitted: the config's fields, and for the t family the prior on ν it adds (or ν's fixed value)."""
    fields = ", ".join(f"{k}={v}" for k, v in method.prior.items()) or "all defaults"
    text = f"GaussianPrior({fields})"
    if method.family == "student_t":
        prior = StudentTPrior.from_gaussian(method.gaussian_prior())
        dof = method.family_options.get("dof", "free")
        if dof in ("free", "shared"):
            text += (f" and ν ~ Gamma({prior.dof_shape:g}, rate {prior.dof_rate:g}) "
                     + ("per component" if dof == "free" else "shared by the components"))
        else:
            text += f", ν fixed at {dof:g}"
    return text


def _without_prior(method: MethodConfig) -> str:
    """What a routine that may take a prior fits without one (wording for the routines whose
    names or guides suggest a posterior; hard EM's classification likelihood gets none)."""
    if method.method == "map":  # the name promises a posterior mode
        return ("; **no prior**: this \"MAP\" is maximum likelihood by Adam on the parameters (the same optimum as "
                "EM), not a posterior mode")
    if method.method == "svi":  # a prior-free SVI has the delta guide (the config checks it)
        assignments = ("a mean-field q over the assignments" if method.options.get("local_guide") == "mean_field"
                       else "assignments summed out")
        return f"; no prior: point estimates of the parameters by maximum likelihood (Adam on the ELBO, {assignments})"
    return "; no prior: maximum likelihood" if method.method == "em" else ""


def passes_table(state: RunState) -> str:
    """Log-likelihood per point after a number of data passes (mean ± sd over seeds), per dataset
    (:func:`passes_tables`)."""
    return "\n\n".join(f"{intro}\n\n{table.markdown()}" for intro, table in passes_tables(state))


def passes_tables(state: RunState) -> list[tuple[str, Table]]:
    """``[(intro, table)]``: log-likelihood per point after a number of data passes (mean ± sd over seeds),
    per dataset.

    For each method the value at its last evaluation within the budget; only for
    datasets with an online method (where the passes figure applies).
    """
    sections = []
    for dataset, tasks in tasks_by_dataset(state).items():
        first_point = tasks[0].point
        tasks = [t for t in tasks if t.point == first_point and t.init == tasks[0].init]
        if not any(is_online(t) for t in tasks):
            continue
        per_method: dict[str, list] = defaultdict(list)
        for seed in state.config.seeds:
            cell = [t for t in tasks if t.seed == seed]
            for name, trace in (pass_traces(state, cell) if cell else {}).items():
                per_method[name].append(trace)
        if per_method:
            label = f"**{dataset}**" + (f" ({point_label(first_point)})" if first_point else "")
            sections.append((f"{label}, init {tasks[0].init}:",
                             Table(f"passes_{dataset}", *_passes_rows(per_method), f"Log-likelihood per point "
                                   f"after data passes, {dataset}")))
    return sections


def _passes_rows(per_method: dict[str, list]) -> tuple[list[str], list[list[str]]]:
    longest = max(float(p[-1]) for traces in per_method.values() for p, _, _ in traces)
    marks = [m for m in PASS_MARKS if m <= longest] or [longest]
    header = ["method"] + [f"≤ {m:g} pass" + ("es" if m != 1 else "") for m in marks] + ["final", "passes", "time (s)"]
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
    return header, rows


def failures(state: RunState) -> str:
    table = failures_data(state)
    return table.markdown() if table is not None else ""


def failures_data(state: RunState) -> Table | None:
    """The failed fits (``None`` without any)."""
    rows = [r for r in state.rows() if r["status"] != "ok"]
    if not rows:
        return None
    return Table("failed_fits", ["dataset", "method", "K", "covariance", "init", "seed", "error"],
                 [[r["dataset"], r["method"], r["n_components"], r["covariance_type"], r["init"], r["seed"],
                   r["error"]] for r in rows], "Failed fits")
