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
with weight ≈ 0 and lists it in ``extras["empty_components"]``. The M step
estimates only the non-empty components: an empty one's statistics are replaced
by its previous covariance (unit mass at the shift) before estimating, so the
rule holds for any ``reg_covar``, 0 included, and the replaced estimate is
discarded. Under a prior its weight is still the posterior mode (0 for
``α_k = 1``), which the MAP-EM rule below may find not to exist.

Degenerate components: with ``on_collapse="error"`` (default) a covariance that
stops being positive definite raises ``SingularCovarianceError`` naming the
component; with ``on_collapse="reseed"`` that component restarts at the
worst-explained point of the pass (lowest ``log p(x | θ)``) with the covariance
of all the data and weight 1/N, and ``extras["reseeded"]`` lists
``(iteration, component)`` pairs (not for ``"tied"``, nor distributed runs).
Soft EM under ``"reseed"`` also restarts, once per component, a component left
with less than one point of responsibility. Every EM result flags what is
degenerate at the end: ``extras["empty_components"]`` (soft EM: ``N_k < 1``;
hard EM: components that were empty) and ``extras["collapsed_components"]``
(covariance on the ``reg_covar`` floor, :func:`mixtures.metrics.singular_components`),
with a ``UserWarning`` when either is non-empty.

MAP-EM: when the model has a conjugate prior, the M step is the posterior mode
(:mod:`mixtures.conjugate`), the objective is ``log p(X | θ) + log p(θ)`` and the
history gains a ``log_prior`` column; ``elbo`` then includes the log prior and
``kl = log_likelihood + log_prior - elbo`` stays ``KL(q || p(Z | X, θ)) ≥ 0``.
Convergence is tested on the objective.

MAP-EM with more components than the data support: a component left with less
than one point of responsibility (``N_k < 1``) has no posterior mode when the
prior gives an empty component none, i.e. ``weight_concentration < 1`` (a
Dirichlet, or a Dirichlet process whose tail holds less than one point) or
``degrees_of_freedom ≤ D`` (full; ``≤ 1`` diag, ``≤ 2 - D`` spherical): the
posterior density is unbounded at the boundary of the simplex, or the covariance
mode ``Ψ_k / (ν₀ + N_k - D)`` blows up (:mod:`mixtures.conjugate`). With
``on_collapse="error"`` this raises ``PosteriorModeError`` naming the component,
``N_k``, the prior field and the fixes (``method="vb"``, fewer components,
``weight_concentration >= 1`` and ``degrees_of_freedom >= D + 2``); with
``"reseed"`` the component restarts as a collapsed one does. With ``α ≥ 1`` and
``ν₀ > D`` an emptied component has a finite mode and MAP-EM runs on.

A non-finite objective never passes the convergence test: a log-likelihood or a
log prior that is not finite raises ``DivergenceError`` (naming the iteration).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from mixtures import distributed as dist_utils
from mixtures.conjugate import mode_weights, posterior_mode
from mixtures.errors import ConvergenceWarning, DivergenceError, PosteriorModeError, SingularCovarianceError
from mixtures.inference.registry import register
from mixtures.metrics import singular_components
from mixtures.model import GaussianMixture
from mixtures.params import MixtureParams
from mixtures.result import FitResult, History
from mixtures.suffstats import Summary, default_shift, e_step, elbo, floored_counts, m_step, reseed_component
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

    def weights(self, nk: Tensor) -> Tensor:
        """The M step's weights ``(K,)`` for responsibility masses ``nk`` ``(K,)`` alone."""
        if self.prior is not None:
            return mode_weights(nk, self.prior)
        floored = floored_counts(nk)
        return floored / floored.sum()

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


def _substitute_empty(summary: Summary, previous: MixtureParams, empty: Tensor) -> Summary:
    """Statistics in which every ``empty`` component carries unit mass at the shift with the
    scatter of its ``previous`` covariance (not for ``"tied"``, whose pooled statistic an
    empty component does not enter).

    Estimating from them gives that component back its previous covariance (divided by
    ``1 + 10 eps``, plus ``reg_covar``), positive definite for any ``reg_covar``; centring
    the mass at the shift keeps ``E[x²] - E[x]²`` free of cancellation. The caller
    discards these estimates (:func:`_restore_empty`): only the other components'
    statistics determine the M step.
    """
    covariances = previous.covariances.to(summary.sxx.dtype)  # (K, D, D)
    scatter = covariances if summary.sxx.dim() == 3 else covariances.diagonal(dim1=-2, dim2=-1)
    mask = empty.reshape((-1,) + (1,) * (scatter.dim() - 1))
    return replace(summary, nk=torch.where(empty, torch.ones_like(summary.nk), summary.nk),
                   sx=torch.where(empty[:, None], torch.zeros_like(summary.sx), summary.sx),
                   sxx=torch.where(mask, scatter, summary.sxx))


