"""Closed-form EM (soft) and classification EM (hard), on any family's sufficient statistics.

The routine needs the family's capability ``"statistics"`` (:class:`mixtures.core.family.Statistics`:
an E-step pass returning additive statistics, a closed-form M step, the closed-form ELBO);
the parts about covariances below describe the Gaussian family's M step.

An iteration is one fused pass over the data (E step at ``θ_{t-1}``, summing the
statistics of its responsibilities ``q_t``) followed by the M step ``θ_t``.

History (see :mod:`mixtures.core.result`): row ``t`` holds ``log p(X | θ_t)`` and the
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
(covariance on the ``reg_covar`` floor, the parameters' ``collapsed_components``),
with a ``UserWarning`` when either is non-empty.

MAP-EM: when the model has a conjugate prior, the M step is the posterior mode
(:mod:`mixtures.families.gaussian.conjugate`), the objective is ``log p(X | θ) + log p(θ)`` and the
history gains a ``log_prior`` column; ``elbo`` then includes the log prior and
``kl = log_likelihood + log_prior - elbo`` stays ``KL(q || p(Z | X, θ)) ≥ 0``.
Convergence is tested on the objective.

MAP-EM with more components than the data support: a component left with less
than one point of responsibility (``N_k < 1``) has no posterior mode when the
prior gives an empty component none, i.e. ``weight_concentration < 1`` (a
Dirichlet, or a Dirichlet process whose tail holds less than one point) or
``degrees_of_freedom ≤ D`` (full; ``≤ 1`` diag, ``≤ 2 - D`` spherical): the
posterior density is unbounded at the boundary of the simplex, or the covariance
mode ``Ψ_k / (ν₀ + N_k - D)`` blows up. With
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
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from mixtures.core import comm
from mixtures.core.family import MixtureFamily
from mixtures.core.freeze import frozen_values, with_frozen
from mixtures.core.history import History
from mixtures.core.labels import with_labelled
from mixtures.core.missing import is_marginalizing
from mixtures.core.params import Params
from mixtures.core.pointwise import chunks_with, summed, weight_total
from mixtures.core.result import FitResult
from mixtures.core.stream import StreamingData, bounded_chunk_size
from mixtures.core.summary import Summary
from mixtures.core.validation import check_nonnegative_float, check_positive_int, resolve_dtype
from mixtures.errors import ConvergenceWarning, DivergenceError, PosteriorModeError, SingularCovarianceError
from mixtures.inference.registry import register


class EMStep:
    """One EM iteration split into inspectable halves (seed notebook 000 does this by hand).

    >>> step = EMStep(model, X)
    >>> summary = step.e_step(params)          # responsibilities' statistics
    >>> resp = step.responsibilities(params)   # (N, K), if you want to look at them
    >>> new_params = step.m_step(summary)

    ``model`` is any family with the ``"statistics"`` capability; ``X`` is ``(N, D)`` data in
    memory or streamed; ``labels`` ``(N,)`` fixes the responsibilities of the points with a label
    ``>= 0`` to their one-hot component (:mod:`mixtures.core.labels`). Streamed data with labels,
    weights (both :class:`~mixtures.core.pointwise.Aligned` with the stream) or missing values are
    summarized chunk by chunk, each chunk as in memory, and the chunks' statistics added up.
    """

    def __init__(self, model: MixtureFamily, X: Any, reg_covar: float = 1e-6, hard: bool = False,
                 chunk_size: int | None = None, distributed: bool = False,
                 accumulate_dtype: torch.dtype | None = None, labels: Tensor | None = None,
                 freeze: tuple[str, ...] = (), start: Params | None = None, sample_weight: Tensor | None = None):
        if not model.supports("statistics"):
            raise TypeError(f"EM needs a family with sufficient statistics; {model!r} has capabilities "
                            f"{sorted(model.capabilities)}.")
        self.model = model
        self.X = X
        self.reg_covar = check_nonnegative_float(reg_covar, "reg_covar")
        self.hard = hard
        self.chunk_size = bounded_chunk_size(chunk_size, X)  # buffers of at most N rows
        self.distributed = distributed
        self.accumulate_dtype = accumulate_dtype
        self.sample_weight = sample_weight  # (N,) or None (mixtures.core.weights)
        # every rank must take moments about the same point
        shift = model.statistics_shift(X)
        self.shift = comm.broadcast(shift) if distributed else shift
        self.prior = model.resolved_prior(X) if model.prior is not None else None
        self.labels = labels  # (N,), or a stream's Aligned labels (mixtures.core.pointwise)
        # streamed data with labels, weights or missing values: each chunk's pass as in memory, summed
        self.chunkwise = isinstance(X, StreamingData) and (labels is not None or sample_weight is not None
                                                           or is_marginalizing())
        # the points whose responsibilities the E step computes (a copy made once)
        self.unlabelled = X if labels is None or self.chunkwise else X[labels < 0]
        # frozen groups (mixtures.core.freeze) hold their values in ``start``
        self.frozen = frozen_values(model, start, freeze) if freeze else {}
        self.frozen_means = model.frozen_sites(freeze).get("means") if "means" in freeze else None
        if self.frozen_means is not None and self.prior is not None:
            raise ValueError("freeze=('means', ...) with a prior: the posterior mode of the covariances depends on "
                             "the means' prior; freeze weights or covariances, or fit without the prior.")

    def responsibilities(self, params: Params) -> Tensor:
        """``(N, K)`` responsibilities (one-hot for hard EM); in-memory data only."""
        if not isinstance(self.X, Tensor):
            raise TypeError("responsibilities of streamed data would not fit in memory; use e_step().")
        if self.hard:
            labels = params.joint_log_prob(self.X).argmax(-1)
            resp = torch.nn.functional.one_hot(labels, params.n_components).to(self.X.dtype)
        else:
            resp = params.responsibilities(self.X)
        if self.labels is not None:
            known = self.labels >= 0
            resp[known] = torch.nn.functional.one_hot(self.labels[known], params.n_components).to(resp.dtype)
        return resp

    def e_step(self, params: Params) -> Summary:
        """Statistics of this process's data, summed over ranks when distributed."""
        data_dtype = self.shift.dtype
        if params.dtype != data_dtype:  # float64 parameters of an accumulate_dtype run
            params = params.to(data_dtype)
        if self.chunkwise:
            summary = summed((self._summary(chunk, None, labels, weights, params) for chunk, labels, weights in
                              chunks_with(self.X, self.chunk_size, self.labels, self.sample_weight)), params)
        else:
            summary = self._summary(self.X, self.unlabelled, self.labels, self.sample_weight, params)
        return comm.all_reduce_summary(summary) if self.distributed else summary

    def _summary(self, X: Any, unlabelled: Any, labels: Tensor | None, sample_weight: Tensor | None,
                 params: Params) -> Summary:
        """The statistics of ``X`` ``(n, D)`` (``unlabelled``: its rows without a label, None to take them here)."""
        if unlabelled is None:
            unlabelled = X if labels is None else X[labels < 0]
        weights = sample_weight
        if weights is not None and labels is not None:  # the unlabelled points' weights
            weights = weights[labels < 0]
        weighted = {} if weights is None else {"sample_weight": weights}
        summary = None
        if unlabelled.shape[0]:
            summary = self.model.e_step(unlabelled, params, self.shift, hard=self.hard,
                                        chunk_size=self.chunk_size, accumulate_dtype=self.accumulate_dtype, **weighted)
        if labels is not None and (summary is None or bool((labels >= 0).any())):
            summary = with_labelled(self.model, X, params, labels, self.shift, summary, self.hard, sample_weight)
        return summary

    def m_step(self, summary: Summary, keep: Tensor | None = None, previous: Params | None = None) -> Params:
        """Maximum likelihood, or the posterior mode when the model has a prior; components
        where ``keep`` is True keep ``previous``'s values (hard EM's emptied components)."""
        if self.frozen_means is not None:  # the covariances of the scatter about the frozen means
            summary = self.model.summary_about_means(summary, self.frozen[self.frozen_means])
        params = self.model.m_step(summary, self.reg_covar, self.prior, keep=keep, previous=previous)
        return with_frozen(self.model, params, self.frozen)

    def weights(self, nk: Tensor) -> Tensor:
        """The M step's weights ``(K,)`` for responsibility masses ``nk`` ``(K,)`` alone."""
        return self.model.mode_weights(nk, self.prior)

    def log_prior(self, params: Params) -> float:
        """``log p(θ)`` (0 without a prior)."""
        return 0.0 if self.prior is None else float(self.model.log_prior(params, self.X))

    def __call__(self, params: Params) -> tuple[Params, Summary]:
        summary = self.e_step(params)
        return self.m_step(summary), summary


