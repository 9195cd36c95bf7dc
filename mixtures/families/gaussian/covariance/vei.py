"""``"VEI"`` (mclust): ``Σ_k = λ_k B``, axis-aligned, one shape ``B`` (``|B| = 1``), volumes vary.

Native tensor: variances ``(K, D)``. Iterative M step (:func:`~.iterative.vei`, Celeux &
Govaert 1995): ``B ∝ Σ_k w_k / λ_k``, ``λ_k = Σ_d w_kd / b_d / (D n_k)`` until ``F`` settles.
"""

from __future__ import annotations

import torch

from mixtures.families.gaussian.covariance import iterative
from mixtures.families.gaussian.covariance.decomposed import DecomposedVariances, run_inner


class VEICovariance(DecomposedVariances):
    name = "VEI"
    description = "λ_k B (axis-aligned, one shape, volumes vary)"

    def variances_from_scatter(self, nk, diagonals, reg_covar):
        return torch.as_tensor(run_inner(iterative.vei, self.name, nk, diagonals, reg_covar)).to(diagonals)