def _restore_empty(new: MixtureParams, old: MixtureParams, empty: Tensor, weights: Tensor) -> MixtureParams:
    """Keep an empty component's mean and covariance from the previous iteration; ``weights`` ``(K,)``."""
    locs = torch.where(empty[:, None], old.locs.to(new.locs.dtype), new.locs)
    native = new.native
    if new.native.dim() > 0 and new.native.shape[0] == new.n_components and new.covariance_type != "tied":
        mask = empty.reshape((-1,) + (1,) * (native.dim() - 1))
        native = torch.where(mask, old.native.to(native.dtype), new.native)
    return MixtureParams.from_native(weights, locs, native, new.cov_type, validate=False)


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
        n = dist_utils.global_count(n, X.device)
    history = History()
    start = time.perf_counter()
    params = init
    history.append(iteration=0, time=0.0, **_prior_column(step, params, 0))
    previous_ll = -math.inf
    previous_summary: Summary | None = None
    converged = False
    empty_components: set[int] = set()
    emptied_once: set[int] = set()
    reseeded: list[tuple[int, int]] = []
    iteration = 0
    for iteration in range(1, max_iter + 1):
        summary = step.e_step(params)
        log_likelihood = summary.log_likelihood
        _check_finite(log_likelihood, iteration - 1)
        _complete_last_row(history, float(log_likelihood))
        objective = float(log_likelihood) + history.last("log_prior") if step.prior is not None \
            else float(log_likelihood)
        if not math.isfinite(objective):  # a log prior of ±inf/NaN would make `change` NaN: never small
            raise DivergenceError(f"the MAP-EM objective log p(X | θ) + log p(θ) became {objective} at "
                                  f"iteration {iteration - 1} and cannot be tested for convergence.")
        if hard:
            empty_components.update(torch.nonzero(summary.nk == 0).reshape(-1).tolist())
        elif on_collapse == "reseed" and not step.distributed and model.cov_type.name != "tied":
            # soft EM: a component left with less than one point of responsibility restarts at
            # the worst-explained point, once (if it empties again it stays, flagged below)
            for k in torch.nonzero(summary.nk < 1.0).reshape(-1).tolist():
                if k not in emptied_once:
                    emptied_once.add(k)
                    summary = reseed_component(summary, k, model.cov_type)
                    reseeded.append((iteration, k))
        new_params = _m_step_with_rule(step, summary, on_collapse, iteration, reseeded,
                                       previous=params if hard else None)
        prior_row = _prior_column(step, new_params, iteration)
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
    # degenerate components at the end: empty (soft EM: less than one point of responsibility)
    # or sitting on the reg_covar floor (collapsed onto points without spread)
    extras["collapsed_components"] = singular_components(params, reg_covar) if reg_covar > 0 else []
    if not hard:
        extras["empty_components"] = torch.nonzero(final.nk < 1.0).reshape(-1).tolist()
        degenerate = sorted(set(extras["empty_components"]) | set(extras["collapsed_components"]))
        if degenerate and warn:
            warnings.warn(f"EM ended with degenerate component(s) {degenerate}: empty (less than one point "
                          f"of responsibility) {extras['empty_components']}, on the reg_covar floor "
                          f"{extras['collapsed_components']}. Use fewer components, another "
                          "initialization, or on_collapse='reseed'.", UserWarning, stacklevel=3)
    if hard:
        extras["labels"] = final.labels
        extras["empty_components"] = sorted(empty_components)
        if empty_components:
            warnings.warn(f"hard EM emptied component(s) {sorted(empty_components)}; they keep their "
                          "last mean and covariance with weight ~0 (under a prior: the posterior-mode "
                          "weight of an empty component). Use fewer components or "
                          "another initialization.", UserWarning, stacklevel=3)
    final_objective = float(final.log_likelihood) + (history.last("log_prior") if step.prior is not None else 0.0)
    return FitResult(model=model, params=params, history=history, converged=converged,
                     n_iter=iteration if max_iter else 0, method="hard_em" if hard else "em",
                     objective=final_objective, init=init, extras=extras)