@dataclass
class _Degenerate:
    """What went degenerate during a run: emptied components (hard EM), components re-seeded
    once (soft EM), and ``(iteration, component)`` re-seeds."""

    empty: set[int] = field(default_factory=set)
    emptied_once: set[int] = field(default_factory=set)
    reseeded: list[tuple[int, int]] = field(default_factory=list)


def run_em(model: MixtureFamily, X: Any, init: Params, *, hard: bool = False,
           max_iter: int = 100, tol: float = 1e-3, rtol: float | None = None,
           reg_covar: float = 1e-6, chunk_size: int | None = None,
           warn: bool = True, distributed: bool = False, on_collapse: str = "error",
           accumulate_dtype: torch.dtype | str | None = None, labels: Tensor | None = None,
           freeze: tuple[str, ...] = (), sample_weight: Tensor | None = None) -> FitResult:
    """Run (hard) EM from ``init`` until convergence or ``max_iter`` iterations.

    Args:
        model: the mixture specification (a family with the ``"statistics"`` capability).
        X: ``(N, D)`` validated data, in memory or a ``StreamingData`` (one pass per
            iteration).
        init: starting parameters of the model.
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
            rank returns the same result (:mod:`mixtures.core.comm`).
        labels: ``(N,)`` component indices, ``-1`` for unknown (checked by ``fit``): the labelled
            points' responsibilities stay one-hot; the history's log-likelihood is then
            :func:`mixtures.core.labels.labelled_log_likelihood` (monotone under EM).
        freeze: parameter groups held at their values in ``init`` (:mod:`mixtures.core.freeze`): the
            M step maximizes over the others only, so the objective stays monotone.
        sample_weight: ``(N,)`` validated point weights (:mod:`mixtures.core.weights`): weighted
            statistics, log-likelihood and ELBO in every row; ``tol`` is per unit of weight
            (``N = Σ_n w_n``), and a re-seeded component's weight is ``1 / Σ_n w_n``.
    """
    max_iter = check_positive_int(max_iter, "max_iter", minimum=0)
    tol = check_nonnegative_float(tol, "tol")
    rtol = None if rtol is None else check_nonnegative_float(rtol, "rtol")
    if on_collapse not in ("error", "reseed"):
        raise ValueError(f"on_collapse must be 'error' or 'reseed'; got {on_collapse!r}.")
    if freeze and on_collapse == "reseed":  # a re-seed moves a component's mean and weight
        raise ValueError(f"freeze={tuple(freeze)} holds groups a re-seed would move: use on_collapse='error'.")
    step = EMStep(model, X, reg_covar=reg_covar, hard=hard, chunk_size=chunk_size, distributed=distributed,
                  accumulate_dtype=resolve_dtype(accumulate_dtype), labels=labels, freeze=freeze, start=init,
                  sample_weight=sample_weight)
    n = X.n_points if not isinstance(X, Tensor) else X.shape[0]
    if sample_weight is not None:
        total = weight_total(sample_weight)
        n = float(comm.all_reduce_sum(total)[0]) if distributed else float(total)
    elif distributed:
        n = comm.global_count(n, X.device)
    history, degenerate = History(), _Degenerate()
    start = time.perf_counter()
    params = init
    history.append(iteration=0, time=0.0, **_prior_column(step, params, 0))
    previous_objective, previous_summary = -math.inf, None
    converged, iteration = False, 0
    for iteration in range(1, max_iter + 1):
        summary = step.e_step(params)
        objective = _complete_with(history, step, summary, iteration - 1)
        summary = _reseed_emptied(step, summary, on_collapse, iteration, degenerate)
        new_params = _m_step_with_rule(step, summary, on_collapse, iteration, degenerate.reseeded,
                                       previous=params if hard else None, n_points=n)
        prior_row = _prior_column(step, new_params, iteration)
        history.append(iteration=iteration,
                       elbo=float(model.elbo(summary, new_params)) + prior_row.get("log_prior", 0.0),
                       time=time.perf_counter() - start, **prior_row)
        change = objective - previous_objective
        small = abs(change) <= rtol * abs(objective) if rtol is not None else abs(change) / n < tol
        params = new_params
        if small or _fixed_point(hard, summary, previous_summary):
            converged = True
            break
        previous_objective, previous_summary = objective, summary
    final = step.e_step(params)
    params = params.to(step.shift.dtype)
    _check_finite(final.log_likelihood, iteration)
    _complete_last_row(history, float(final.log_likelihood))
    if not converged and max_iter > 0 and warn:
        warnings.warn(
            f"{'hard ' if hard else ''}EM did not converge in max_iter={max_iter} iterations "
            f"(tolerance {'rtol=' + str(rtol) if rtol is not None else 'tol=' + str(tol)}); "
            "increase max_iter or tol, or try another initialization.", ConvergenceWarning, stacklevel=3)
    extras = _degenerate_extras(params, final, hard, reg_covar, degenerate, warn)
    final_objective = float(final.log_likelihood) + (history.last("log_prior") if step.prior is not None else 0.0)
    return FitResult(model=model, params=params, history=history, converged=converged,
                     n_iter=iteration if max_iter else 0, method="hard_em" if hard else "em",
                     objective=final_objective, init=init, extras=extras)


