"""``"full"`` (mclust's VVV): every component has its own covariance matrix ``Σ_k = L_k L_kᵀ``.

Native tensor: lower Cholesky factors ``(K, D, D)``. Conjugate prior: ``Λ_k ~ Wishart(ν₀,
Ψ₀⁻¹)``, ``μ_k | Λ_k ~ N(m₀, (β₀ Λ_k)⁻¹)``; non-conjugate: LKJ correlations and scales per
component.
"""

from __future__ import annotations

import pyro
import pyro.distributions as pdist
import torch

from mixtures.core.family import COMPONENTS_PLATE
from mixtures.families.gaussian.covariance.base import (
    TrilStructure,
    check_symmetric,
    cholesky_checked,
    precision_to_scale_tril,
    sample_correlation,
    scale_distribution,
    symmetric_from_pairs,
)
from mixtures.families.gaussian.distributions import FusedMultivariateNormal, constant_terms, pair_coefficients


class FullCovariance(TrilStructure):
    name = "full"
    aliases = ("VVV",)
    description = "Σ_k (any symmetric positive definite matrix per component)"
    empty_mode = ("ν₀ + N_k - D", lambda dof, D: dof - D, "D = {D}", lambda D: 1)

    def native_shape(self, n_components, n_features):
        return (n_components, n_features, n_features)

    def to_full(self, native, n_components, n_features):
        return native @ native.transpose(-1, -2)

    def from_full(self, covariances):
        check_symmetric(covariances)
        return cholesky_checked(covariances, "Cholesky factorization failed")

    def n_parameters(self, n_components, n_features):
        return n_components * n_features * (n_features + 1) // 2

    def mahalanobis(self, X, locs, whitening):
        # One (n, D) x (D, K*D) matmul computes L_k^{-1} x for every k at once.
        K, D = locs.shape
        proj = X @ whitening.transpose(-1, -2).permute(1, 0, 2).reshape(D, K * D)
        offset = (whitening @ locs.unsqueeze(-1)).reshape(K * D)
        return (proj - offset).square_().reshape(-1, K, D).sum(-1)

    def component_distribution(self, locs, native, index=None):
        if index is not None:
            locs, native = locs[index], native[index]
        return FusedMultivariateNormal(locs, scale_tril=native)

    def log_joint_coefficients(self, log_weights, locs, whitening, half_log_det):
        white_locs = (whitening @ locs.unsqueeze(-1)).squeeze(-1)  # L_k⁻¹ μ_k
        linear = (whitening.transpose(-1, -2) @ white_locs.unsqueeze(-1)).squeeze(-1)  # Σ_k⁻¹ μ_k
        precision = whitening.transpose(-1, -2) @ whitening  # from the inverted Cholesky factor
        return torch.cat([constant_terms(log_weights, half_log_det, white_locs).unsqueeze(-1),
                          linear, pair_coefficients(precision)], dim=-1)

    def moment_from_features(self, sums, n_features):
        return symmetric_from_pairs(sums, n_features)

    def second_moment(self, X, resp):
        n, D = X.shape
        K = resp.shape[1]
        weighted = (resp.unsqueeze(-1) * X.unsqueeze(1)).reshape(n, K * D)
        return (weighted.transpose(0, 1) @ X).reshape(K, D, D)

    def estimate(self, nk, means, second_moment, reg_covar):
        cov = second_moment / nk[:, None, None] - means.unsqueeze(-1) * means.unsqueeze(-2)
        cov = 0.5 * (cov + cov.transpose(-1, -2))
        cov.diagonal(dim1=-2, dim2=-1).add_(reg_covar)
        return cholesky_checked(cov, "its estimate from the responsibilities is singular", reg_covar)

    def expected_mahalanobis(self, nk, sx, second_moment, locs, whitening):
        cross = sx.unsqueeze(-1) * locs.unsqueeze(-2)
        scatter = second_moment - cross - cross.transpose(-1, -2) \
            + nk[:, None, None] * locs.unsqueeze(-1) * locs.unsqueeze(-2)
        return ((whitening @ scatter) * whitening).sum()

    def declare_conjugate(self, prior, n_components):
        wishart = pdist.Wishart(prior.degrees_of_freedom, precision_matrix=prior.covariance_prior)
        with pyro.plate(COMPONENTS_PLATE, n_components):
            precision = pyro.sample("precision", wishart)
            locs = self._declare_means(prior, precision)
        return locs, precision_to_scale_tril(precision)

    def declare_nonconjugate(self, prior, n_components):
        s = prior.scale_prior_scale
        with pyro.plate(COMPONENTS_PLATE, n_components):
            locs = pyro.sample("locs", pdist.Normal(prior.mean_prior, s / prior.mean_precision.sqrt()).to_event(1))
            corr = sample_correlation(prior, s)
            scales = pyro.sample("scales", scale_distribution(prior, s).to_event(1))
        return locs, scales.unsqueeze(-1) * corr

    def posterior_mode(self, nk_raw, nk, xbar, diff, shrink, second_moment, prior):
        D = xbar.shape[1]
        scatter = second_moment - nk[:, None, None] * xbar.unsqueeze(-1) * xbar.unsqueeze(-2)
        psi = prior.covariance_prior + scatter + shrink[:, None, None] * diff.unsqueeze(-1) * diff.unsqueeze(-2)
        return psi / (prior.degrees_of_freedom + nk_raw - D)[:, None, None]

    def variational_update(self, nk, xbar, diff, shrink, second_moment, beta, prior, reg_covar, sklearn):
        D = xbar.shape[1]
        eye = torch.eye(D, dtype=nk.dtype, device=nk.device)
        scatter = second_moment / nk[:, None, None] - xbar.unsqueeze(-1) * xbar.unsqueeze(-2)
        scatter = 0.5 * (scatter + scatter.transpose(-1, -2)) + reg_covar * eye
        nu = prior.degrees_of_freedom + nk
        psi = prior.covariance_prior + nk[:, None, None] * scatter \
            + shrink[:, None, None] * diff.unsqueeze(-1) * diff.unsqueeze(-2)
        return nu, psi / nu[:, None, None]
