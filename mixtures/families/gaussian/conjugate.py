"""The posterior-mode M step of MAP-EM under the conjugate prior of :mod:`mixtures.priors`.

With responsibilities ``q`` summarized by ``N_k``, the means ``x̄_k`` and scatters
``S_k = Σ_n r_nk (x_n - x̄_k)(x_n - x̄_k)ᵀ``, the M step maximizes
``E_q[log p(X, Z | θ)] + log p(θ)``. The maximizer is the joint mode of the
Normal–Wishart posterior *in the model's site parametrization* (precisions), so
it is the same point Pyro's ``AutoDelta`` MAP finds on the same program:

``μ_k = (β₀ m₀ + N_k x̄_k) / (β₀ + N_k)`` and, with
``Ψ_k = Ψ₀ + S_k + β₀ N_k / (β₀ + N_k) (x̄_k - m₀)(x̄_k - m₀)ᵀ``:

=============  =====================================================
``full``       ``Σ_k = Ψ_k / (ν₀ + N_k - D)``
``tied``       ``Σ = Σ_k Ψ_k-terms / (N + K + ν₀ - D - 1)`` (Ψ₀ counted once)
``diag``       ``σ²_kd = Ψ_kd / (ν₀ + N_k - 1)``
``spherical``  ``σ²_k = (Ψ₀ + Σ_d (S_k + shrink terms)_dd) / (ν₀ + D (N_k + 1) - 2)`` (Ψ₀ once: one precision)
=============  =====================================================

Weights: ``π_k ∝ N_k + α_k - 1`` (Dirichlet), or stick fractions
``v_k = N_k / (N_k + γ - 1 + Σ_{j>k} N_j)`` (stick-breaking). A flat limit
(``β₀ → 0``, ``Ψ₀ → 0``, ``α = 1`` and ``ν₀`` at the value making each
denominator equal ``N_k``) gives back maximum likelihood.

When the mode does not exist (the rule)
---------------------------------------
Every denominator above, and every weight exponent (``N_k + α_k - 1`` for the
Dirichlet, ``γ - 1 + Σ_{j>k} N_j`` for stick ``k``'s ``1 - v_k``), is positive
once the component (or the stick-breaking tail after ``k``) holds at least one
point of responsibility. Below one point the mode exists only if the prior alone
gives an *empty* component one: ``α_k ≥ 1`` (or ``γ ≥ 1``), and a positive
denominator at ``N_k = 0``, i.e. ``ν₀ > D`` (full), ``ν₀ > 1`` (diag),
``ν₀ > 2 - D`` (spherical); tied pools all ``N`` points and always has one.
Otherwise the posterior density is unbounded at the simplex boundary (``α_k < 1``:
the Dirichlet density grows as ``π_k^{α_k - 1}``; ``γ < 1``: the Beta density of
the last sticks as ``(1 - v)^{γ - 1}``) or the covariance mode
``Ψ_k / (ν₀ + N_k - D)`` blows up as ``N_k → 0`` and stops existing at a zero
denominator: the component is emptying and MAP has no answer for it.

So :func:`posterior_mode` raises :class:`~mixtures.errors.PosteriorModeError` for
a component with ``N_k < 1`` under such a prior (for stick-breaking: a tail
``k..K-1`` holding less than one point with ``γ < 1``, reported as component
``K-1``, whose mass enters every tail), naming ``N_k``, the prior field and the
fixes: ``method="vb"`` (a posterior over the weights handles sparse priors),
fewer components, a prior with a mode for empty components
(``weight_concentration >= 1``, ``degrees_of_freedom >= D + 2`` as mclust's
default), or EM's ``on_collapse="reseed"`` (:mod:`mixtures.inference.em`), which
restarts that component. Under ``α ≥ 1`` and ``ν₀ > D`` an emptied component
keeps a finite mode (weight ``∝ α_k - 1``, 0 for ``α_k = 1``; mean ``m₀``;
covariance ``Ψ₀ / (ν₀ - D)`` for full) and MAP-EM runs on.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mixtures.core.summary import Summary, floored_counts
from mixtures.errors import PosteriorModeError
from mixtures.families import weights as weight_priors
from mixtures.families.gaussian.covariance import CovarianceStructure
from mixtures.families.gaussian.params import MixtureParams
from mixtures.families.gaussian.priors import ResolvedPrior

#: responsibility mass below which a component counts as emptying (less than one point)
EMPTY_MASS = 1.0


def check_mode_exists(nk: Tensor, cov_type: CovarianceStructure, prior: ResolvedPrior,
                      covariances: bool = True) -> None:
    """Raise :class:`PosteriorModeError` when a component has no usable posterior mode.

    The rule of the module docstring: a component (or a stick-breaking tail) holding
    ``N_k < 1`` point of responsibility under a prior that gives an empty component
    no mode. ``nk`` ``(K,)`` are the raw responsibility masses; ``covariances=False``
    checks the weights only (hard EM keeps an empty component's covariance).
    """
    emptying = nk < EMPTY_MASS
    if not emptying.any():
        return
    K, D = nk.shape[0], prior.n_features
    reasons: dict[int, list[tuple[str, str]]] = {}  # component -> [(field, why)]
    masses: dict[int, float] = {}
    if prior.weight_prior == "dirichlet":
        alpha = prior.weight_concentration
        for k in torch.nonzero(emptying & (alpha < 1)).reshape(-1).tolist():  # loop over components
            reasons.setdefault(k, []).append((
                "weight_concentration",
                f"weight_concentration α_k = {float(alpha[k]):.3g} < 1 makes the Dirichlet posterior "
                f"density grow without bound as its weight π_k → 0 (exponent N_k + α_k - 1 = "
                f"{float(nk[k] + alpha[k] - 1):.3g})"))
    elif float(prior.weight_concentration) < 1 and K > 1:
        gamma = float(prior.weight_concentration)
        tails = torch.flip(torch.cumsum(torch.flip(nk, (0,)), 0), (0,))  # Σ_{j>=k} N_j
        short = torch.nonzero(tails[1:] < EMPTY_MASS).reshape(-1)
        if short.numel():
            first = int(short[0]) + 1  # the tail first..K-1 holds less than one point
            tail = float(tails[first])
            masses[K - 1] = tail
            reasons.setdefault(K - 1, []).append((
                "weight_concentration",
                f"under weight_prior='dirichlet_process' components {first}..{K - 1} hold N = {tail:.3g} "
                f"< 1 point together and weight_concentration γ = {gamma:.3g} < 1 makes the posterior "
                f"density of stick fraction {first - 1}, Beta(1 + N_{first - 1}, γ + {tail:.3g}), grow "
                "without bound as it → 1 (emptying the tail)"))
    if covariances and cov_type.empty_mode is not None:
        formula, at_zero, bound, per_point_of = cov_type.empty_mode
        dof = float(prior.degrees_of_freedom)
        if at_zero(dof, D) <= 0:
            for k in torch.nonzero(emptying).reshape(-1).tolist():  # loop over components
                per_point = per_point_of(D)  # what each point adds to the denominator
                denominator = at_zero(dof, D) + per_point * float(nk[k])
                reasons.setdefault(k, []).append((
                    "degrees_of_freedom",
                    f"degrees_of_freedom ν₀ = {dof:.3g} <= {bound.format(D=D, two_minus_d=2 - D)} leaves "
                    f"its covariance mode Ψ_k / ({formula}) = Ψ_k / {denominator:.3g} unbounded as "
                    "N_k → 0 (it does not exist at a denominator <= 0)"))
    if not reasons:
        return
    component = min(reasons)
    n_k = masses.get(component, float(nk[component]))
    fields = tuple(dict.fromkeys(field for field, _ in reasons[component]))
    others = sorted(set(reasons) - {component})
    also = f" (also component(s) {others})" if others else ""
    fix_prior = " and ".join(
        {"weight_concentration": "weight_concentration >= 1",
         "degrees_of_freedom": f"degrees_of_freedom >= D + 2 = {D + 2} (mclust's default)"}[field]
        for field in fields)
    reseed = "" if cov_type.shared else ", or fit(..., on_collapse='reseed') to restart it elsewhere"
    why = "; and ".join(why for _, why in reasons[component])
    raise PosteriorModeError(
        f"MAP-EM: the posterior mode of component {component}{also} does not exist: it holds "
        f"N_k = {float(nk[component]):.3g} < 1 point of responsibility and {why}. "
        "The model has more components than the data support. Fix: use method='vb' (it keeps a posterior "
        f"over the weights and handles sparse priors), fewer components, a prior with {fix_prior}"
        f"{reseed}.", component, n_k, fields)


def mode_weights(nk: Tensor, prior: ResolvedPrior) -> Tensor:
    """Posterior-mode weights ``(K,)`` for responsibility masses ``nk`` ``(K,)`` (checked first)."""
    check_mode_exists(nk, prior.cov_type, prior, covariances=False)
    return _mode_weights(nk, prior)


def _mode_weights(nk: Tensor, prior: ResolvedPrior) -> Tensor:
    return weight_priors.mode_weights(nk, prior.weight_prior, prior.weight_concentration)


def posterior_mode(summary: Summary, cov_type: CovarianceStructure, prior: ResolvedPrior,
                   reg_covar: float = 0.0) -> MixtureParams:
    """MAP parameters for the summarized responsibilities under a conjugate ``prior``.

    Raises :class:`~mixtures.errors.PosteriorModeError` for a component without a
    usable mode (module docstring), ``SingularCovarianceError`` for a mode that is
    singular to working precision.
    """
    if prior.kind != "conjugate":
        raise ValueError("MAP-EM needs a conjugate prior (GaussianPrior(kind='conjugate')); for the "
                         "non-conjugate prior use method='map' (Pyro) or method='nuts'.")
    nk_raw = summary.nk
    check_mode_exists(nk_raw, cov_type, prior)
    nk = floored_counts(nk_raw)
    beta0 = prior.mean_precision
    m0 = prior.mean_prior - summary.shift
    xbar = summary.sx / nk[:, None]
    shrink = beta0 * nk_raw / (beta0 + nk_raw)  # (K,)
    diff = xbar - m0
    locs = (beta0 * m0 + nk_raw[:, None] * xbar) / (beta0 + nk_raw)[:, None]
    cov = cov_type.posterior_mode(nk_raw, nk, xbar, diff, shrink, summary.sxx, prior)
    native = cov_type.regularized_native(cov, reg_covar, "its posterior-mode estimate is singular (raise the "
                                         "prior's degrees_of_freedom or covariance_prior)")
    return MixtureParams.from_native(_mode_weights(nk_raw, prior), locs + summary.shift, native,
                                     cov_type, validate=False)