def _fixed_point(hard: bool, summary: Summary, previous: Summary | None) -> bool:
    """Hard EM's exact fixed point: a pass with bit-identical statistics to the previous one
    (unchanged assignments give identical sums; identical sums give identical parameters)."""
    return hard and previous is not None and all(torch.equal(a, b) for a, b in
                                                 zip(summary.additive(), previous.additive()))


def _complete_with(history: History, step: EMStep, summary: Summary, iteration: int) -> float:
    """Complete the last row with the pass's log-likelihood; return the objective it gives."""
    log_likelihood = summary.log_likelihood
    _check_finite(log_likelihood, iteration)
    _complete_last_row(history, float(log_likelihood))
    objective = float(log_likelihood) + (history.last("log_prior") if step.prior is not None else 0.0)
    if not math.isfinite(objective):  # a log prior of ±inf/NaN would make `change` NaN: never small
        raise DivergenceError(f"the MAP-EM objective log p(X | θ) + log p(θ) became {objective} at "
                              f"iteration {iteration} and cannot be tested for convergence.")
    return objective


def _reseed_emptied(step: EMStep, summary: Summary, on_collapse: str, iteration: int,
                    degenerate: _Degenerate) -> Summary:
    """Hard EM: note emptied components. Soft EM under ``"reseed"``: a component left with less
    than one point of responsibility restarts at the worst-explained point, once (if it
    empties again it stays, flagged at the end)."""
    if step.hard:
        degenerate.empty.update(torch.nonzero(summary.nk == 0).reshape(-1).tolist())
        return summary
    if on_collapse != "reseed" or step.distributed:
        return summary
    for k in torch.nonzero(summary.nk < 1.0).reshape(-1).tolist():
        if k in degenerate.emptied_once:
            continue
        reseeded = step.model.reseed_component(summary, k)
        if reseeded is None:  # the family cannot (a shared covariance)
            return summary
        degenerate.emptied_once.add(k)
        summary = reseeded
        degenerate.reseeded.append((iteration, k))
    return summary


