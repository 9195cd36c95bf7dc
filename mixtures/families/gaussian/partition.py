"""The Gaussian mixture a hard partition induces (capability ``"partition"``: k-means, k-medians).

The induced mixture of a partition is the structure fitted by one hard M step (weights =
cluster fractions, means = cluster means, covariances = within-cluster scatter +
``reg_covar``). It is built leniently, so a clustering never fails for want of a Gaussian:
a *degenerate* cluster, one whose own covariance + ``reg_covar`` is singular (a singleton,
identical points, fewer points than dimensions: ``reg_covar=0`` makes these common) or
that is empty, takes the pooled within-cluster covariance ``Σ_k S_k / N`` of the partition
instead (the "tied" estimate, in the model's structure), + ``reg_covar``; an empty
cluster's mean is its centre, its weight ≈ 0. When the pooled covariance is singular too
(every cluster degenerate along a common direction, e.g. a constant feature), it is
raised on the diagonal by ``max(1e-6, 1000 D eps)`` times its largest variance (times the
data's mean variance when that is 0, or 1 for constant data): a floor relative to the
clusters' scale that passes the Cholesky test in any dtype. Centres and labels are
untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from mixtures.core import comm
from mixtures.core.chunks import chunk_size_for
from mixtures.core.stream import iter_data
from mixtures.core.summary import Summary, floored_counts
from mixtures.core.weights import weight_chunks
from mixtures.errors import SingularCovarianceError
from mixtures.families.gaussian.covariance import CovarianceStructure
from mixtures.families.gaussian.params import MixtureParams
from mixtures.families.gaussian.statistics import gaussian_summary, m_step
from mixtures.kernels.kmeans import assign, mean_variance


def partition_summary(X: Any, centers: Tensor, cov_type: CovarianceStructure, shift: Tensor,
                      metric: str = "l2", chunk_size: int | None = None,
                      distributed: bool = False, sample_weight: Tensor | None = None) -> tuple[Summary, float]:
    """Statistics of the nearest-centre partition (one pass): ``(summary, objective)``.

    ``objective`` is the inertia (L2) or the sum of L1 distances to the centres.
    ``distributed``: every sum (``nk``, ``sx``, ``sxx``, the point count and
    ``objective``) is all-reduced over ranks in one collective (``shift`` must be
    the same on every rank). ``sample_weight`` ``(N,)``: every point's one-hot responsibility and
    distance are weighted.
    """
    K, D = centers.shape
    nk, sx, sxx, objective = shift.new_zeros(K), shift.new_zeros(K, D), None, 0.0
    n_points = 0
    size = chunk_size or chunk_size_for(K, D)
    for chunk, weights in zip(iter_data(X, size), weight_chunks(sample_weight, size)):
        labels, distances = assign(chunk, centers, metric)
        resp = torch.nn.functional.one_hot(labels, K).to(chunk.dtype)
        if weights is not None:
            distances, resp = distances * weights, resp * weights[:, None]
        objective += float(distances.sum())
        centred = chunk - shift
        nk += resp.sum(0)
        sx += resp.T @ centred
        moment = cov_type.second_moment(centred, resp)
        sxx = moment if sxx is None else sxx + moment
        n_points += chunk.shape[0]
    if sxx is None:  # an empty shard
        sxx = cov_type.second_moment(shift.new_zeros(0, D), shift.new_zeros(0, K))
    if distributed:
        totals = torch.tensor([float(n_points), objective], dtype=torch.float64, device=shift.device)
        nk, sx, sxx, totals = comm.all_reduce_sum(nk, sx, sxx, totals)
        n_points, objective = int(round(float(totals[0]))), float(totals[1])
    nan = shift.new_tensor(math.nan)
    return gaussian_summary(nk, sx, sxx, shift, n_points, nan, shift.new_zeros(())), objective


#: relative size of the induced mixture's covariance floor (module docstring)
INDUCED_FLOOR = 1e-6


def _pooled_within(summary: Summary, cov_type: CovarianceStructure) -> Tensor:
    """Pooled within-cluster covariance ``Σ_k S_k / N`` in the statistic's layout."""
    return cov_type.pooled_scatter(floored_counts(summary.nk), summary.sx, summary.sxx)


