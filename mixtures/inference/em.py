"""Closed-form EM (soft) and classification EM (hard), on sufficient statistics.

An iteration is one fused pass over the data (E step at ``θ_{t-1}``, summing the
statistics of its responsibilities ``q_t``) followed by the M step ``θ_t``.

History (see :mod:`mixtures.result`): row ``t`` holds ``log p(X | θ_t)`` and the
ELBO of ``(q_t, θ_t)``, computed in closed form from the statistics; row 0 is the
initialization (its ELBO is NaN: no ``q`` produced it). The log-likelihood of
``θ_t`` is only known after the next pass, so each row is completed one pass
late, and a final pass completes the last one (as scikit-learn's final E step).

Convergence follows scikit-learn: stop when the per-point mean log-likelihood
changed by less than ``tol`` between consecutive E steps (or, with ``rtol``, by
less than ``rtol`` relative to its magnitude, as seed notebook 002 did). Hard EM
also stops at a fixed point: when a pass gives bit-identical statistics to the
previous one (unchanged assignments give identical sums, and identical sums give
identical parameters), a test that needs no stored labels, so it streams.

Hard EM leaves an empty component where it was (previous mean and covariance)
with weight ≈ 0 and lists it in ``extras["empty_components"]``.

Degenerate components: with ``on_collapse="error"`` (default) a covariance that
stops being positive definite raises ``SingularCovarianceError`` naming the
component; with ``on_collapse="reseed"`` that component restarts at the
worst-explained point of the pass (lowest ``log p(x | θ)``) with the covariance
of all the data and weight 1/N, and ``extras["reseeded"]`` lists
``(iteration, component)`` pairs (not for ``"tied"``, nor distributed runs).

MAP-EM: when the model has a conjugate prior, the M step is the posterior mode
(:mod:`mixtures.conjugate`), the objective is ``log p(X | θ) + log p(θ)`` and the
history gains a ``log_prior`` column; ``elbo`` then includes the log prior and
``kl = log_likelihood + log_prior - elbo`` stays ``KL(q || p(Z | X, θ)) ≥ 0``.
Convergence is tested on the objective.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import torch
from torch import Tensor

from mixtures import distributed as dist_utils
from mixtures.conjugate import posterior_mode
from mixtures.errors import ConvergenceWarning, DivergenceError, SingularCovarianceError
from mixtures.inference.registry import register
from mixtures.model import GaussianMixture
from mixtures.params import MixtureParams
from mixtures.result import FitResult, History
from mixtures.suffstats import Summary, default_shift, e_step, elbo, m_step, reseed_component
from mixtures.validation import check_nonnegative_float, check_positive_int, resolve_dtype


class EMStep:
    """One EM iteration split into inspectable halves (seed notebook 000 does this by hand).

    >>> step = EMStep(model, X)
    >>> summary = step.e_step(params)          # responsibilities' statistics
    >>> resp = step.responsibilities(params)   # (N, K), if you want to look at them
    >>> new_params = step.m_step(summary)
    """

    def __init__(self, model: GaussianMixture, X: Tensor, reg_covar: float = 1e-6,
                 hard: bool = False, chunk_size: int | None = None, distributed: bool = False,
                 accumulate_dtype: torch.dtype | None = None):
        self.model = model
        self.X = X
        self.reg_covar = check_nonnegative_float(reg_covar, "reg_covar")
        self.hard = hard
        self.chunk_size = chunk_size
        self.distributed = distributed
        self.accumulate_dtype = accumulate_dtype
        # every rank must take moments about the same point
        self.shift = dist_utils.broadcast(default_shift(X)) if distributed else default_shift(X)
        self.prior = model.resolved_prior(X) if model.prior is not None else None

    def responsibilities(self, params: MixtureParams) -> Tensor:
        """``(N, K)`` responsibilities (one-hot for hard EM); in-memory data only."""
        if not isinstance(self.X, Tensor):
            raise TypeError("responsibilities of streamed data would not fit in memory; use e_step().")
        if self.hard:
            labels = params.joint_log_prob(self.X).argmax(-1)
            return torch.nn.functional.one_hot(labels, params.n_components).to(self.X.dtype)
        return params.responsibilities(self.X)

    def e_step(self, params: MixtureParams) -> Summary:
        """Statistics of this process's data, summed over ranks when distributed."""
        data_dtype = self.shift.dtype
        if params.dtype != data_dtype:  # float64 parameters of an accumulate_dtype run
            params = params.to(data_dtype)
        summary = e_step(self.X, params, self.shift, hard=self.hard, chunk_size=self.chunk_size,
                         accumulate_dtype=self.accumulate_dtype)
        return dist_utils.all_reduce_summary(summary) if self.distributed else summary

    def m_step(self, summary: Summary) -> MixtureParams:
        """Maximum likelihood, or the posterior mode when the model has a prior."""
        if self.prior is not None:
            return posterior_mode(summary, self.model.cov_type, self.prior, self.reg_covar)
        return m_step(summary, self.model.cov_type, self.reg_covar)

    def log_prior(self, params: MixtureParams) -> float:
        """``log p(θ)`` (0 without a prior)."""
        return 0.0 if self.prior is None else float(self.model.log_prior(params, self.X))

    def __call__(self, params: MixtureParams) -> tuple[MixtureParams, Summary]:
        summary = self.e_step(params)
        return self.m_step(summary), summary