def _degenerate_extras(params: Params, final: Summary, hard: bool, reg_covar: float, degenerate: _Degenerate,
                       warn: bool) -> dict[str, Any]:
    """``extras`` flagging what is degenerate at the end (module docstring), with warnings."""
    extras: dict[str, Any] = {"reseeded": degenerate.reseeded}
    if degenerate.reseeded and warn:
        warnings.warn(f"re-seeded collapsed components (iteration, component): {degenerate.reseeded}",
                      UserWarning, stacklevel=4)
    # degenerate components at the end: empty (soft EM: less than one point of responsibility)
    # or sitting on the reg_covar floor (collapsed onto points without spread)
    extras["collapsed_components"] = params.collapsed_components(reg_covar)  # reg_covar = 0: numerically singular
    if hard:
        extras["labels"] = final.labels
        extras["empty_components"] = sorted(degenerate.empty)
        if degenerate.empty:
            warnings.warn(f"hard EM emptied component(s) {sorted(degenerate.empty)}; they keep their "
                          "last mean and covariance with weight ~0 (under a prior: the posterior-mode "
                          "weight of an empty component). Use fewer components or "
                          "another initialization.", UserWarning, stacklevel=4)
        return extras
    extras["empty_components"] = torch.nonzero(final.nk < 1.0).reshape(-1).tolist()
    flagged = sorted(set(extras["empty_components"]) | set(extras["collapsed_components"]))
    if flagged and warn:
        warnings.warn(f"EM ended with degenerate component(s) {flagged}: empty (less than one point "
                      f"of responsibility) {extras['empty_components']}, collapsed (covariance on the reg_covar floor "
                      f"or numerically singular) {extras['collapsed_components']}. Use fewer components, another "
                      "initialization, or on_collapse='reseed'.", UserWarning, stacklevel=4)
    return extras


def _check_finite(value: Tensor, iteration: int) -> None:
    if not torch.isfinite(value):
        raise DivergenceError(
            f"the log-likelihood became {float(value)} at iteration {iteration}: either a component "
            "collapsed onto a few points (its density is unbounded there: increase reg_covar or use "
            "fewer components) or some point has zero density under every component (values too "
            "large or too far out: standardize the data).")


