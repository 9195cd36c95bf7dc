"""Draws of the parameters from VB's ``q(θ)``, each with its log density ``log q(θ_s)``.

What :mod:`mixtures.families.gaussian.variational` samples for ``result.posterior`` (its
module docstring says which family the draws follow for each covariance type and for
scikit-learn's updates). The log density is on the prior's sites (weights, precisions,
means), the variables :meth:`~mixtures.core.family.MixtureFamily.log_prior` is a density of,
so the draws can be importance-weighted against the model's joint
(:mod:`mixtures.evaluation.variational`); ``None`` for a truncated Dirichlet process's
renormalized stick weights, which have no simple density, and with a frozen group (its draws are
the given values: :mod:`mixtures.families.gaussian.variational_frozen`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mixtures.core.posterior import Posterior
from mixtures.families.gaussian.covariance import precision_to_scale_tril
from mixtures.families.gaussian.params import MixtureParams
from mixtures.families.weights import stick_breaking

__all__ = ["sample_posterior"]


# -- posterior draws -------------------------------------------------------------------------
def _standard_gamma(shape: Tensor, generator: torch.Generator) -> Tensor:
    # torch.distributions cannot take a generator; the op underneath can.
    return torch._standard_gamma(shape.contiguous(), generator=generator)


def sample_posterior(q: Any, n_draws: int, generator: torch.Generator,
                     updates: str = "sklearn") -> Posterior:
    """``n_draws`` draws of the parameters from ``q(θ)`` (see the module docstring)."""
    K, D = q.n_components, q.n_features
    dtype, device = q.means.dtype, q.means.device
    cpu = lambda t: t.detach().to(device="cpu", dtype=torch.float64)  # noqa: E731  (the generator's device)
    S = n_draws
    if q.weight_prior == "fixed":  # frozen weights: the given values in every draw
        weights = cpu(q.weight_concentration).expand(S, K)
    elif q.weight_prior == "dirichlet":
        draws = _standard_gamma(cpu(q.weight_concentration).expand(S, K), generator)
        weights = draws / draws.sum(-1, keepdim=True)
    else:
        a, b = (cpu(t) for t in q.weight_concentration)
        ga = _standard_gamma(a.expand(S, -1), generator)
        gb = _standard_gamma(b.expand(S, -1), generator)
        fractions = ga / (ga + gb)
        if a.shape[0] == K:  # K sticks: stick weights of the first K components, renormalized
            weights = fractions * torch.cat([torch.ones_like(fractions[:, :1]),
                                             torch.cumprod(1 - fractions, -1)[:, :-1]], -1)
            weights = weights / weights.sum(-1, keepdim=True)
        else:
            weights = stick_breaking(fractions)
    nu, beta, means = cpu(q.degrees_of_freedom), cpu(q.mean_precision), cpu(q.means)
    noise = torch.randn(S, K, D, generator=generator, dtype=torch.float64)
    if q.precision_family == "fixed":  # frozen covariances: the given values in every draw
        native = cpu(q.native).expand(S, *q.native.shape)
        if q.cov_type.storage == "tril":
            scale = native.unsqueeze(1) if q.cov_type.shared else native
            locs = means + (scale @ noise.unsqueeze(-1)).squeeze(-1) / beta.sqrt()[:, None]
        else:
            locs = means + noise * (q.cov_type.variance_columns(native) / beta[:, None]).sqrt()
    elif q.cov_type.storage == "tril":
        whitening = cpu(q.cov_type.whitener(q.native, D)[0])  # L⁻¹ with E[Λ] = L⁻ᵀ L⁻¹ = ν W
        batch = (S,) if q.cov_type.shared else (S, K)
        # Bartlett: Λ = U A Aᵀ Uᵀ with U Uᵀ = W, A lower triangular,
        # A_ii² ~ χ²(ν − i), A_ij ~ N(0, 1) below the diagonal.
        offsets = torch.arange(D, dtype=torch.float64)
        chi2 = 2.0 * _standard_gamma((0.5 * (nu.unsqueeze(-1) - offsets)).expand(*batch, D), generator)
        A = torch.randn(*batch, D, D, generator=generator, dtype=torch.float64).tril(-1) \
            + torch.diag_embed(chi2.sqrt())
        U = whitening.transpose(-1, -2) / nu.sqrt().reshape(nu.shape + (1, 1))
        UA = U @ A
        precision = UA @ UA.transpose(-1, -2)
        native = precision_to_scale_tril(precision)
        scale = native.unsqueeze(1) if q.cov_type.shared else native
        locs = means + (scale @ noise.unsqueeze(-1)).squeeze(-1) / beta.sqrt()[:, None]
    else:
        shape = q.cov_type.gamma_shape(nu)
        shape = shape.expand(K, D) if shape.dim() == 2 else shape
        rate = shape * cpu(q.covariances)  # ν σ² / 2
        precision = _standard_gamma(shape.expand(S, *shape.shape), generator) / rate
        native = precision.reciprocal()
        variances = q.cov_type.variance_columns(native)
        locs = means + noise * (variances / beta[:, None]).sqrt()
    distribution = q.as_dict()
    distribution["updates"] = updates
    to = lambda t: t.to(dtype=dtype, device=device)  # noqa: E731
    draws = MixtureParams.from_native(to(weights), to(locs), to(native), q.cov_type, validate=False)
    if not bool(torch.isfinite(beta).all()):  # frozen means (β = ∞): the given values in every draw
        locs = means.expand(S, K, D)
    log_density = None
    # renormalized stick weights (a truncated DP) have no simple density, a frozen group's point mass none
    if q.weight_prior == "dirichlet" and not q.frozen:
        log_density = torch.distributions.Dirichlet(cpu(q.weight_concentration)).log_prob(weights)
        if q.cov_type.storage == "tril":
            log_density = log_density + _wishart_normal_log_density(precision, locs, nu, beta, means, U,
                                                                    q.cov_type.shared)
        else:
            normal = torch.distributions.Normal(means, (variances / beta[:, None]).sqrt())
            log_density = (log_density + torch.distributions.Gamma(shape, rate).log_prob(precision).flatten(1).sum(1)
                           + normal.log_prob(locs).flatten(1).sum(1))
    return Posterior(draws, kind="variational", distribution=distribution, log_density=log_density)


def _wishart_normal_log_density(precision: Tensor, locs: Tensor, nu: Tensor, beta: Tensor, means: Tensor,
                                U: Tensor, shared: bool) -> Tensor:
    """``(S,)`` ``Σ_k log W(Λ_k | ν_k, U Uᵀ) + log N(μ_k | m_k, (β_k Λ_k)⁻¹)`` of Bartlett draws
    ``precision`` ``(S, K, D, D)`` (``(S, D, D)`` shared: one Wishart term) and ``locs`` ``(S, K, D)``."""
    scale_tril = torch.linalg.cholesky(U @ U.transpose(-1, -2))
    log_density = torch.distributions.Wishart(nu, scale_tril=scale_tril).log_prob(precision)
    log_density = log_density if shared else log_density.sum(-1)
    per_component = precision.unsqueeze(1) if shared else precision
    normal = torch.distributions.MultivariateNormal(means, precision_matrix=beta[:, None, None] * per_component)
    return log_density + normal.log_prob(locs).sum(-1)


# -- the routine -----------------------------------------------------------------------------
