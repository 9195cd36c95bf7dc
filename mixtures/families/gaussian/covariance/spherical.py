"""``"spherical"`` (mclust's VII; ``"V"`` for one-dimensional data): every component has its own variance ``σ²_k I``.

Native tensor: variances ``(K,)``; the statistic keeps per-dimension second moments
``(K, D)`` (their mean is the estimate). Conjugate prior: one ``λ_k ~ Gamma(ν₀/2,
rate=Ψ₀/2)`` per component shared by all dimensions (scikit-learn's parametrization).
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


class SphericalCovariance(VarianceStructure):
    name = "spherical"
    aliases = ("VII", "V")
    description = "σ²_k I (one variance per component)"
    isotropic = True
    empty_mode = ("ν₀ + D (N_k + 1) - 2", lambda dof, D: dof + D - 2, "2 - D = {two_minus_d}", lambda D: D)

    def native_shape(self, n_components, n_features):
        return (n_components,)

    def variance_columns(self, native):
        return native.unsqueeze(-1)

    def native_from_any(self, covariances, n_components, n_features):
        if tuple(covariances.shape) == (n_components,):
            return covariances
        return super().native_from_any(covariances, n_components, n_features)

    def from_full(self, covariances):
        check_symmetric(covariances)
        diagonal = covariances.diagonal(dim1=-2, dim2=-1)
        variances = diagonal[:, 0]
        if not torch.equal(torch.diag_embed(variances[:, None].expand_as(diagonal)), covariances):
            raise ParameterError("'spherical' covariances must be multiples of the identity; pass one "
                                 "variance per component (shape (K,)) or use covariance_type='diag'.")
        return variances.clone()

    def n_parameters(self, n_components, n_features):
        return n_components

    def scale_native(self, native, scale):
        return native * scale[0].square()

    def whitener(self, native, n_features):
        return native.rsqrt().unsqueeze(-1), 0.5 * n_features * native.log()

    def component_distribution(self, locs, native, index=None):
        if index is not None:
            locs, native = locs[index], native[index]
        return DiagonalNormal(locs, native.unsqueeze(-1))

    def estimate(self, nk, means, second_moment, reg_covar):
        raw = second_moment / nk[:, None]
        return checked_variances(clean_variance(raw, raw - means.square()).mean(-1) + reg_covar, reg_covar)

    def prior_scale_shape(self, n_features):
        return ()

    def prior_scale(self, empirical):
        return empirical.diagonal().mean()

    def gamma_shape(self, nu):
        return 0.5 * nu

    def trace_with_precision(self, matrix, whitening, n_features):
        return matrix * n_features * whitening.square()[:, 0]

    def declare_conjugate(self, prior, n_components):
        gamma = pdist.Gamma(0.5 * prior.degrees_of_freedom, 0.5 * prior.covariance_prior)
        D = prior.n_features
        with pyro.plate(COMPONENTS_PLATE, n_components):
            precision = pyro.sample("precision", gamma)
            scale = (prior.mean_precision * precision).rsqrt().unsqueeze(-1).expand(n_components, D)
            locs = pyro.sample("locs", pdist.Normal(prior.mean_prior, scale).to_event(1))
        return locs, precision.reciprocal()

    def declare_nonconjugate(self, prior, n_components):
        s = prior.scale_prior_scale
        with pyro.plate(COMPONENTS_PLATE, n_components):
            locs = pyro.sample("locs", pdist.Normal(prior.mean_prior, s / prior.mean_precision.sqrt()).to_event(1))
            scales = pyro.sample("scales", scale_distribution(prior, s.mean()))
        return locs, scales.square()

    def posterior_mode(self, nk_raw, nk, xbar, diff, shrink, second_moment, prior):
        D = xbar.shape[1]
        scatter = (second_moment - nk[:, None] * xbar.square()).sum(-1)
        psi = prior.covariance_prior + scatter + shrink * diff.square().sum(-1)
        return psi / (prior.degrees_of_freedom + D * (nk_raw + 1) - 2)

    def variational_update(self, nk, xbar, diff, shrink, second_moment, beta, prior, reg_covar, sklearn):
        D = xbar.shape[1]
        scatter = (second_moment / nk[:, None] - xbar.square()).mean(-1) + reg_covar
        count = nk if sklearn else D * nk  # the exact Gamma update counts every dimension
        nu = prior.degrees_of_freedom + count
        psi = prior.covariance_prior + count * (scatter + prior.mean_precision / beta * diff.square().mean(-1))
        return nu, psi / nu
