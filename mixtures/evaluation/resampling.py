"""Bootstrap standard errors and percentile intervals of a Gaussian mixture's parameters
(mclust's ``MclustBootstrap``).

Each of B replicates refits the mixture by EM **started from the original fit's parameters**
(as mclust's replicates start from the original responsibilities) on:

``"nonparametric"``
    N rows of the data drawn with replacement (mclust's ``type = "bs"``);
``"parametric"``
    N points simulated from the fitted mixture (``"pb"``);
``"weighted"``
    the data with random point weights ``w = N · Dirichlet(1, ..., 1)`` (exponential draws over
    their mean; mclust's weighted likelihood bootstrap ``"wlbs"`` divides them by their maximum
    instead, a scale the maximum-likelihood estimates do not depend on). The weighted fit is
    EM whose M step takes the statistics of the responsibilities scaled by the weights,
    ``Σ_n w_n r_nk`` and its moments (:func:`_weighted_em`), to the same relative tolerance on
    ``Σ_n w_n log p(x_n)``.

Every replicate's components are matched to the original fit's (Hungarian algorithm on the
symmetric KL between components, :func:`mixtures.evaluation.alignment.align_components`), so a
replicate whose EM swapped labels still adds to the right component. Standard errors are the
replicates' standard deviations (``B − 1`` in the denominator, R's ``sd``) and intervals their
percentiles (linear interpolation, R's default ``quantile``), per weight, mean coordinate and
covariance entry.

A replicate whose refit fails (a singular covariance on a resample) is redrawn from its own next
seed, as mclust skips it and draws another; ``redrawn``, ``unconverged`` (refits that stopped on
their budget) and ``failed`` (replicates given up after ``MAX_ATTEMPTS`` draws, left out of the
estimates) are in the result. Replicates run in worker processes (``processes``) with the numbers
of a sequential run: :mod:`mixtures.evaluation.replicates`.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mixtures.core.result import FitResult
from mixtures.core.validation import as_data, make_generator
from mixtures.evaluation.alignment import align_components
from mixtures.evaluation.replicates import (
    FIT_ERRORS,
    attempt_seeds,
    check_replicates,
    map_replicates,
    replicate_seeds,
)
from mixtures.families.gaussian.model import GaussianMixture
from mixtures.families.gaussian.params import MixtureParams
from mixtures.inference import fit

__all__ = ["bootstrap", "BootstrapResult", "KINDS", "MAX_ATTEMPTS"]

KINDS = ("nonparametric", "parametric", "weighted")
#: draws per replicate before it is given up
MAX_ATTEMPTS = 10


@dataclass
class BootstrapResult:
    """What :func:`bootstrap` returns.

    Attributes:
        kind: ``"nonparametric"``, ``"parametric"`` or ``"weighted"``.
        estimate: the original fit's parameters (the replicates are aligned to its components).
        weights: ``(B', K)`` the replicates' weights (``B'`` = replicates that could be fitted).
        locs: ``(B', K, D)`` their means.
        covariances: ``(B', K, D, D)`` their covariances.
        n_boot: B asked for.
        redrawn, unconverged, failed: counts (module docstring).
    """

    kind: str
    estimate: MixtureParams
    weights: Tensor
    locs: Tensor
    covariances: Tensor
    n_boot: int
    redrawn: int
    unconverged: int
    failed: int

    def standard_errors(self) -> dict[str, Tensor]:
        """``{"weights": (K,), "locs": (K, D), "covariances": (K, D, D)}``: the replicates' standard deviations."""
        return {name: draws.std(0, correction=1) for name, draws in self._draws().items()}

    def intervals(self, level: float = 0.95) -> dict[str, tuple[Tensor, Tensor]]:
        """Percentile intervals at ``level``: name -> ``(lower, upper)``, each shaped as the parameter."""
        if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
            raise ValueError(f"level must be strictly between 0 and 1 (e.g. 0.95); got {level!r}.")
        probabilities = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
        return {name: tuple(torch.quantile(draws, probabilities.to(draws.dtype), dim=0))
                for name, draws in self._draws().items()}

    def table(self, level: float = 0.95) -> list[dict[str, Any]]:
        """The tidy table: one row per weight, mean coordinate and covariance entry (``i ≤ j``), with
        ``parameter``, ``component``, ``i``, ``j`` (None where it does not apply), ``estimate``,
        ``se``, ``lower``, ``upper`` and ``replicates``."""
        estimate = {"weights": self.estimate.weights, "locs": self.estimate.locs,
                    "covariances": self.estimate.covariances}
        errors, bounds = self.standard_errors(), self.intervals(level)
        K, D = self.locs.shape[1], self.locs.shape[2]
        index = {"weights": [(k, None, None) for k in range(K)],
                 "locs": [(k, i, None) for k in range(K) for i in range(D)],
                 "covariances": [(k, i, j) for k in range(K) for i in range(D) for j in range(i, D)]}
        rows = []
        for name, positions in index.items():
            for k, i, j in positions:
                at = tuple(p for p in (k, i, j) if p is not None)
                rows.append({"parameter": {"weights": "weight", "locs": "mean", "covariances": "covariance"}[name],
                             "component": k, "i": i, "j": j, "estimate": float(estimate[name][at]),
                             "se": float(errors[name][at]), "lower": float(bounds[name][0][at]),
                             "upper": float(bounds[name][1][at]), "replicates": int(self.weights.shape[0])})
        return rows

    def _draws(self) -> dict[str, Tensor]:
        if self.weights.shape[0] < 2:
            raise ValueError(f"standard errors need at least 2 replicates that could be fitted; "
                             f"{self.weights.shape[0]} of {self.n_boot} were. Use more replicates (n_boot).")
        return {"weights": self.weights, "locs": self.locs, "covariances": self.covariances}


def _weighted_em(model: GaussianMixture, X: Tensor, point_weights: Tensor, start: MixtureParams, reg_covar: float,
                 rtol: float, max_iter: int) -> tuple[MixtureParams, bool]:
    """Maximum weighted likelihood ``Σ_n w_n log p(x_n | θ)`` by EM from ``start``: ``(params, converged)``.

    ``X``: ``(N, D)``; ``point_weights``: ``(N,)`` ``w_n ≥ 0``. The M step is the family's, on the
    statistics of ``w_n r_nk`` (integer weights give exactly EM on the data with row ``n`` repeated
    ``w_n`` times). Convergence as :func:`mixtures.inference.em.run_em` with ``rtol``: the objective
    of consecutive E steps changed by at most ``rtol`` of itself; the M step that follows the
    converged E step is kept, as EM does.
    """
    shift = model.statistics_shift(X)
    params, previous = start, -math.inf
    for _ in range(max_iter):
        joint = params.joint_log_prob(X)                             # (N, K) log π_k + log p(x_n | k)
        log_norm = torch.logsumexp(joint, -1)                        # (N,)
        objective = float((point_weights * log_norm).sum())
        if not math.isfinite(objective):
            raise FloatingPointError(f"the weighted log-likelihood became {objective}.")
        weighted = torch.exp(joint - log_norm[:, None]) * point_weights[:, None]   # (N, K) w_n r_nk
        params = model.m_step(model.summarize(X, weighted, shift), reg_covar)
        if abs(objective - previous) <= rtol * abs(objective):
            return params, True
        previous = objective
    return params, False


def _replicate_fit(kind: str, model: GaussianMixture, X: Tensor, start: MixtureParams, options: dict[str, Any],
                   seed: int) -> tuple[MixtureParams, bool]:
    """One draw of ``kind`` from ``seed`` and its refit from ``start``: ``(params, converged)``."""
    N = X.shape[0]
    if kind == "parametric":
        data, _ = start.sample(N, seed=seed)
    elif kind == "nonparametric":
        data = X[torch.randint(N, (N,), generator=make_generator(seed)).to(X.device)]
    else:
        draws = torch.empty(N, dtype=torch.float64).exponential_(generator=make_generator(seed))
        point_weights = (draws * (N / draws.sum())).to(dtype=X.dtype, device=X.device)   # N · Dirichlet(1, ..., 1)
        return _weighted_em(model, X, point_weights, start, options["reg_covar"], options["rtol"],
                            options["max_iter"])
    result = fit(model, data, "em", init=start, threads=1, warn=False, **options)
    return result.params, bool(result.converged)


def _bootstrap_replicate(kind: str, model: GaussianMixture, X: Tensor, start: MixtureParams,
                         options: dict[str, Any], seed: int) -> tuple[MixtureParams | None, int, bool]:
    """``(aligned params or None, draws redrawn, converged)`` for one replicate."""
    for attempt, draw_seed in enumerate(attempt_seeds(seed, MAX_ATTEMPTS)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                params, converged = _replicate_fit(kind, model, X, start, options, draw_seed)
                return params.permuted(align_components(params, start)), attempt, converged
        except FIT_ERRORS:
            continue
    return None, MAX_ATTEMPTS, False


def _check_result(result: Any) -> GaussianMixture:
    if not isinstance(result, FitResult):
        raise TypeError(f"bootstrap takes a FitResult of mixtures.fit (the original fit); got {type(result).__name__}.")
    model = result.model
    if not isinstance(model, GaussianMixture) or not isinstance(result.params, MixtureParams):
        raise TypeError(f"bootstrap works on Gaussian mixtures; the result is of {type(model).__name__}.")
    if model.prior is not None:
        raise ValueError("bootstrap refits by maximum-likelihood EM; the result's model has a prior. Fit the "
                         "model without a prior (mixtures.GaussianMixture(K, covariance_type)) first.")
    return model


def bootstrap(result: FitResult, X: Any, kind: str = "nonparametric", *, n_boot: int = 999, seed: int = 0,
              processes: int | None = None, reg_covar: float = 1e-6, rtol: float = 1e-5,
              max_iter: int = 1000) -> BootstrapResult:
    """Bootstrap distribution of the parameters of ``result`` (a maximum-likelihood Gaussian fit to
    ``X`` ``(N, D)``), as mclust's ``MclustBootstrap(object, nboot, type)``: module docstring.

    Args:
        result: the original fit (``mixtures.fit(GaussianMixture(K, type), X, ...)``).
        X: the data it was fitted to.
        kind: ``"nonparametric"`` (resample rows), ``"parametric"`` (simulate from the fit) or
            ``"weighted"`` (weighted likelihood bootstrap).
        n_boot: B replicates (mclust's default 999).
        seed: base seed; replicate ``b`` uses its own child seed.
        processes: worker processes (``None``: every usable core; 1: this process); the numbers
            do not depend on it.
        reg_covar, rtol, max_iter: the refits' EM settings (mclust's relative tolerance 1e-5).

    Returns:
        :class:`BootstrapResult`: ``standard_errors()``, ``intervals(level)`` and ``table(level)``.
    """
    model = _check_result(result)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}.")
    check_replicates(n_boot)
    X = as_data(X)
    start = result.params.to(dtype=X.dtype, device=X.device)
    if X.shape[1] != start.n_features:
        raise ValueError(f"X has {X.shape[1]} features but the fit has {start.n_features}; pass the data it was "
                         "fitted to.")
    options = {"reg_covar": reg_covar, "rtol": rtol, "max_iter": max_iter}
    task = functools.partial(_bootstrap_replicate, kind, GaussianMixture(model.n_components, model.cov_type), X,
                             start, options)
    outcomes = map_replicates(task, replicate_seeds(seed, n_boot), processes)
    fitted = [o[0] for o in outcomes if o[0] is not None]
    K, D = start.n_components, start.n_features
    weights, locs, covariances = (X.new_zeros(0, K), X.new_zeros(0, K, D), X.new_zeros(0, K, D, D))
    if fitted:
        weights, locs, covariances = (torch.stack([p.weights for p in fitted]), torch.stack([p.locs for p in fitted]),
                                      torch.stack([p.covariances for p in fitted]))
    return BootstrapResult(kind=kind, estimate=start, weights=weights, locs=locs, covariances=covariances,
                           n_boot=n_boot, redrawn=sum(o[1] for o in outcomes if o[0] is not None),
                           unconverged=sum(1 for o in outcomes if o[0] is not None and not o[2]),
                           failed=n_boot - len(fitted))
