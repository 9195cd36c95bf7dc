"""``"EII"`` (mclust): one spherical covariance ``λ I`` shared by every component.

Native tensor: the variance ``λ`` ``()``; the statistic pools the components (``Σ_n x_n²``
``(D,)``). M step: ``λ = tr(Σ_k W_k) / (N D)``. One-dimensional data: mclust's ``"E"``.
"""

from __future__ import annotations

import torch

from mixtures.errors import ParameterError
from mixtures.families.gaussian.covariance.base import check_symmetric, raise_not_positive_definite
from mixtures.families.gaussian.covariance.decomposed import SharedVariances


class EIICovariance(SharedVariances):
    name = "EII"
    aliases = ("E",)
    description = "λ I (one spherical covariance for all components)"
    isotropic = True

    def native_shape(self, n_components, n_features):
        return ()

    def variance_columns(self, native):
        return native.reshape(1, 1)

    def native_from_any(self, covariances, n_components, n_features):
        if covariances.dim() == 0:
            return covariances.clone()
        return super().native_from_any(covariances, n_components, n_features)

    def from_full(self, covariances):
        check_symmetric(covariances)
        variance = covariances.reshape(-1)[0]
        eye = torch.eye(covariances.shape[-1], dtype=covariances.dtype, device=covariances.device)
        if not torch.equal((variance * eye).expand_as(covariances), covariances):
            raise ParameterError("'EII' covariances must be one multiple of the identity for every component; "
                                 "pass one variance (a 0-d tensor) or use covariance_type='spherical' (VII).")
        return variance.clone()

    def scale_native(self, native, scale):
        return native * scale[0].square()

    def whitener(self, native, n_features):
        return native.rsqrt().reshape(1), 0.5 * n_features * native.log()

    def estimate(self, nk, means, second_moment, reg_covar):
        D = means.shape[1]
        variance = self.pooled_diagonal(nk, means, second_moment, reg_covar).sum() / (nk.sum() * D)
        if not variance > 0:
            raise_not_positive_definite(None, "its variance is zero (all points coincide with their means)",
                                        reg_covar)
        return variance