def _check_finite(value: Tensor, iteration: int) -> None:
    if not torch.isfinite(value):
        raise DivergenceError(
            f"the log-likelihood became {float(value)} at iteration {iteration}: either a component "
            "collapsed onto a few points (its density is unbounded there: increase reg_covar or use "
            "fewer components) or some point has zero density under every component (values too "
            "large or too far out: standardize the data)."
        )


def _restore_empty(new: MixtureParams, old: MixtureParams, empty: Tensor) -> MixtureParams:
    """Keep an empty component's mean and covariance from the previous iteration."""
    locs = torch.where(empty[:, None], old.locs, new.locs)
    native = new.native
    if new.native.dim() > 0 and new.native.shape[0] == new.n_components and new.covariance_type != "tied":
        mask = empty.reshape((-1,) + (1,) * (native.dim() - 1))
        native = torch.where(mask, old.native, new.native)
    return MixtureParams.from_native(new.weights, locs, native, new.cov_type, validate=False)


def run_em(model: GaussianMixture, X: Tensor, init: MixtureParams, *, hard: bool = False,
           max_iter: int = 100, tol: float = 1e-3, rtol: float | None = None,
           reg_covar: float = 1e-6, chunk_size: int | None = None,
           warn: bool = True, distributed: bool = False, on_collapse: str = "error",
           accumulate_dtype: torch.dtype | str | None = None) -> FitResult:
    """Run (hard) EM from ``init`` until convergence or ``max_iter`` iterations.

    Args:
        model: the mixture specification.
        X: ``(N, D)`` validated data, in memory or a ``StreamingData`` (one pass per
            iteration).
        init: starting parameters (``MixtureParams`` of the model).
        hard: classification EM (hard assignments) instead of soft EM.
        max_iter: maximum iterations; 0 returns the initialization.
        tol: absolute tolerance on the change of the mean log-likelihood per point.
        rtol: if given, relative tolerance on the total log-likelihood instead.
        reg_covar: added to covariance diagonals in every M step.
        chunk_size: points per chunk of the fused pass.
        warn: emit a ``ConvergenceWarning`` when stopping unconverged.
        on_collapse: ``"error"`` or ``"reseed"`` (module docstring).
        accumulate_dtype: e.g. ``torch.float64`` with float32 data: every chunk is
            computed in float32, the sums over chunks and the M step in float64
            (the returned parameters are cast back to the data's dtype).
        distributed: ``X`` is this rank's shard of data spread over an initialized
            ``torch.distributed`` process group; statistics are all-reduced so every
            rank returns the same result (:mod:`mixtures.distributed`).
    """
    max_iter = check_positive_int(max_iter, "max_iter", minimum=0)
    tol = check_nonnegative_float(tol, "tol")
    rtol = None if rtol is None else check_nonnegative_float(rtol, "rtol")
    if on_collapse not in ("error", "reseed"):
        raise ValueError(f"on_collapse must be 'error' or 'reseed'; got {on_collapse!r}.")
    accumulate_dtype = resolve_dtype(accumulate_dtype)
    step = EMStep(model, X, reg_covar=reg_covar, hard=hard, chunk_size=chunk_size, distributed=distributed,
                  accumulate_dtype=accumulate_dtype)
    n = X.n_points if not isinstance(X, Tensor) else X.shape[0]
    if distributed:
        n = dist_utils.global_count(n)
    history = History()
    start = time.perf_counter()
    params = init
    history.append(iteration=0, time=0.0, **_prior_column(step, params))
    previous_ll = -math.inf
    previous_summary: Summary | None = None
    converged = False
    empty_components: set[int] = set()
    reseeded: list[tuple[int, int]] = []
    iteration = 0
    for iteration in range(1, max_iter + 1):
        summary = step.e_step(params)
        log_likelihood = summary.log_likelihood
        _check_finite(log_likelihood, iteration - 1)
        _complete_last_row(history, float(log_likelihood))
        objective = float(log_likelihood) + history.last("log_prior") if step.prior is not None \
            else float(log_likelihood)
        new_params = _m_step_with_rule(step, summary, on_collapse, iteration, reseeded)
        if hard:
            empty = summary.nk == 0
            if empty.any():
                empty_components.update(torch.nonzero(empty).reshape(-1).tolist())
                new_params = _restore_empty(new_params, params, empty)
        prior_row = _prior_column(step, new_params)
        history.append(iteration=iteration,
                       elbo=float(elbo(summary, new_params)) + prior_row.get("log_prior", 0.0),
                       time=time.perf_counter() - start, **prior_row)
        change = objective - previous_ll
        if rtol is not None:
            small = abs(change) <= rtol * abs(objective)
        else:
            small = abs(change) / n < tol
        fixed_point = hard and previous_summary is not None and torch.equal(summary.nk, previous_summary.nk) \
            and torch.equal(summary.sx, previous_summary.sx)
        params = new_params
        if small or fixed_point:
            converged = True
            break
        previous_ll = objective
        previous_summary = summary
    final = step.e_step(params)
    params = params.to(step.shift.dtype)
    _check_finite(final.log_likelihood, iteration)
    _complete_last_row(history, float(final.log_likelihood))
    if not converged and max_iter > 0 and warn:
        warnings.warn(
            f"{'hard ' if hard else ''}EM did not converge in max_iter={max_iter} iterations "
            f"(tolerance {'rtol=' + str(rtol) if rtol is not None else 'tol=' + str(tol)}); "
            "increase max_iter or tol, or try another initialization.",
            ConvergenceWarning, stacklevel=3)
    extras: dict[str, Any] = {"reseeded": reseeded}
    if reseeded and warn:
        warnings.warn(f"re-seeded collapsed components (iteration, component): {reseeded}", UserWarning,
                      stacklevel=3)
    if hard:
        extras["labels"] = final.labels
        extras["empty_components"] = sorted(empty_components)
        if empty_components:
            warnings.warn(f"hard EM emptied component(s) {sorted(empty_components)}; they keep their "
                          "last mean and covariance with weight ~0. Use fewer components or "
                          "another initialization.", UserWarning, stacklevel=3)
    final_objective = float(final.log_likelihood) + (history.last("log_prior") if step.prior is not None else 0.0)
    return FitResult(model=model, params=params, history=history, converged=converged,
                     n_iter=iteration if max_iter else 0, method="hard_em" if hard else "em",
                     objective=final_objective, init=init, extras=extras)


