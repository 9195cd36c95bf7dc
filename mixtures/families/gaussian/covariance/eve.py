"""``"EVE"`` (mclust): ``Σ_k = λ D A_k Dᵀ`` (one volume and orientation, shapes vary).

Native tensor: Cholesky factors ``(K, D, D)``. Iterative M step (:func:`~.iterative.eve`,
Browne & McNicholas 2014: closed-form shapes and volume given ``D``, an MM step on ``D`` given them).
"""

from __future__ import annotations

from mixtures.families.gaussian.covariance import iterative
from mixtures.families.gaussian.covariance.decomposed import DecomposedTril


class EVECovariance(DecomposedTril):
    name = "EVE"
    description = "λ D A_k Dᵀ (one volume and orientation, shapes vary)"
    isotropic = True

    def covariances_from_scatter(self, nk, scatter, reg_covar):
        return self.inner(iterative.eve, nk, scatter, reg_covar)
