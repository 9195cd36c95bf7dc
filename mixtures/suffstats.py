"""Sufficient statistics of a Gaussian mixture: one fused E-step pass, the M step.

EM's statistics ``Σ_n r_nk``, ``Σ_n r_nk x_n`` and ``Σ_n r_nk x_n x_nᵀ`` (or the
covariance type's reduction of the last) add up over any split of the data, so
one pass over chunks computes them exactly with every temporary of size
``O(chunk × (K + D²))``. The pass also yields the log-likelihood of the parameters
it used and the entropy of the responsibilities: everything an EM iteration and
its trace need, without storing the ``(N, K)`` responsibilities.

Statistics are accumulated about a ``shift`` (a point near the data's centre) so
that ``Σ r x xᵀ / n - μ μᵀ`` does not lose digits to cancellation when the data
sit far from the origin.

Numerics of the fused pass: the log densities are one matmul ``C @ F`` over
features ``F = [1; x; second-order terms]`` of the shifted points, i.e. the
quadratic form is expanded about the shift (``xᵀPx − 2xᵀPμ + μᵀPμ``, with
``P = L⁻ᵀL⁻¹`` from the inverted Cholesky factor). It loses about
``eps · |x − shift|² / σ²`` relative digits: the digits the M step's moments
about the same shift already lose. In float64 that is below 1e-10 up to 10⁴
standard deviations; in float32 keep the data within ~100 standard deviations of
its centre (standardize) or fit in float64.

The pass works in bits: ``C`` is scaled by ``log₂ e`` so that the products are
``log₂`` joint densities and the responsibilities come from ``exp2``, which torch
evaluates 3-4x faster than ``exp`` on this CPU (float32 0.16 vs 0.67 ns, float64
0.43 vs 1.45 ns per entry, both within 1 ulp); the log-likelihood and the entropy
are converted back to nats once per pass.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

import torch
from torch import Tensor

from mixtures import gemm
from mixtures.covariance import LOG_2PI, CovarianceType
from mixtures.params import MixtureParams, chunk_size_for, iter_chunks
from mixtures.stream import StreamingData, iter_data

LOG2_E = 1.0 / math.log(2.0)
LN_2 = math.log(2.0)


@dataclass
class Summary:
    """Statistics of one pass over the data.

    Attributes:
        shift: ``(D,)`` point the moments are taken about.
        nk: ``(K,)`` ``Σ_n r_nk``.
        sx: ``(K, D)`` ``Σ_n r_nk (x_n - shift)``.
        sxx: the covariance type's ``second_moment`` of ``x_n - shift``.
        n_points: number of points summarized.
        log_likelihood: ``Σ_n log p(x_n | θ)`` under the E-step parameters (NaN if none).
        entropy: ``-Σ_n Σ_k r_nk log r_nk`` (0 for hard assignments).
        labels: ``(N,)`` hard assignments when the pass made them, else None.
        worst_point: ``(D,)`` the point with the lowest ``log p(x | θ)`` in the pass
            (where a collapsed component is re-seeded), None when not tracked.
    """

    shift: Tensor
    nk: Tensor
    sx: Tensor
    sxx: Tensor
    n_points: int
    log_likelihood: Tensor
    entropy: Tensor
    labels: Tensor | None = None
    worst_point: Tensor | None = None


def default_shift(X: Tensor | StreamingData) -> Tensor:
    """A cheap centre for the moments: the mean of (at most) the first 4096 points."""
    head = X.head(4096) if isinstance(X, StreamingData) else X[:4096]
    return head.mean(0)


def e_step(X: Tensor | StreamingData, params: MixtureParams, shift: Tensor, hard: bool = False,
           chunk_size: int | None = None, accumulate_dtype: torch.dtype | None = None) -> Summary:
    """One fused pass: E step at ``params`` and the statistics of its responsibilities.

    Each chunk of ``n`` points is laid out as features ``F`` ``(1 + D + M, n)``
    (ones, ``x - shift``, the covariance type's ``M`` second-order terms), points
    along the last, contiguous axis so that every elementwise operation runs over
    long vectors. Then ``log π_k + log N(x | μ_k, Σ_k)`` ``(K, n)`` is one matmul
    ``C @ F`` and ``Σ_n r_nk F_mn`` (counts, first and second moments at once) is
    another, ``resp @ Fᵀ`` into ``(K, 1 + D + M)`` sums (the layout whose GEMM
    runs fastest here: the long point axis is the contiguous inner dimension of
    both operands); all temporaries are buffers of size ``O((D + M + K) × chunk)``
    allocated once per pass.

    Args:
        X: ``(N, D)`` data, in memory or streamed (then ``labels`` are not kept:
            memory stays bounded by the chunk).
        params: parameters for the E step.
        shift: ``(D,)`` centre for the moments.
        hard: assign each point to its most probable component (classification
            EM) instead of soft responsibilities.
        chunk_size: points per chunk (default: :func:`fused_chunk_size`).
        accumulate_dtype: dtype of the sums over chunks (e.g. float64 for float32
            data: each chunk is computed in the data's dtype, the totals do not
            lose digits as N grows). Default: the data's dtype.
    """
    cov_type = params.cov_type
    K, D = params.n_components, params.n_features
    M = cov_type.n_moment_features(D)
    whitening, half_log_det = params.whitener()
    # (K, 1 + D + M), in bits: C @ F = log₂ π_k + log₂ N(x | μ_k, Σ_k)
    coefficients = cov_type.log_joint_coefficients(params.weights.log(), params.locs - shift,
                                                   whitening, half_log_det).mul_(LOG2_E)
    chunk = chunk_size or fused_chunk_size(K, D, M, shift.element_size())
    if isinstance(X, Tensor):  # small data: buffers no larger than the data
        chunk = max(1, min(chunk, X.shape[0]))
    buffers = _ChunkBuffers(shift, chunk, cov_type, D, K)
    column_shift = shift.unsqueeze(-1)
    total_dtype = {"dtype": accumulate_dtype or shift.dtype, "device": shift.device}
    # Σ_n r_nk F_mn (K, 1 + D + M): column 0 = nk, columns 1..D = sx, the rest the
    # second-moment features
    sums = torch.zeros(K, 1 + D + M, **total_dtype)
    log_likelihood = torch.zeros((), **total_dtype)
    entropy = torch.zeros((), **total_dtype)
    labels = [] if hard and isinstance(X, Tensor) else None
    n_points = 0
    worst_log_prob, worst_point = math.inf, None
    for data_chunk in iter_data(X, chunk):
        n = data_chunk.shape[0]
        n_points += n
        features, centred, write_moments, joint, resp, log_norm, total, log_total = buffers.take(n)
        torch.sub(data_chunk.T, column_shift, out=centred)
        write_moments()
        joint = gemm.matmul(coefficients, features, out=joint)
        _normalize(joint, resp, log_norm, total, log_total)
        log_likelihood += log_norm.sum()  # bits
        # amin is a vectorized reduction, argmin is not (~5x slower per point): locate the
        # point only in the (few) chunks that hold a new worst value
        chunk_worst = float(log_norm.amin())
        if chunk_worst < worst_log_prob:
            worst_log_prob, worst_point = chunk_worst, data_chunk[int(log_norm.argmin())]
        if hard:
            chunk_labels = joint.argmax(0)
            if labels is not None:
                labels.append(chunk_labels)
            resp.zero_().scatter_(0, chunk_labels.unsqueeze(0), 1.0)
        # the chunk's sums in the data's dtype, accumulated in accumulate_dtype
        sums.add_(gemm.matmul(resp, features.T))
        if not hard:
            # -Σ_k r log₂ r = log₂ T - Σ_k r a with a = joint (the log₂ joint minus its maximum,
            # finite where r = 0, so 0 · a = 0) and log₂ r = a - log₂ T: two non-negative sums,
            # no cancellation, and no pass to form log₂ r. Sums over components, then over at
            # most MAX_CHUNK points: an order independent of the thread count.
            entropy += log_total.sum()
            joint.mul_(resp)
            torch.sum(joint, 0, keepdim=True, out=total)
            entropy -= total.sum()
    return Summary(shift.to(total_dtype["dtype"]), sums[:, 0].clone(), sums[:, 1:1 + D].clone(),
                   cov_type.moment_from_features(sums[:, 1 + D:], D), n_points, log_likelihood.mul_(LN_2),
                   entropy.mul_(LN_2), torch.cat(labels) if labels else None, worst_point)


#: bytes of one chunk's feature and responsibility buffers (4 MiB: 2^19 float64 or 2^20
#: float32 elements): large enough to amortize the ~20 tensor operations issued per chunk,
#: small enough to stay in cache. Measured flat from 2 to 8 MiB; 1024-point chunks are
#: 1.3-1.5x slower. Sized in bytes, not elements: float32 chunks of 2^19 elements (2 MiB)
#: were 10 % slower at (1e6, 8, 8) full.
FUSED_CHUNK_BYTES = 1 << 22


#: torch sums vectors longer than this (its grain size) in parallel, in an order that depends
#: on the thread count; per-chunk sums over at most this many points keep torch's own
#: reductions over points independent of torch.get_num_threads(). (The BLAS GEMMs may still
#: split their inner dimension by thread count for some (K, 1 + D + M) shapes, in either
#: operand order, and so may the last bits of float32 elementwise kernels split across
#: threads: bitwise equality across thread counts is not guaranteed.)
MAX_CHUNK = 32768


def fused_chunk_size(n_components: int, n_features: int, n_moment_features: int,
                     element_size: int = 8) -> int:
    """Points per chunk of :func:`e_step`: buffers of ``(1 + D + M + 2K + 2) × chunk`` elements
    of ``element_size`` bytes filling :data:`FUSED_CHUNK_BYTES` (256 to :data:`MAX_CHUNK` points;
    the third ``(1, n)`` vector of :class:`_ChunkBuffers` is left out of the count, which keeps
    the chunk sizes, and so the summation order, of earlier versions)."""
    width = 1 + n_features + n_moment_features + 2 * n_components + 2
    return min(MAX_CHUNK, max(256, FUSED_CHUNK_BYTES // (element_size * width)))


class _ChunkViews(NamedTuple):
    """The buffers of one chunk of ``n`` points."""

    features: Tensor  # (1 + D + M, n)
    centred: Tensor  # (D, n): rows 1..D of features
    write_moments: Callable[[], None]  # fills the M second-order rows from ``centred``
    joint: Tensor  # (K, n)
    resp: Tensor  # (K, n)
    log_norm: Tensor  # (1, n)
    total: Tensor  # (1, n)
    log_total: Tensor  # (1, n)


class _ChunkBuffers:
    """Flat storage reused by every chunk of a pass; views are contiguous for any chunk length
    and are made once per length (a pass has at most two: the chunk and the last one)."""

    def __init__(self, like: Tensor, chunk: int, cov_type: CovarianceType, n_features: int,
                 n_components: int):
        self.cov_type, self.D, self.K = cov_type, n_features, n_components
        self.P = 1 + n_features + cov_type.n_moment_features(n_features)
        self._views: dict[int, _ChunkViews] = {}
        self._allocate(like, chunk)

    def _allocate(self, like: Tensor, chunk: int) -> None:
        P, K = self.P, self.K
        self.capacity = chunk
        self.features = like.new_empty(P * chunk)
        self.features[:chunk] = 1.0  # row 0 of every (P, n) view: the constant feature
        self.joint, self.resp = like.new_empty(K * chunk), like.new_empty(K * chunk)
        self.log_norm, self.total, self.log_total = (like.new_empty(chunk) for _ in range(3))
        self._views.clear()

    def take(self, n: int) -> _ChunkViews:
        views = self._views.get(n)
        if views is not None:
            return views
        if n > self.capacity:  # a streamed chunk longer than asked for
            self._allocate(self.features, n)
        P, K, D = self.P, self.K, self.D
        features = self.features[:P * n].view(P, n)
        centred = features[1:1 + D]
        views = _ChunkViews(features, centred, self.cov_type.moment_feature_writer(centred, features[1 + D:]),
                            self.joint[:K * n].view(K, n), self.resp[:K * n].view(K, n),
                            self.log_norm[:n].view(1, n), self.total[:n].view(1, n),
                            self.log_total[:n].view(1, n))
        if len(self._views) < 4:  # streams with ragged chunks: keep the first few lengths only
            self._views[n] = views
        return views


def _normalize(joint: Tensor, resp: Tensor, log_norm: Tensor, total: Tensor, log_total: Tensor) -> None:
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
    torch.nn.functional.threshold(joint, _floor(joint.dtype, joint.shape[0]), UNDERFLOW, inplace=True)
    torch.exp2(joint, out=resp)
    torch.sum(resp, 0, keepdim=True, out=total)
    torch.log2(total, out=log_total)
    resp.mul_(total.reciprocal_())
    log_norm.add_(log_total)


#: where :func:`_normalize` sends the log₂-responsibilities of the entries it zeroes: finite
#: (``0 · UNDERFLOW = 0`` in the entropy), far below exp2's underflow in float32 and float64
UNDERFLOW = -1e30


@functools.cache
def _floor(dtype: torch.dtype, n_components: int) -> float:
    """Entries of :func:`_normalize` with ``a <= log₂(K·e·tiny)`` get responsibility 0; every
    other responsibility is at least ``e·tiny``, a normal number of ``dtype`` (``T <= K``)."""
    return (math.log(torch.finfo(dtype).tiny) + math.log(n_components) + 1.0) * LOG2_E


def summarize(X: Tensor, resp: Tensor, cov_type: CovarianceType, shift: Tensor | None = None,
              chunk_size: int | None = None) -> Summary:
    """Statistics of given responsibilities ``resp`` ``(N, K)`` (initialization from a partition)."""
    shift = default_shift(X) if shift is None else shift
    K, D = resp.shape[1], X.shape[1]
    chunk = chunk_size or chunk_size_for(K, D)
    nk, sx, sxx = X.new_zeros(K), X.new_zeros(K, D), None
    for rows in iter_chunks(X.shape[0], chunk):
        Xc, r = X[rows] - shift, resp[rows]
        nk += r.sum(0)
        sx += r.T @ Xc
        moment = cov_type.second_moment(Xc, r)
        sxx = moment if sxx is None else sxx + moment
    entropy = -torch.where(resp > 0, torch.special.xlogy(resp, resp), 0.0).sum()
    nan = X.new_tensor(math.nan)
    return Summary(shift, nk, sx, sxx, X.shape[0], nan, entropy)


def _with_pooled_covariance(summary: Summary, component: int, cov_type: CovarianceType,
                            mass: Tensor, point: Tensor) -> Summary:
    """Statistics where ``component`` has ``mass``, mean ``point`` (shifted frame) and the
    covariance of all the data."""
    if cov_type.name == "tied":
        raise ValueError("a tied covariance has no per-component statistics to replace.")
    total = summary.nk.sum()
    pooled_mean = summary.sx.sum(0) / total
    nk, sx, sxx = summary.nk.clone(), summary.sx.clone(), summary.sxx.clone()
    nk[component] = mass
    sx[component] = mass * point
    if cov_type.name == "full":
        pooled = summary.sxx.sum(0) / total - torch.outer(pooled_mean, pooled_mean)
        sxx[component] = mass * (pooled + torch.outer(point, point))
    else:  # diag and spherical keep per-dimension second moments
        pooled = summary.sxx.sum(0) / total - pooled_mean.square()
        sxx[component] = mass * (pooled + point.square())
    return replace(summary, nk=nk, sx=sx, sxx=sxx)


def reseed_component(summary: Summary, component: int, cov_type: CovarianceType) -> Summary:
    """Statistics in which ``component`` restarts at the pass's worst-explained point.

    It sits there with the covariance of all the data; the caller then gives it
    weight 1/N (its statistics carry the whole data's mass only to set that covariance).
    """
    if summary.worst_point is None:
        raise ValueError("re-seeding needs the worst-explained point of an in-memory or streamed pass.")
    return _with_pooled_covariance(summary, component, cov_type, summary.nk.sum(),
                                   summary.worst_point - summary.shift)


def pooled_component(summary: Summary, component: int, cov_type: CovarianceType) -> Summary:
    """Statistics in which ``component`` keeps its mass and mean but takes the data's covariance."""
    mass = summary.nk[component].clamp_min(10 * torch.finfo(summary.nk.dtype).eps)
    return _with_pooled_covariance(summary, component, cov_type, mass, summary.sx[component] / mass)


def floored_counts(nk: Tensor) -> Tensor:
    """``nk + 10 eps``: keeps empty components' divisions finite (scikit-learn's rule)."""
    return nk + 10 * torch.finfo(nk.dtype).eps


def m_step(summary: Summary, cov_type: CovarianceType, reg_covar: float) -> MixtureParams:
    """Maximum-likelihood parameters for the summarized responsibilities.

    Weights ``∝ nk``, means ``Σ r x / nk``, covariances from the centred scatter
    plus ``reg_covar`` on the diagonal. Raises ``SingularCovarianceError`` naming
    the component whose covariance is not positive definite.
    """
    nk = floored_counts(summary.nk)
    weights = nk / nk.sum()
    means = summary.sx / nk[:, None]
    native = cov_type.estimate(nk, means, summary.sxx, reg_covar)
    return MixtureParams.from_native(weights, means + summary.shift, native, cov_type, validate=False)


def expected_log_joint(summary: Summary, params: MixtureParams) -> Tensor:
    """``E_q[log p(X, Z | θ)]`` in closed form from the statistics of ``q`` (scalar)."""
    whitening, half_log_det = params.whitener()
    D = params.n_features
    nk = summary.nk
    log_weights = params.weights.log()
    weight_term = torch.where(nk > 0, nk * log_weights, 0.0).sum()
    maha = params.cov_type.expected_mahalanobis(nk, summary.sx, summary.sxx,
                                                params.locs - summary.shift, whitening)
    log_det_term = (nk * half_log_det).sum() if half_log_det.dim() else nk.sum() * half_log_det
    return weight_term - 0.5 * nk.sum() * D * LOG_2PI - log_det_term - 0.5 * maha


def elbo(summary: Summary, params: MixtureParams) -> Tensor:
    """``E_q[log p(X, Z | θ)] + H(q)``: the ELBO of ``q`` (summarized) at ``θ``."""
    return expected_log_joint(summary, params) + summary.entropy

