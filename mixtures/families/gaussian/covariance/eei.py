"""``"EEI"`` (mclust): one diagonal covariance ``λ B`` shared by every component.

Native tensor: variances ``(D,)``; the statistic pools the components (``Σ_n x_n²`` ``(D,)``).
M step: ``diag(Σ_k W_k) / N``.
"""

from __future__ import annotations

import torch

from mixtures.errors import ParameterError
from mixtures.families.gaussian.covariance.base import check_symmetric, raise_not_positive_definite
from mixtures.families.gaussian.covariance.decomposed import SharedVariances


class EEICovariance(SharedVariances):
    name = "EEI"
    description = "λ B (one axis-aligned covariance for all components)"

    def native_shape(self, n_components, n_features):
        return (n_features,)

    def variance_columns(self, native):
        return native.unsqueeze(0)

    def native_from_any(self, covariances, n_components, n_features):
        if tuple(covariances.shape) == (n_features,) and not (n_features == 1 and n_components == 1):
            return covariances.clone()
        return super().native_from_any(covariances, n_components, n_features)

    def from_full(self, covariances):
        check_symmetric(covariances)
        full = covariances if covariances.dim() == 3 else covariances.unsqueeze(0)
        variances = full[0].diagonal()
        if not torch.equal(torch.diag_embed(variances).expand_as(full), full):
            raise ParameterError("'EEI' covariances must be one diagonal matrix for every component; pass its "
                                 "variances (D,) or use covariance_type='diag' (VVI).")
        return variances.clone()

    def scale_native(self, native, scale):
        return native * scale.square()

    def whitener(self, native, n_features):
        return native.rsqrt(), 0.5 * native.log().sum()

    def estimate(self, nk, means, second_moment, reg_covar):
        variances = self.pooled_diagonal(nk, means, second_moment, reg_covar) / nk.sum()
        if not (variances > 0).all():
            raise_not_positive_definite(None, "a variance is zero (no component spreads along that axis)",
                                        reg_covar)
        return variances