def _m_step_with_rule(step: EMStep, summary: Summary, on_collapse: str, iteration: int,
                      reseeded: list[tuple[int, int]], previous: MixtureParams | None = None) -> MixtureParams:
    """The M step, re-seeding collapsed components (or, under a prior, components without a
    posterior mode) one by one when asked to.

    ``previous`` (hard EM): components the pass left empty keep its mean and covariance
    and get the weight of their own (zero) count; the others are estimated from their
    statistics alone (:func:`_substitute_empty`).
    """
    cov_type = step.model.cov_type
    kept = summary.nk == 0 if previous is not None else None
    for _ in range(step.model.n_components + 1):
        try:
            if kept is not None and kept.any():
                estimating = summary if cov_type.name == "tied" else _substitute_empty(summary, previous, kept)
                params = _restore_empty(step.m_step(estimating), previous, kept, step.weights(summary.nk))
            else:
                params = step.m_step(summary)
        except (SingularCovarianceError, PosteriorModeError) as error:
            if on_collapse != "reseed" or error.component is None or step.distributed or cov_type.name == "tied":
                raise
            summary = reseed_component(summary, error.component, cov_type)
            if kept is not None:
                kept[error.component] = False
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


def _prior_column(step: EMStep, params: MixtureParams, iteration: int) -> dict[str, float]:
    if step.prior is None:
        return {}
    log_prior = step.log_prior(params)
    if not math.isfinite(log_prior):
        where = ("a weight (or stick fraction) sits on the boundary where the prior's density is unbounded "
                 "(a weight of 0 under a weight_concentration below 1)") if log_prior == math.inf else \
            ("the parameters have zero (or undefined) prior density, e.g. a weight of 0 under a "
             "weight_concentration above 1")
        raise DivergenceError(
            f"the log prior log p(θ) is {log_prior} at iteration {iteration}: {where}. Start from "
            "parameters with positive weights, use weight_concentration = 1, fewer components, or method='vb'.")
    return {"log_prior": log_prior}


def _complete_last_row(history: History, log_likelihood: float) -> None:
    """Set log p(X | θ) of the last row, and its KL gap when the row has an ELBO."""
    log_prior = history.last("log_prior") if "log_prior" in history else 0.0
    history.set_last(log_likelihood=log_likelihood, kl=log_likelihood + log_prior - history.last("elbo"))


_EM_GAP = ("EM: q_t = p(Z | X, θ_{t−1}), the E step's posterior under the previous parameters, so the gap is "
           "KL(p(Z|X,θ_{t−1}) ‖ p(Z|X,θ_t)), what the M step moved the posterior; it shrinks to 0 at "
           "convergence (it would be exactly 0 right after the next E step, which is not what is recorded)")
@register("em", summary="closed-form EM on sufficient statistics (MAP-EM with a conjugate prior)",
          requires=frozenset({"statistics"}), prior="optional", prior_kinds=("conjugate",),
          streaming=True, distributed=True, gap=_EM_GAP)
def fit_em(model: GaussianMixture, X: Tensor, init: MixtureParams, *, seed: int | None = None,
           reg_covar: float = 1e-6, max_iter: int = 100, tol: float = 1e-3, rtol: float | None = None,
           chunk_size: int | None = None, warn: bool = True, on_collapse: str = "error",
           accumulate_dtype: Any = None, distributed: bool = False) -> FitResult:
    """Soft EM (deterministic given ``init``). Options: see :func:`run_em`."""
    return run_em(model, X, init, hard=False, reg_covar=reg_covar, distributed=distributed,
                  max_iter=max_iter, tol=tol, rtol=rtol, chunk_size=chunk_size, warn=warn,
                  on_collapse=on_collapse, accumulate_dtype=accumulate_dtype)


@register("hard_em", summary="classification EM: hard assignments, stops at an exact fixed point",
          requires=frozenset({"statistics"}), prior="optional", prior_kinds=("conjugate",),
          streaming=True, distributed=True, own_labels=True,
          gap="hard EM: q_t is the one-hot MAP assignment of the E step, a gap that stays positive")
def fit_hard_em(model: GaussianMixture, X: Tensor, init: MixtureParams, *, seed: int | None = None,
                reg_covar: float = 1e-6, max_iter: int = 100, tol: float = 1e-3, rtol: float | None = None,
                chunk_size: int | None = None, warn: bool = True, on_collapse: str = "error",
                accumulate_dtype: Any = None, distributed: bool = False) -> FitResult:
    """Classification (hard) EM (deterministic given ``init``). Options: see :func:`run_em`."""
    return run_em(model, X, init, hard=True, reg_covar=reg_covar, distributed=distributed,
                  max_iter=max_iter, tol=tol, rtol=rtol, chunk_size=chunk_size, warn=warn,
                  on_collapse=on_collapse, accumulate_dtype=accumulate_dtype)
