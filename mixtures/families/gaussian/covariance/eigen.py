"""The decomposition ``Σ_k = λ_k D_k A_k D_kᵀ`` (Banfield & Raftery 1993; Celeux & Govaert 1995).

``λ_k = |Σ_k|^{1/D}`` is the volume, ``A_k = diag(a_k)`` with ``Π_d a_kd = 1`` the shape and
``D_k`` (orthogonal) the orientation. A structure is named by three letters, one per part:
``E`` (equal for every component), ``V`` (variable) or ``I`` (the identity: shape ``I`` means
spherical, orientation ``I`` axis-aligned). These functions split covariances into the parts
(with the ``E`` parts averaged over components: the projection onto the structure), build
covariances from parts, and map orientations to and from unconstrained coordinates (the
Cayley transform of a skew-symmetric matrix), for the structures' checks and Pyro sites.
"""

from __future__ import annotations

import math

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

#: generic weights of the combination whose eigenvectors are a common orientation (any weights
#: work when the matrices share eigenvectors; irrational ones make tied eigenvalues unlikely)
_COMBINATION = math.sqrt(2.0) - 1.0


def letters(name: str) -> tuple[str, str, str]:
    """``(volume, shape, orientation)`` letters of a three-letter name (``"VEV"``)."""
    if len(name) != 3 or any(letter not in "EVI" for letter in name):
        raise ValueError(f"{name!r} is not a three-letter mclust model name (E, V or I per letter).")
    return name[0], name[1], name[2]


def unit_determinant(values: Tensor) -> tuple[Tensor, Tensor]:
    """``(values / g, g)`` with ``g`` the geometric mean over the last axis: ``(..., D)``, ``(...)``."""
    geometric = values.log().mean(-1).exp()
    return values / geometric.unsqueeze(-1), geometric


def skew_from_vector(entries: Tensor, dim: int) -> Tensor:
    """The skew-symmetric ``(..., D, D)`` whose strict lower triangle holds ``entries`` ``(..., D(D-1)/2)``."""
    rows, cols = torch.tril_indices(dim, dim, offset=-1, device=entries.device)
    skew = entries.new_zeros(entries.shape[:-1] + (dim, dim))
    skew[..., rows, cols] = entries
    return skew - skew.transpose(-1, -2)


def vector_from_skew(skew: Tensor) -> Tensor:
    """Strict lower triangle ``(..., D(D-1)/2)`` of skew-symmetric matrices ``(..., D, D)``."""
    dim = skew.shape[-1]
    rows, cols = torch.tril_indices(dim, dim, offset=-1, device=skew.device)
    return skew[..., rows, cols]


def cayley(skew: Tensor) -> Tensor:
    """The orthogonal ``(I - S)(I + S)⁻¹`` of skew-symmetric ``S`` ``(..., D, D)`` (``I + S`` is
    always invertible: its eigenvalues are ``1 + iω``)."""
    eye = torch.eye(skew.shape[-1], dtype=skew.dtype, device=skew.device).expand_as(skew)
    return torch.linalg.solve(eye + skew, eye - skew, left=False)


def inverse_cayley(orthogonal: Tensor) -> Tensor:
    """``S = (I - Q)(I + Q)⁻¹``, the skew-symmetric preimage of ``Q`` under :func:`cayley`
    (``Q`` without the eigenvalue ``-1``: see :func:`canonical_orientation`)."""
    eye = torch.eye(orthogonal.shape[-1], dtype=orthogonal.dtype, device=orthogonal.device).expand_as(orthogonal)
    skew = torch.linalg.solve(eye + orthogonal, eye - orthogonal, left=False)
    return 0.5 * (skew - skew.transpose(-1, -2))


