"""Run a config: expand it into fits, fit each one, score it, write everything down.

:func:`run_experiment` expands a :class:`~mixtures.config.Config` into *tasks*:
datasets × sweep points × inits × seeds × methods (a *cell* is one dataset ×
sweep point × init × seed; its methods share the same data). Every task fits
one model with :func:`mixtures.fit` and is scored with :mod:`mixtures.metrics`.

Output directory::

    config.yaml        the resolved config (overrides and smoke block applied)
    results.csv        one tidy row per task (columns: RESULT_COLUMNS)
    records/<key>.json one file per finished task: its row and fitted parameters
    histories/<...>.csv one CSV per fit: the History columns (iteration,
                       log_likelihood, elbo, kl, time, + the routine's own), one
                       row per history row; read back with :func:`read_history`
    histories.csv      every fit's trace in one tidy long table: the fit's
                       HISTORY_ID_COLUMNS (task, cell, dataset, n, ..., method,
                       routine), then ``iteration`` and every trace column any
                       fit has (empty where a fit's routine does not record it;
                       ``nan`` where it recorded NaN), one row per history row,
                       fits in task order; rebuilt from histories/ when the run
                       finishes and when it is interrupted, like results.csv;
                       read back with :func:`read_histories`
    posteriors/<...>.pt for fits with a posterior (VB, SVI with a distributional
                       guide, NUTS): at most MAX_POSTERIOR_DRAWS draws, evenly
                       spaced through the routine's; read back with
                       :func:`read_posterior`
    figures/           PNG (and PDF on request) figures, see mixtures.report
    report.md          figures and summary tables (mixtures.report)

Columns of ``results.csv`` (empty when not applicable, e.g. truth metrics on real data):

* identification: ``task`` (record key), ``cell``, ``dataset``, ``n`` (training
  points), ``n_features``, ``n_components`` and ``covariance_type`` (the fitted
  model), ``true_n_components``, ``separation``, ``imbalance``, ``init``, ``seed``,
  ``method`` (display name), ``routine``, ``status`` (``ok``/``failed``), ``error``;
* always: ``log_likelihood`` (exact ``log p(X|θ)`` at the result, total nats) and
  ``log_likelihood_per_point``, ``elbo`` and ``kl`` (last history row), ``bic``,
  ``aic``, ``icl`` (lower is better), ``n_iter``, ``converged``, ``singular`` (a
  covariance at the ``reg_covar`` floor), ``time`` (seconds for ``mixtures.fit``,
  initialization included), ``warnings``, ``history`` (relative path);
* with a posterior (empty for point estimates, MAP-EM included): ``posterior``
  (relative path of the stored draws), ``posterior_draws`` (draws the routine
  made; the file keeps at most ``MAX_POSTERIOR_DRAWS`` of them),
  ``expected_components`` (posterior mean number of components with weight
  above 0.01, :meth:`~mixtures.posterior.Posterior.expected_components`); for MCMC
  also ``max_r_hat`` (largest split R-hat over every site entry), ``min_ess``
  (smallest effective sample size) and ``num_divergences``;
* with a known truth: ``weights_l1``, ``weights_max``, ``means_rmse``,
  ``means_max``, ``covariances_frobenius``, ``covariances_relative`` (see
  :func:`mixtures.metrics.parameter_errors`; after Hungarian alignment, given in
  ``alignment``: fitted component of each true one; only when K matches), ``ari``,
  ``nmi`` (true labels vs MAP assignments), ``kl_truth`` and ``kl_truth_se`` (Monte
  Carlo KL(truth || fit) and its standard error) from ``kl_samples`` draws of the
  truth, ``held_out_ll`` and ``held_out_ll_truth`` (mean log density per point of
  an independent sample under the fit and under the truth).

KL to the truth uses common random numbers: the Monte Carlo draws are seeded from
the cell (:attr:`Task.cell_key`: data, sweep point, init and seed), so every method
of a cell is scored on the same points and differences between methods carry no
sampling noise of their own draws.

Robustness:

* a task's history and record are written to temporary files and renamed, so a
  killed run leaves only whole files (and perhaps a temporary file, deleted by
  the next run); ``results.csv`` and ``histories.csv`` are rebuilt from the
  records at the end (and when interrupted; a SIGKILL leaves them to the rerun);
* a task's record is keyed by a hash of everything that determines its numbers
  (data spec, model, init, seed, method and options, the method's prior and K,
  metric options), so a rerun skips finished tasks — also after the config grew
  (more seeds, say);
* every random draw is seeded from the config (data seeds, fit seeds, Monte Carlo
  seeds), so the same config reproduces the same numbers except the ``time`` column
  (of results.csv and histories.csv);
* a fit that raises (singular covariance, divergence...) becomes a row with
  ``status=failed`` and the error message;
* the config, the data and each method's options are checked before anything
  is written (the first fit of every method runs before the output directory
  is touched, so an option a routine does not know is reported as a ConfigError).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from itertools import product
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mixtures import data as datasets
from mixtures import metrics
from mixtures.config import (
    DATA_SWEEP_KEYS,
    Config,
    ConfigError,
    DataConfig,
    MethodConfig,
    load_config,
    parse_config,
)
from mixtures.errors import DataError
from mixtures.inference import ROUTINES, fit
from mixtures.model import GaussianMixture
from mixtures.params import MixtureParams
from mixtures.posterior import Posterior
from mixtures.result import FitResult, History

#: bump when the meaning of a record changes, so old records are not reused
RECORD_VERSION = 2  # 2: KL draws seeded from the cell (common random numbers)

ID_COLUMNS = ("task", "cell", "dataset", "n", "n_features", "n_components", "covariance_type",
              "true_n_components", "separation", "imbalance", "init", "seed", "method", "routine",
              "status", "error")
METRIC_COLUMNS = ("log_likelihood", "log_likelihood_per_point", "elbo", "kl", "bic", "aic", "icl",
                  "n_iter", "converged", "singular", "time",
                  "weights_l1", "weights_max", "means_rmse", "means_max", "covariances_frobenius",
                  "covariances_relative", "ari", "nmi",
                  "kl_truth", "kl_truth_se", "kl_samples", "held_out_ll", "held_out_ll_truth", "alignment",
                  "posterior_draws", "expected_components", "max_r_hat", "min_ess", "num_divergences",
                  "warnings", "history", "posterior")
RESULT_COLUMNS = ID_COLUMNS + METRIC_COLUMNS
#: columns that legitimately differ between two runs of the same config
TIME_COLUMNS = ("time",)
TRUTH_METRICS = ("weights_l1", "weights_max", "means_rmse", "means_max", "covariances_frobenius",
                 "covariances_relative", "ari", "nmi", "kl_truth", "kl_truth_se", "kl_samples", "held_out_ll",
                 "held_out_ll_truth")
#: columns of histories.csv that say which fit a trace row belongs to (then iteration and the traces)
HISTORY_ID_COLUMNS = ("task", "cell", "dataset", "n", "n_features", "n_components", "covariance_type",
                      "true_n_components", "separation", "imbalance", "init", "seed", "method", "routine")
POSTERIOR_COLUMNS = ("posterior_draws", "expected_components", "max_r_hat", "min_ess", "num_divergences")
#: most posterior draws stored per fit (evenly spaced through the routine's draws)
MAX_POSTERIOR_DRAWS = 200
#: weight above which a component counts as used (``expected_components``)
COMPONENT_THRESHOLD = 0.01


# -------------------------------------------------------------------------------------------
# tasks
# -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    """One fit: a dataset (sweep values applied), model, init, seed and method.

    ``n_components`` is the fitted K (the method's own when it sets one);
    ``model_components`` the model's K at this sweep point, which a random truth
    without its own K follows (so every method of a cell sees the same data).
    """

    index: int
    cell: int
    dataset: DataConfig
    n_components: int
    covariance_type: str
    init: str
    seed: int
    method: MethodConfig
    method_index: int
    point: dict = field(default_factory=dict)  # swept key -> value (the keys that apply)
    key: str = ""
    model_components: int | None = None

    @property
    def true_n_components(self) -> int | None:
        d = self.dataset
        if not d.synthetic:
            return None
        if d.truth == "random":
            return d.n_components or self.model_components or self.n_components
        if d.truth == "seed004":
            return 2
        if d.truth == "given":
            return len(d.weights)
        return d.n_components

    @property
    def cell_key(self) -> str:
        """Identifies the task's cell (data, sweep point, init, seed), shared by its methods.

        Stable when the config grows (unlike the ``cell`` index); seeds the cell's
        Monte Carlo draws for KL to the truth.
        """
        return _digest("cell", self.dataset.to_dict(), self.true_n_components, self.model_components,
                       self.covariance_type, self.init, self.seed)[:20]

    @property
    def file_stem(self) -> str:
        return f"{self.dataset.name}-{self.method.name}-{self.init}-seed{self.seed}-{self.key[:10]}"

    @property
    def history_name(self) -> str:
        return f"{self.file_stem}.csv"

    @property
    def posterior_name(self) -> str:
        return f"{self.file_stem}.pt"


def build_model(task: Task) -> GaussianMixture:
    """The task's ``GaussianMixture`` (with its method's prior, if any)."""
    return GaussianMixture(task.n_components, task.covariance_type, prior=task.method.gaussian_prior())


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


def _digest(*parts: Any) -> str:
    return hashlib.sha256(_canonical(parts).encode()).hexdigest()


def derived_seed(*parts: Any) -> int:
    """A 31-bit seed determined by ``parts`` (stable across runs and machines)."""
    return int(_digest(*parts)[:8], 16) & 0x7FFFFFFF


def expand_tasks(config: Config) -> list[Task]:
    """All tasks of ``config`` in a fixed order: dataset, sweep point, init, seed, method."""
    sweep = config.sweep
    swept = [key for key in sweep if key not in ("init", "method")]
    inits = sweep.get("init", config.inits)
    method_names = sweep.get("method", [m.name for m in config.methods])
    methods = [(i, m) for i, m in enumerate(config.methods) if m.name in method_names]
    methods.sort(key=lambda item: list(method_names).index(item[1].name))
    tasks: list[Task] = []
    cell = 0
    for dataset in config.data:
        keys = [key for key in swept if key not in DATA_SWEEP_KEYS or dataset.accepts(key)]
        for values in product(*(sweep[key] for key in keys)):
            point = dict(zip(keys, values))
            data = replace(dataset, **{key: value for key, value in point.items() if key in DATA_SWEEP_KEYS})
            K = point.get("n_components", config.model.n_components)
            cov = point.get("covariance_type", config.model.covariance_type)
            for init in inits:
                for seed in config.seeds:
                    for method_index, method in methods:
                        if not method.applies_to(dataset.name):
                            continue
                        k = method.n_components or K
                        task = Task(index=len(tasks), cell=cell, dataset=data, n_components=k,
                                    covariance_type=cov, init=init, seed=seed, method=method,
                                    method_index=method_index, point=point, model_components=K)
                        parts = [RECORD_VERSION, data.to_dict(), task.true_n_components, k, cov,
                                 config.model.reg_covar, init, seed, method.name, method.method,
                                 method.options, config.metrics.kl_samples, config.metrics.singular_rtol]
                        if method.prior is not None:
                            # only when set: keys of prior-free tasks stay those of earlier runs
                            parts.append({"prior": method.prior})
                        key = _digest(*parts)[:20]
                        tasks.append(replace(task, key=key))
                    cell += 1
    return tasks


# -------------------------------------------------------------------------------------------
# data
# -------------------------------------------------------------------------------------------
@dataclass
class DataBundle:
    """Training data ``X (N, D)``; for synthetic data also the true ``labels (N,)``,
    the ``truth`` and an independent held-out sample ``X_test (M, D)``.

    ``feature_names``: the data's column names when known (Old Faithful's, a file's
    header), else ``None``.
    """

    X: Tensor
    labels: Tensor | None = None
    truth: MixtureParams | None = None
    X_test: Tensor | None = None
    feature_names: tuple[str, ...] | None = None


class DataCache:
    """Generates or loads each distinct dataset once per run."""

    def __init__(self, source: str = "<config>"):
        self.source = source
        self._cache: dict[str, DataBundle] = {}

    def get(self, task: Task) -> DataBundle:
        d = task.dataset
        replicate = task.seed if d.resample else None
        key = _canonical([d.to_dict(), task.true_n_components, replicate])
        if key not in self._cache:
            self._cache[key] = self._make(d, task.true_n_components, replicate)
        return self._cache[key]

    def _make(self, d: DataConfig, true_k: int | None, replicate: int | None) -> DataBundle:
        where = f"data {d.name!r}"
        try:
            if d.kind == "old_faithful":
                # both columns are in minutes
                return DataBundle(datasets.old_faithful(),
                                  feature_names=tuple(f"{name} (min)" for name in datasets.OLD_FAITHFUL_COLUMNS))
            if d.kind == "file":
                delimiter = {"csv": ",", "whitespace": None, "auto": None}[d.format or "auto"]
                X = datasets.load(d.path, delimiter=delimiter)
                return DataBundle(X, feature_names=_header_names(d.path, delimiter, X.shape[1]))
            truth = true_params(d, true_k)
            spec = d.to_dict()
            spec.pop("name", None)
            train_seed = derived_seed("train", spec, true_k, replicate)
            test_seed = derived_seed("test", spec, true_k, replicate)
            if d.truth == "seed003" and replicate is None:
                X, labels, _ = datasets.seed003_data(d.n_components, d.n_features, d.n // d.n_components,
                                                     seed=d.seed)
            else:
                X, labels = datasets.sample_mixture(truth, d.n, seed=train_seed)
            X_test = datasets.sample_mixture(truth, d.n_test, seed=test_seed)[0] if d.n_test else None
            return DataBundle(X, labels, truth, X_test)
        except (DataError, FileNotFoundError, ValueError) as error:
            raise ConfigError(self.source, "data", f"{where} cannot be made: {error}",
                              "a readable data file, or valid synthetic parameters") from None


def _header_names(path: str | Path, delimiter: str | None, n_features: int) -> tuple[str, ...] | None:
    """The column names of a text file's header line (``None``: no header, or not text)."""
    if Path(path).suffix.lower() == ".npy":
        return None
    try:
        with open(path, encoding="utf-8-sig") as stream:
            line = next((line for line in stream if line.strip() and not line.lstrip().startswith("#")), "")
    except (OSError, UnicodeDecodeError):
        return None
    if delimiter is None and "," in line:
        delimiter = ","
    fields = next(csv.reader([line], delimiter=delimiter)) if delimiter else line.split()
    names = tuple(field.strip().strip('"') for field in fields)
    if len(names) != n_features or not all(names):
        return None
    for name in names:
        try:
            float(name)
            return None  # a data row, not a header
        except ValueError:
            pass
    return names


