"""``"VEE"`` (mclust): ``Σ_k = λ_k C, |C| = 1`` (one shape and orientation, volumes vary).

Native tensor: Cholesky factors ``(K, D, D)``. Iterative M step (:func:`~.iterative.vee`,
Celeux & Govaert 1995: ``C ∝ Σ_k W_k / λ_k``, ``λ_k = tr(W_k C⁻¹) / (D n_k)``).
"""

from __future__ import annotations

from mixtures.families.gaussian.covariance import iterative
from mixtures.families.gaussian.covariance.decomposed import DecomposedTril


class VEECovariance(DecomposedTril):
    name = "VEE"
    description = "λ_k C, |C| = 1 (one shape and orientation, volumes vary)"

    def covariances_from_scatter(self, nk, scatter, reg_covar):
        return self.inner(iterative.vee, nk, scatter, reg_covar)
