"""``"EVI"`` (mclust): ``Σ_k = λ A_k``, axis-aligned, one volume ``λ``, shapes vary.

Native tensor: variances ``(K, D)``. Closed-form M step (Celeux & Govaert 1995): with
``B_k = diag(W_k)``, ``A_k = B_k / |B_k|^{1/D}`` and ``λ = Σ_k |B_k|^{1/D} / N``.
"""

from __future__ import annotations

import torch

from mixtures.families.gaussian.covariance.base import raise_not_positive_definite
from mixtures.families.gaussian.covariance.decomposed import DecomposedVariances
from mixtures.families.gaussian.covariance.eigen import unit_determinant


class EVICovariance(DecomposedVariances):
    name = "EVI"
    description = "λ A_k (axis-aligned, one volume, shapes vary)"

    def variances_from_scatter(self, nk, diagonals, reg_covar):
        bad = torch.nonzero(~(diagonals > 0).all(-1)).reshape(-1)
        if bad.numel():
            raise_not_positive_definite(int(bad[0]), "its scatter has no spread along an axis (its shape is "
                                        "singular)", reg_covar)
        shapes, geometric = unit_determinant(diagonals)
        return shapes * (geometric.sum() / nk.sum())