def _m_step_with_rule(step: EMStep, summary: Summary, on_collapse: str, iteration: int,
                      reseeded: list[tuple[int, int]], previous: Params | None = None,
                      n_points: float | None = None) -> Params:
    """The M step, re-seeding collapsed components (or, under a prior, components without a
    posterior mode) one by one when asked to.

    ``previous`` (hard EM): components the pass left empty keep its values and get the
    weight of their own (zero) count; the others are estimated from their statistics alone.
    """
    kept = summary.nk == 0 if previous is not None else None
    for _ in range(step.model.n_components + 1):
        try:
            params = step.m_step(summary, keep=kept, previous=previous)
        except (SingularCovarianceError, PosteriorModeError) as error:
            fresh = None
            if on_collapse == "reseed" and error.component is not None and not step.distributed:
                fresh = step.model.reseed_component(summary, error.component)
            if fresh is None:
                raise
            summary = fresh
            if kept is not None:
                kept[error.component] = False
            reseeded.append((iteration, error.component))
            continue
        return _weigh_reseeded(params, summary, iteration, reseeded, n_points)
    raise SingularCovarianceError("every component collapsed; increase reg_covar or use fewer components.")


def _weigh_reseeded(params: Params, summary: Summary, iteration: int, reseeded: list[tuple[int, int]],
                    n_points: float | None = None) -> Params:
    """Give the components re-seeded in this iteration weight ``1/N`` (the others rescaled; ``N``:
    ``n_points`` when given, the total weight of a weighted fit, else the pass's point count)."""
    if not reseeded or reseeded[-1][0] != iteration:
        return params
    fresh = torch.tensor([k for it, k in reseeded if it == iteration], device=params.weights.device)
    weights = params.weights.clone()
    weights[fresh] = 1.0 / (summary.n_points if n_points is None else n_points)
    others = torch.ones_like(weights, dtype=torch.bool)
    others[fresh] = False
    weights[others] *= (1 - weights[fresh].sum()) / weights[others].sum()
    tensors = {**params.tensors(), "weights": weights}
    return type(params).from_tensors(tensors, params.spec(), validate=False)


def _prior_column(step: EMStep, params: Params, iteration: int) -> dict[str, float]:
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
          streaming=True, distributed=True, missing=True, flags_dead_start=True, labels=True, freeze=True,
          gap=_EM_GAP)
def fit_em(model: MixtureFamily, X: Tensor, init: Params, *, seed: int | None = None,
           reg_covar: float = 1e-6, max_iter: int = 100, tol: float = 1e-3, rtol: float | None = None,
           chunk_size: int | None = None, warn: bool = True, on_collapse: str = "error",
           accumulate_dtype: Any = None, distributed: bool = False, labels: Tensor | None = None,
           freeze: tuple[str, ...] = (), sample_weight: Tensor | None = None) -> FitResult:
    """Soft EM (deterministic given ``init``). Options: see :func:`run_em`."""
    return run_em(model, X, init, hard=False, reg_covar=reg_covar, distributed=distributed, labels=labels,
                  freeze=freeze, max_iter=max_iter, tol=tol, rtol=rtol, chunk_size=chunk_size, warn=warn,
                  on_collapse=on_collapse, accumulate_dtype=accumulate_dtype, sample_weight=sample_weight)


@register("hard_em", summary="classification EM: hard assignments, stops at an exact fixed point",
          requires=frozenset({"statistics"}), prior="optional", prior_kinds=("conjugate",),
          streaming=True, distributed=True, missing=True, own_labels=True, flags_dead_start=True, labels=True,
          freeze=True,
          gap="hard EM: q_t is the one-hot MAP assignment of the E step, a gap that stays positive")
def fit_hard_em(model: MixtureFamily, X: Tensor, init: Params, *, seed: int | None = None,
                reg_covar: float = 1e-6, max_iter: int = 100, tol: float = 1e-3, rtol: float | None = None,
                chunk_size: int | None = None, warn: bool = True, on_collapse: str = "error",
                accumulate_dtype: Any = None, distributed: bool = False, labels: Tensor | None = None,
                freeze: tuple[str, ...] = (), sample_weight: Tensor | None = None) -> FitResult:
    """Classification (hard) EM (deterministic given ``init``). Options: see :func:`run_em`."""
    return run_em(model, X, init, hard=True, reg_covar=reg_covar, distributed=distributed, labels=labels,
                  freeze=freeze, max_iter=max_iter, tol=tol, rtol=rtol, chunk_size=chunk_size, warn=warn,
                  on_collapse=on_collapse, accumulate_dtype=accumulate_dtype, sample_weight=sample_weight)
