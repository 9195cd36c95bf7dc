"""``"tied"`` (mclust's EEE): one covariance matrix ``Σ = L Lᵀ`` shared by every component.

Native tensor: one lower Cholesky factor ``(D, D)``; the statistic is the pooled
``Σ_n x xᵀ`` (every point counts once, whatever its responsibilities). Conjugate prior:
one ``Λ ~ Wishart(ν₀, Ψ₀⁻¹)``, ``μ_k | Λ ~ N(m₀, (β₀ Λ)⁻¹)``.
"""

from __future__ import annotations

import pyro
import pyro.distributions as pdist
import torch

from mixtures.core.family import COMPONENTS_PLATE
from mixtures.errors import ParameterError
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


class TiedCovariance(TrilStructure):
    name = "tied"
    aliases = ("EEE",)
    description = "Σ (one matrix shared by every component)"
    shared = True

    def native_shape(self, n_components, n_features):
        return (n_features, n_features)

    def to_full(self, native, n_components, n_features):
        return (native @ native.T).expand(n_components, -1, -1).clone()

    def from_full(self, covariances):
        check_symmetric(covariances)
        if covariances.dim() == 3:
            if not torch.allclose(covariances, covariances[:1].expand_as(covariances)):
                raise ParameterError("'tied' covariances must be the same matrix for every component; "
                                     "pass one (D, D) matrix or use covariance_type='full'.")
            covariances = covariances[0]
        return cholesky_checked(covariances, "Cholesky factorization failed")

    def n_parameters(self, n_components, n_features):
        return n_features * (n_features + 1) // 2

    def mahalanobis(self, X, locs, whitening):
        white_X = X @ whitening.T
        white_locs = locs @ whitening.T
        return (white_X.unsqueeze(1) - white_locs).square_().sum(-1)

    def component_distribution(self, locs, native, index=None):
        if index is not None:
            locs = locs[index]
        return FusedMultivariateNormal(locs, scale_tril=native)

    def log_joint_coefficients(self, log_weights, locs, whitening, half_log_det):
        white_locs = locs @ whitening.T
        pairs = pair_coefficients(whitening.T @ whitening).expand(locs.shape[0], -1)
        return torch.cat([constant_terms(log_weights, half_log_det, white_locs).unsqueeze(-1),
                          white_locs @ whitening, pairs], dim=-1)

    def moment_from_features(self, sums, n_features):
        return symmetric_from_pairs(sums.sum(0), n_features)

    def second_moment(self, X, resp):
        # Σ_k Σ_n r_nk x xᵀ = Σ_n w_n x xᵀ with w_n = Σ_k r_nk (1 for soft and hard EM).
        return (resp.sum(1, keepdim=True) * X).T @ X

    def estimate(self, nk, means, second_moment, reg_covar):
        cov = (second_moment - (nk[:, None] * means).T @ means) / nk.sum()
        cov = 0.5 * (cov + cov.T)
        cov.diagonal().add_(reg_covar)
        return cholesky_checked(cov, "its estimate from the responsibilities is singular", reg_covar)

    def expected_mahalanobis(self, nk, sx, second_moment, locs, whitening):
        cross = sx.T @ locs
        scatter = second_moment - cross - cross.T + (nk[:, None] * locs).T @ locs
        return ((whitening @ scatter) * whitening).sum()

    def declare_conjugate(self, prior, n_components):
        precision = pyro.sample("precision", pdist.Wishart(prior.degrees_of_freedom,
                                                           precision_matrix=prior.covariance_prior))
        with pyro.plate(COMPONENTS_PLATE, n_components):
            locs = self._declare_means(prior, precision)
        return locs, precision_to_scale_tril(precision)

    def declare_nonconjugate(self, prior, n_components):
        s = prior.scale_prior_scale
        corr = sample_correlation(prior, s)
        scales = pyro.sample("scales", scale_distribution(prior, s).to_event(1))
        with pyro.plate(COMPONENTS_PLATE, n_components):
            locs = pyro.sample("locs", pdist.Normal(prior.mean_prior, s / prior.mean_precision.sqrt()).to_event(1))
        return locs, scales.unsqueeze(-1) * corr

    def posterior_mode(self, nk_raw, nk, xbar, diff, shrink, second_moment, prior):
        K, D = xbar.shape
        scatter = second_moment - (nk[:, None] * xbar).T @ xbar
        psi = prior.covariance_prior + scatter + (shrink[:, None] * diff).T @ diff
        return psi / (nk_raw.sum() + K + prior.degrees_of_freedom - D - 1)

    def variational_update(self, nk, xbar, diff, shrink, second_moment, beta, prior, reg_covar, sklearn):
        K, D = xbar.shape
        n = nk.sum()
        eye = torch.eye(D, dtype=nk.dtype, device=nk.device)
        scatter = (second_moment - (nk[:, None] * xbar).T @ xbar) / n
        scatter = 0.5 * (scatter + scatter.T) + reg_covar * eye
        share = 1.0 / K if sklearn else 1.0  # sklearn: the mean over the K copies of q(Λ)
        nu = prior.degrees_of_freedom + share * n
        psi = prior.covariance_prior + share * n * scatter + share * (shrink[:, None] * diff).T @ diff
        return nu, psi / nu
