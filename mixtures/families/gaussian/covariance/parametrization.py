"""Unconstrained coordinates of a decomposed structure, for Pyro's ``pyro.param`` sites (MAP, SVI).

A structure's native tensor (Cholesky factors ``(K, D, D)`` or variances ``(K, D)``) lives under
a :class:`Decomposed` constraint; ``biject_to`` and ``transform_to`` map it to unconstrained
coordinates ``U`` ``(K + 1, P)``: row 0 holds the parts shared by all components (``E``
letters), rows ``1..K`` each component's own (``V`` letters). A row is
``[log λ, free log shape (D - 1), orientation (D(D - 1)/2)]`` (``P = D(D + 1)/2``; without
an orientation ``P = D``):

* volume ``λ = exp(log λ)``;
* shape ``a = exp([v, -Σ v])``: determinant one by construction;
* orientation ``Q = (I - S)(I + S)⁻¹`` (Cayley) of the skew-symmetric ``S`` whose strict lower
  triangle is the row's last entries: orthogonal by construction.

``Σ_k = λ_k Q_k diag(a_k) Q_kᵀ``, then its Cholesky factor. The slots a structure does not
read (a ``V`` part in row 0, an ``E`` part in rows ``1..K``) stay at 0 and get no gradient:
the optimizer sees exactly the structure's free parameters plus idle coordinates. The inverse
(:func:`~.eigen.decompose`, orientations made canonical by :func:`~.eigen.canonical_orientation`)
is exact for covariances of the structure.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import biject_to, constraints, transform_to
from torch.distributions.transforms import Transform

from mixtures.families.gaussian.covariance.eigen import (
    canonical_orientation,
    cayley,
    decompose,
    inverse_cayley,
    letters,
    skew_from_vector,
    vector_from_skew,
)


class Decomposed(constraints.Constraint):
    """Covariances of the structure ``name`` stored as ``storage`` (``"tril"`` or ``"variances"``)."""

    def __init__(self, name: str, storage: str):
        self.name, self.storage = name, storage
        self.event_dim = 3 if storage == "tril" else 2
        super().__init__()

    def check(self, value: Tensor) -> Tensor:
        if self.storage == "variances":
            return (value > 0).flatten(-2).all(-1)
        positive = (value.diagonal(dim1=-2, dim2=-1) > 0).all(-1)
        return (positive & (value.triu(1) == 0).flatten(-2).all(-1)).all(-1)

    def __eq__(self, other) -> bool:
        return isinstance(other, Decomposed) and (other.name, other.storage) == (self.name, self.storage)

    def __hash__(self) -> int:
        return hash((Decomposed, self.name, self.storage))

    def __repr__(self) -> str:
        return f"Decomposed({self.name!r}, {self.storage!r})"


def _dim(width: int, storage: str) -> int:
    if storage == "variances":
        return width
    dim = int(round((math.sqrt(8 * width + 1) - 1) / 2))
    if dim * (dim + 1) // 2 != width:
        raise ValueError(f"unconstrained rows of width {width} do not belong to a D x D structure.")
    return dim


class DecomposedTransform(Transform):
    """``U (K + 1, P) ↦`` native covariances of the structure (module docstring)."""

    domain = constraints.independent(constraints.real, 2)
    bijective = False  # idle coordinates: a bijection onto the structure only on the slots it reads

    def __init__(self, constraint: Decomposed, cache_size: int = 0):
        super().__init__(cache_size=cache_size)
        self.constraint = constraint
        self.codomain = constraint

    def __eq__(self, other) -> bool:
        return isinstance(other, DecomposedTransform) and other.constraint == self.constraint

    def _pick(self, unconstrained: Tensor, letter: str, columns: slice) -> Tensor:
        K = unconstrained.shape[-2] - 1
        if letter == "E":
            part = unconstrained[..., :1, columns]
            return part.expand(part.shape[:-2] + (K, part.shape[-1]))
        return unconstrained[..., 1:, columns]

    def _call(self, unconstrained: Tensor) -> Tensor:
        volume, shape, orientation = letters(self.constraint.name)
        D = _dim(unconstrained.shape[-1], self.constraint.storage)
        log_volume = self._pick(unconstrained, volume, slice(0, 1))
        free = self._pick(unconstrained, shape, slice(1, D)) if shape != "I" else log_volume[..., :0]
        log_shape = torch.cat([free, -free.sum(-1, keepdim=True)], dim=-1) if D > 1 else torch.zeros_like(log_volume)
        values = (log_volume + log_shape).exp()  # (..., K, D)
        if self.constraint.storage == "variances":
            return values
        rotation = cayley(skew_from_vector(self._pick(unconstrained, orientation, slice(D, None)), D))
        covariances = (rotation * values.unsqueeze(-2)) @ rotation.transpose(-1, -2)
        return torch.linalg.cholesky(0.5 * (covariances + covariances.transpose(-1, -2)))

    def _inverse(self, native: Tensor) -> Tensor:
        volume, shape, orientation = letters(self.constraint.name)
        if self.constraint.storage == "variances":
            covariances = torch.diag_embed(native)
        else:
            covariances = native @ native.transpose(-1, -2)
        K, D = covariances.shape[0], covariances.shape[-1]
        log_volume, log_shape, rotation = decompose(covariances, self.constraint.name)
        values = (log_volume.unsqueeze(-1) + log_shape).exp()
        P = D if self.constraint.storage == "variances" else D * (D + 1) // 2
        unconstrained = covariances.new_zeros(K + 1, P)
        if self.constraint.storage == "tril":
            rotation, values = canonical_orientation(rotation, values)
            log_volume = values.log().mean(-1)
            log_shape = values.log() - log_volume.unsqueeze(-1)
            entries = vector_from_skew(inverse_cayley(rotation))
            self._place(unconstrained, orientation, slice(D, None), entries)
        self._place(unconstrained, volume, slice(0, 1), log_volume.unsqueeze(-1))
        if shape != "I":
            self._place(unconstrained, shape, slice(1, D), log_shape[:, :D - 1])
        return unconstrained

    @staticmethod
    def _place(unconstrained: Tensor, letter: str, columns: slice, values: Tensor) -> None:
        if letter == "E":
            unconstrained[0, columns] = values.mean(0)  # equal across components: their mean is each one
        else:
            unconstrained[1:, columns] = values

    def log_abs_det_jacobian(self, x, y):
        raise NotImplementedError("a decomposed structure's coordinates serve pyro.param sites only (no density).")


@biject_to.register(Decomposed)
@transform_to.register(Decomposed)
def _decomposed_transform(constraint: Decomposed) -> DecomposedTransform:
    return DecomposedTransform(constraint)