def canonical_orientation(orientation: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
    """The same covariances ``Q diag(values) Qᵀ`` with the columns of ``Q`` ``(K, D, D)`` permuted
    (``values`` ``(K, D)`` alike) and signed so that ``Q`` has a large positive diagonal and
    determinant +1: far from the eigenvalue -1, where the Cayley transform breaks down.

    The permutation is the one maximizing ``Σ_i |Q_{i, π(i)}|`` (an assignment problem, the
    same for every component: structures with one shape across components keep its order
    only with one permutation, so it is chosen on the components' summed ``|Q|``).
    """
    magnitude = orientation.abs().sum(0).detach().cpu().double().numpy()
    _, columns = linear_sum_assignment(-magnitude)
    order = torch.as_tensor(columns, device=orientation.device)
    orientation, values = orientation[..., order], values[..., order]
    signs = torch.where(orientation.diagonal(dim1=-2, dim2=-1) < 0, -1.0, 1.0).to(orientation.dtype)
    orientation = orientation * signs.unsqueeze(-2)
    negative = torch.linalg.det(orientation) < 0
    if negative.any():  # flip the column with the smallest diagonal entry (its sign matters least)
        weakest = orientation.diagonal(dim1=-2, dim2=-1).argmin(-1)
        flip = torch.ones_like(values)
        flip[torch.arange(len(weakest), device=flip.device), weakest] = -1.0
        orientation = torch.where(negative[:, None, None], orientation * flip.unsqueeze(-2), orientation)
    return orientation, values


def common_eigenvectors(covariances: Tensor) -> Tensor:
    """An orthogonal ``D`` ``(D, D)`` diagonalizing every matrix of ``covariances`` ``(K, D, D)`` that
    share eigenvectors (else the eigenvectors of a generic combination of them)."""
    K = covariances.shape[0]
    scale = covariances.diagonal(dim1=-2, dim2=-1).sum(-1)  # traces: no component dominates
    weights = 1.0 + _COMBINATION * torch.arange(K, dtype=covariances.dtype, device=covariances.device)
    combination = (covariances * (weights / scale)[:, None, None]).sum(0)
    return torch.linalg.eigh(0.5 * (combination + combination.T))[1]


def decompose(covariances: Tensor, name: str) -> tuple[Tensor, Tensor, Tensor]:
    """Parts of covariances ``(K, D, D)`` under the structure ``name``: ``(log_volume (K,),
    log_shape (K, D) summing to 0, orientation (K, D, D))``, the ``E`` parts averaged over
    components (so :func:`compose` of them is the structure's projection of the input).

    Orientation ``V``: each component's eigenvectors, eigenvalues ascending (one order for all,
    as an equal shape needs); ``E``: a common orientation; ``I``: the identity.
    """
    volume, shape, orientation = letters(name)
    K, D, _ = covariances.shape
    if orientation == "V":
        values, vectors = torch.linalg.eigh(covariances)
    elif orientation == "E":
        vectors = common_eigenvectors(covariances).expand(K, D, D)
        values = ((vectors.transpose(-1, -2) @ covariances) * vectors.transpose(-1, -2)).sum(-1)
    else:
        vectors = torch.eye(D, dtype=covariances.dtype, device=covariances.device).expand(K, D, D)
        values = covariances.diagonal(dim1=-2, dim2=-1)
    log_values = values.clamp_min(torch.finfo(values.dtype).tiny).log()
    log_volume = log_values.mean(-1)
    log_shape = log_values - log_volume.unsqueeze(-1)
    if volume == "E":
        log_volume = log_volume.mean().expand(K)
    if shape == "E":
        log_shape = log_shape.mean(0).expand(K, D)
    elif shape == "I":
        log_shape = torch.zeros_like(log_shape)
    return log_volume, log_shape, vectors


def compose(log_volume: Tensor, log_shape: Tensor, orientation: Tensor) -> Tensor:
    """Covariances ``λ_k D_k diag(a_k) D_kᵀ`` ``(K, D, D)`` from :func:`decompose`'s parts."""
    values = (log_volume.unsqueeze(-1) + log_shape).exp()
    return (orientation * values.unsqueeze(-2)) @ orientation.transpose(-1, -2)


def structure_error(covariances: Tensor, name: str) -> float:
    """Largest entry of ``|Σ - projection(Σ)|`` relative to the largest entry of ``Σ`` (0 when the
    covariances ``(K, D, D)`` have the structure ``name``)."""
    projected = compose(*decompose(covariances, name))
    scale = covariances.abs().amax().clamp_min(torch.finfo(covariances.dtype).tiny)
    return float((projected - covariances).abs().amax() / scale)
