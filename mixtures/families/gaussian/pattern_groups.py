"""Missingness patterns batched by their number of observed coordinates.

Data with NaN entries ``X`` ``(N, D)`` has up to ``2^D - 1`` patterns (unique rows of its observed
mask); with entries missing at random most of them hold a handful of points. Processing each pattern
on its own costs a few small kernels per pattern, so a 20 000 × 10 data set with 10 % removed (~350
patterns) spent most of a pass on dispatch. Here the patterns with the same number ``d_o`` of observed
coordinates form one :class:`Group` (at most ``D`` groups), and each group is one batched computation:

* the observed blocks of every pattern and component are gathered by index tensors,
  ``Σ_oo`` ``(P, K, d_o, d_o)``, ``Σ_om`` ``(P, K, d_o, d_m)``, ``Σ_mm`` ``(P, K, d_m, d_m)``, and factored
  at once: ``L = chol(Σ_oo)``, ``L⁻¹ Σ_om`` and ``C = Σ_mm - Σ_mo Σ_oo⁻¹ Σ_om`` (:func:`group_blocks`);
* the group's points, sorted by pattern, are laid out in blocks of up to :data:`BLOCK` points of one
  pattern (:func:`blocked_terms`); each block gathers its pattern's factor once and whitens its points by
  one batched triangular solve ``L⁻¹ (x_o - μ_o)`` over ``(K, blocks)``, giving ``log N(x_o | μ_o, Σ_oo)``
  and the conditional means ``x̂_m = μ_m + Σ_mo Σ_oo⁻¹ (x_o - μ_o)``; E-step sums run over the blocks
  (padding slots carry no responsibility).

Patterns are found by one sort of integer codes of the mask rows (:func:`groups`, kept for the last few tensors).
``Σ_oo⁻¹`` is never formed. The number of kernels per pass is a few per group, however many patterns there
are (a 20 000 × 10 pass with 348 patterns: from 34-40 to 3.5 times the complete-data pass,
``experiments/MISSING_PATTERNS.md``); the math is :mod:`mixtures.families.gaussian.missing`'s, point for point.
"""

from __future__ import annotations

import weakref
from typing import NamedTuple

import torch
from torch import Tensor

from mixtures.families.gaussian.distributions import LOG_2PI

#: bytes of one chunk's largest temporary (``(n, K, D)`` numbers)
CHUNK_BYTES = 1 << 24
#: rows of one pattern whitened together (one gathered factor, one triangular solve with this many right-hand sides)
BLOCK = 16


class Group(NamedTuple):
    """The patterns with ``d_o`` observed coordinates (``d_m = D - d_o`` missing) and their rows."""

    obs: Tensor  # (P, d_o) long: each pattern's observed coordinates, ascending
    mis: Tensor  # (P, d_m) long: its missing coordinates, ascending
    rows: Tensor  # (n,) long: the rows of X in the group, pattern by pattern, ascending within a pattern
    pattern: Tensor  # (n,) long: each row's pattern, an index into obs/mis

    @property
    def complete(self) -> bool:
        return self.mis.shape[1] == 0


class GroupBlocks(NamedTuple):
    """A group's factors under every component (the batched form of one pattern's blocks)."""

    factor: Tensor  # (P, K, d_o, d_o) lower Cholesky factor L of Σ_oo
    half_log_det: Tensor  # (P, K) ½ log det Σ_oo
    solved: Tensor  # (P, K, d_o, d_m) L⁻¹ Σ_om
    conditional: Tensor  # (P, K, d_m, d_m) C = Σ_mm - Σ_mo Σ_oo⁻¹ Σ_om


#: the most recent tensors' groups, newest last (a labelled fit's passes alternate between the unlabelled
#: points and the labelled ones (and their chunks): the unlabelled points' groups stay)
_groups_cache: list[tuple[weakref.ref, int, list[Group]]] = []
_CACHED = 4


