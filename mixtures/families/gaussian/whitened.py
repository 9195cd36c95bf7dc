"""The E step of wide full-covariance Gaussians by whitening: two large products per chunk.

The fused pass (:mod:`mixtures.kernels.fused_pass`) writes ``P = 1 + D + D(D+1)/2`` features per
point and multiplies them by ``K`` coefficient rows. At D ≥ 32 that is a skinny product
(``K`` rows against ``D²/2`` columns) over a feature matrix that is rebuilt, product by product,
for every chunk: it runs at a fraction of the machine's matmul rate (19 % at (1e5, 128, 8)).
This pass computes the same log joint densities and the same statistics through the whitening
factors ``W_k = L_k⁻¹`` instead:

* ``Y = [x - shift, 1] @ [Wᵀ; -b]`` ``(n, K·D)``, one GEMM of ``2·(D+1)·K·D`` flops per point,
  with ``b_k = W_k (μ_k - shift)``, so that ``Y_k = W_k (x - μ_k)`` and the Mahalanobis distance is
  ``|Y_k|²``; the log joint is ``log π_k - ½ log det Σ_k - ½ D log 2π - ½ |Y_k|²``;
* the statistics ``Σ_n r_nk (x - shift)(x - shift)ᵀ`` for every ``k`` at once:
  ``(x - shift)ᵀ @ [r_1 (x - shift), ..., r_K (x - shift)]``, one GEMM of ``2·D·K·D`` flops per
  point (and ``Σ r``, ``Σ r (x - shift)``), returned in the fused pass's layout (counts, first
  moments, the upper triangle of the second moments), so the M step is the same.

The same holds for every structure whose statistic is the matrix one and whose whitening factor
is one ``(D, D)`` matrix per component (full, and mclust's decomposed VEE, EVE, VVE, EEV, VEV, EVV):
``|W_k (x - μ_k)|²`` is the Mahalanobis distance for any ``W_kᵀ W_k = Σ_k⁻¹``.

Twice the flops of the feature products, but in products that run near the matmul peak and
with no feature matrix to write. :func:`uses_whitening` picks the route per size (the crossover
is measured in ``experiments/BENCHMARK.md``); the responsibilities, softmax, entropy, labels
and worst point are the fused pass's own (:func:`~mixtures.kernels.fused_pass.normalize`).
Chunks run on the pass workers of :func:`mixtures.kernels.parallel.using` as the fused pass's do
(single-threaded, summed in chunk order: the same result bit for bit). The products are
``torch.mm`` in both dtypes (in float32, MKL measured 5-15 % faster than oneDNN on these shapes
at (2e4, 64, 8), unlike the fused pass's skinny products).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

from mixtures.core.stream import iter_data
from mixtures.core.weights import weight_chunks
from mixtures.families.gaussian.distributions import LOG_2PI
from mixtures.kernels import parallel
from mixtures.kernels.fused_pass import LN_2, LOG2_E, PassSums, normalize, weighted_sum

#: the whitening route from this many features on (full covariance; measured crossover, see
#: ``experiments/BENCHMARK.md``, "Wide data")
WHITENING_FROM_D = 48

#: bytes of one chunk's buffers (its two (n, K·D) blocks dominate)
WHITENED_CHUNK_BYTES = 1 << 23


def uses_whitening(structure: Any, n_components: int, n_features: int, whitening: Tensor | None = None) -> bool:
    """Whether :func:`whitened_pass` computes this E step: per-component full matrices ``W_k``
    ``(K, D, D)`` with matrix statistics, at ``D ≥`` :data:`WHITENING_FROM_D`."""
    if structure.statistic != "matrix" or n_features < WHITENING_FROM_D:
        return False
    return whitening is None or tuple(whitening.shape) == (n_components, n_features, n_features)


def whitened_chunk_size(n_components: int, n_features: int, element_size: int = 8) -> int:
    """Points per chunk: the ``(n, D + 1)`` and two ``(n, K·D)`` blocks in :data:`WHITENED_CHUNK_BYTES`."""
    width = n_features + 1 + 2 * n_components * n_features + 4 * n_components
    return max(64, WHITENED_CHUNK_BYTES // (element_size * width))


def whitened_pass(X: Any, log_weights: Tensor, locs: Tensor, whitening: Tensor, half_log_det: Tensor, shift: Tensor,
                  hard: bool = False, chunk_size: int | None = None, accumulate_dtype: torch.dtype | None = None,
                  sample_weight: Tensor | None = None) -> PassSums:
    """One pass over ``X`` ``(N, D)`` (a tensor or streamed data) with the results of
    :func:`~mixtures.kernels.fused_pass.fused_pass` for a full-covariance Gaussian mixture.

    Args:
        log_weights: ``(K,)``; locs: ``(K, D)`` (data frame); whitening: ``W_k = L_k⁻¹`` ``(K, D, D)``;
        half_log_det: ``½ log det Σ_k`` ``(K,)``; shift: ``(D,)``; the rest as for ``fused_pass``.
    """
    K, D = locs.shape
    chunk = chunk_size or whitened_chunk_size(K, D, shift.element_size())
    if isinstance(X, Tensor):
        chunk = max(1, min(chunk, X.shape[0]))
    if sample_weight is not None and not isinstance(X, Tensor):
        raise ValueError("sample_weight needs the data in memory (a stream carries no weights).")
    # [Wᵀ; -b] (D + 1, K·D): column block k holds W_kᵀ over -(W_k (μ_k - shift))ᵀ
    factors = torch.cat([whitening.transpose(-1, -2), -(whitening @ (locs - shift).unsqueeze(-1)).transpose(-1, -2)],
                        dim=1)
    factors = factors.permute(1, 0, 2).reshape(D + 1, K * D).contiguous()
    constants = ((log_weights - half_log_det - 0.5 * D * LOG_2PI) * LOG2_E).reshape(K, 1)  # in bits
    total = {"dtype": accumulate_dtype or shift.dtype, "device": shift.device}
    rows, cols = torch.triu_indices(D, D, device=shift.device)
    plan = _Plan(factors, constants, shift, hard, rows, cols, K, D)
    pairs = zip(iter_data(X, chunk), weight_chunks(sample_weight, chunk))
    items = (pair for pair in pairs if pair[0].shape[0])
    make_buffers = functools.partial(_Buffers, shift, chunk, K, D)
    count = parallel.workers()
    if count > 1 and (not isinstance(X, Tensor) or X.shape[0] > chunk):
        parts = parallel.map_ordered(functools.partial(_one_chunk, plan), items, make_buffers, count)
    else:
        buffers = make_buffers()
        parts = (_one_chunk(plan, buffers, item) for item in items)
    sums = torch.zeros(K, 1 + D + D * (D + 1) // 2, **total)
    log_likelihood, entropy = torch.zeros((), **total), torch.zeros((), **total)
    n_points, labels, worst_log_prob, worst = 0, [], math.inf, None
    for part in parts:  # in chunk order, whatever the workers: the same sums bit for bit
        n_points += part.n
        sums += part.sums
        log_likelihood += part.log_norm
        entropy += part.entropy
        if part.lowest < worst_log_prob:
            worst_log_prob, worst = part.lowest, part.worst
        if part.labels is not None:
            labels.append(part.labels)
    return PassSums(sums, log_likelihood.mul_(LN_2), entropy.mul_(LN_2), n_points,
                    torch.cat(labels) if labels and isinstance(X, Tensor) else None, worst)


class _Plan(NamedTuple):
    """What every chunk does (shared, read-only, by every worker)."""

    factors: Tensor  # (D + 1, K·D) [Wᵀ; -b]
    constants: Tensor  # (K, 1) log₂ π_k - ½ log₂ det Σ_k - ½ D log₂ 2π
    shift: Tensor  # (D,)
    hard: bool
    rows: Tensor  # the upper triangle's indices, row-major (the pair features' order)
    cols: Tensor
    K: int
    D: int


class _Part(NamedTuple):
    """One chunk's contributions, in the data's dtype (added up in chunk order)."""

    n: int
    sums: Tensor  # (K, P) counts, first moments, the second moments' upper triangles
    log_norm: Tensor  # () Σ_n w_n log₂ p(x_n)
    entropy: Tensor  # () in bits (0 for hard assignments)
    lowest: float  # the chunk's lowest log₂ p(x) (inf without a point of positive weight)
    worst: Tensor | None  # (D,) its point
    labels: Tensor | None  # (n,) hard assignments


class _Buffers:
    """Storage reused by every chunk of a worker: centred points with a column of ones ``(n, D + 1)``,
    the whitened block ``(n, K·D)`` (reused for the weighted points) and the ``(K, n)`` / ``(1, n)`` rows."""

    def __init__(self, like: Tensor, chunk: int, K: int, D: int):
        self.K, self.D, self.capacity = K, D, chunk
        self.augmented = like.new_empty(chunk, D + 1)
        self.augmented[:, D] = 1.0
        self.block = like.new_empty(chunk * K * D)
        self.joint, self.resp = like.new_empty(K * chunk), like.new_empty(K * chunk)
        self.log_norm, self.total, self.log_total = (like.new_empty(chunk) for _ in range(3))

    def take(self, n: int) -> tuple[Tensor, ...]:
        if n > self.capacity:  # a streamed chunk longer than asked for
            self.__init__(self.augmented, n, self.K, self.D)
        K, D = self.K, self.D
        return (self.augmented[:n], self.block[:n * K * D].view(n, K * D), self.joint[:K * n].view(K, n),
                self.resp[:K * n].view(K, n), self.log_norm[:n].view(1, n), self.total[:n].view(1, n),
                self.log_total[:n].view(1, n))


def _one_chunk(plan: _Plan, buffers: _Buffers, item: tuple[Tensor, Tensor | None]) -> _Part:
    """The E step and statistics of one chunk ``(n, D)`` (with its weights ``(n,)`` or None)."""
    data_chunk, weights = item
    weights = None if weights is None else weights.reshape(1, -1)
    n, K, D = data_chunk.shape[0], plan.K, plan.D
    augmented, block, joint, resp, log_norm, total, log_total = buffers.take(n)
    centred = augmented[:, :D]
    torch.sub(data_chunk, plan.shift, out=centred)
    torch.mm(augmented, plan.factors, out=block)  # W_k (x - μ_k), every k (n, K·D)
    distances = block.square_().view(n, K, D).sum(-1)  # (n, K) Mahalanobis
    torch.add(plan.constants, distances.T, alpha=-0.5 * LOG2_E, out=joint)  # log₂ π_k N(x | μ_k, Σ_k)
    normalize(joint, resp, log_norm, total, log_total)
    log_likelihood = weighted_sum(log_norm, weights)
    candidates = log_norm if weights is None else log_norm.masked_fill(weights == 0, math.inf)
    lowest = float(candidates.amin())
    worst = data_chunk[int(candidates.argmin())].clone() if lowest < math.inf else None
    labels = None
    if plan.hard:
        labels = joint.argmax(0)
        resp.zero_().scatter_(0, labels.unsqueeze(0), 1.0)
    if weights is not None:
        resp.mul_(weights)
    sums = resp.new_empty(K, 1 + D + D * (D + 1) // 2)
    torch.sum(resp, 1, out=sums[:, 0])
    torch.mm(resp, centred, out=sums[:, 1:1 + D])
    weighted = block.view(n, K, D)
    torch.mul(resp.T.unsqueeze(-1), centred.unsqueeze(1), out=weighted)  # r_nk (x - shift)
    second = torch.mm(centred.T, block).view(D, K, D).transpose(0, 1)  # (K, D, D) Σ r (x - shift)(x - shift)ᵀ
    sums[:, 1 + D:] = second[:, plan.rows, plan.cols]
    entropy = log_likelihood.new_zeros(())
    if not plan.hard:
        joint.mul_(resp)
        entropy = weighted_sum(log_total, weights) - torch.sum(joint, 0, keepdim=True, out=total).sum()
    return _Part(n, sums, log_likelihood, entropy, lowest, worst, labels)