def true_params(d: DataConfig, true_k: int | None) -> MixtureParams:
    """The true mixture of a synthetic dataset (float64)."""
    if d.truth == "seed004":
        return datasets.seed004_params()
    if d.truth == "given":
        return MixtureParams(d.weights, d.means, d.covariances, "full")
    if d.truth == "seed003":
        # the notebook's parameters depend on its points per component (draws interleave)
        return datasets.seed003_data(d.n_components, d.n_features, d.n // d.n_components, seed=d.seed)[2]
    # Not seeded by separation/imbalance: random_mixture keeps the layout for one seed and
    # rescales it, so a separation sweep compares the same mixture pulled apart.
    seed = derived_seed("truth", d.seed, true_k, d.n_features, d.covariance_type)
    return datasets.random_mixture(true_k, d.n_features, separation=d.separation, imbalance=d.imbalance,
                                   covariance_type=d.covariance_type, seed=seed)


# -------------------------------------------------------------------------------------------
# one task
# -------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    task: Task
    row: dict
    params: MixtureParams | None
    history: History | None
    posterior: Posterior | None = None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def _option_error(error: TypeError) -> bool:
    text = str(error)
    return "unexpected keyword argument" in text or "got multiple values for" in text


def run_task(task: Task, bundle: DataBundle, config: Config) -> Outcome:
    """Fit and score one task. Fit errors become ``status=failed`` rows."""
    row: dict[str, Any] = {name: None for name in RESULT_COLUMNS}
    X = bundle.X
    row.update(task=task.key, cell=task.cell, dataset=task.dataset.name, n=int(X.shape[0]),
               n_features=int(X.shape[1]), n_components=task.n_components,
               covariance_type=task.covariance_type, true_n_components=task.true_n_components,
               separation=task.dataset.separation, imbalance=task.dataset.imbalance, init=task.init,
               seed=task.seed, method=task.method.name, routine=task.method.method,
               history=f"histories/{task.history_name}")
    options = dict(task.method.options)
    reg_covar = options.pop("reg_covar", config.model.reg_covar)
    model = build_model(task)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            result = fit(model, X, task.method.method, init=task.init, seed=task.seed,
                         reg_covar=reg_covar, **options)
        except TypeError as error:
            if _option_error(error):
                raise ConfigError(config.source, f"methods[{task.method_index}].options",
                                  f"routine {task.method.method!r} rejected its options: {error}",
                                  f"the options documented in help(mixtures.inference.ROUTINES"
                                  f"[{task.method.method!r}])") from None
            raise
        except Exception as error:  # a failed fit is a result, not a crash of the run
            row.update(status="failed", error=_first_line(error), time=time.perf_counter() - start,
                       history=None, warnings=_warning_text(caught))
            return Outcome(task, row, None, None)
        elapsed = time.perf_counter() - start
        row.update(status="ok", time=elapsed)
        try:
            row.update(score(result, bundle, config, task, reg_covar))
        except Exception as error:  # scoring a degenerate fit must not stop the run
            row.update(status="failed", error="scoring failed: " + _first_line(error))
        posterior = result.posterior
        if posterior is not None:
            row["posterior"] = f"posteriors/{task.posterior_name}"
            row.update(posterior_summary(posterior))
        row["warnings"] = _warning_text(caught)
    return Outcome(task, row, result.params, result.history, posterior)


def _finite_values(values: Any) -> Tensor:
    values = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    return values[torch.isfinite(values)]


def posterior_summary(posterior: Posterior) -> dict[str, Any]:
    """The posterior columns of a result row (see :data:`POSTERIOR_COLUMNS`)."""
    out: dict[str, Any] = {
        "posterior_draws": posterior.n_draws,
        "expected_components": posterior.expected_components(COMPONENT_THRESHOLD),
    }
    diagnostics = posterior.diagnostics or {}
    r_hat = [_finite_values(v) for v in (diagnostics.get("r_hat") or {}).values()]
    ess = [_finite_values(v) for v in (diagnostics.get("ess") or {}).values()]
    r_hat = torch.cat(r_hat) if r_hat else torch.empty(0)
    ess = torch.cat(ess) if ess else torch.empty(0)
    if r_hat.numel():
        out["max_r_hat"] = float(r_hat.max())
    if ess.numel():
        out["min_ess"] = float(ess.min())
    if "num_divergences" in diagnostics:
        out["num_divergences"] = int(diagnostics["num_divergences"])
    return out


def _warning_text(caught: Iterable[warnings.WarningMessage]) -> str | None:
    messages = list(dict.fromkeys(f"{w.category.__name__}: {str(w.message).splitlines()[0]}"
                                  for w in caught))
    return " | ".join(messages)[:500] if messages else None


def kl_seed(task: Task) -> int:
    """Seed of the Monte Carlo draws for KL to the truth: the cell's, the same for all its methods."""
    return derived_seed("kl", task.cell_key)


def score(result: FitResult, bundle: DataBundle, config: Config, task: Task, reg_covar: float
          ) -> dict[str, Any]:
    """Metrics of one fit (see :data:`METRIC_COLUMNS`)."""
    X, params = bundle.X, result.params
    log_likelihood = float(params.log_prob(X).sum())
    criteria = metrics.information_criteria(result, X)
    out: dict[str, Any] = {
        "log_likelihood": log_likelihood,
        "log_likelihood_per_point": log_likelihood / X.shape[0],
        "elbo": result.history.last("elbo"),
        "kl": result.history.last("kl"),
        "bic": criteria["bic"], "aic": criteria["aic"], "icl": criteria["icl"],
        "n_iter": int(result.n_iter),
        "converged": bool(result.converged),
        "singular": metrics.is_singular(params, reg_covar, rtol=config.metrics.singular_rtol),
    }
    truth = bundle.truth
    if truth is None:
        return out
    if params.n_components == truth.n_components:
        perm = metrics.align_components(params, truth)
        out.update(metrics.parameter_errors(params, truth, perm=perm))
        out["alignment"] = " ".join(str(int(i)) for i in perm)
    predicted = result.predict(X)
    out["ari"] = metrics.adjusted_rand_index(bundle.labels, predicted)
    out["nmi"] = metrics.normalized_mutual_info(bundle.labels, predicted)
    # common random numbers: every method of the cell is scored on the same draws of the truth
    kl, se = metrics.kl_divergence(truth, params, n_samples=config.metrics.kl_samples,
                                   seed=kl_seed(task))
    out["kl_truth"], out["kl_truth_se"] = kl, se
    out["kl_samples"] = config.metrics.kl_samples
    if bundle.X_test is not None:
        out["held_out_ll"] = metrics.held_out_log_likelihood(params, bundle.X_test)
        out["held_out_ll_truth"] = metrics.held_out_log_likelihood(truth, bundle.X_test)
    return out


# -------------------------------------------------------------------------------------------
# files
# -------------------------------------------------------------------------------------------
def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # round-trips exactly
    return str(value)


def write_history(path: Path, history: History) -> None:
    columns = history.to_dict()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(columns))
    for values in zip(*columns.values()):
        writer.writerow([repr(float(v)) for v in values])
    atomic_write_text(path, buffer.getvalue())