def groups(X: Tensor) -> list[Group]:
    """The missingness patterns of ``X`` ``(N, D)`` grouped by their number of observed coordinates (most
    observed first: the complete rows, if any, are the first group). Kept for the most recent tensors (EM's
    passes see the same data)."""
    for index, entry in enumerate(_groups_cache):
        if entry[0]() is X and entry[1] == X._version:
            _groups_cache.append(_groups_cache.pop(index))  # the most recently used last
            return entry[2]
    masks, inverse = _unique_masks(~torch.isnan(X))  # (U, D) patterns, (N,) each row's
    U, D = masks.shape
    n_observed = masks.sum(1)  # (U,)
    # rows ordered by (fewest missing coordinates first, pattern): each group, and each pattern in it, contiguous
    order = torch.argsort((D - n_observed)[inverse] * U + inverse, stable=True)
    sizes = torch.bincount(n_observed[inverse], minlength=D + 1).flip(0)  # rows per d_o = D, D - 1, ..., 0
    found = []
    for rows, d_o in zip(torch.split(order, sizes.tolist()), range(D, -1, -1)):
        if rows.numel() == 0:
            continue
        members = torch.nonzero(n_observed == d_o).reshape(-1)  # (P,) patterns of this group, ascending
        local = torch.empty(U, dtype=torch.long, device=X.device)
        local[members] = torch.arange(members.numel(), device=X.device)
        coordinates = torch.arange(D, device=X.device).expand(members.numel(), D)
        group_masks = masks[members]
        P = members.numel()
        found.append(Group(coordinates[group_masks].reshape(P, d_o), coordinates[~group_masks].reshape(P, D - d_o),
                           rows, local[inverse[rows]]))
    _groups_cache[:] = [*_groups_cache[-(_CACHED - 1):], (weakref.ref(X), X._version, found)]
    return found


def _unique_masks(observed: Tensor) -> tuple[Tensor, Tensor]:
    """The distinct rows ``(U, D)`` of a bool mask ``(N, D)`` and each row's index among them ``(N,)``. Up to 62
    columns a row is one integer (its bits), so this is a sort of ``N`` numbers rather than of ``N`` rows."""
    D = observed.shape[1]
    if D > 62:
        return torch.unique(observed, dim=0, return_inverse=True)
    bits = torch.pow(2, torch.arange(D, device=observed.device, dtype=torch.long))  # (D,)
    codes, inverse = torch.unique(observed.long() @ bits, return_inverse=True)
    return (codes.unsqueeze(1) & bits) != 0, inverse


def _block(covariances: Tensor, first: Tensor, second: Tensor) -> Tensor:
    """``Σ_k[first_p, second_p]`` for every pattern ``p`` and component ``k``: ``(P, K, len1, len2)``."""
    components = torch.arange(covariances.shape[0], device=covariances.device).view(1, -1, 1, 1)
    return covariances[components, first[:, None, :, None], second[:, None, None, :]]


def group_blocks(covariances: Tensor, group: Group) -> GroupBlocks:
    """The group's factors (:class:`GroupBlocks`) for ``covariances`` ``(K, D, D)``; differentiable."""
    factor = torch.linalg.cholesky(_block(covariances, group.obs, group.obs))
    solved = torch.linalg.solve_triangular(factor, _block(covariances, group.obs, group.mis), upper=False)
    conditional = _block(covariances, group.mis, group.mis) - solved.transpose(-1, -2) @ solved
    half_log_det = factor.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return GroupBlocks(factor, half_log_det, solved, 0.5 * (conditional + conditional.transpose(-1, -2)))


