"""A bijection onto positive-definite matrices, registered with ``biject_to``.

Neither torch nor Pyro registers ``biject_to(constraints.positive_definite)``,
so a Wishart ``"precision"`` site could not be optimized by ``AutoDelta`` or
``AutoNormal`` nor sampled by NUTS. This module fills that gap: unconstrained
``(D, D)`` matrices (only the lower triangle is used, as in torch's
``LowerCholeskyTransform``) map to ``L Lᵀ`` where ``L`` is the lower-triangular
matrix with the exponentiated diagonal. Importing :mod:`mixtures` registers it
once; an existing registration (a later torch) is left in place.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import biject_to, constraints
from torch.distributions.transforms import Transform


class CholeskyPositiveDefiniteTransform(Transform):
    """``x ↦ L Lᵀ`` with ``L = tril(x, -1) + diag(exp(diag x))``; ``(..., D, D)``."""

    domain = constraints.independent(constraints.real, 2)
    codomain = constraints.positive_definite
    bijective = True

    def __eq__(self, other):
        return isinstance(other, CholeskyPositiveDefiniteTransform)

    def _call(self, x: Tensor) -> Tensor:
        scale_tril = x.tril(-1) + torch.diag_embed(x.diagonal(dim1=-2, dim2=-1).exp())
        return scale_tril @ scale_tril.transpose(-1, -2)

    def _inverse(self, y: Tensor) -> Tensor:
        scale_tril = torch.linalg.cholesky(y)
        return scale_tril.tril(-1) + torch.diag_embed(scale_tril.diagonal(dim1=-2, dim2=-1).log())

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        # x ↦ L contributes Σ_i log L_ii = Σ_i x_ii; L ↦ L Lᵀ contributes
        # D log 2 + Σ_i (D - i + 1) log L_ii (i = 1..D), on the D(D+1)/2 free coordinates.
        D = x.shape[-1]
        log_diagonal = x.diagonal(dim1=-2, dim2=-1)
        exponents = torch.arange(D + 1, 1, -1, dtype=x.dtype, device=x.device)
        return D * math.log(2.0) + (exponents * log_diagonal).sum(-1)


def register() -> None:
    """Register the transform for ``constraints.positive_definite`` unless one exists."""
    try:
        biject_to(constraints.positive_definite)
    except NotImplementedError:
        biject_to.register(constraints.positive_definite)(lambda constraint: CholeskyPositiveDefiniteTransform())


register()
