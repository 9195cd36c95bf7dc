"""Sufficient statistics of a Gaussian mixture: one fused E-step pass, the M step.

EM's statistics ``Σ_n r_nk``, ``Σ_n r_nk x_n`` and ``Σ_n r_nk x_n x_nᵀ`` (or the
covariance type's reduction of the last) add up over any split of the data, so
one pass over chunks computes them exactly with every temporary of size
``O(chunk × K × D)``. The pass also yields the log-likelihood of the parameters
it used and the entropy of the responsibilities: everything an EM iteration and
its trace need, without storing the ``(N, K)`` responsibilities.

Statistics are accumulated about a ``shift`` (a point near the data's centre) so
that ``Σ r x xᵀ / n - μ μᵀ`` does not lose digits to cancellation when the data
sit far from the origin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from mixtures.covariance import LOG_2PI, CovarianceType
from mixtures.params import MixtureParams, chunk_size_for, iter_chunks
from mixtures.stream import StreamingData, iter_data


_LOG_TINY = {dtype: math.log(torch.finfo(dtype).tiny) for dtype in (torch.float32, torch.float64)}


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

    Args:
        X: ``(N, D)`` data, in memory or streamed (then ``labels`` are not kept:
            memory stays bounded by the chunk).
        params: parameters for the E step.
        shift: ``(D,)`` centre for the moments.
        hard: assign each point to its most probable component (classification
            EM) instead of soft responsibilities.
        chunk_size: points per chunk (default keeps temporaries near 1 MiB).
        accumulate_dtype: dtype of the sums over chunks (e.g. float64 for float32
            data: each chunk is computed in the data's dtype, the totals do not
            lose digits as N grows). Default: the data's dtype.
    """
    cov_type = params.cov_type
    K, D = params.n_components, params.n_features
    whitening, half_log_det = params.whitener()
    log_weights = params.weights.log()
    locs = params.locs - shift
    chunk = chunk_size or chunk_size_for(K, D)
    total = {"dtype": accumulate_dtype or shift.dtype, "device": shift.device}
    nk = torch.zeros(K, **total)
    sx = torch.zeros(K, D, **total)
    sxx = None
    log_likelihood = torch.zeros((), **total)
    entropy = torch.zeros((), **total)
    labels = [] if hard and isinstance(X, Tensor) else None
    n_points = 0
    worst_log_prob, worst_point = math.inf, None
    for data_chunk in iter_data(X, chunk):
        n_points += data_chunk.shape[0]
        Xc = data_chunk - shift
        joint = cov_type.component_log_prob(Xc, locs, whitening, half_log_det) + log_weights
        log_norm = torch.logsumexp(joint, dim=-1, keepdim=True)
        log_likelihood += log_norm.sum()
        chunk_worst = int(log_norm.argmin())
        if float(log_norm[chunk_worst]) < worst_log_prob:
            worst_log_prob, worst_point = float(log_norm[chunk_worst]), data_chunk[chunk_worst]
        if hard:
            chunk_labels = joint.argmax(-1)
            if labels is not None:
                labels.append(chunk_labels)
            resp = torch.nn.functional.one_hot(chunk_labels, K).to(Xc.dtype)
        else:
            log_resp = joint - log_norm
            # Responsibilities below the smallest normal number are zeroed: subnormal floats
            # make every later product several times slower (float32 reaches them at 1e-38).
            resp = log_resp.exp().masked_fill_(log_resp < _LOG_TINY[log_resp.dtype], 0.0)
            # 0 · log 0 = 0 for components with underflowing responsibility
            entropy -= torch.where(resp > 0, resp * log_resp, 0.0).sum()
        nk += resp.sum(0)
        sx += resp.T @ Xc
        moment = cov_type.second_moment(Xc, resp).to(total["dtype"])
        sxx = moment if sxx is None else sxx.add_(moment)
    if sxx is None:  # no data: zero statistics of the right shape
        sxx = cov_type.second_moment(torch.zeros(0, D, **total), torch.zeros(0, K, **total))
    return Summary(shift.to(total["dtype"]), nk, sx, sxx, n_points, log_likelihood, entropy,
                   torch.cat(labels) if labels else None, worst_point)


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