def _lenient_statistics(summary: Summary, cov_type: CovarianceStructure, degenerate: set[int], floor: float) -> Summary:
    """Statistics in which every ``degenerate`` cluster has the pooled covariance (+ ``floor``).

    Such a cluster keeps its count; its scatter is the pooled covariance about the shift
    (mean 0 in the shifted frame, so ``E[x²] - E[x]²`` does not cancel; the caller puts
    the cluster's mean back). For tied the floor is added to the shared statistic.
    """
    if not degenerate and floor == 0.0:
        return summary
    K, D = summary.sx.shape
    counts = floored_counts(summary.nk)
    eye = torch.eye(D, dtype=summary.sx.dtype, device=summary.sx.device)
    if cov_type.shared:  # the floor is added to the pooled statistic; there is no cluster to replace
        return summary.replace(sxx=summary.sxx + counts.sum() * floor * eye)
    pooled = _pooled_within(summary, cov_type)
    pooled = pooled + floor * (eye if pooled.dim() == 2 else 1.0)
    chosen = torch.zeros(K, dtype=torch.bool, device=summary.sx.device)
    chosen[sorted(degenerate)] = True
    scatter = counts.reshape((-1,) + (1,) * pooled.dim()) * pooled  # (K, D, D) or (K, D)
    mask = chosen.reshape((-1,) + (1,) * pooled.dim())
    return summary.replace(sx=torch.where(chosen[:, None], torch.zeros_like(summary.sx), summary.sx),
                           sxx=torch.where(mask, scatter, summary.sxx))


def _covariance_floor(summary: Summary, cov_type: CovarianceStructure, data_variance: Callable[[], float]) -> float:
    """``max(1e-6, 1000 D eps)`` times the pooled covariance's largest variance (module docstring)."""
    pooled = _pooled_within(summary, cov_type)
    variances = pooled.diagonal() if pooled.dim() == 2 else pooled
    scale = float(variances.max())
    if not scale > 0:  # every cluster is identical points: fall back to the data's spread
        scale = data_variance()
    if not scale > 0:  # constant data: no scale at all
        scale = 1.0
    D = summary.sx.shape[1]
    return max(INDUCED_FLOOR, 1000 * D * torch.finfo(summary.sx.dtype).eps) * scale


def induced_params(summary: Summary, cov_type: CovarianceStructure, reg_covar: float, centers: Tensor,
                   data_variance: Callable[[], float]) -> tuple[MixtureParams, list[int], float]:
    """The induced mixture of a partition, built leniently (module docstring).

    Args:
        summary: the partition's statistics (:func:`partition_summary`).
        centers: ``(K, D)`` the clusters' centres (the means of empty clusters).
        data_variance: returns the data's mean per-feature variance (called only when
            every cluster is identical points: it may cost a pass).

    Returns ``(params, degenerate, floor)``: ``degenerate`` the sorted clusters that took
    the pooled covariance, ``floor`` what was added to it (0.0: nothing).
    """
    K = summary.nk.shape[0]
    degenerate = set(torch.nonzero(summary.nk == 0).reshape(-1).tolist())  # empty: no scatter of its own
    floor = 0.0
    for _ in range(K + 2):  # each failure adds a degenerate cluster, or sets the floor once
        try:
            params = m_step(_lenient_statistics(summary, cov_type, degenerate, floor), cov_type, reg_covar)
            break
        except SingularCovarianceError as error:
            if error.component is not None and error.component not in degenerate:
                degenerate.add(error.component)
            elif floor == 0.0:  # the pooled (or tied) covariance itself is singular
                floor = _covariance_floor(summary, cov_type, data_variance)
            else:
                raise
    else:  # pragma: no cover - the floor makes the pooled covariance positive definite
        raise SingularCovarianceError("the induced mixture has no positive definite covariance.")
    if degenerate:
        chosen = torch.zeros(K, dtype=torch.bool, device=centers.device)
        chosen[sorted(degenerate)] = True
        means = summary.sx / floored_counts(summary.nk)[:, None] + summary.shift
        means = torch.where((summary.nk > 0)[:, None], means, centers.to(means.dtype))
        params = MixtureParams.from_native(params.weights, torch.where(chosen[:, None], means, params.locs),
                                           params.native, cov_type, validate=False)
    return params, sorted(degenerate), floor


def induced_mixture(cov_type: CovarianceStructure, X: Any, centers: Tensor, reg_covar: float,
                    shift: Tensor, metric: str = "l2", chunk_size: int | None = None,
                    distributed: bool = False, sample_weight: Tensor | None = None):
    """The Gaussian mixture of the nearest-centre partition, built leniently (module docstring).

    Returns ``(params, summary, objective, flags)`` with ``flags`` the
    ``degenerate_clusters`` and ``covariance_floor`` of :func:`induced_params`.
    """
    summary, objective = partition_summary(X, centers, cov_type, shift, metric, chunk_size, distributed,
                                           sample_weight)
    params, degenerate, floor = induced_params(summary, cov_type, reg_covar, centers,
                                               lambda: mean_variance(X, distributed, sample_weight))
    return params, summary, objective, {"degenerate_clusters": degenerate, "covariance_floor": floor}