def chunk_rows(n_components: int, n_features: int) -> int:
    """Points per chunk of a group so that its ``(n, K, D)`` temporaries stay near :data:`CHUNK_BYTES`."""
    return max(256, CHUNK_BYTES // (8 * n_components * n_features))


class Blocked(NamedTuple):
    """Points of one group laid out in blocks of ``size`` (at most :data:`BLOCK`) rows of one pattern (the last
    block of a pattern padded with zeros): row ``i`` sits at ``[block[i], slot[i]]``. ``BLOCK`` below: ``size``."""

    block: Tensor  # (n,) long
    slot: Tensor  # (n,) long
    block_pattern: Tensor  # (B,) long: each block's pattern
    valid: Tensor  # (B, BLOCK) bool: the slots holding a point
    x: Tensor  # (B, BLOCK, D) the points (NaN at their missing coordinates), zeros in padding
    log_prob: Tensor  # (K, B, BLOCK) log N(x_o | μ_ko, Σ_koo)
    means: Tensor  # (K, B, BLOCK, d_m) conditional means x̂_km of the missing coordinates


def blocks_of(pattern: Tensor) -> tuple[Tensor, Tensor, Tensor, int]:
    """``(block (n,), slot (n,), block_pattern (B,), size)`` of rows sorted by ``pattern`` ``(n,)``
    (:class:`Blocked`): blocks of ``size`` rows, the mean number of rows per pattern (at most :data:`BLOCK`),
    so patterns of one or two points are not padded to a full block."""
    runs, counts = torch.unique_consecutive(pattern, return_counts=True)  # (R,) patterns, rows per run
    size = max(1, min(BLOCK, -(-pattern.numel() // runs.numel())))
    per_run = (counts + size - 1) // size  # (R,) blocks of each run
    run_of = torch.repeat_interleave(torch.arange(runs.numel(), device=pattern.device), counts)  # (n,)
    rank = torch.arange(pattern.numel(), device=pattern.device) - (torch.cumsum(counts, 0) - counts)[run_of]
    first_block = torch.cumsum(per_run, 0) - per_run  # (R,)
    return first_block[run_of] + rank // size, rank % size, torch.repeat_interleave(runs, per_run), size


def blocked_terms(x: Tensor, pattern: Tensor, locs: Tensor, group: Group, piece: GroupBlocks) -> Blocked:
    """The observed-block densities and conditional means of points ``x`` ``(n, D)`` of one group, sorted by
    their patterns ``pattern`` ``(n,)``, in the block layout (:class:`Blocked`); differentiable in ``locs``
    ``(K, D)`` and the blocks. Each block gathers its pattern's factor once and whitens its points by one
    triangular solve with a right-hand side per point."""
    block, slot, block_pattern, size = blocks_of(pattern)
    n_blocks, D = block_pattern.numel(), x.shape[1]
    padded = x.new_zeros(n_blocks, size, D)
    padded[block, slot] = x
    valid = torch.zeros(n_blocks, size, dtype=torch.bool, device=x.device)
    valid[block, slot] = True
    obs, mis = group.obs[block_pattern], group.mis[block_pattern]  # (B, d_o), (B, d_m)
    x_o = padded.gather(2, obs.unsqueeze(1).expand(-1, size, -1))  # (B, size, d_o)
    diff = (x_o.unsqueeze(0) - locs[:, obs].unsqueeze(2)).transpose(-1, -2)  # (K, B, d_o, BLOCK)
    factor = piece.factor.transpose(0, 1)[:, block_pattern]  # (K, B, d_o, d_o)
    white = torch.linalg.solve_triangular(factor, diff, upper=False)  # (K, B, d_o, BLOCK)
    d_o = obs.shape[1]
    half_log_det = piece.half_log_det.T[:, block_pattern].unsqueeze(-1)  # (K, B, 1)
    log_prob = -0.5 * (d_o * LOG_2PI + white.square().sum(-2)) - half_log_det  # (K, B, BLOCK)
    offset = piece.solved.transpose(0, 1)[:, block_pattern].transpose(-1, -2) @ white  # (K, B, d_m, BLOCK)
    means = locs[:, mis].unsqueeze(2) + offset.transpose(-1, -2)  # (K, B, BLOCK, d_m)
    return Blocked(block, slot, block_pattern, valid, padded, log_prob, means)


def observed_terms(x: Tensor, pattern: Tensor, locs: Tensor, group: Group,
                   piece: GroupBlocks) -> tuple[Tensor, Tensor]:
    """``(log p(x_o | k) (n, K), x̂_km (n, K, d_m))`` for points ``x`` ``(n, D)`` of one group, sorted by their
    patterns ``pattern`` ``(n,)`` (:func:`blocked_terms`, back in row order)."""
    terms = blocked_terms(x, pattern, locs, group, piece)
    log_prob = terms.log_prob[:, terms.block, terms.slot].T  # (n, K)
    return log_prob, terms.means[:, terms.block, terms.slot].transpose(0, 1)
