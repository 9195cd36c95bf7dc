"""``"VEV"`` (mclust): ``Σ_k = λ_k D_k A D_kᵀ``, one shape, volumes and orientations vary.

Native tensor: Cholesky factors ``(K, D, D)``. Iterative M step (:func:`~.iterative.vev`,
Celeux & Govaert 1995): the orientations are the scatters' eigenvectors, then volumes and
the shape alternate on the eigenvalues.
"""

from __future__ import annotations

from mixtures.families.gaussian.covariance import iterative
from mixtures.families.gaussian.covariance.decomposed import DecomposedTril


class VEVCovariance(DecomposedTril):
    name = "VEV"
    description = "λ_k D_k A D_kᵀ (one shape, volumes and orientations vary)"
    isotropic = True

    def covariances_from_scatter(self, nk, scatter, reg_covar):
        return self.inner(iterative.vev, nk, scatter, reg_covar)