def _m_step_with_rule(step: EMStep, summary: Summary, on_collapse: str, iteration: int,
                      reseeded: list[tuple[int, int]]) -> MixtureParams:
    """The M step, re-seeding collapsed components one by one when asked to."""
    for _ in range(step.model.n_components + 1):
        try:
            params = step.m_step(summary)
        except SingularCovarianceError as error:
            if on_collapse != "reseed" or error.component is None or step.distributed:
                raise
            summary = reseed_component(summary, error.component, step.model.cov_type)
            reseeded.append((iteration, error.component))
            continue
        if reseeded and reseeded[-1][0] == iteration:
            fresh = torch.tensor([k for it, k in reseeded if it == iteration], device=params.weights.device)
            weights = params.weights.clone()
            weights[fresh] = 1.0 / summary.n_points
            others = torch.ones_like(weights, dtype=torch.bool)
            others[fresh] = False
            weights[others] *= (1 - weights[fresh].sum()) / weights[others].sum()
            params = MixtureParams.from_native(weights, params.locs, params.native, params.cov_type, validate=False)
        return params
    raise SingularCovarianceError("every component collapsed; increase reg_covar or use fewer components.")


def _prior_column(step: EMStep, params: MixtureParams) -> dict[str, float]:
    return {} if step.prior is None else {"log_prior": step.log_prior(params)}


def _complete_last_row(history: History, log_likelihood: float) -> None:
    """Set log p(X | θ) of the last row, and its KL gap when the row has an ELBO."""
    log_prior = history.last("log_prior") if "log_prior" in history else 0.0
    history.set_last(log_likelihood=log_likelihood, kl=log_likelihood + log_prior - history.last("elbo"))


@register("em")
def fit_em(model: GaussianMixture, X: Tensor, init: MixtureParams, seed: int | None = None,
           **options: Any) -> FitResult:
    """Soft EM (deterministic given ``init``). Options: see :func:`run_em`."""
    return run_em(model, X, init, hard=False, **options)


fit_em.supports_streaming = True
fit_em.supports_distributed = True


@register("hard_em")
def fit_hard_em(model: GaussianMixture, X: Tensor, init: MixtureParams, seed: int | None = None,
                **options: Any) -> FitResult:
    """Classification (hard) EM (deterministic given ``init``). Options: see :func:`run_em`."""
    return run_em(model, X, init, hard=True, **options)


fit_hard_em.supports_streaming = True
fit_hard_em.supports_distributed = True
