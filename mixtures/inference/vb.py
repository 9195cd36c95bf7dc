"""Coordinate-ascent variational Bayes (CAVI), generic over families with the capability.

``mixtures.fit(GaussianMixture(K, cov, prior=GaussianPrior()), X, method="vb")`` fits the
mean-field posterior ``q(Z) q(θ)`` of a mixture under a conjugate prior. One iteration is
one pass over the data (the family's expected pass: responsibilities under ``q(θ)`` and
their statistics, with the log-likelihood at the plug-in parameters), then the closed-form
update of ``q(θ)`` from those statistics. The mathematics (and scikit-learn's variant of
the updates, ``updates="sklearn"``) belong to the family:
:mod:`mixtures.families.gaussian.variational` for the Gaussian mixture.

History (:mod:`mixtures.core.result`)
-------------------------------------
Row 0 is ``q(θ)`` updated from the initial responsibilities ``r⁰`` (scikit-learn's
``_initialize``); row ``t`` is the state after ``t`` iterations.

``elbo``
    the exact ELBO ``E_q[log p(X, Z, θ)] − E_q[log q(Z, θ)]`` of the Bayesian model
    the updates are CAVI for (see above; all constants included, prior included).
``regularized_elbo``
    ``elbo − ½ reg_covar Σ_k N_k tr E[Λ_k]``: the bound the updates maximize
    (equal to ``elbo`` when ``reg_covar = 0``). ``tol`` applies to its change.
``sklearn_lower_bound``
    (``updates="sklearn"`` only) scikit-learn's ``lower_bound_`` formula, which drops
    constant terms: ``regularized_elbo − sklearn_lower_bound`` is the same number
    at every iteration.
``log_likelihood``
    exact ``log p(X | θ̄)`` at the plug-in parameters ``θ̄`` (``result.params``):
    ``E[π]`` normalized, ``m_k``, ``E[Λ_k]⁻¹`` (scikit-learn's ``weights_``,
    ``means_``, ``covariances_``). Like EM's, it is completed one pass late.
``kl``
    ``log_likelihood − elbo``. With a prior this is *not* a KL divergence (the
    ELBO bounds the marginal likelihood ``log p(X)``, not ``log p(X | θ̄)``); it is
    kept for the shared column layout.

Convergence follows scikit-learn: stop when the bound changed by less than ``tol``
(absolute, total over the data, not per point) between consecutive iterations; the
first iteration never converges.

Distributed
-----------
``fit(..., method="vb", distributed=True)``: every rank holds a shard. The prior's
data-scaled defaults are resolved on all the data, the moments are taken about
rank 0's shift, and every pass's sums over points (``N_k``, ``Σ r x``, second
moments, entropy, log-likelihood, point count) are all-reduced; the update of
``q(θ)`` and the bounds only use those sums, so every rank holds the same ``q(θ)``,
history and (seeded) posterior draws as one process on all the data.

"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import torch
from torch import Tensor

from mixtures.core import comm
from mixtures.core.family import MixtureFamily
from mixtures.core.history import History
from mixtures.core.labels import labelled_log_likelihood, with_labelled
from mixtures.core.params import Params
from mixtures.core.result import FitResult
from mixtures.core.stream import bounded_chunk_size
from mixtures.core.summary import Summary
from mixtures.core.validation import check_nonnegative_float, check_positive_int, make_generator
from mixtures.errors import ConvergenceWarning, DivergenceError
from mixtures.inference.registry import register

UPDATES = ("sklearn", "model")


def run_vb(model: MixtureFamily, X: Tensor, init: Params, *,
           init_responsibilities: Tensor | None = None, max_iter: int = 100, tol: float = 1e-3,
           reg_covar: float = 1e-6, updates: str = "sklearn", chunk_size: int | None = None,
           posterior_samples: int = 1000, seed: int | None = 0, warn: bool = True,
           distributed: bool = False, labels: Tensor | None = None,
           sample_weight: Tensor | None = None, freeze: tuple[str, ...] = ()) -> FitResult:
    """CAVI from the responsibilities of ``init`` (or ``init_responsibilities``).

    Args:
        model: a family with the ``"variational"`` capability and a conjugate prior (e.g.
            ``GaussianMixture(K, cov, prior=GaussianPrior())``).
        X: ``(N, D)`` validated data.
        init: starting parameters; their responsibilities ``init.responsibilities(X)``
            ``(N, K)`` start the iterations unless ``init_responsibilities`` is given.
        init_responsibilities: ``(N, K)`` starting ``q(Z)`` (``fit`` passes them when
            ``init`` is labels or responsibilities).
        max_iter: maximum iterations (0 returns the update from the initial ``q(Z)``).
        tol: stop when ``regularized_elbo`` changed by less than ``tol`` (total, in nats).
        reg_covar: added to each covariance estimate ``S_k`` (scikit-learn's rule).
        updates: ``"sklearn"`` (scikit-learn's updates) or ``"model"`` (exact CAVI for the
            declared sites); see :mod:`mixtures.families.gaussian.variational`.
        chunk_size: points per chunk of the fused pass.
        posterior_samples: number of draws from ``q(θ)`` in ``result.posterior``.
        seed: seeds the posterior draws (the iterations are deterministic).
        warn: emit a ``ConvergenceWarning`` when stopping unconverged.
        distributed: ``X`` is this rank's shard of data spread over an initialized
            ``torch.distributed`` process group (``fit(..., distributed=True)``). The
            prior's data-scaled defaults are resolved on all ranks' data, the shift is
            rank 0's, and every pass's sums (statistics, entropy, log-likelihood) are
            all-reduced, so every rank computes the same ``q(θ)``, ELBO, history and
            posterior draws as one process on all the data (equal to rounding).
            ``init_responsibilities``, if given, are this rank's ``(n_r, K)``.
        labels: ``(N,)`` partial labels (``-1``: unknown; :mod:`mixtures.core.labels`): the labelled
            points' ``q(z_n)`` stays one-hot on their label (their statistics enter every update, their
            entropy is 0); the history's ``log_likelihood`` is the labelled one at the plug-in ``θ̄``.
        sample_weight: ``(N,)`` validated point weights (:mod:`mixtures.core.weights`): every
            pass's responsibilities, entropy and log-likelihood are weighted, so the ELBO is that
            of the data with each point counted ``w_n`` times (``fit`` resolves a prior's data-scaled
            defaults on the weighted data: the family's ``with_weighted_prior``).
        freeze: parameter groups held at their values in ``init`` (:mod:`mixtures.core.freeze`): a point
            mass for each, the other groups' updates exact given it, the ``elbo`` that of the model
            conditional on the frozen values (the family's, e.g.
            :mod:`mixtures.families.gaussian.variational_frozen`).
    """
    max_iter = check_positive_int(max_iter, "max_iter", minimum=0)
    tol = check_nonnegative_float(tol, "tol")
    reg_covar = check_nonnegative_float(reg_covar, "reg_covar")
    posterior_samples = check_positive_int(posterior_samples, "posterior_samples")
    chunk_size = bounded_chunk_size(chunk_size, X)  # buffers of at most N rows
    cavi = model.variational(X, updates, reg_covar, distributed)
    if freeze:
        if not hasattr(cavi, "holding"):
            raise ValueError(f"vb: {type(model).__name__}'s variational updates cannot hold groups fixed (freeze=...).")
        cavi = cavi.holding(model.check_params(init), tuple(freeze))
    # every rank takes the moments about the same point
    shift = comm.broadcast(model.statistics_shift(X)) if distributed else model.statistics_shift(X)
    start = time.perf_counter()
    weighted = {} if sample_weight is None else {"sample_weight": sample_weight}
    if init_responsibilities is not None:
        expected = (X.shape[0], model.n_components)
        if tuple(init_responsibilities.shape) != expected:
            raise ValueError(f"init_responsibilities must have shape (N, K) = {expected}; "
                             f"got {tuple(init_responsibilities.shape)}.")
        resp = init_responsibilities.to(X)
        if labels is not None:
            resp = torch.where((labels >= 0)[:, None], torch.nn.functional.one_hot(labels.clamp(min=0),
                                                                                    model.n_components).to(X), resp)
        weighted_resp = resp if sample_weight is None else resp * sample_weight[:, None]
        summary = model.summarize(X, weighted_resp, shift, chunk_size)
        if sample_weight is not None:  # the entropy of q(Z) counts each point w_n times
            entropy = -torch.where(resp > 0, torch.special.xlogy(resp, resp), 0.0).sum(-1)
            summary = summary.replace(entropy=(entropy * sample_weight).sum())
    elif labels is not None:
        unlabelled, their = _unlabelled(X, labels, sample_weight)
        summary = model.e_step(unlabelled, model.check_params(init), shift, chunk_size=chunk_size, **their) \
            if unlabelled.shape[0] else None
        summary = with_labelled(model, X, init, labels, shift, summary, sample_weight=sample_weight)
    else:
        summary = model.e_step(X, model.check_params(init), shift, chunk_size=chunk_size, **weighted)
    if distributed:
        summary = comm.all_reduce_summary(summary)

    def step(summary: Summary) -> tuple[Any, dict[str, Tensor]]:
        q = cavi.update(summary)
        values = cavi.bounds(summary, q)
        if not torch.isfinite(values["elbo"]):
            raise DivergenceError(
                f"the ELBO became {float(values['elbo'])}: the data or the prior are degenerate "
                "(standardize the data, or check the prior's covariance_prior and degrees_of_freedom).")
        return q, values

    history = History()
    q, values = step(summary)
    history.append(iteration=0, time=0.0, **{k: float(v) for k, v in values.items()})
    previous = -math.inf
    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):
        summary = _expected_pass(model, cavi, X, q, shift, chunk_size, labels, weighted)
        _complete_last_row(history, float(summary.log_likelihood))
        q, values = step(summary)
        history.append(iteration=iteration, time=time.perf_counter() - start,
                       **{k: float(v) for k, v in values.items()})
        current = float(values["regularized_elbo"])
        if abs(current - previous) < tol:
            converged = True
            break
        previous = current
    if labels is None:
        final = float(cavi.expected_pass(X, q, shift, chunk_size, statistics=False, **weighted).log_likelihood)
    else:
        final = float(labelled_log_likelihood(cavi.plug_in(q), X, labels, sample_weight))
    _complete_last_row(history, final)
    if not converged and max_iter > 0 and warn:
        warnings.warn(f"variational Bayes did not converge in max_iter={max_iter} iterations (tol={tol}); "
                      "increase max_iter or tol, or try another initialization.",
                      ConvergenceWarning, stacklevel=3)
    posterior = cavi.sample_posterior(q, posterior_samples, make_generator(seed))
    return FitResult(model=model, params=cavi.plug_in(q), history=history, converged=converged,
                     n_iter=iteration if max_iter else 0, method="vb", objective=history.last("elbo"),
                     init=init, extras=cavi.extras(q), posterior=posterior)


def _expected_pass(model: MixtureFamily, cavi: Any, X: Tensor, q: Any, shift: Tensor, chunk_size: int | None,
                   labels: Tensor | None, weighted: dict[str, Tensor]) -> Summary:
    """The pass at ``q(θ)`` (``weighted``: ``{"sample_weight": (N,)}`` or ``{}``); with labels, over the
    unlabelled points, the labelled ones' one-hot ``q(z)`` added (:func:`mixtures.core.labels.with_labelled`,
    at the plug-in parameters for their log-likelihood)."""
    if labels is None:
        return cavi.expected_pass(X, q, shift, chunk_size, **weighted)
    weights = weighted.get("sample_weight")
    unlabelled, their = _unlabelled(X, labels, weights)
    summary = cavi.expected_pass(unlabelled, q, shift, chunk_size, **their) if unlabelled.shape[0] else None
    return with_labelled(model, X, cavi.plug_in(q), labels, shift, summary, sample_weight=weights)


def _unlabelled(X: Tensor, labels: Tensor, sample_weight: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
    """The unlabelled points ``(n, D)`` and their weights as keyword arguments (``{}`` without weights)."""
    unknown = labels < 0
    return X[unknown], ({} if sample_weight is None else {"sample_weight": sample_weight[unknown]})


def _complete_last_row(history: History, log_likelihood: float) -> None:
    history.set_last(log_likelihood=log_likelihood, kl=log_likelihood - history.last("elbo"))


@register("vb", summary="coordinate-ascent variational Bayes (CAVI) for the conjugate prior",
          requires=frozenset({"statistics", "variational"}), prior="required", prior_kinds=("conjugate",),
          distributed=True, missing=True, takes_responsibilities=True, labels=True, freeze=True,
          gap="VB: the gap also holds KL(q(θ) ‖ p(θ | X)) of the mean-field posterior",
          constraints={"updates": {"choices": UPDATES}})
def fit_vb(model: MixtureFamily, X: Tensor, init: Params, *, seed: int | None = 0,
           reg_covar: float = 1e-6, init_responsibilities: Tensor | None = None, max_iter: int = 100,
           tol: float = 1e-3, updates: str = "sklearn", chunk_size: int | None = None,
           posterior_samples: int = 1000, warn: bool = True, distributed: bool = False,
           labels: Tensor | None = None, sample_weight: Tensor | None = None,
           freeze: tuple[str, ...] = ()) -> FitResult:
    """Variational Bayes for a conjugate prior. Options: see :func:`run_vb`."""
    return run_vb(model, X, init, seed=seed, reg_covar=reg_covar, init_responsibilities=init_responsibilities,
                  max_iter=max_iter, tol=tol, updates=updates, chunk_size=chunk_size,
                  posterior_samples=posterior_samples, warn=warn, distributed=distributed, labels=labels,
                  sample_weight=sample_weight, freeze=freeze)