def read_history(path: str | Path) -> History:
    """Read a ``histories/*.csv`` file back into a :class:`History`."""
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.reader(stream)
        header = next(reader)
        rows = [[float(value) for value in row] for row in reader]
    return History.from_dict({name: [row[i] for row in rows] for i, name in enumerate(header)})


def _params_record(params: MixtureParams | None) -> dict | None:
    if params is None:
        return None
    return {"covariance_type": params.covariance_type, "weights": params.weights.tolist(),
            "locs": params.locs.tolist(), "covariances": params.covariances.tolist()}


def params_from_record(record: dict) -> MixtureParams | None:
    """The fitted ``MixtureParams`` stored in a task record (``None`` for failed fits)."""
    stored = record.get("params")
    if not stored:
        return None
    full = MixtureParams(stored["weights"], stored["locs"], stored["covariances"], "full")
    if stored["covariance_type"] == "full":
        return full
    # Re-express in the fitted type (the stored full matrices are exact for every type).
    cov = full.covariances
    native = {"tied": cov[0], "diag": cov.diagonal(dim1=-2, dim2=-1),
              "spherical": cov.diagonal(dim1=-2, dim2=-1).mean(-1)}[stored["covariance_type"]]
    return MixtureParams(full.weights, full.locs, native, stored["covariance_type"])


