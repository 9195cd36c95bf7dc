"""The fused E-step pass: log joint densities and all statistics of their responsibilities,
two matrix products per chunk, for any family whose log densities are linear in features.

A Gaussian's (and any exponential family's) log joint density ``log π_k + log p(x | θ_k)``
is linear in features of the point. With each chunk of ``n`` points laid out as

    F = [1; x - shift; extra features of (x - shift)]        (P = 1 + D + M rows, n columns)

(points along the last, contiguous axis, so that every elementwise operation runs over
long vectors), the ``(K, n)`` log joint densities are one product ``C @ F`` with the
family's coefficients ``C`` ``(K, P)``, and every additive statistic of the
responsibilities ``R`` ``(K, n)`` (counts, first moments, the extra features' sums) is
another, ``R @ Fᵀ`` into ``(K, P)``. All temporaries are buffers of
``O((P + K) × chunk)`` elements allocated once per pass; there is no ``(n, K, D)`` array.

The pass works in bits: ``C`` is scaled by ``log₂ e`` so that the products are ``log₂``
joint densities and the responsibilities come from ``exp2``, which torch evaluates 3-4x
faster than ``exp`` on this project's benchmark CPU (float32 0.16 vs 0.67 ns, float64 0.43
vs 1.45 ns per entry, both within 1 ulp); the log-likelihood and the entropy are
converted back to nats once per pass.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from mixtures.core.stream import iter_data
from mixtures.core.weights import weight_chunks
from mixtures.kernels import gemm, parallel

LOG2_E = 1.0 / math.log(2.0)
LN_2 = math.log(2.0)

#: ``write_extra(centred (D, n), out (M, n))`` returns a call that fills ``out`` from ``centred``
ExtraFeatures = Callable[[Tensor, Tensor], Callable[[], None]]

#: bytes of one chunk's feature and responsibility buffers (4 MiB: 2^19 float64 or 2^20
#: float32 elements): large enough to amortize the ~20 tensor operations issued per chunk,
#: small enough to stay in cache. Measured flat from 2 to 8 MiB; 1024-point chunks are
#: 1.3-1.5x slower. Sized in bytes, not elements: float32 chunks of 2^19 elements (2 MiB)
#: were 10 % slower at (1e6, 8, 8) full.
FUSED_CHUNK_BYTES = 1 << 22

#: torch sums vectors longer than this (its grain size) in parallel, in an order that depends
#: on the thread count; per-chunk sums over at most this many points keep torch's own
#: reductions over points independent of torch.get_num_threads(). (The BLAS GEMMs may still
#: split their inner dimension by thread count for some (K, P) shapes, in either operand
#: order, and so may the last bits of float32 elementwise kernels split across threads:
#: bitwise equality across thread counts is not guaranteed.)
MAX_CHUNK = 32768

#: where :func:`normalize` sends the log₂-responsibilities of the entries it zeroes: finite
#: (``0 · UNDERFLOW = 0`` in the entropy), far below exp2's underflow in float32 and float64
UNDERFLOW = -1e30


@dataclass
class PassSums:
    """What one fused pass returns.

    Attributes:
        sums: ``(K, P)`` ``Σ_n r_nk F_pn``: column 0 the counts ``N_k``, columns ``1..D``
            the first moments about the shift, the rest the extra features' sums.
        log_likelihood: ``Σ_n log p(x_n)`` in nats (accumulation dtype).
        entropy: ``-Σ_n Σ_k r_nk log r_nk`` in nats (0 for hard assignments).
        n_points: points seen.
        labels: ``(N,)`` hard assignments (hard passes over in-memory data only).
        worst_point: ``(D,)`` the point with the lowest ``log p(x)`` (None for no points).
    """

    sums: Tensor
    log_likelihood: Tensor
    entropy: Tensor
    n_points: int
    labels: Tensor | None
    worst_point: Tensor | None


def fused_chunk_size(n_components: int, n_features: int, n_extra: int, element_size: int = 8) -> int:
    """Points per chunk: buffers of ``(1 + D + M + 2K + 2) × chunk`` elements of ``element_size``
    bytes filling :data:`FUSED_CHUNK_BYTES` (256 to :data:`MAX_CHUNK` points; the third
    ``(1, n)`` vector of the buffers is left out of the count, which keeps the chunk sizes,
    and so the summation order, of earlier versions)."""
    width = 1 + n_features + n_extra + 2 * n_components + 2
    return min(MAX_CHUNK, max(256, FUSED_CHUNK_BYTES // (element_size * width)))


def fused_pass(X: Any, coefficients: Tensor, shift: Tensor, write_extra: ExtraFeatures, n_extra: int,
               hard: bool = False, chunk_size: int | None = None,
               accumulate_dtype: torch.dtype | None = None, *, entropy: bool = True,
               worst_point: bool = True, likelihood_offsets: Tensor | None = None,
               sample_weight: Tensor | None = None) -> PassSums:
    """One pass over ``X`` ``(N, D)`` (a tensor or streamed data): E step and statistics.

    Args:
        coefficients: ``C`` ``(K, P)`` in nats: ``C @ F`` are the log joint densities.
        shift: ``(D,)`` subtracted from every point before the features are built.
        write_extra: builds the ``M = n_extra`` extra feature rows from the centred points.
        hard: one-hot responsibilities at the most probable component (classification EM).
        chunk_size: points per chunk (default :func:`fused_chunk_size`).
        accumulate_dtype: dtype of the sums over chunks (e.g. float64 for float32 data);
            default the data's.
        entropy: compute the entropy (False: ``PassSums.entropy`` is 0; a gradient pass
            needs only the log-likelihood and the sums).
        worst_point: track the worst-explained point (False: ``PassSums.worst_point`` is None).
        likelihood_offsets: ``o`` ``(K,)`` in nats: the returned ``log_likelihood`` is then
            ``Σ_n log Σ_k exp((C @ F)_kn + o_k)`` instead of the normalizer of the
            responsibilities (variational Bayes: responsibilities from the expected log
            densities, the log-likelihood at the plug-in parameters, whose log densities differ
            from them by a constant per component). See :class:`_OffsetLikelihood`.
        sample_weight: ``w`` ``(N,)`` non-negative weights of in-memory points
            (:mod:`mixtures.core.weights`): every point's responsibilities, log-likelihood and
            entropy terms are multiplied by ``w_n`` (an integer weight is the row repeated, a zero
            weight the row dropped: it is never the worst point). ``n_points`` still counts rows.

    Chunks run on the workers of :func:`mixtures.kernels.parallel.using` when it gives more than
    one and the data have more than one chunk; the result is the same bit for bit.
    """
    K, P = coefficients.shape
    D = shift.shape[0]
    bits = coefficients * LOG2_E  # in bits: C @ F = log₂ π_k + log₂ p(x | θ_k)
    chunk = chunk_size or fused_chunk_size(K, D, n_extra, shift.element_size())
    if isinstance(X, Tensor):  # small data: buffers no larger than the data
        chunk = max(1, min(chunk, X.shape[0]))
    total = {"dtype": accumulate_dtype or shift.dtype, "device": shift.device}
    offset = None if likelihood_offsets is None else _OffsetLikelihood(likelihood_offsets, shift)
    plan = _ChunkPlan(bits, shift.unsqueeze(-1), hard, entropy, worst_point,
                      parallel.kept_per_worker(lambda: _ChunkBuffers(shift, chunk, write_extra, D, n_extra, K),
                                               (shift.dtype, shift.device, chunk, D, n_extra, K, write_extra)),
                      [math.inf], offset)
    sums = torch.zeros(K, P, **total)
    log_likelihood = torch.zeros((), **total)
    entropy_total = torch.zeros((), **total)
    labels = [] if hard and isinstance(X, Tensor) else None
    offset_total = torch.zeros((), **total)
    n_points = 0
    worst_log_prob, worst = math.inf, None
    if sample_weight is not None and not isinstance(X, Tensor):
        raise ValueError("sample_weight needs the data in memory (a stream carries no weights).")
    kind = (type(X), shift.dtype, K, P, chunk, hard, entropy, offset is None, sample_weight is None)
    with parallel.pass_workers(kind) as chosen:
        for part in _chunk_results(plan, X, chunk, sample_weight, chosen.count):
            n_points += part.n
            log_likelihood += part.log_norm  # bits
            if part.worst_log_prob < worst_log_prob:
                worst_log_prob, worst = part.worst_log_prob, part.worst
            if labels is not None:
                labels.append(part.labels)
            # the chunk's sums in the data's dtype, accumulated in accumulate_dtype
            sums.add_(part.sums)
            if part.log_total is not None:
                entropy_total += part.log_total
                entropy_total -= part.weighted
            if part.offset_log_norm is not None:
                offset_total += part.offset_log_norm
        chosen.points = n_points
    if offset is not None:
        log_likelihood = offset_total
    return PassSums(sums, log_likelihood.mul_(LN_2), entropy_total.mul_(LN_2), n_points,
                    torch.cat(labels) if labels else None, worst)


class _ChunkPlan(NamedTuple):
    """What every chunk of one pass does (shared, read-only, by every worker)."""

    bits: Tensor  # (K, P) coefficients in bits
    column_shift: Tensor  # (D, 1)
    hard: bool
    entropy: bool
    worst_point: bool
    make_buffers: Callable[[], _ChunkBuffers]
    lowest: list[float]  # [the lowest log₂ p(x) met so far by any worker]
    offset: _OffsetLikelihood | None  # the log-likelihood under per-component offsets (VB)


class _ChunkResult(NamedTuple):
    """One chunk's contributions, in the data's dtype (added up in chunk order)."""

    n: int
    sums: Tensor  # (K, P)
    log_norm: Tensor  # () Σ_n log₂ p(x_n)
    log_total: Tensor | None  # () Σ_n log₂ T_n (soft passes with entropy)
    weighted: Tensor | None  # () Σ_n Σ_k r_nk a_nk
    worst_log_prob: float
    worst: Tensor | None  # (D,)
    labels: Tensor | None  # (n,)
    offset_log_norm: Tensor | None  # () Σ_n log₂ Σ_k 2^(j_kn + o_k) (with likelihood offsets)


def _chunk_results(plan: _ChunkPlan, X: Any, chunk: int, sample_weight: Tensor | None = None, count: int = 1
                   ) -> Iterator[_ChunkResult]:
    """Every non-empty chunk's result, in order: on this thread, or on ``count`` pass workers."""
    if count > 1 and isinstance(X, Tensor) and X.shape[0] > chunk:  # the same chunks as iter_data's
        def indexed(buffers: _ChunkBuffers, index: int) -> _ChunkResult:
            rows = slice(index * chunk, (index + 1) * chunk)
            return _one_chunk(plan, buffers, (X[rows], None if sample_weight is None else sample_weight[rows]))
        yield from parallel.map_indexed(indexed, -(-X.shape[0] // chunk), plan.make_buffers, count)
        return
    pairs = zip(iter_data(X, chunk), weight_chunks(sample_weight, chunk))
    chunks = (pair for pair in pairs if pair[0].shape[0])  # oneDNN: no empty ops
    if count > 1 and not isinstance(X, Tensor):
        yield from parallel.map_ordered(functools.partial(_one_chunk, plan), chunks, plan.make_buffers, count)
        return
    buffers = plan.make_buffers()
    for item in chunks:
        yield _one_chunk(plan, buffers, item)


def _one_chunk(plan: _ChunkPlan, buffers: _ChunkBuffers, item: tuple[Tensor, Tensor | None]) -> _ChunkResult:
    """The E step and statistics of one chunk ``(n, D)`` (with its weights ``(n,)`` or None) in
    ``buffers`` (new tensors returned)."""
    data_chunk, weights = item
    weights = None if weights is None else weights.reshape(1, -1)
    n = data_chunk.shape[0]
    views = buffers.take(n)
    torch.sub(data_chunk.T, plan.column_shift, out=views.centred)
    views.write_extra()
    joint = gemm.matmul(plan.bits, views.features, out=views.joint)
    offset_log_norm = None if plan.offset is None else plan.offset.before_normalize(joint, views, weights)
    normalize(joint, views.resp, views.log_norm, views.total, views.log_total)
    if plan.offset is not None and offset_log_norm is None:
        offset_log_norm = plan.offset.after_normalize(views, weights)
    log_norm = weighted_sum(views.log_norm, weights)
    worst_log_prob, worst = math.inf, None
    if plan.worst_point and weights is not None:  # a zero-weight point is not in the data
        candidates = views.log_norm.masked_fill(weights == 0, math.inf)
        worst_log_prob = float(candidates.amin())
        if worst_log_prob < math.inf and worst_log_prob <= plan.lowest[0]:
            plan.lowest[0] = min(plan.lowest[0], worst_log_prob)
            worst = data_chunk[int(candidates.argmin())]
    elif plan.worst_point:
        # amin is a vectorized reduction, argmin is not (~5x slower per point): locate the
        # point only in chunks whose minimum is at most the lowest seen so far by any thread
        # (a racy but only-decreasing bound: the chunk holding the pass's first minimum always
        # locates it, and the caller keeps the first chunk with the lowest value)
        worst_log_prob = float(views.log_norm.amin())
        if worst_log_prob <= plan.lowest[0]:
            plan.lowest[0] = min(plan.lowest[0], worst_log_prob)
            worst = data_chunk[int(views.log_norm.argmin())]
    labels = None
    if plan.hard:
        labels = joint.argmax(0)
        views.resp.zero_().scatter_(0, labels.unsqueeze(0), 1.0)
    if weights is not None:  # w_n r_nk: every sum below (statistics, Σ_k r a) is then weighted
        views.resp.mul_(weights)
    sums = gemm.matmul(views.resp, views.features.T)
    log_total = weighted = None
    if plan.entropy and not plan.hard:
        # -Σ_k r log₂ r = log₂ T - Σ_k r a with a = joint (the log₂ joint minus its maximum,
        # finite where r = 0, so 0 · a = 0) and log₂ r = a - log₂ T: two non-negative sums,
        # no cancellation, and no pass to form log₂ r. Sums over components, then over at
        # most MAX_CHUNK points: an order independent of the thread count.
        log_total = weighted_sum(views.log_total, weights)
        joint.mul_(views.resp)
        torch.sum(joint, 0, keepdim=True, out=views.total)
        weighted = views.total.sum()
    return _ChunkResult(n, sums, log_norm, log_total, weighted, worst_log_prob, worst, labels, offset_log_norm)


class _OffsetLikelihood:
    """``Σ_n log₂ Σ_k 2^(j_kn + o_k)`` over the chunks of a pass, ``j`` the log₂ joint densities and
    ``o`` ``(K,)`` offsets in bits, with (almost always) no exponential of its own.

    After :func:`normalize`, ``log₂ Σ_k 2^(j_k + o_k) = log₂ p_n + max(o) + log₂ Σ_k r_nk 2^(o_k − max(o))``
    with ``p_n`` the normalizer and ``r`` the responsibilities: one ``(1, K) @ (K, n)`` product
    and a ``log₂`` per point. It is exact unless a responsibility :func:`normalize` set to 0
    (below ``2^floor``) would carry weight once offset, which cannot happen while the offsets'
    spread is below ``−floor`` less the mantissa's bits (about 950 bits in float64, 90 in
    float32). Wider spreads (a Dirichlet-process component VB has switched off: ``E[log π]``
    hundreds of nats below ``log E[π]``) take the exact route: a log-sum-exp of ``j + o`` of its
    own, before :func:`normalize` (using the responsibility buffer as scratch).
    """

    def __init__(self, offsets: Tensor, like: Tensor):
        K = offsets.shape[0]
        bits = (offsets * LOG2_E).to(like)
        self.top = bits.max()
        spread = float(self.top - bits.min())
        margin = -math.log2(torch.finfo(like.dtype).eps) + 12 + math.log2(K)  # the mantissa, with room
        self.shortcut = spread < -exp2_floor(like.dtype, K) - margin
        self.weights = torch.exp2(bits - self.top).reshape(1, K)
        self.column = bits.reshape(K, 1)

    def before_normalize(self, joint: Tensor, views: _ChunkViews, weights: Tensor | None = None) -> Tensor | None:
        """The chunk's sum on the exact route (``None`` on the shortcut: see :meth:`after_normalize`)."""
        if self.shortcut:
            return None
        scratch, peak, total = views.resp, views.total, views.log_total
        torch.add(joint, self.column, out=scratch)
        torch.amax(scratch, 0, keepdim=True, out=peak)
        scratch.sub_(peak.nan_to_num(neginf=0.0))  # a column of -inf stays -inf (exp2 → 0)
        torch.exp2(scratch, out=scratch)
        torch.sum(scratch, 0, keepdim=True, out=total)
        if weights is not None:
            return weighted_sum(total.log2_() + peak.nan_to_num(neginf=0.0), weights)
        return total.log2_().sum() + peak.nan_to_num(neginf=0.0).sum()

    def after_normalize(self, views: _ChunkViews, weights: Tensor | None = None) -> Tensor:
        """The chunk's sum on the shortcut, from the responsibilities and normalizers."""
        torch.matmul(self.weights, views.resp, out=views.total)
        if weights is not None:
            return weighted_sum(views.total.log2_() + views.log_norm, weights) + weights.sum() * self.top
        n = views.total.shape[1]
        return views.total.log2_().sum() + views.log_norm.sum() + n * self.top


class _ChunkViews(NamedTuple):
    """The buffers of one chunk of ``n`` points."""

    features: Tensor  # (P, n)
    centred: Tensor  # (D, n): rows 1..D of features
    write_extra: Callable[[], None]  # fills the M extra rows from ``centred``
    joint: Tensor  # (K, n)
    resp: Tensor  # (K, n)
    log_norm: Tensor  # (1, n)
    total: Tensor  # (1, n)
    log_total: Tensor  # (1, n)


class _ChunkBuffers:
    """Flat storage reused by every chunk of a pass, and kept by each worker thread for its next pass
    (:func:`mixtures.kernels.parallel.kept_per_worker`); views are contiguous for any chunk length
    and are made once per length (a pass over in-memory data has at most two: the chunk and the
    last one)."""

    def __init__(self, like: Tensor, chunk: int, write_extra: ExtraFeatures, n_features: int, n_extra: int,
                 n_components: int):
        self.write, self.D, self.K = write_extra, n_features, n_components
        self.P = 1 + n_features + n_extra
        self._views: dict[int, _ChunkViews] = {}
        self._allocate(like, chunk)

    def _allocate(self, like: Tensor, chunk: int) -> None:
        P, K = self.P, self.K
        self.capacity = chunk
        self.features = like.new_empty(P * chunk)
        self.features[:chunk] = 1.0  # row 0 of every (P, n) view: the constant feature
        self._intact = chunk  # views of up to this many points have their row of ones
        self.joint, self.resp = like.new_empty(K * chunk), like.new_empty(K * chunk)
        self.log_norm, self.total, self.log_total = (like.new_empty(chunk) for _ in range(3))
        self._views.clear()

    def take(self, n: int) -> _ChunkViews:
        if n > self._intact:
            # a shorter chunk's rows 1.. overlap the row of ones of longer ones: restore it
            # (a stream's ragged chunks; buffers kept from a pass that ended on a short chunk)
            self.features[:min(n, self.capacity)] = 1.0
        self._intact = n
        views = self._views.get(n)
        if views is not None:
            return views
        if n > self.capacity:  # a streamed chunk longer than asked for
            self._allocate(self.features, n)
            self._intact = n
        P, K, D = self.P, self.K, self.D
        features = self.features[:P * n].view(P, n)
        centred = features[1:1 + D]
        views = _ChunkViews(features, centred, self.write(centred, features[1 + D:]),
                            self.joint[:K * n].view(K, n), self.resp[:K * n].view(K, n),
                            self.log_norm[:n].view(1, n), self.total[:n].view(1, n),
                            self.log_total[:n].view(1, n))
        if len(self._views) < 4:  # streams with ragged chunks: keep the first few lengths only
            self._views[n] = views
        return views


def normalize(joint: Tensor, resp: Tensor, log_norm: Tensor, total: Tensor, log_total: Tensor) -> None:
    """In place, in bits: ``joint`` ``(K, n)`` log₂ joint → ``a`` = minus its column maximum;
    ``resp`` ← responsibilities; ``log_norm`` ``(1, n)`` ← ``log₂ p(x_n)``; ``log_total`` ``(1, n)``
    ← ``log₂ T`` with ``T = Σ_k 2^a`` (so that ``log₂ r = a - log₂ T`` where ``r > 0``); ``total``
    ← ``1 / T``. One ``exp2`` per entry.
    """
    torch.amax(joint, 0, keepdim=True, out=log_norm)
    joint.sub_(log_norm)
    # Responsibilities below K·e·tiny would be subnormal numbers, whose arithmetic is
    # ~100x slower on x86 (10 % of float32 entries on the benchmark data); they are
    # < 1e-300 (float64) / 1e-36 (float32) and vanish from every sum, so they are set
    # to exactly 0: their logs go to UNDERFLOW, where exp2 is exactly 0 on its fast path
    # (torch's exp2 is 3-4x slower per entry when its result is subnormal, and in float64
    # also for some arguments far below, e.g. -2000 or -1e4; measured, torch 2.13 CPU).
    torch.nn.functional.threshold(joint, exp2_floor(joint.dtype, joint.shape[0]), UNDERFLOW, inplace=True)
    torch.exp2(joint, out=resp)
    torch.sum(resp, 0, keepdim=True, out=total)
    torch.log2(total, out=log_total)
    resp.mul_(total.reciprocal_())
    log_norm.add_(log_total)


def weighted_sum(values: Tensor, weights: Tensor | None) -> Tensor:
    """``Σ_n w_n v_n`` of per-point values ``(1, n)`` (``Σ_n v_n`` without weights); a zero-weight
    point adds exactly 0 even where its value is infinite (a dropped row)."""
    if weights is None:
        return values.sum()
    return (values * weights).masked_fill_(weights == 0, 0.0).sum()


@functools.cache
def exp2_floor(dtype: torch.dtype, n_components: int) -> float:
    """Entries of :func:`normalize` with ``a <= log₂(K·e·tiny)`` get responsibility 0; every
    other responsibility is at least ``e·tiny``, a normal number of ``dtype`` (``T <= K``)."""
    return (math.log(torch.finfo(dtype).tiny) + math.log(n_components) + 1.0) * LOG2_E
