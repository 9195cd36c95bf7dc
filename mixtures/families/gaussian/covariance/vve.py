"""``"VVE"`` (mclust): ``Σ_k = λ_k D A_k Dᵀ`` (one orientation, volumes and shapes vary).

Native tensor: Cholesky factors ``(K, D, D)``. Iterative M step (:func:`~.iterative.vve`,
Browne & McNicholas 2014: closed-form ``Δ_k = diag(Dᵀ W_k D) / n_k`` given ``D``, an MM step on ``D`` given them).
"""

from __future__ import annotations

from mixtures.families.gaussian.covariance import iterative
from mixtures.families.gaussian.covariance.decomposed import DecomposedTril


class VVECovariance(DecomposedTril):
    name = "VVE"
    description = "λ_k D A_k Dᵀ (one orientation, volumes and shapes vary)"
    isotropic = True

    def covariances_from_scatter(self, nk, scatter, reg_covar):
        return self.inner(iterative.vve, nk, scatter, reg_covar)
