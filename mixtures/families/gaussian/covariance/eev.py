"""``"EEV"`` (mclust): ``Σ_k = λ D_k A D_kᵀ``, one volume and shape, orientations vary.

Native tensor: Cholesky factors ``(K, D, D)``. Closed-form M step (Celeux & Govaert 1995):
with ``W_k = L_k Ω_k L_kᵀ`` (eigenvalues in one order), ``D_k = L_k`` and
``λ A = Σ_k Ω_k / N``, i.e. ``Σ_k = L_k diag(Σ_j ω_j) L_kᵀ / N``.
"""

from __future__ import annotations

import torch

from mixtures.families.gaussian.covariance.base import raise_not_positive_definite
from mixtures.families.gaussian.covariance.decomposed import DecomposedTril


class EEVCovariance(DecomposedTril):
    name = "EEV"
    description = "λ D_k A D_kᵀ (one volume and shape, orientations vary)"
    isotropic = True

    def covariances_from_scatter(self, nk, scatter, reg_covar):
        eigenvalues, vectors = torch.linalg.eigh(scatter)  # ascending for every component
        pooled = eigenvalues.clamp_min(0.0).sum(0) / nk.sum()
        if not (pooled > 0).all():
            raise_not_positive_definite(None, "the shared shape has a zero axis (no component spreads along "
                                        "it)", reg_covar)
        return (vectors * pooled) @ vectors.transpose(-1, -2)
