"""Run a config: fit every task, score it, write it down, then draw the report.

:func:`run_experiment` expands a :class:`~mixtures.experiment.config.Config` into tasks
(:func:`~mixtures.experiment.tasks.expand_tasks`), fits each with :func:`mixtures.fit`,
scores it with :mod:`mixtures.metrics` (see :data:`~mixtures.experiment.store.RESULT_COLUMNS`
and the README) and stores it (:mod:`~mixtures.experiment.store`).

KL to the truth uses common random numbers: the Monte Carlo draws are seeded from the
cell (:func:`~mixtures.experiment.tasks.kl_seed`), so every method of a cell is scored on
the same points and differences between methods carry no sampling noise of their own.

Robustness: every file is written atomically and a task's record last, so a killed run
resumes from its finished tasks (keyed by a digest of what determines their numbers, so a
grown config reuses them too; reused only when the data's content, the package version and
every stored file still match, :mod:`~mixtures.experiment.records`); every random draw is
seeded from the config; a fit that raises becomes a ``status=failed`` row; the output
directory (whose experiment it is, whether it can be written: :mod:`~mixtures.experiment.rundir`),
the config, the data, the priors and each method's options (by a trial fit of one iteration) are checked
before anything is written, so a crash loses only the fits under way.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm  # not tqdm.auto: in a notebook without ipywidgets it warns on import

from mixtures import evaluation
from mixtures.core.files import remove_stale_temporaries
from mixtures.core.missing import has_missing, marginalizing, mean_imputed
from mixtures.core.posterior import Posterior
from mixtures.core.result import FitResult
from mixtures.experiment import parallel, provenance, rundir
from mixtures.experiment.config.errors import ConfigError
from mixtures.experiment.config.loading import load_config, parse_config
from mixtures.experiment.config.methods import FIT_OPTIONS
from mixtures.experiment.config.schema import Config
from mixtures.experiment.dask_cluster import check_spec, dask_pool
from mixtures.experiment.datasets import DataBundle, DataCache
from mixtures.experiment.outputs import confusion_text
from mixtures.experiment.posterior_metrics import posterior_metrics
from mixtures.experiment.records import load_records, task_inputs
from mixtures.experiment.report import make_figures, write_report
from mixtures.experiment.report.figures import FIGURES
from mixtures.experiment.selection import mclust_bic
from mixtures.experiment.store import RESULT_COLUMNS, Outcome, RunState, write_file, write_record, write_results
from mixtures.experiment.tasks import Task, build_model, comparable_params, expand_tasks, kl_seed
from mixtures.families.gaussian.params import MixtureParams
from mixtures.inference import ROUTINES, fit

#: what trial fits call: :func:`mixtures.fit` under its own name, so a test (or a profile) that
#: counts the run's fits through ``runner.fit`` counts the fits whose results are kept
trial_fit = fit

#: weight above which a component counts as used (``expected_components``)
COMPONENT_THRESHOLD = 0.01


# -- one task -------------------------------------------------------------------------------
def run_task(task: Task, bundle: DataBundle, config: Config, preflight: bool = False, trial: bool = False) -> Outcome:
    """Fit and score one task. Fit errors become ``status=failed`` rows; an option the routine
    rejects is a :class:`ConfigError` (in a ``preflight`` fit, also a value the routine's
    record could not type, see :func:`option_rejected`). A ``trial`` fit is a preflight fit with the
    routine's trial options (:attr:`~mixtures.inference.registry.Routine.trial`: a budget of one
    iteration), neither scored nor meant to be kept: it only lets the routine check its options."""
    row: dict[str, Any] = dict.fromkeys(RESULT_COLUMNS)
    X = bundle.X
    row.update(task=task.key, cell=task.cell, dataset=task.dataset.name, n=int(X.shape[0]),
               n_features=int(X.shape[1]), n_components=task.n_components, covariance_type=task.covariance_type,
               true_n_components=task.true_n_components, separation=task.dataset.separation,
               imbalance=task.dataset.imbalance, init=task.init, seed=task.seed, method=task.method.name,
               routine=task.method.method, history=f"histories/{task.history_name}")
    options = dict(task.method.options)
    if trial:
        options.update(ROUTINES[task.method.method].trial)
    reg_covar = options.pop("reg_covar", config.model.reg_covar)
    X_fit = mean_imputed(X) if task.method.impute == "mean" else X  # the baseline fits the filled-in data
    if task.method.missing is not None:
        options["missing"] = task.method.missing
    if bundle.sample_weight is not None:
        options["sample_weight"] = bundle.sample_weight
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            result = (trial_fit if trial else fit)(build_model(task, X_fit), X_fit, task.method.method,
                                                   init=task.init, seed=task.seed, reg_covar=reg_covar, **options)
        except TypeError as error:
            if "unexpected keyword argument" in str(error) or "unexpected option" in str(error):
                raise ConfigError(config.source, f"methods[{task.method_index}].options",
                                  f"routine {task.method.method!r} rejected its options: {error}",
                                  f"the options in help(mixtures.inference.ROUTINES[{task.method.method!r}])") from None
            raise
        except Exception as error:  # a failed fit is a result, not a crash of the run
            rejected = option_rejected(task, error) if preflight or trial else None
            if rejected is not None:
                raise ConfigError(config.source, f"methods[{task.method_index}].options.{rejected}",
                                  f"routine {task.method.method!r} rejected it: {first_line(error)}",
                                  "the values documented in help(mixtures.inference.ROUTINES"
                                  f"[{task.method.method!r}])") from None
            row.update(status="failed", error=first_line(error), time=time.perf_counter() - start, history=None,
                       warnings=warning_text(caught))
            return Outcome(task, row, None, None)
        row.update(status="ok", time=time.perf_counter() - start)
        if trial:
            return Outcome(task, row, None, None)
        try:
            # every fit is scored on the data as given: with NaN entries, by their observed coordinates (a
            # mean-imputed fit too, so the columns compare)
            with marginalizing(has_missing(X)):
                row.update(score(result, bundle, config, task, reg_covar))
                row.update(posterior_metrics(result, bundle))
        except Exception as error:  # scoring a degenerate fit must not stop the run
            row.update(status="failed", error="scoring failed: " + first_line(error))
        if result.posterior is not None:
            row["posterior"] = f"posteriors/{task.posterior_name}"
            row.update(posterior_summary(result.posterior))
        problems = (result.extras or {}).get("problems")
        if problems and not row.get("problems"):  # any routine's failed validity checks
            row["problems"] = "; ".join(map(str, problems))[:2000]
        row["warnings"] = warning_text(caught)
    return Outcome(task, row, result.params, result.history, result.posterior, init=result.init,
                   first_iteration=first_iteration(task, result, X_fit, reg_covar, bundle.sample_weight))


def option_rejected(task: Task, error: Exception) -> str | None:
    """The option a routine's own check rejected (a plain ``ValueError`` naming the option and its
    value), else ``None``.

    Options the record types as "any" (``guide``, which may be a callable; ``patience``,
    an integer or "auto") reach the routine unchecked; in a method's trial fit, which runs
    before anything is written, such a rejection is a config error, not a failed fit.
    """
    if type(error) is not ValueError:  # DataError, ParameterError...: about the data or the fit
        return None
    text = str(error)
    return next((name for name, value in task.method.options.items()
                 if name in text and repr(value) in text), None)


def first_iteration(task: Task, result: FitResult, X: Tensor, reg_covar: float,
                    sample_weight: Tensor | None = None) -> MixtureParams | None:
    """The parameters after one iteration from the fit's own start, for tasks a figure draws them for
    (:data:`~mixtures.experiment.report.figures.FIGURES`' ``first_iteration``); else ``None``.

    The routine runs again from ``result.init`` with a budget of one step, which is exactly
    the fit's first step for routines that start from parameters (it is stored at fit time so
    that drawing never fits a model).
    """
    routine = ROUTINES[task.method.method]
    wanted = any(spec.first_iteration is not None and spec.first_iteration(task) for spec in FIGURES.values())
    if not wanted or result.init is None or routine.budget_option is None or routine.takes_responsibilities:
        return None
    options = {name: value for name, value in task.method.options.items() if name not in FIT_OPTIONS}
    options[routine.budget_option] = 1
    if sample_weight is not None and routine.sample_weight:  # the fit's weights (a file's weight_column)
        options["sample_weight"] = sample_weight.to(X)
    with warnings.catch_warnings(), marginalizing(task.method.missing == "marginalize"):
        warnings.simplefilter("ignore")  # one iteration never converges; that is the point
        try:
            return routine(build_model(task, X), X, result.init, seed=task.seed, reg_covar=reg_covar, **options).params
        except (ValueError, FloatingPointError, RuntimeError):
            return None


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def warning_text(caught: Iterable[warnings.WarningMessage]) -> str | None:
    messages = list(dict.fromkeys(f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught))
    return " | ".join(messages)[:500] if messages else None


def _finite_values(values: Any) -> Tensor:
    values = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    return values[torch.isfinite(values)]


def _never_moved(site_values: dict | None) -> bool:
    """Whether a label-invariant quantity has an undefined R-hat: it never changed over the draws.

    The invariant quantities (the draws' log-likelihood, sorted weights...) are free to vary in
    every model, so an undefined R-hat there means stuck chains, not an entry fixed by construction.
    """
    return any(bool(torch.isnan(torch.as_tensor(v, dtype=torch.float64)).any()) for v in (site_values or {}).values())


def posterior_summary(posterior: Posterior) -> dict[str, Any]:
    """The posterior columns of a result row (see ``POSTERIOR_COLUMNS``).

    ``max_r_hat`` is NaN (not missing) when a chain never moved (an undefined R-hat of a
    label-invariant quantity): a stuck sampler must not read as a blank. ``problems``: the
    failed validity checks of a sampler (``diagnostics["problems"]``), ``"; "``-joined.
    """
    out: dict[str, Any] = {"posterior_draws": posterior.n_draws,
                           "expected_components": posterior.expected_components(COMPONENT_THRESHOLD)}
    diagnostics = posterior.diagnostics or {}
    for column, site_values, reduce in (("max_r_hat", diagnostics.get("r_hat"), torch.max),
                                        ("min_ess", diagnostics.get("ess"), torch.min)):
        values = [_finite_values(v) for v in (site_values or {}).values()]
        values = torch.cat(values) if values else torch.empty(0)
        if values.numel():
            out[column] = float(reduce(values))
    if "r_hat" in diagnostics and _never_moved(diagnostics.get("invariant_r_hat")):
        out["max_r_hat"] = math.nan
    if "num_divergences" in diagnostics:
        out["num_divergences"] = int(diagnostics["num_divergences"])
    if diagnostics.get("problems"):
        out["problems"] = "; ".join(diagnostics["problems"])[:2000]
    return out


def flagged_outliers(result: FitResult, X: Tensor) -> Tensor:
    """``(N,)`` bool: the points a fit calls outliers. With a noise component: those whose noise
    responsibility wins (``result.is_noise``); a t fit without one: a small expected precision weight
    (:meth:`~mixtures.families.student_t.StudentTParams.is_outlying`, beyond the 0.99 quantile of the
    component's own distances); a Gaussian fit has no outlier model and flags none."""
    if result.model.noise_component is not None:
        return result.is_noise(X)
    outlying = getattr(result.params, "is_outlying", None)
    return outlying(X) if outlying is not None else torch.zeros(X.shape[0], dtype=torch.bool, device=X.device)


def score(result: FitResult, bundle: DataBundle, config: Config, task: Task, reg_covar: float) -> dict[str, Any]:
    """Metrics of one fit (see ``METRIC_COLUMNS``)."""
    X, params, weights = bundle.X, result.params, bundle.sample_weight
    log_likelihood = float(params.log_prob(X).sum()) if weights is None else \
        float((weights.to(X) * params.log_prob(X)).sum())
    n_points = X.shape[0] if weights is None else float(weights.sum())  # weighted: the data with rows repeated
    criteria = evaluation.information_criteria(result, X, weights)  # weighted: the data with rows repeated
    out: dict[str, Any] = {
        "log_likelihood": log_likelihood, "log_likelihood_per_point": log_likelihood / n_points,
        "elbo": result.history.last("elbo"), "kl": result.history.last("kl"),
        "bic": criteria["bic"], "aic": criteria["aic"], "icl": criteria["icl"],
        "mclust_bic": mclust_bic(result, log_likelihood, result.n_parameters(), n_points),
        "n_iter": int(result.n_iter), "converged": bool(result.converged),
        "singular": evaluation.is_singular(params, reg_covar, rtol=config.metrics.singular_rtol),
    }
    if bundle.labels is not None:
        predicted = result.predict(X)
        out["ari"] = evaluation.adjusted_rand_index(bundle.labels, predicted)
        out["nmi"] = evaluation.normalized_mutual_info(bundle.labels, predicted)
        confusion = evaluation.aligned_confusion(bundle.labels, predicted)
        out["accuracy"], out["confusion"] = confusion["accuracy"], confusion_text(confusion)
    if bundle.outliers is not None:
        flagged = flagged_outliers(result, X)
        out.update(outliers_planted=int(bundle.outliers.sum()), outliers_flagged=int((flagged & bundle.outliers).sum()),
                   inliers_flagged=int((flagged & ~bundle.outliers).sum()))
    truth = bundle.truth
    if truth is None:
        return out
    clusters = comparable_params(params)
    if clusters.n_components == truth.n_components:
        perm = evaluation.align_components(clusters, truth)
        out.update(evaluation.parameter_errors(clusters, truth, perm=perm))
        out["alignment"] = " ".join(str(int(i)) for i in perm)
    # common random numbers: every method of the cell is scored on the same draws of the truth
    out["kl_truth"], out["kl_truth_se"] = evaluation.kl_divergence(truth, params, n_samples=config.metrics.kl_samples,
                                                                seed=kl_seed(task))
    out["kl_samples"] = config.metrics.kl_samples
    if bundle.X_test is not None:
        out["held_out_ll"] = evaluation.held_out_log_likelihood(params, bundle.X_test)
        out["held_out_ll_truth"] = evaluation.held_out_log_likelihood(truth, bundle.X_test)
    return out


# -- the run ----------------------------------------------------------------------------------
def prepare_config(config: Config | str | Path, smoke: bool) -> Config:
    """A validated config from a path or a :class:`Config` (its smoke block applied when asked)."""
    if isinstance(config, (str, Path)):
        return load_config(config, smoke=smoke)
    if not isinstance(config, Config):
        raise TypeError(f"config must be a mixtures.experiment.Config or a path; got {type(config).__name__}.")
    if smoke and not config.smoke_applied:
        raw = config.to_dict()
        if config.smoke is not None:
            raw["smoke"] = config.smoke
        return parse_config(raw, source=config.source, smoke=True, header=config.header)
    return config


def check_priors(config: Config, tasks: list[Task], cache: DataCache) -> None:
    """Resolve every method's prior on its data: shapes and values that do not fit are config errors."""
    seen = set()
    for task in tasks:
        if task.method.prior is None:
            continue
        X = cache.get(task).X
        signature = (task.method_index, task.n_components, task.covariance_type, int(X.shape[1]))
        if signature in seen:
            continue
        seen.add(signature)
        try:
            task.method.gaussian_prior().resolve(X, task.n_components, task.covariance_type)
        except (ValueError, RuntimeError) as error:
            raise ConfigError(config.source, f"methods[{task.method_index}].prior",
                              f"does not fit dataset {task.dataset.name!r} (D={X.shape[1]}, K={task.n_components}, "
                              f"{task.covariance_type}): {error}",
                              "mean_prior of length D, covariance_prior shaped for the covariance type ((D, D) "
                              "full/tied, (D,) diag, a number for spherical), or null for the data-scaled default"
                              ) from None


def progress_bar(total: int, quiet: bool, description: str) -> tqdm:
    disable = quiet or not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
    return tqdm(total=total, disable=disable, desc=description, unit="fit", leave=False, file=sys.stderr)


def run_experiment(config: Config | str | Path, out_dir: str | Path, smoke: bool = False,
                   quiet: bool = False, replace: bool = False, log: Callable[[str], None] | None = None,
                   jobs: int = 1, dask: str | None = None) -> Path:
    """Run every task of ``config`` into ``out_dir`` (resuming finished tasks); return ``out_dir``.

    Args:
        config: a validated :class:`~mixtures.experiment.Config` or the path of a YAML file.
        out_dir: output directory (created; see :mod:`mixtures.experiment.store` for its layout).
        smoke: apply the config's ``smoke`` block (tiny sizes, few steps).
        quiet: no progress bar (it is also off when stderr is not a terminal) and no notices on stderr.
        replace: replace what ``out_dir`` holds (another experiment's run, run files of unknown
            origin, this experiment's earlier fits): every entry of the old run is deleted
            before the first write (:mod:`mixtures.experiment.rundir`).
        log: called with each notice (a stored fit refitted, and why); default: stderr
            unless ``quiet``. The report lists them too.
        jobs: worker processes for the fits (:mod:`~mixtures.experiment.parallel`; the trial fits run here);
            each gets ``max(1, torch threads // jobs)`` threads. Results are those of a sequential run.
        dask: run those fits on a Dask cluster instead (:mod:`~mixtures.experiment.dask_cluster`): a
            scheduler address, or ``"local[:N]"`` for a local cluster of N worker processes. Same results,
            resuming and failure rows; every file is still written by this process.

    Raises:
        ConfigError: invalid config, data that cannot be made, or options a routine
            rejects; raised before anything is written.
        RunDirectoryError: ``out_dir`` is another experiment's, not writable, or damaged
            (before anything is fitted).
        RunWriteError: a file could not be written (disk full...): finished fits are kept.
    """
    started = provenance.now()
    config = prepare_config(config, smoke)
    out_dir = Path(out_dir)
    experiment = rundir.identity(config)
    rundir.check_output(out_dir, replace)
    rundir.check_owner(out_dir, experiment, replace)
    tasks = expand_tasks(config)
    cache = DataCache(config.source)
    for task in tasks:  # every dataset is made (or read) before anything is written
        cache.get(task)
    check_priors(config, tasks, cache)
    records, notices = ({}, []) if replace else load_records(out_dir, tasks, lambda t: task_inputs(t, cache.get(t)))
    say = log if log is not None else (lambda text: None) if quiet else _to_stderr
    for notice in notices:
        say(notice)
    state = RunState(config, out_dir, tasks, records, cache, smoke=config.smoke_applied, notices=notices)
    pending = [task for task in tasks if task.key not in records]
    progress = progress_bar(len(pending), quiet, config.name)
    claimed: list[bool] = []
    try:
        with _open_pool(jobs, dask, len(pending)) as pool:
            _run_pending(state, pending, progress, experiment, replace, claimed, pool)
    except KeyboardInterrupt:
        if claimed:
            write_results(state)  # finished tasks are safe; a rerun resumes from them
        raise
    finally:
        progress.close()
    write_results(state)
    state.provenance = provenance.write_provenance(out_dir, config, started,
                                                   {"run": len(pending), "reused": len(tasks) - len(pending)})
    for change in state.provenance["changes"]:
        say(change)
    figures = make_figures(state)
    rundir.remove_stale_figures(out_dir, {path.resolve() for figure in figures.figures for path in figure.paths})
    write_report(state, figures)
    return out_dir


def _open_pool(jobs: int, dask: str | None, pending: int) -> contextlib.AbstractContextManager:
    """Where the fits run: a Dask cluster, worker processes, or here (``None``)."""
    if dask is not None and jobs > 1:
        raise ConfigError("--dask", "", f"and --jobs {jobs} both say where fits run.", "one of them")
    if dask is not None:
        check_spec(dask)
    if dask is not None and pending:
        return dask_pool(dask)
    if jobs > 1 and pending > 1:
        return parallel.process_pool(jobs)
    return contextlib.nullcontext()


def _to_stderr(text: str) -> None:
    print(f"mixtures: {text}", file=sys.stderr)


def _run_pending(state: RunState, pending: list[Task], progress: tqdm, experiment: dict[str, str], replace: bool,
                 claimed: list[bool], pool: parallel.Pool | None = None) -> None:
    """Fit the pending tasks. Before the directory is touched, each method not yet stored runs one
    trial fit (:func:`run_task`'s ``trial``: its first task on a budget of one iteration): options a
    routine rejects are config errors and must not leave a half-made output behind. Then the
    directory is claimed (emptied first when replacing), ``results.csv`` lists only the stored fits
    that were reused, the report and figures, redrawn at the end, are removed, and every fit is
    stored as soon as it finishes, so a crash loses only the fits under way."""
    config, records, out_dir = state.config, state.records, state.out_dir
    done_methods = {records[t.key]["row"]["method"] for t in state.tasks if t.key in records}
    first: list[Outcome] = []
    for task in pending:
        if task.method.name not in done_methods:
            first.extend(_try_method(task, state))
            done_methods.add(task.method.name)
    rundir.claim(out_dir, experiment, replace)
    claimed.append(True)
    remove_stale_temporaries(out_dir)
    write_file(out_dir / "config.yaml", config.to_yaml())
    if pending:
        rundir.forget_outputs(out_dir)
    write_results(state)
    for outcome in first:
        records[outcome.task.key] = _store(state, outcome)
        progress.update()
    rest = [task for task in pending if task.key not in records]
    if pool is not None and rest:
        progress.set_postfix_str(pool.description, refresh=False)
        for outcome in parallel.run_tasks(rest, state.data, config, pool, run_task):
            records[outcome.task.key] = _store(state, outcome)
            progress.update()
        return
    for task in rest:
        records[task.key] = _store(state, _fit_one(task, state, progress))


def _try_method(task: Task, state: RunState) -> list[Outcome]:
    """The trial fit of ``task``'s method; ``[]``, or the task's full fit when the trial's short budget
    tripped a check on an option: the full fit then decides (it raises the :class:`ConfigError` if
    the option is rejected there too; else its outcome is kept, to be stored first)."""
    try:
        run_task(task, state.data.get(task), state.config, trial=True)
        return []
    except ConfigError:
        return [run_task(task, state.data.get(task), state.config, preflight=True)]


def _store(state: RunState, outcome: Outcome) -> dict:
    return write_record(state.out_dir, outcome, task_inputs(outcome.task, state.data.get(outcome.task)))


def _fit_one(task: Task, state: RunState, progress: tqdm, preflight: bool = False) -> Outcome:
    progress.set_postfix_str(f"{task.dataset.name} {task.method.name}", refresh=False)
    outcome = run_task(task, state.data.get(task), state.config, preflight)
    progress.update()
    return outcome
