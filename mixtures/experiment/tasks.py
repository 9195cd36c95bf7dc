"""Tasks: a config expanded into fits, each with a stable key and derived seeds.

A *task* is one fit: dataset (sweep values applied) × model × init × seed × method. A
*cell* is one dataset × sweep point × init × seed; its methods share the same data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from itertools import product
from typing import Any

from torch import Tensor

from mixtures.core.family import MixtureFamily
from mixtures.core.params import Params
from mixtures.experiment.config.data import DataConfig
from mixtures.experiment.config.methods import MethodConfig
from mixtures.experiment.config.schema import DATA_SWEEP_KEYS, Config
from mixtures.families.gaussian.model import GaussianMixture
from mixtures.families.noise import NoisyMixture, NoisyParams
from mixtures.families.student_t import StudentTMixture, StudentTParams

#: bump when the meaning of a record changes, so old records are recomputed rather than misread
#: 2: KL draws seeded from the cell (common random numbers); 3: parameters stored by mixtures.io
#: (bit-exact, native covariances), plus the initialization and the first iteration; 4: the inputs
#: that produced the record (digests of the task's config and its data, the package version) and
#: the size and digest of every file it refers to; 5: the ``problems`` column (a sampler's failed checks) and
#: ``max_r_hat`` NaN when a chain never moved; 6: ``held_out_lpd``, ``pareto_k``, ``elpd_loo`` and ``loo_bad_k``
RECORD_VERSION = 6


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
    fingerprint: str = ""  # SHA-256 of task_spec: the resolved config of this fit (key: its first 20 digits)

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
        return digest("cell", self.dataset.to_dict(), self.true_n_components, self.model_components,
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


def build_model(task: Task, X: Tensor) -> MixtureFamily:
    """The task's model on training data ``X`` ``(N, D)``: a ``GaussianMixture`` or ``StudentTMixture`` (the
    method's ``family``, with its prior if any), plus a noise component over ``X``'s bounding box when the
    method says ``noise: true``."""
    prior = task.method.gaussian_prior()
    if task.method.family == "student_t":
        clusters: MixtureFamily = StudentTMixture(task.n_components, task.covariance_type, prior=prior,
                                                  **task.method.family_options)
    else:
        clusters = GaussianMixture(task.n_components, task.covariance_type, prior=prior, **task.method.family_options)
    return NoisyMixture.over(X, clusters) if task.method.noise else clusters


def comparable_params(params: Params) -> Params:
    """What is compared with a Gaussian truth: a noisy fit's clusters (weights renormalized), a t fit's locations
    and scale matrices (its Gaussian view ``scale``: the shape of the inliers, not the t's covariance)."""
    if isinstance(params, NoisyParams):
        params = params.clusters()
    return params.scale if isinstance(params, StudentTParams) else params


def canonical(value: Any) -> str:
    """``value`` as canonical JSON (sorted keys): what keys and seeds are digests of."""
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


def digest(*parts: Any) -> str:
    return hashlib.sha256(canonical(parts).encode()).hexdigest()


def derived_seed(*parts: Any) -> int:
    """A 31-bit seed determined by ``parts`` (stable across runs and machines)."""
    return int(digest(*parts)[:8], 16) & 0x7FFFFFFF


def kl_seed(task: Task) -> int:
    """Seed of the Monte Carlo draws for KL to the truth: the cell's, the same for all its methods."""
    return derived_seed("kl", task.cell_key)


def task_spec(task: Task, config: Config) -> dict[str, Any]:
    """Everything of the resolved config that determines the task's numbers (data spec, model, init,
    seed, method, options, prior, metrics): what its key and fingerprint digest."""
    method = task.method
    spec = {"record": RECORD_VERSION, "dataset": task.dataset.to_dict(), "true_n_components": task.true_n_components,
            "n_components": task.n_components, "covariance_type": task.covariance_type,
            "reg_covar": config.model.reg_covar, "init": task.init, "seed": task.seed, "method": method.name,
            "routine": method.method, "options": method.options, "kl_samples": config.metrics.kl_samples,
            "singular_rtol": config.metrics.singular_rtol}
    if method.prior is not None:
        spec["prior"] = method.prior  # only when set: a prior of all defaults differs from none
    if method.family != "gaussian" or method.noise:  # only when set: older records keep their keys
        spec.update(family=method.family, noise=method.noise)
    if method.family_options:
        spec["family_options"] = method.family_options
    for key in ("missing", "impute"):  # only when set: older records keep their keys
        if getattr(method, key) is not None:
            spec[key] = getattr(method, key)
    return spec


def task_key(task: Task, config: Config) -> str:
    """A digest of :func:`task_spec` (20 hex digits): the name of the task's record."""
    return digest(task_spec(task, config))[:20]


def expand_tasks(config: Config) -> list[Task]:
    """All tasks of ``config`` in a fixed order: dataset, sweep point, init, seed, method."""
    sweep = config.sweep
    swept = [key for key in sweep if key not in ("init", "method")]
    inits = sweep.get("init", config.inits)
    method_names = list(sweep.get("method", [m.name for m in config.methods]))
    methods = sorted(((i, m) for i, m in enumerate(config.methods) if m.name in method_names),
                     key=lambda item: method_names.index(item[1].name))
    tasks: list[Task] = []
    cell = 0
    for dataset in config.data:
        keys = [key for key in swept if key not in DATA_SWEEP_KEYS or dataset.accepts(key)]
        for values in product(*(sweep[key] for key in keys)):
            point = dict(zip(keys, values))
            data = dataset.model_copy(update={key: value for key, value in point.items() if key in DATA_SWEEP_KEYS})
            model_k = point.get("n_components", config.model.n_components)
            covariance_type = point.get("covariance_type", config.model.covariance_type)
            for init, seed in product(inits, config.seeds):
                for method_index, method in methods:
                    if method.applies_to(dataset.name):
                        task = Task(index=len(tasks), cell=cell, dataset=data,
                                    n_components=method.n_components or model_k, covariance_type=covariance_type,
                                    init=init, seed=seed, method=method, method_index=method_index, point=point,
                                    model_components=model_k)
                        fingerprint = digest(task_spec(task, config))
                        tasks.append(replace(task, key=fingerprint[:20], fingerprint=fingerprint))
                cell += 1
    return tasks
