"""A bijection onto positive-definite matrices, registered with ``biject_to``.

Neither torch nor Pyro registers ``biject_to(constraints.positive_definite)``,
so a Wishart ``"precision"`` site could not be optimized by ``AutoDelta`` or
``AutoNormal`` nor sampled by NUTS. :class:`CholeskyPositiveDefiniteTransform`
fills that gap with a true bijection from ``R^{D(D+1)/2}``: the vector fills a
lower-triangular ``L`` row by row (``torch.tril_indices`` order) with ``exp``
on the diagonal, and the image is ``L Lᵀ``. A vector domain matters: a
matrix-shaped domain whose upper triangle is ignored would hand guides and
samplers coordinates the model never sees (``AutoNormal`` would put entropy on
them and inflate the ELBO). ``D`` is read off the shapes, so one registered
instance serves every dimension. Importing :mod:`mixtures` registers it once; an
existing registration (a later torch) is left in place.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import biject_to, constraints
from torch.distributions.transforms import Transform


def _dim_from_length(length: int) -> int:
    dim = int(round((math.sqrt(8 * length + 1) - 1) / 2))
    if dim * (dim + 1) // 2 != length:
        raise ValueError(f"a vector of length {length} is not the lower triangle of a square matrix.")
    return dim


class CholeskyPositiveDefiniteTransform(Transform):
    """``x (..., D(D+1)/2) ↦ L Lᵀ (..., D, D)`` with ``L`` lower-triangular, ``exp`` diagonal.

    ``log |det J| = D log 2 + Σ_i (D - i + 1) x_ii`` (0-based row ``i``) with
    respect to the lower triangle of the image: ``Σ log L_ii`` from the
    exponential and ``D log 2 + Σ_i (D - i) log L_ii`` from ``L ↦ L Lᵀ``.
    """

    domain = constraints.real_vector
    codomain = constraints.positive_definite
    bijective = True

    def __eq__(self, other):
        return isinstance(other, CholeskyPositiveDefiniteTransform)

    @staticmethod
    def _indices(dim: int, device) -> tuple[Tensor, Tensor]:
        rows, cols = torch.tril_indices(dim, dim, device=device)
        return rows, cols

    def _call(self, x: Tensor) -> Tensor:
        dim = _dim_from_length(x.shape[-1])
        rows, cols = self._indices(dim, x.device)
        diagonal = rows == cols
        # exp of the diagonal entries only: exp of a large off-diagonal entry would overflow, and
        # torch.where's gradient 0 · inf is NaN (NUTS then finds no valid start)
        values = torch.where(diagonal, torch.where(diagonal, x, torch.zeros_like(x)).exp(), x)
        scale_tril = x.new_zeros(x.shape[:-1] + (dim, dim))
        scale_tril[..., rows, cols] = values
        matrix = scale_tril @ scale_tril.transpose(-1, -2)
        return 0.5 * (matrix + matrix.transpose(-1, -2))  # exactly symmetric

    def _inverse(self, y: Tensor) -> Tensor:
        dim = y.shape[-1]
        rows, cols = self._indices(dim, y.device)
        values = torch.linalg.cholesky(y)[..., rows, cols]
        diagonal = rows == cols
        return torch.where(diagonal, torch.where(diagonal, values, torch.ones_like(values)).log(), values)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        dim = y.shape[-1]
        rows, cols = self._indices(dim, x.device)
        coefficients = torch.where(rows == cols, (dim - rows + 1).to(x.dtype), torch.zeros_like(x[..., 0:1]))
        return dim * math.log(2.0) + (coefficients * x).sum(-1)

    def forward_shape(self, shape):
        dim = _dim_from_length(shape[-1])
        return torch.Size(shape[:-1]) + (dim, dim)

    def inverse_shape(self, shape):
        dim = shape[-1]
        return torch.Size(shape[:-2]) + (dim * (dim + 1) // 2,)


def register() -> None:
    """Register the transform for ``constraints.positive_definite`` unless one exists."""
    try:
        biject_to(constraints.positive_definite)
    except NotImplementedError:
        biject_to.register(constraints.positive_definite)(lambda constraint: CholeskyPositiveDefiniteTransform())


register()
