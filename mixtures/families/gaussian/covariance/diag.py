"""``"diag"`` (mclust's VVI): every component has its own diagonal covariance.

Native tensor: variances ``(K, D)``. Conjugate prior: independent Normal–Gamma per
dimension, ``λ_kd ~ Gamma(ν₀/2, rate=Ψ₀_d/2)``, ``μ_kd | λ_kd ~ N(m₀_d, 1/(β₀ λ_kd))``.
"""

from __future__ import annotations

import pyro
import pyro.distributions as pdist
import torch

from mixtures.core.family import COMPONENTS_PLATE
from mixtures.errors import ParameterError
from mixtures.families.gaussian.covariance.base import (
    VarianceStructure,
    check_symmetric,
    checked_variances,
    clean_variance,
    scale_distribution,
)
from mixtures.families.gaussian.distributions import DiagonalNormal


class DiagCovariance(VarianceStructure):
    name = "diag"
    aliases = ("VVI",)
    description = "diag(σ²_k1, ..., σ²_kD) (axis-aligned, per component)"
    empty_mode = ("ν₀ + N_k - 1", lambda dof, D: dof - 1, "1", lambda D: 1)

    def native_shape(self, n_components, n_features):
        return (n_components, n_features)

    def variance_columns(self, native):
        return native

    def native_from_any(self, covariances, n_components, n_features):
        if tuple(covariances.shape) == (n_components, n_features):
            return covariances
        return super().native_from_any(covariances, n_components, n_features)

    def from_full(self, covariances):
        check_symmetric(covariances)
        diagonal = covariances.diagonal(dim1=-2, dim2=-1)
        if not torch.equal(torch.diag_embed(diagonal), covariances):
            raise ParameterError("'diag' covariances must be diagonal matrices; pass variances of shape "
                                 "(K, D) or use covariance_type='full'.")
        return diagonal.clone()

    def n_parameters(self, n_components, n_features):
        return n_components * n_features

    def scale_native(self, native, scale):
        return native * scale.square()

    def whitener(self, native, n_features):
        return native.rsqrt(), 0.5 * native.log().sum(-1)

    def component_distribution(self, locs, native, index=None):
        if index is not None:
            locs, native = locs[index], native[index]
        return DiagonalNormal(locs, native)

    def estimate(self, nk, means, second_moment, reg_covar):
        raw = second_moment / nk[:, None]
        return checked_variances(clean_variance(raw, raw - means.square()) + reg_covar, reg_covar)

    def prior_scale_shape(self, n_features):
        return (n_features,)

    def prior_scale(self, empirical):
        return empirical.diagonal().clone()

    def gamma_shape(self, nu):
        return (0.5 * nu)[:, None]

    def trace_with_precision(self, matrix, whitening, n_features):
        return (matrix * whitening.square()).sum(-1)

    def declare_conjugate(self, prior, n_components):
        gamma = pdist.Gamma(0.5 * prior.degrees_of_freedom, 0.5 * prior.covariance_prior)
        with pyro.plate(COMPONENTS_PLATE, n_components):
            precision = pyro.sample("precision", gamma.to_event(1))
            scale = (prior.mean_precision * precision).rsqrt()
            locs = pyro.sample("locs", pdist.Normal(prior.mean_prior, scale).to_event(1))
        return locs, precision.reciprocal()

    def declare_nonconjugate(self, prior, n_components):
        s = prior.scale_prior_scale
        with pyro.plate(COMPONENTS_PLATE, n_components):
            locs = pyro.sample("locs", pdist.Normal(prior.mean_prior, s / prior.mean_precision.sqrt()).to_event(1))
            scales = pyro.sample("scales", scale_distribution(prior, s).to_event(1))
        return locs, scales.square()

    def posterior_mode(self, nk_raw, nk, xbar, diff, shrink, second_moment, prior):
        scatter = second_moment - nk[:, None] * xbar.square()
        return (prior.covariance_prior + scatter + shrink[:, None] * diff.square()) \
            / (prior.degrees_of_freedom + nk_raw - 1)[:, None]

    def variational_update(self, nk, xbar, diff, shrink, second_moment, beta, prior, reg_covar, sklearn):
        scatter = second_moment / nk[:, None] - xbar.square() + reg_covar
        nu = prior.degrees_of_freedom + nk
        psi = prior.covariance_prior + nk[:, None] * scatter + shrink[:, None] * diff.square()
        return nu, psi / nu[:, None]