def _draw_indices(n_draws: int, limit: int = MAX_POSTERIOR_DRAWS) -> Tensor:
    """At most ``limit`` indices evenly spaced over ``0..n_draws-1`` (both ends kept)."""
    if n_draws <= limit:
        return torch.arange(n_draws)
    return torch.linspace(0, n_draws - 1, limit, dtype=torch.float64).round().long()


def write_posterior(path: Path, posterior: Posterior) -> None:
    """Store a bounded subsample of ``posterior``'s draws atomically (plain tensors, ``torch.save``).

    The file holds ``weights`` ``(S, K)``, ``locs`` ``(S, K, D)``, ``native``
    ``(S, *native_shape)`` (float64, CPU), ``indices`` ``(S,)`` (which of the
    routine's draws), ``covariance_type``, ``kind`` and ``n_draws`` (the routine's
    count), with ``S <= MAX_POSTERIOR_DRAWS``.
    """
    index = _draw_indices(posterior.n_draws)
    as_plain = lambda t: t.detach().index_select(0, index.to(t.device)).to("cpu", torch.float64).contiguous()  # noqa: E731
    payload = {"weights": as_plain(posterior.weights), "locs": as_plain(posterior.locs),
               "native": as_plain(posterior.native), "indices": index,
               "covariance_type": posterior.cov_type.name, "kind": str(posterior.kind),
               "n_draws": int(posterior.n_draws)}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        torch.save(payload, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_posterior(path: str | Path) -> Posterior:
    """A ``posteriors/*.pt`` file as a :class:`~mixtures.posterior.Posterior` (no diagnostics)."""
    from mixtures.covariance import get_covariance_type

    payload = torch.load(path, map_location="cpu", weights_only=True)
    return Posterior(weights=payload["weights"], locs=payload["locs"], native=payload["native"],
                     cov_type=get_covariance_type(payload["covariance_type"]), kind=payload["kind"])


def write_record(out_dir: Path, outcome: Outcome) -> dict:
    """History and posterior first, then the record: a record on disk means the task is complete."""
    if outcome.history is not None:
        write_history(out_dir / outcome.row["history"], outcome.history)
    if outcome.posterior is not None and outcome.row.get("posterior"):
        write_posterior(out_dir / outcome.row["posterior"], outcome.posterior)
    record = {"version": RECORD_VERSION, "key": outcome.task.key, "row": outcome.row,
              "params": _params_record(outcome.params)}
    atomic_write_text(out_dir / "records" / f"{outcome.task.key}.json", json.dumps(record, indent=1))
    return record


def read_record(out_dir: Path, task: Task) -> dict | None:
    path = out_dir / "records" / f"{task.key}.json"
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # unreadable: redo the task
    if record.get("version") != RECORD_VERSION or record.get("key") != task.key:
        return None
    for name in ("history", "posterior"):
        relative = record["row"].get(name)
        if relative and not (out_dir / relative).exists():
            return None
    return record


def rows_to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    for row in rows:
        writer.writerow([_cell_text(row.get(name)) for name in RESULT_COLUMNS])
    return buffer.getvalue()


def read_results(path: str | Path) -> list[dict[str, str]]:
    """``results.csv`` as a list of dicts of strings."""
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


# -------------------------------------------------------------------------------------------
# the run
# -------------------------------------------------------------------------------------------
@dataclass
class RunState:
    """What the report needs: the config, tasks, their records and the data."""

    config: Config
    out_dir: Path
    tasks: list[Task]
    records: dict[str, dict]
    data: DataCache
    smoke: bool = False

    def rows(self) -> list[dict]:
        return [self.records[t.key]["row"] for t in self.tasks if t.key in self.records]


def _progress(total: int, quiet: bool, description: str):
    from tqdm.auto import tqdm

    disable = quiet or not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
    return tqdm(total=total, disable=disable, desc=description, unit="fit", leave=False, file=sys.stderr)


def _prepare(config: Config | str | Path, smoke: bool) -> Config:
    if isinstance(config, (str, Path)):
        return load_config(config, smoke=smoke)
    if not isinstance(config, Config):
        raise TypeError(f"config must be a mixtures.config.Config or a path; got {type(config).__name__}.")
    if smoke and not config.smoke_applied:
        raw = config.to_dict()
        if config.smoke is not None:
            raw["smoke"] = config.smoke
        return parse_config(raw, source=config.source, smoke=True, header=config.header)
    return config


def _check_routines(config: Config) -> None:
    for i, method in enumerate(config.methods):
        if method.method not in ROUTINES:
            raise ConfigError(config.source, f"methods[{i}].method", f"unknown routine {method.method!r}.",
                              ", ".join(sorted(ROUTINES)))


def _check_priors(config: Config, tasks: list[Task], cache: DataCache) -> None:
    """Resolve every method's prior on its data: shapes and values that do not fit are config errors."""
    seen = set()
    for task in tasks:
        method = task.method
        if method.prior is None:
            continue
        X = cache.get(task).X
        signature = (task.method_index, task.n_components, task.covariance_type, int(X.shape[1]))
        if signature in seen:
            continue
        seen.add(signature)
        try:
            method.gaussian_prior().resolve(X, task.n_components, task.covariance_type)
        except (ValueError, RuntimeError) as error:
            raise ConfigError(config.source, f"methods[{task.method_index}].prior",
                              f"does not fit dataset {task.dataset.name!r} (D={X.shape[1]}, "
                              f"K={task.n_components}, {task.covariance_type}): {error}",
                              "mean_prior of length D, covariance_prior shaped for the covariance type "
                              "((D, D) full/tied, (D,) diag, a number for spherical), or null for the "
                              "data-scaled default") from None


def run_experiment(config: Config | str | Path, out_dir: str | Path, smoke: bool = False,
                   quiet: bool = False) -> Path:
    """Run every task of ``config`` into ``out_dir`` (resuming finished tasks); return ``out_dir``.

    Args:
        config: a validated :class:`~mixtures.config.Config` or the path of a YAML file.
        out_dir: output directory (created; see the module docstring for its layout).
        smoke: apply the config's ``smoke`` block (tiny sizes, few steps).
        quiet: no progress bar (it is also off when stderr is not a terminal).

    Raises:
        ConfigError: invalid config, data that cannot be made, or options a routine
            rejects; raised before anything is written.
    """
    config = _prepare(config, smoke)
    _check_routines(config)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(config.source, "", f"output path {str(out_dir)!r} exists and is not a directory.",
                          "a directory path")
    tasks = expand_tasks(config)
    cache = DataCache(config.source)
    for task in tasks:  # every dataset is made (or read) before anything is written
        cache.get(task)
    _check_priors(config, tasks, cache)
    records: dict[str, dict] = {}
    for task in tasks:
        record = read_record(out_dir, task)
        if record is not None:
            records[task.key] = record
    pending = [task for task in tasks if task.key not in records]
    # The first fit of each method runs before the directory is touched: options a routine
    # rejects are config errors and must not leave a half-made output behind.
    first: dict[str, Outcome] = {}
    done_methods = {records[t.key]["row"]["method"] for t in tasks if t.key in records}
    state = RunState(config, out_dir, tasks, records, cache, smoke=config.smoke_applied)
    progress = _progress(len(pending), quiet, config.name)
    try:
        for task in pending:
            if task.method.name in done_methods or task.method.name in first:
                continue
            progress.set_postfix_str(f"{task.dataset.name} {task.method.name}", refresh=False)
            first[task.key] = run_task(task, cache.get(task), config)
            done_methods.add(task.method.name)
            progress.update()
        out_dir.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(out_dir)
        atomic_write_text(out_dir / "config.yaml", config.to_yaml())
        for outcome in first.values():
            records[outcome.task.key] = write_record(out_dir, outcome)
        for task in pending:
            if task.key in records:
                continue
            progress.set_postfix_str(f"{task.dataset.name} {task.method.name}", refresh=False)
            records[task.key] = write_record(out_dir, run_task(task, cache.get(task), config))
            progress.update()
    except KeyboardInterrupt:
        if out_dir.is_dir():
            write_results(state)  # finished tasks are safe; a rerun resumes from them
        raise
    finally:
        progress.close()
    write_results(state)
    from mixtures import report

    figures = report.make_figures(state)
    report.write_report(state, figures)
    return out_dir


def _remove_stale_temporaries(out_dir: Path) -> None:
    """Delete the temporary files of atomic writes a killed run left behind (``.<name>.<random>.tmp``)."""
    for folder in (out_dir, out_dir / "records", out_dir / "histories", out_dir / "posteriors",
                   out_dir / "figures"):
        if folder.is_dir():
            for path in folder.glob(".*.tmp"):
                path.unlink(missing_ok=True)


def write_results(state: RunState) -> Path:
    """Rebuild ``results.csv`` and ``histories.csv`` from the finished tasks' records."""
    path = state.out_dir / "results.csv"
    atomic_write_text(path, rows_to_csv(state.rows()))
    write_histories(state)
    return path


def histories_to_csv(entries: Iterable[tuple[dict, History]]) -> str:
    """The long-format table of ``(result row, history)`` pairs (see the module docstring)."""
    entries = list(entries)
    traces = ["iteration"]
    for _, history in entries:
        traces += [name for name in history.columns if name not in traces]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(HISTORY_ID_COLUMNS) + traces)
    for row, history in entries:
        ids = [_cell_text(row.get(name)) for name in HISTORY_ID_COLUMNS]
        columns = history.to_dict()
        values = [columns.get(name) for name in traces]
        for i in range(len(history)):
            writer.writerow(ids + ["" if column is None else repr(float(column[i])) for column in values])
    return buffer.getvalue()


def write_histories(state: RunState) -> Path:
    """Write ``histories.csv``: every finished fit's history, one tidy long table (atomically)."""
    entries = []
    for task in state.tasks:
        record = state.records.get(task.key)
        relative = record["row"].get("history") if record is not None else None
        if relative and (state.out_dir / relative).exists():
            entries.append((record["row"], read_history(state.out_dir / relative)))
    path = state.out_dir / "histories.csv"
    atomic_write_text(path, histories_to_csv(entries))
    return path


def read_histories(path: str | Path) -> list[dict[str, str]]:
    """``histories.csv`` as a list of dicts of strings (one per history row)."""
    return read_results(path)
