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
``spherical``  ``σ²_k = Σ_d Ψ_kd / (ν₀ + D (N_k + 1) - 2)``
=============  =====================================================

Weights: ``π_k ∝ max(N_k + α_k - 1, 0)`` (Dirichlet; for ``α_k < 1`` the density
is unbounded at the boundary and the mode is taken on it), or stick fractions
``v_k = N_k / (N_k + γ - 1 + Σ_{j>k} N_j)`` clamped to ``[0, 1]``
(stick-breaking). A flat limit (``β₀ → 0``, ``Ψ₀ → 0``, ``α = 1`` and ``ν₀`` at
the value making each denominator equal ``N_k``) gives back maximum likelihood.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mixtures.covariance import CovarianceType, cholesky_checked
from mixtures.params import MixtureParams
from mixtures.priors import ResolvedPrior, stick_breaking
from mixtures.suffstats import Summary, floored_counts


def _mode_weights(nk: Tensor, prior: ResolvedPrior) -> Tensor:
    if prior.weight_prior == "dirichlet":
        mass = (nk + prior.weight_concentration - 1).clamp_min(0)
        if not mass.sum() > 0:
            raise ValueError("the Dirichlet posterior has no interior mode (all N_k + α_k - 1 <= 0); "
                             "use weight_concentration >= 1 for MAP-EM.")
        return mass / mass.sum()
    tail = torch.flip(torch.cumsum(torch.flip(nk, (0,)), 0), (0,))  # Σ_{j>=k} N_j
    after = torch.cat([tail[1:], nk.new_zeros(1)])[:-1]  # Σ_{j>k} N_j for k < K
    head = nk[:-1]
    denominator = head + prior.weight_concentration - 1 + after
    fractions = torch.where(denominator > 0, head / denominator.clamp_min(torch.finfo(nk.dtype).tiny),
                            torch.ones_like(head)).clamp(0, 1)
    return stick_breaking(fractions)


def posterior_mode(summary: Summary, cov_type: CovarianceType, prior: ResolvedPrior,
                   reg_covar: float = 0.0) -> MixtureParams:
    """MAP parameters for the summarized responsibilities under a conjugate ``prior``."""
    if prior.kind != "conjugate":
        raise ValueError("MAP-EM needs a conjugate prior (GaussianPrior(kind='conjugate')); for the "
                         "non-conjugate prior use method='map' (Pyro) or method='nuts'.")
    nk_raw = summary.nk
    nk = floored_counts(nk_raw)
    K, D = summary.sx.shape
    beta0, dof, psi0 = prior.mean_precision, prior.degrees_of_freedom, prior.covariance_prior
    m0 = prior.mean_prior - summary.shift
    xbar = summary.sx / nk[:, None]
    shrink = beta0 * nk_raw / (beta0 + nk_raw)  # (K,)
    diff = xbar - m0
    locs = (beta0 * m0 + nk_raw[:, None] * xbar) / (beta0 + nk_raw)[:, None]
    if cov_type.name == "full":
        scatter = summary.sxx - nk[:, None, None] * xbar.unsqueeze(-1) * xbar.unsqueeze(-2)
        psi = psi0 + scatter + shrink[:, None, None] * diff.unsqueeze(-1) * diff.unsqueeze(-2)
        cov = psi / (dof + nk_raw - D)[:, None, None]
    elif cov_type.name == "tied":
        scatter = summary.sxx - (nk[:, None] * xbar).T @ xbar
        psi = psi0 + scatter + (shrink[:, None] * diff).T @ diff
        cov = psi / (nk_raw.sum() + K + dof - D - 1)
    elif cov_type.name == "diag":
        scatter = summary.sxx - nk[:, None] * xbar.square()
        cov = (psi0 + scatter + shrink[:, None] * diff.square()) / (dof + nk_raw - 1)[:, None]
    else:
        scatter = (summary.sxx - nk[:, None] * xbar.square()).sum(-1)
        psi = psi0 + scatter + shrink * diff.square().sum(-1)
        cov = psi / (dof + D * (nk_raw + 1) - 2)
    if cov_type.site == "scale_tril":
        cov = 0.5 * (cov + cov.transpose(-1, -2))
        cov.diagonal(dim1=-2, dim2=-1).add_(reg_covar)
        native = cholesky_checked(cov, "its posterior-mode estimate is singular", reg_covar)
    else:
        native = cov + reg_covar
        if not (native > 0).all():
            raise ValueError("a posterior-mode variance is not positive: raise the prior's "
                             "degrees_of_freedom or covariance_prior.")
    return MixtureParams.from_native(_mode_weights(nk_raw, prior), locs + summary.shift, native,
                                     cov_type, validate=False)
